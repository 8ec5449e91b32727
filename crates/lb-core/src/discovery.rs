//! Servers named by DNS: what to do with each answer for a server's name, decided here so
//! every instance decides alike and the rules are tested with a fake clock.
//!
//! - An answer with addresses: keep the address in use if the answer still holds it (round-
//!   robin DNS reorders answers; a reorder must not move traffic), else take the lowest one.
//! - A failed lookup (timeout, SERVFAIL, a resolver down): keep the last good address, for
//!   as long as it fails; traffic goes on to the last known server.
//! - NXDOMAIN, or an answer without any address: keep the last good address for `hold_nx`
//!   (HAProxy's `hold nx`), then take the server out (maintenance) until the name resolves.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What one lookup of a name returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name's addresses (A, or AAAA when it has no A record).
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN, or NOERROR without any address.
    NoSuchName,
    /// No usable answer: timeout, SERVFAIL, REFUSED, a malformed or truncated reply.
    Failed,
}

/// What to do with the server after a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Use this address (the same as before, or a new one).
    Use(IpAddr),
    /// Nothing usable yet and nothing known: the server has no address.
    Unresolved,
    /// The name is gone for longer than `hold_nx`: take the server out of service.
    Maintenance,
}

/// The resolution state of one name.
#[derive(Debug, Clone, Default)]
pub struct NameState {
    current: Option<IpAddr>,
    missing_since: Option<Instant>,
}

impl NameState {
    /// A name resolved at start to `addr` (or not at all).
    pub fn new(current: Option<IpAddr>) -> Self {
        Self {
            current,
            missing_since: None,
        }
    }

    /// The address in use.
    pub fn current(&self) -> Option<IpAddr> {
        self.current
    }

    /// Takes one lookup's result, observed at `now`.
    pub fn observe(&mut self, lookup: &Lookup, now: Instant, hold_nx: Duration) -> Decision {
        match lookup {
            Lookup::Addresses(addrs) if !addrs.is_empty() => {
                self.missing_since = None;
                let keep = self.current.filter(|c| addrs.contains(c));
                let chosen = keep.or_else(|| addrs.iter().min().copied());
                self.current = chosen;
                chosen.map_or(Decision::Unresolved, Decision::Use)
            }
            Lookup::Addresses(_) | Lookup::NoSuchName => {
                let since = *self.missing_since.get_or_insert(now);
                match self.current {
                    Some(addr) if now.saturating_duration_since(since) < hold_nx => {
                        Decision::Use(addr)
                    }
                    Some(_) => Decision::Maintenance,
                    None => Decision::Unresolved,
                }
            }
            Lookup::Failed => self.current.map_or(Decision::Unresolved, Decision::Use),
        }
    }
}

/// A server a SRV record names, its target resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The record's target host.
    pub target: String,
    /// The record's port.
    pub port: u16,
    /// The record's weight (the server's weight, at most 256; 0 counts as 1).
    pub weight: u16,
    /// The target's address.
    pub addr: IpAddr,
}

impl Endpoint {
    fn same_server(&self, other: &Endpoint) -> bool {
        self.target == other.target && self.port == other.port
    }
}

