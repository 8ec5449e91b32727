//! What a pick may know of the servers' load.

use super::{Router, ServerId};

/// The servers' current load, as the proxy counts it (the router itself holds no counter):
/// requests in flight on each server, and each server's `maxconn` (0: none).
///
/// Round-robin passes over a server at its `maxconn` while another can take the request
/// (when all are full, it returns one anyway: the caller queues the request for the pool).
/// A sticky or hashed pick is not moved by `maxconn` (the caller queues it for its server),
/// except by a bounded-load hash, which moves a key off a server over its bound.
#[derive(Clone, Copy)]
pub struct Loads<'a> {
    in_flight: &'a dyn Fn(ServerId) -> u32,
    maxconn: &'a dyn Fn(ServerId) -> u32,
}

impl<'a> Loads<'a> {
    /// Loads read through `in_flight` and `maxconn`.
    #[must_use]
    pub fn new(
        in_flight: &'a dyn Fn(ServerId) -> u32,
        maxconn: &'a dyn Fn(ServerId) -> u32,
    ) -> Self {
        Self { in_flight, maxconn }
    }

    pub(super) fn in_flight(&self, slot: usize) -> u32 {
        (self.in_flight)(ServerId(slot as u16))
    }

    pub(super) fn full(&self, slot: usize) -> bool {
        let max = (self.maxconn)(ServerId(slot as u16));
        max > 0 && self.in_flight(slot) >= max
    }
}

impl std::fmt::Debug for Loads<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loads")
    }
}

impl Router {
    /// Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2018): the
    /// key's servers in its jump-hash order (its bucket, then its re-hashes, then a scan),
    /// the first whose in-flight load is under its bound `ceil(factor% x (total + 1) x
    /// weight / total weight)` and under its `maxconn`. `None` when no server is under its
    /// bound (only possible while every one is full).
    pub(super) fn pick_bounded(
        &self,
        key: &[u8],
        excluded: &impl Fn(usize) -> bool,
        factor: u32,
        loads: &Loads<'_>,
    ) -> Option<(usize, u32, bool)> {
        let n = self.len();
        let usable = |i: usize| i < n && self.new_ok[i] && !excluded(i) && self.weights[i] > 0;
        let (mut total, mut weight) = (0_u64, 0_u64);
        for i in (0..n).filter(|&i| usable(i)) {
            total += u64::from(loads.in_flight(i));
            weight += u64::from(self.weights[i]);
        }
        if weight == 0 {
            return None;
        }
        let under_bound = |i: usize| {
            let share = u64::from(factor) * (total + 1) * u64::from(self.weights[i]);
            let bound = share.div_ceil(100 * weight).max(1);
            u64::from(loads.in_flight(i)) < bound && !loads.full(i)
        };
        self.probe(key, excluded, |i| usable(i) && under_bound(i))
    }
}
