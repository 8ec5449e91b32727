//! A one-shot signal the data plane checks on every request without a lock.
//!
//! `tokio_util`'s `CancellationToken` keeps its state in a tree behind a mutex: `is_cancelled`,
//! `clone` and `drop` each lock it, and every request touched the shared tokens of its server
//! (`shutdown-sessions`) and of its frontend (drain) several times, from every event loop.
//! A [`Tripwire`] is an atomic flag next to a `tokio::sync::Notify`: checking and cloning are
//! atomic operations; only a task that actually waits registers with the `Notify` (whose waiter
//! list tokio guards with a lock of its own), and it does so once per wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A signal that trips once and stays tripped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tripwire(Arc<Wire>);

/// The shared state of a [`Tripwire`] (what an `ArcSwap` of one holds).
#[derive(Debug, Default)]
pub(crate) struct Wire {
    tripped: AtomicBool,
    notify: Notify,
}

impl Tripwire {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The tripwire of a shared wire.
    pub(crate) fn of(wire: Arc<Wire>) -> Self {
        Self(wire)
    }

    /// Trips it: every waiter wakes, every later check sees it.
    pub(crate) fn trip(&self) {
        self.0.trip();
    }

    /// Whether it has tripped (one atomic load).
    pub(crate) fn is_tripped(&self) -> bool {
        self.0.tripped.load(Ordering::Acquire)
    }

    /// Completes once it has tripped (at once if it already has).
    pub(crate) async fn tripped(&self) {
        let notified = self.0.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a trip between the check and the wait is not missed.
        notified.as_mut().enable();
        if self.is_tripped() {
            return;
        }
        notified.await;
    }
}

impl Wire {
    /// Trips every [`Tripwire`] of this wire.
    pub(crate) fn trip(&self) {
        self.tripped.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_on_trip_and_later_waits_complete_at_once() {
        let wire = Tripwire::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let w = wire.clone();
                tokio::spawn(async move { w.tripped().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "not tripped yet");
        assert!(!wire.is_tripped());
        wire.trip();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(1), w)
                .await
                .expect("woken by the trip")
                .expect("task");
        }
        assert!(wire.is_tripped());
        tokio::time::timeout(Duration::from_millis(1), wire.tripped())
            .await
            .expect("an already tripped wire completes at once");
    }
}