/// Fills a `server_template`'s slots from `endpoints` (in preference order): an endpoint
/// already in a slot stays in it, so its sticky cookies and hash keys stay with it (its
/// address or weight may change); new endpoints take the free slots in order; endpoints
/// beyond the slots are left out; a slot whose endpoint is gone is emptied.
pub fn fill_slots(slots: &[Option<Endpoint>], endpoints: &[Endpoint]) -> Vec<Option<Endpoint>> {
    let mut filled: Vec<Option<Endpoint>> = slots
        .iter()
        .map(|slot| {
            let kept = slot.as_ref()?;
            endpoints.iter().find(|e| e.same_server(kept)).cloned()
        })
        .collect();
    for endpoint in endpoints {
        if filled.iter().flatten().any(|e| e.same_server(endpoint)) {
            continue;
        }
        if let Some(free) = filled.iter_mut().find(|slot| slot.is_none()) {
            *free = Some(endpoint.clone());
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_reordered_answer_keeps_the_address_a_changed_one_moves() {
        let t = Instant::now();
        let hold = Duration::from_secs(30);
        let mut name = NameState::new(None);
        let both = Lookup::Addresses(vec![ip("10.0.0.2"), ip("10.0.0.1")]);
        assert_eq!(name.observe(&both, t, hold), Decision::Use(ip("10.0.0.1")));
        let reordered = Lookup::Addresses(vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(
            name.observe(&reordered, t, hold),
            Decision::Use(ip("10.0.0.1"))
        );
        let moved = Lookup::Addresses(vec![ip("10.0.0.9"), ip("10.0.0.2")]);
        assert_eq!(name.observe(&moved, t, hold), Decision::Use(ip("10.0.0.2")));
        assert_eq!(name.current(), Some(ip("10.0.0.2")));
    }

    fn endpoint(target: &str, port: u16, addr: &str) -> Endpoint {
        Endpoint {
            target: target.into(),
            port,
            weight: 10,
            addr: ip(addr),
        }
    }

    #[test]
    fn slots_keep_their_endpoint_and_take_new_ones_in_order() {
        let a = endpoint("a.veza", 8080, "10.0.0.1");
        let b = endpoint("b.veza", 8080, "10.0.0.2");
        let c = endpoint("c.veza", 8080, "10.0.0.3");
        let slots = fill_slots(&[None, None, None], std::slice::from_ref(&a));
        assert_eq!(slots, [Some(a.clone()), None, None]);
        // b appears: the free slot; a keeps slot 1 even listed second.
        let slots = fill_slots(&slots, &[b.clone(), a.clone()]);
        assert_eq!(slots, [Some(a.clone()), Some(b.clone()), None]);
        // a goes: its slot empties, b stays in slot 2; c takes slot 1, the first free one.
        let slots = fill_slots(&slots, std::slice::from_ref(&b));
        assert_eq!(slots, [None, Some(b.clone()), None]);
        let moved_b = endpoint("b.veza", 8080, "10.0.0.9");
        let slots = fill_slots(&slots, &[moved_b.clone(), c.clone()]);
        assert_eq!(slots, [Some(c.clone()), Some(moved_b), None]);
        // More endpoints than slots: the first ones in preference order.
        let full = fill_slots(&[None, None], &[a.clone(), b.clone(), c]);
        assert_eq!(full, [Some(a), Some(b)]);
    }

    #[test]
    fn failures_keep_the_last_good_address_for_ever() {
        let t = Instant::now();
        let mut name = NameState::new(Some(ip("10.0.0.1")));
        for minutes in [0, 1, 60, 600] {
            let now = t + Duration::from_secs(60 * minutes);
            assert_eq!(
                name.observe(&Lookup::Failed, now, Duration::from_secs(30)),
                Decision::Use(ip("10.0.0.1"))
            );
        }
        let mut never = NameState::new(None);
        assert_eq!(
            never.observe(&Lookup::Failed, t, Duration::from_secs(30)),
            Decision::Unresolved
        );
    }

    #[test]
    fn a_missing_name_is_held_then_taken_out_until_it_returns() {
        let t = Instant::now();
        let hold = Duration::from_secs(30);
        let mut name = NameState::new(Some(ip("10.0.0.1")));
        assert_eq!(
            name.observe(&Lookup::NoSuchName, t, hold),
            Decision::Use(ip("10.0.0.1"))
        );
        // A failure in between does not restart the hold.
        assert_eq!(
            name.observe(&Lookup::Failed, t + Duration::from_secs(10), hold),
            Decision::Use(ip("10.0.0.1"))
        );
        assert_eq!(
            name.observe(
                &Lookup::Addresses(vec![]),
                t + Duration::from_secs(29),
                hold
            ),
            Decision::Use(ip("10.0.0.1"))
        );
        assert_eq!(
            name.observe(&Lookup::NoSuchName, t + Duration::from_secs(30), hold),
            Decision::Maintenance
        );
        let back = Lookup::Addresses(vec![ip("10.0.0.1")]);
        assert_eq!(
            name.observe(&back, t + Duration::from_secs(40), hold),
            Decision::Use(ip("10.0.0.1"))
        );
        // The hold starts over after the name came back.
        assert_eq!(
            name.observe(&Lookup::NoSuchName, t + Duration::from_secs(41), hold),
            Decision::Use(ip("10.0.0.1"))
        );
    }
}
