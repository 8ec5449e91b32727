//! A one-shot signal the data plane checks on every request without a lock.
//!
//! `tokio_util`'s `CancellationToken` keeps its state in a tree behind a mutex: `is_cancelled`,
//! `clone` and `drop` each lock it, and every request touched the shared tokens of its server
//! (`shutdown-sessions`) and of its frontend (drain) several times, from every event loop.
//! A [`Tripwire`] is an atomic flag next to a `tokio::sync::Notify`: checking and cloning are
//! atomic operations; only a task that actually waits registers with the `Notify` (whose waiter
//! list tokio guards with a lock of its own), and it does so once per wait.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};

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
        self.0.is_tripped()
    }

    /// Completes once it has tripped (at once if it already has).
    ///
    /// A wait that is polled again by the same task costs one atomic load: tokio's `Notified`
    /// takes its `Notify`'s lock on every poll, and this wait sits next to a connection's
    /// socket in a `select!`, polled on each of its readiness events, while every connection
    /// of the frontend (of the process, for the hard stop) waits on the same `Notify`.
    pub(crate) async fn tripped(&self) {
        let notified = self.0.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a trip between the check and the wait is not missed.
        notified.as_mut().enable();
        let mut registered: Option<Waker> = None;
        std::future::poll_fn(|cx| {
            if self.is_tripped() {
                return Poll::Ready(());
            }
            // Already registered with this task's waker: a trip wakes it (the flag is set
            // before the `Notify` is), and the check above then sees the flag.
            if registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            let poll = notified.as_mut().poll(cx);
            if poll.is_pending() {
                registered = Some(cx.waker().clone());
            }
            poll
        })
        .await;
    }
}

impl Wire {
    /// Whether it has tripped.
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Trips every [`Tripwire`] of this wire.
    pub(crate) fn trip(&self) {
        self.tripped.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::Woken;
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

    #[test]
    fn a_wait_polled_again_wakes_its_latest_waker_on_the_trip() {
        let wire = Tripwire::new();
        let mut wait = Box::pin(wire.tripped());
        let first = Arc::new(Woken::default());
        let second = Arc::new(Woken::default());
        let first_waker = Waker::from(first.clone());
        let second_waker = Waker::from(second.clone());
        // Polled many times by one task, as a `select!` next to a socket is.
        for _ in 0..3 {
            let mut cx = std::task::Context::from_waker(&first_waker);
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        // Then by another waker: it must be the one woken.
        let mut cx = std::task::Context::from_waker(&second_waker);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        wire.trip();
        assert!(second.was_woken(), "the latest waker is woken");
        assert!(!first.was_woken(), "a replaced waker is not");
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
