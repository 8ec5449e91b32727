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
use crate::data::queue::Queue;
use crate::data::ratelimit::RateTable;
use crate::data::upstream::Upstream;

/// A pool for the life of the process (it survives reloads): its current view and counters.
#[derive(Debug)]
pub(crate) struct PoolSlot {
    /// Stable index of the pool in the control task (never reused).
    pub(crate) id: usize,
    pub(crate) name: Arc<str>,
    pub(crate) view: ArcSwap<PoolView>,
    pub(crate) counters: Arc<Counters>,
    /// Requests no server could take yet (all at their `maxconn`), for whichever frees first.
    pub(crate) queue: Arc<Queue>,
}

/// One immutable routing snapshot of a pool.
#[derive(Debug)]
pub(crate) struct PoolView {
    pub(crate) settings: Arc<config::Pool>,
    pub(crate) router: Router,
    /// By slot ([`ServerId`]), tombstones included.
    pub(crate) servers: Arc<[Arc<Upstream>]>,
    /// Whether picks depend on the servers' load (`maxconn`, `hash_balance_factor`).
    pub(crate) load_aware: bool,
}

impl PoolView {
    pub(crate) fn new(
        settings: Arc<config::Pool>,
        router: Router,
        servers: Arc<[Arc<Upstream>]>,
    ) -> Self {
        let load_aware = settings.hash_balance_factor.is_some()
            || settings.servers.iter().any(|s| s.maxconn.is_some());
        Self {
            settings,
            router,
            servers,
            load_aware,
        }
    }

    pub(crate) fn upstream(&self, id: ServerId) -> &Arc<Upstream> {
        &self.servers[id.index()]
    }

    /// A server's in-flight load: the requests holding its `maxconn` slots, or, without a
    /// `maxconn`, its requests and tunnels in flight.
    pub(crate) fn in_flight(&self, id: ServerId) -> u32 {
        let up = self.upstream(id);
        if up.limit.maxconn() > 0 {
            up.limit.served()
        } else {
            u32::try_from(Counters::get(&up.counters.cur_sessions)).unwrap_or(u32::MAX)
        }
    }
}

/// One immutable snapshot of a frontend's routing table.
#[derive(Debug)]
pub(crate) struct FrontendView {
    pub(crate) name: Arc<str>,
    /// Longest prefix first.
    pub(crate) routes: Vec<RouteView>,
    pub(crate) default_pool: Arc<PoolSlot>,
    pub(crate) counters: Arc<Counters>,
    /// The frontend's rate limit, for every request.
    pub(crate) rate_limit: Option<Arc<RateTable>>,
    /// The path answered 200 by the frontend itself (`monitor_uri`).
    pub(crate) monitor_uri: Option<Arc<str>>,
}

/// A `path_prefix` route.
#[derive(Debug)]
pub(crate) struct RouteView {
    pub(crate) prefix: String,
    pub(crate) pool: Arc<PoolSlot>,
    /// The route's own rate limit.
    pub(crate) rate_limit: Option<Arc<RateTable>>,
}

impl FrontendView {
    /// The route for a request path: the longest matching `path_prefix`, if any.
    fn route_of(&self, path: &str) -> Option<&RouteView> {
        self.routes
            .iter()
            .find(|r| path.starts_with(r.prefix.as_str()))
    }

    /// The pool for a request path: the longest matching `path_prefix`'s, else the default.
    pub(crate) fn route(&self, path: &str) -> &Arc<PoolSlot> {
        self.route_of(path).map_or(&self.default_pool, |r| &r.pool)
    }

    /// The rate limits a request for `path` counts against: the frontend's, then its route's
    /// (no route lookup when the frontend has no rate limit at all).
    pub(crate) fn rate_limits(&self, path: &str) -> impl Iterator<Item = &Arc<RateTable>> {
        let any_route = self.routes.iter().any(|r| r.rate_limit.is_some());
        let route = any_route
            .then(|| self.route_of(path).and_then(|r| r.rate_limit.as_ref()))
            .flatten();
        self.rate_limit.iter().chain(route)
    }

    /// Every rate-limit table of the frontend.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Arc<RateTable>> {
        let routes = self.routes.iter().filter_map(|r| r.rate_limit.as_ref());
        self.rate_limit.iter().chain(routes)
    }
}
