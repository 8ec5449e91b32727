//! A connection's timer: one for the connection's whole life, not one per request.
//!
//! Arming a tokio timer and cancelling it each take the time driver's lock and touch its
//! wheel, so a keep-alive connection that armed a fresh timer for every wait paid that twice
//! per request. A [`Deadline`] keeps one timer and moves it only when a wait needs it to fire
//! sooner. A wait that needs it later (the usual case: each request pushes the deadline
//! further) only records the new instant; if the timer then fires before that instant, it is
//! re-armed once for the rest. So a busy connection touches the timer wheel about once per
//! timeout period, as HAProxy moves a task's expiry without requeueing it until it is
//! reached.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A deadline passed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// A connection's one timer, and the deadline of what it waits for now.
#[derive(Debug)]
pub(crate) struct Deadline {
    /// Armed at or before `at`; registered with the time driver from its first wait on.
    timer: Pin<Box<Sleep>>,
    /// When the current wait times out.
    at: Instant,
}

/// Where an unused timer points: far enough never to fire, near enough not to overflow.
const UNARMED: Duration = Duration::from_secs(365 * 24 * 3600);

impl Deadline {
    pub(crate) fn new() -> Self {
        let at = Instant::now() + UNARMED;
        Self {
            timer: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// Runs `f` until it finishes or `at` passes. The deadline is only computed, and the
    /// timer only involved, when `f` cannot finish on its first poll: a socket already
    /// ready reads no clock.
    pub(crate) async fn now_or_by<F: Future>(
        &mut self,
        at: impl FnOnce() -> Instant,
        f: F,
    ) -> Result<F::Output, Elapsed> {
        let mut f = pin!(f);
        let first = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = first {
            return Ok(out);
        }
        self.set(at());
        // `f` was just polled, with this task's waker: the first turn only arms the timer.
        let mut polled = true;
        std::future::poll_fn(|cx| {
            if !std::mem::take(&mut polled)
                && let Poll::Ready(out) = f.as_mut().poll(cx)
            {
                return Poll::Ready(Ok(out));
            }
            self.poll_reached(cx).map(|()| Err(Elapsed))
        })
        .await
    }

    /// Lets go of the task the timer would wake: a connection parked in a pool must not keep
    /// the last request's task (finished, maybe) alive until its timer fires. Costs no timer
    /// operation: the timer stays armed, with a waker that does nothing.
    ///
    /// It polls the timer, which tokio forbids once the timer's runtime has shut its driver
    /// down: only a connection's own event loop parks it (pools are per loop), and a runtime
    /// drops its tasks (and the bodies that park connections) before its driver.
    pub(crate) fn forget_waker(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = self.timer.as_mut().poll(&mut cx);
    }

    /// Makes `at` the deadline; the timer moves only if it would fire after it.
    fn set(&mut self, at: Instant) {
        self.at = at;
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
    }

    /// Ready once the deadline has passed.
    fn poll_reached(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            // Fired: at the deadline, or at an earlier one since pushed further.
            if self.timer.deadline() >= self.at {
                return Poll::Ready(());
            }
            let at = self.at;
            self.timer.as_mut().reset(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::Woken;

    /// A wait that never finishes by itself.
    fn forever() -> std::future::Pending<()> {
        std::future::pending()
    }

    /// A wait with deadline `at` that the answer ends after one second.
    async fn answered_after_a_second(deadline: &mut Deadline, at: Instant) {
        let quick = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "answered"
        };
        assert_eq!(deadline.now_or_by(|| at, quick).await, Ok("answered"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_deadline_not_before() {
        let mut deadline = Deadline::new();
        let start = Instant::now();
        let out = deadline
            .now_or_by(|| start + Duration::from_secs(5), forever())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_kept_even_though_the_timer_was_armed_sooner() {
        let mut deadline = Deadline::new();
        let start = Instant::now();
        // The first wait arms the timer at 5 s and finishes at 1 s.
        answered_after_a_second(&mut deadline, start + Duration::from_secs(5)).await;
        assert_eq!(deadline.timer.deadline(), start + Duration::from_secs(5));
        // The next wait's deadline is 11 s: the timer stays at 5 s, fires, and is re-armed.
        let out = deadline
            .now_or_by(|| Instant::now() + Duration::from_secs(10), forever())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(Instant::now() - start, Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_deadline_moves_the_timer() {
        let mut deadline = Deadline::new();
        let start = Instant::now();
        answered_after_a_second(&mut deadline, start + Duration::from_secs(30)).await;
        let out = deadline
            .now_or_by(|| Instant::now() + Duration::from_secs(2), forever())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_forgotten_waker_is_dropped_and_the_timer_still_serves() {
        let mut deadline = Deadline::new();
        let start = Instant::now();
        let task = std::sync::Arc::new(Woken::default());
        let waker = std::task::Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let mut wait = Box::pin(deadline.now_or_by(|| start + Duration::from_secs(5), forever()));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        drop(wait);
        assert_eq!(
            std::sync::Arc::strong_count(&task),
            3,
            "the timer holds the task"
        );
        deadline.forget_waker();
        assert_eq!(std::sync::Arc::strong_count(&task), 2, "only ours remain");
        let out = deadline
            .now_or_by(|| start + Duration::from_secs(6), forever())
            .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(Instant::now() - start, Duration::from_secs(6));
        assert!(!task.was_woken(), "never woken");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_wait_reads_no_clock_and_arms_nothing() {
        let mut deadline = Deadline::new();
        let unarmed = deadline.timer.deadline();
        let out = deadline
            .now_or_by(|| unreachable!("no deadline for a ready wait"), async { 7 })
            .await;
        assert_eq!(out, Ok(7));
        assert_eq!(deadline.timer.deadline(), unarmed);
    }
}
