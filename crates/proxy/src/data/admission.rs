//! The process-wide connection limit (`[global] maxconn`): listeners take a slot before they
//! accept, and stop accepting while none is free, so the excess waits in the kernel's
//! backlog instead of failing in veza-lb (HAProxy pauses its listeners the same way). Running
//! out of descriptors (`EMFILE`) pauses them too. Each overload episode is logged once.
//!
//! Lock-free on the request path: a slot is a compare-and-swap on one counter, returning it
//! a decrement (and a wake-up only while a listener waits).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// An overload episode ends after this long without hitting the limit; the next one is
/// logged again.
const CALM: Duration = Duration::from_secs(5);

/// The connection budget shared by every listener and event loop.
#[derive(Debug)]
pub(crate) struct Admission {
    max: AtomicU64,
    open: AtomicU64,
    /// Listeners waiting for a slot (the only time closing a connection wakes anyone).
    waiting: AtomicUsize,
    freed: Notify,
    started: Instant,
    /// When the limit was last hit, in ms since `started` (0: never).
    last_overload_ms: AtomicU64,
}

/// One admitted connection's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Admission>);

impl Admission {
    pub(crate) fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            max: AtomicU64::new(max.max(1)),
            open: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
            started: Instant::now(),
            last_overload_ms: AtomicU64::new(0),
        })
    }

    /// The limit (`Maxconn` in `show info`).
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// A reload's new limit; connections above it stay open, no new one is accepted until the
    /// count is below it.
    pub(crate) fn set_max(&self, max: u64) {
        self.max.store(max.max(1), Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let max = self.max();
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Waits until a connection closes, or `patience` passes (descriptors are also freed by
    /// server connections closing, which do not wake anyone).
    pub(crate) async fn wait_for_room(&self, patience: Duration) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let freed = self.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if self.open.load(Ordering::Acquire) >= self.max() {
            let _ = tokio::time::timeout(patience, freed).await;
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
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
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        if self.0.waiting.load(Ordering::Acquire) > 0 {
            self.0.freed.notify_waiters();
        }
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
                admission.wait_for_room(Duration::from_secs(30)).await;
                admission.try_admit().is_some()
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
