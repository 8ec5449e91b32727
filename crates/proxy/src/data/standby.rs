//! Standby: the balancer hands its clients over to another one while it still listens.
//!
//! Before an LB pair's virtual address moves to the other host (a planned switchover, `cargo
//! xtask deploy`), the host that holds it must not keep connections its clients would reuse:
//! once the address moves, a request on such a connection reaches the other host, whose
//! kernel answers with a reset. In standby, every connection closes the way a drain closes
//! it, without a race ([`crate::data::session`]): an HTTP/1 connection answers its next
//! request with `Connection: close` and one that stays idle closes at the end of
//! `drain_window`; an HTTP/2 connection gets the graceful GOAWAY. Connections accepted while
//! in standby are served the same way (one request, then close), so clients open their next
//! connection through whichever host holds the address then. Unlike a drain, the listeners
//! keep accepting, and standby ends (`set standby off`): connections accepted after it keep
//! alive again.
//!
//! A drain is standby that never ends: the graceful stop and the binary upgrade enter it, so
//! one path closes connections for all of them.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::data::tripwire::{Tripwire, Wire};

/// The process's standby: the wire connections wait on to close gracefully.
#[derive(Debug, Default)]
pub(crate) struct Standby {
    /// Tripped while in standby; replaced by a fresh one when standby ends, so connections
    /// that saw the trip still close and later ones keep alive.
    wire: ArcSwap<Wire>,
}

impl Standby {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// What a new connection waits on to close gracefully (tripped already in standby).
    pub(crate) fn wire(&self) -> Tripwire {
        Tripwire::of(self.wire.load_full())
    }

    /// Enters standby: every open connection closes after its next answer (idle ones at the
    /// end of the drain window), and so do those accepted from now on. Whether it was off.
    pub(crate) fn enter(&self) -> bool {
        let wire = self.wire.load();
        let was_off = !wire.is_tripped();
        wire.trip();
        was_off
    }

    /// Leaves standby: connections accepted from now on keep alive (those that saw standby
    /// still close). Whether it was on.
    pub(crate) fn leave(&self) -> bool {
        let mut was_on = false;
        self.wire.rcu(|wire| {
            was_on = wire.is_tripped();
            if was_on {
                Arc::new(Wire::default())
            } else {
                Arc::clone(wire)
            }
        });
        was_on
    }

    /// Whether it is in standby.
    pub(crate) fn is_on(&self) -> bool {
        self.wire.load().is_tripped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_see_the_standby_they_were_born_in_and_the_trips_after() {
        let standby = Standby::new();
        let before = standby.wire();
        assert!(!before.is_tripped() && !standby.is_on());
        assert!(standby.enter(), "it was off");
        assert!(!standby.enter(), "entering twice changes nothing");
        assert!(before.is_tripped(), "an open connection sees standby start");
        let during = standby.wire();
        assert!(
            during.is_tripped(),
            "a connection accepted in standby closes too"
        );
        assert!(standby.leave(), "it was on");
        assert!(!standby.leave(), "leaving twice changes nothing");
        assert!(
            before.is_tripped() && during.is_tripped(),
            "those still close"
        );
        let after = standby.wire();
        assert!(!after.is_tripped(), "a later connection keeps alive");
        assert!(!standby.is_on());
        assert!(standby.enter());
        assert!(after.is_tripped(), "and sees the next standby");
    }
}
