//! Per-server `maxconn` and the queues in front of it, as HAProxy's: a request takes one of
//! its server's slots ([`Served`]) for as long as the server works on it (until the end of
//! the response body, or of the tunnel with `maxconn_counts_tunnels`). A request whose server
//! is full waits: in that server's queue when it is bound to it (sticky cookie, hash key),
//! else in the pool's queue, served by whichever server frees a slot first. `timeout_queue`
//! bounds the wait (503, `sQ`).
//!
//! [`Slots`] is the mechanism, shared with the process-wide connection limit
//! (`data::admission`): lock-free while there is room (a slot is a compare-and-swap on a
//! count, giving it back a decrement); only a full limit makes anyone wait (on a `Notify`),
//! and only then does giving a slot back wake one waiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::counters::Counters;
use crate::data::upstream::Upstream;

/// Requests waiting for a slot (`qcur`), and their wake-up.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    waiting: AtomicU32,
    freed: Notify,
}

impl Queue {
    /// `qcur`: requests waiting now.
    pub(crate) fn current(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits in this queue until `admit` gives a slot, or `deadline`; `qmax` is kept on
    /// `counters`, if any.
    pub(crate) async fn wait<T>(
        &self,
        deadline: Instant,
        counters: Option<&Counters>,
        mut admit: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let now = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(counters) = counters {
            counters
                .max_queued
                .fetch_max(u64::from(now), Ordering::Relaxed);
        }
        let admitted = loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before trying, so a slot given back in between is not missed.
            freed.as_mut().enable();
            if let Some(slot) = admit() {
                break Some(slot);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                break admit();
            }
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        admitted
    }

    fn wake_one(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.freed.notify_one();
        }
    }
}

/// A `maxconn`: at most `max` slots in use (a server's requests, the process's connections),
/// and the queue of those waiting for one.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    /// 0: no limit (then nothing is counted here).
    max: AtomicU32,
    used: AtomicU32,
    /// Those waiting for a slot (for a server: the requests bound to it, sticky or hashed).
    pub(crate) queue: Queue,
}

impl Slots {
    pub(crate) fn new(max: Option<u32>) -> Self {
        Self {
            max: AtomicU32::new(max.unwrap_or(0)),
            ..Self::default()
        }
    }

    /// The limit (`slim`, `Maxconn`), 0 for none.
    pub(crate) fn maxconn(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// A reload's limit. Slots taken without a limit are not counted against a new one;
    /// those above a lower one stay taken until given back.
    pub(crate) fn set_maxconn(&self, max: Option<u32>) {
        self.max.store(max.unwrap_or(0), Ordering::Relaxed);
        self.queue.freed.notify_waiters();
    }

    /// Slots in use.
    pub(crate) fn served(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes a slot if there is a limit and room under it (a compare-and-swap).
    pub(crate) fn try_take(&self) -> bool {
        let max = self.maxconn();
        max > 0
            && self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok()
    }

    /// Gives a slot back, waking one waiter if any.
    pub(crate) fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
        self.queue.wake_one();
    }
}

/// A request's slot on its server; given back (waking one waiter) when dropped.
#[derive(Debug)]
pub(crate) enum Served {
    /// The server has no `maxconn`: nothing to give back.
    Unlimited,
    /// One of the server's `maxconn` slots.
    Slot {
        upstream: Arc<Upstream>,
        /// The pool's queue, woken too: any server's free slot serves it.
        pool: Arc<Queue>,
    },
}

/// Takes a slot on `upstream` if it has room.
pub(crate) fn try_serve(upstream: &Arc<Upstream>, pool: &Arc<Queue>) -> Option<Served> {
    if upstream.limit.maxconn() == 0 {
        return Some(Served::Unlimited);
    }
    upstream.limit.try_take().then(|| Served::Slot {
        upstream: upstream.clone(),
        pool: pool.clone(),
    })
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Served::Slot { upstream, pool } = self {
            upstream.limit.give_back();
            pool.wake_one();
        }
    }
}

/// Records how long a request waited for its slot (`qtime`), on its pool and server.
pub(crate) fn record_wait(counters: [&Counters; 2], waited: Duration) {
    for c in counters {
        c.queue_time.add(waited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's queue, and a server with `maxconn`.
    fn pool_and_server(maxconn: Option<u32>) -> (Arc<Queue>, Arc<Upstream>) {
        let addr = "127.0.0.1:1".parse().expect("addr");
        let server = Upstream::new("s".into(), addr, maxconn);
        (Arc::new(Queue::default()), Arc::new(server))
    }

    /// Waits in the server's queue, until `deadline`, for a slot; whether one came.
    async fn wait_for_slot(up: &Arc<Upstream>, pool: &Arc<Queue>, deadline: Instant) -> bool {
        let counters = up.counters.clone();
        (up.limit.queue)
            .wait(deadline, Some(&counters), || try_serve(up, pool))
            .await
            .is_some()
    }

    #[tokio::test]
    async fn slots_are_bounded_and_waiters_get_them_in_turn() {
        let (pool, up) = pool_and_server(Some(1));
        let first = try_serve(&up, &pool).expect("room for one");
        assert!(matches!(first, Served::Slot { .. }));
        assert!(try_serve(&up, &pool).is_none(), "full");
        assert_eq!(up.limit.served(), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        let waiter = {
            let (up, pool) = (up.clone(), pool.clone());
            tokio::spawn(async move { wait_for_slot(&up, &pool, deadline).await })
        };
        while up.limit.queue.current() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(Counters::get(&up.counters.max_queued), 1);
        drop(first);
        assert!(
            waiter.await.expect("task"),
            "the freed slot went to the waiter"
        );
        assert_eq!(up.limit.queue.current(), 0);
        assert_eq!(up.limit.served(), 0, "and came back when it finished");
    }

    #[tokio::test]
    async fn the_wait_ends_at_the_deadline() {
        let (pool, up) = pool_and_server(Some(1));
        let _held = try_serve(&up, &pool).expect("room");
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!wait_for_slot(&up, &pool, deadline).await);
        assert_eq!(up.limit.queue.current(), 0);
    }

    #[test]
    fn no_maxconn_counts_nothing() {
        let (pool, up) = pool_and_server(None);
        let slots: Vec<_> = (0..100)
            .map(|_| try_serve(&up, &pool).expect("unlimited"))
            .collect();
        assert_eq!(up.limit.served(), 0);
        drop(slots);
        up.limit.set_maxconn(Some(2));
        assert!(try_serve(&up, &pool).is_some());
    }
}
