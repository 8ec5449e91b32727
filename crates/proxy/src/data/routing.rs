//! What the hot path reads: immutable views of frontends and pools behind atomic pointers.
//!
//! A request loads its frontend's [`FrontendView`] and its pool's [`PoolView`] (two
//! `ArcSwap` loads, no lock), routes with the view's [`Router`], and keeps those `Arc`s for its
//! whole life, so a reload or a health change never alters a request already under way.

use std::sync::Arc;

use arc_swap::ArcSwap;
use lb_core::{Router, ServerId};

use crate::config;
use crate::counters::Counters;
use crate::data::upstream::Upstream;

/// A pool for the life of the process (it survives reloads): its current view and counters.
#[derive(Debug)]
pub(crate) struct PoolSlot {
    /// Stable index of the pool in the control task (never reused).
    pub(crate) id: usize,
    pub(crate) name: Arc<str>,
    pub(crate) view: ArcSwap<PoolView>,
    pub(crate) counters: Arc<Counters>,
}

/// One immutable routing snapshot of a pool.
#[derive(Debug)]
pub(crate) struct PoolView {
    pub(crate) settings: Arc<config::Pool>,
    pub(crate) router: Router,
    /// By slot ([`ServerId`]), tombstones included.
    pub(crate) servers: Arc<[Arc<Upstream>]>,
}

impl PoolView {
    pub(crate) fn upstream(&self, id: ServerId) -> &Arc<Upstream> {
        &self.servers[id.index()]
    }
}

/// One immutable snapshot of a frontend's routing table.
#[derive(Debug)]
pub(crate) struct FrontendView {
    pub(crate) name: Arc<str>,
    /// Longest prefix first.
    pub(crate) routes: Vec<(String, Arc<PoolSlot>)>,
    pub(crate) default_pool: Arc<PoolSlot>,
    pub(crate) counters: Arc<Counters>,
}

impl FrontendView {
    /// The pool for a request path: the longest matching `path_prefix`, else the default.
    pub(crate) fn route(&self, path: &str) -> &Arc<PoolSlot> {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(&self.default_pool, |(_, pool)| pool)
    }
}
