//! The process-wide connection limit (`[global] maxconn`): listeners take a slot before they
//! accept, and stop accepting while none is free, so the excess waits in the kernel's
//! backlog instead of failing in veza-lb (HAProxy pauses its listeners the same way). Running
//! out of descriptors (`EMFILE`) pauses them too. Each overload episode is logged once.
//!
//! The slots are the same mechanism as a server's `maxconn` ([`Slots`]): a compare-and-swap
//! to take one, a decrement to give it back, a wake-up only while a listener waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::data::queue::Slots;

/// An overload episode ends after this long without hitting the limit; the next one is
/// logged again.
const CALM: Duration = Duration::from_secs(5);

/// The connection budget shared by every listener and event loop.
#[derive(Debug)]
pub(crate) struct Admission {
    slots: Slots,
    started: Instant,
    /// When the limit was last hit, in ms since `started` (0: never).
    last_overload_ms: AtomicU64,
}

/// One admitted connection's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Admission>);

/// A limit as the slots count it: at least 1 (there is always a limit here).
fn bounded(max: u64) -> Option<u32> {
    Some(u32::try_from(max.max(1)).unwrap_or(u32::MAX))
}

impl Admission {
    pub(crate) fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            slots: Slots::new(bounded(max)),
            started: Instant::now(),
            last_overload_ms: AtomicU64::new(0),
        })
    }

    /// The limit (`Maxconn` in `show info`).
    pub(crate) fn max(&self) -> u64 {
        u64::from(self.slots.maxconn())
    }

    /// A reload's new limit; connections above it stay open, no new one is accepted until the
    /// count is below it.
    pub(crate) fn set_max(&self, max: u64) {
        self.slots.set_maxconn(bounded(max));
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        self.slots.try_take().then(|| Slot(self.clone()))
    }

    /// Waits for a connection to close and takes its slot; `None` after `patience`.
    pub(crate) async fn wait_for_slot(self: &Arc<Self>, patience: Duration) -> Option<Slot> {
        let deadline = tokio::time::Instant::now() + patience;
        self.slots
            .queue
            .wait(deadline, None, || self.try_admit())
            .await
    }

    /// Records that the limit was hit; true when this starts an episode (the caller logs it).
    pub(crate) fn overloaded(&self) -> bool {
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        let last = self.last_overload_ms.swap(now, Ordering::AcqRel);
        last == 0 || now.saturating_sub(last) > CALM.as_millis() as u64
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_bounded_and_given_back() {
        let admission = Admission::new(2);
        let a = admission.try_admit().expect("first");
        let _b = admission.try_admit().expect("second");
        assert!(admission.try_admit().is_none(), "full");
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move {
                admission
                    .wait_for_slot(Duration::from_secs(30))
                    .await
                    .is_some()
            })
        };
        tokio::task::yield_now().await;
        drop(a);
        let admitted = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken when a slot is given back")
            .expect("task");
        assert!(admitted);
        admission.set_max(10);
        assert!(admission.try_admit().is_some(), "a reload raised the limit");
    }

    #[test]
    fn one_warning_per_episode() {
        let admission = Admission::new(1);
        assert!(admission.overloaded(), "the first hit starts an episode");
        assert!(!admission.overloaded(), "later hits belong to it");
        assert!(!admission.overloaded());
    }
}
