//! Per-server `maxconn` and the queues in front of it, as HAProxy's: a request takes one of
//! its server's slots ([`Served`]) for as long as the server works on it (until the end of
//! the response body, or of the tunnel with `maxconn_counts_tunnels`). A request whose server
//! is full waits: in that server's queue when it is bound to it (sticky cookie, hash key),
//! else in the pool's queue, served by whichever server frees a slot first. `timeout_queue`
//! bounds the wait (503, `sQ`).
//!
//! Lock-free while there is room: a slot is a compare-and-swap on the server's counter and
//! giving it back a decrement. Only a full server makes requests wait (on a `Notify`), and
//! only then does giving a slot back wake anyone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

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
    /// `counters`.
    pub(crate) async fn wait<T>(
        &self,
        deadline: Instant,
        counters: &Counters,
        mut admit: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let now = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        counters
            .max_queued
            .fetch_max(u64::from(now), Ordering::Relaxed);
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

/// A server's `maxconn` and the requests it serves now.
#[derive(Debug, Default)]
pub(crate) struct Limit {
    /// 0: no limit (then nothing is counted here).
    maxconn: AtomicU32,
    served: AtomicU32,
    /// Requests bound to this server (sticky, hashed) waiting for one of its slots.
    pub(crate) queue: Queue,
}

impl Limit {
    pub(crate) fn new(maxconn: Option<u32>) -> Self {
        Self {
            maxconn: AtomicU32::new(maxconn.unwrap_or(0)),
            ..Self::default()
        }
    }

    /// `slim`: the server's `maxconn`, 0 for none.
    pub(crate) fn maxconn(&self) -> u32 {
        self.maxconn.load(Ordering::Relaxed)
    }

    /// A reload's `maxconn`. Requests admitted without a limit are not counted against a new
    /// one.
    pub(crate) fn set_maxconn(&self, maxconn: Option<u32>) {
        self.maxconn.store(maxconn.unwrap_or(0), Ordering::Relaxed);
        self.queue.freed.notify_waiters();
    }

    /// Requests holding one of its slots.
    pub(crate) fn served(&self) -> u32 {
        self.served.load(Ordering::Relaxed)
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
    let limit = &upstream.limit;
    let max = limit.maxconn();
    if max == 0 {
        return Some(Served::Unlimited);
    }
    limit
        .served
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Served::Slot {
            upstream: upstream.clone(),
            pool: pool.clone(),
        })
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Served::Slot { upstream, pool } = self {
            upstream.limit.served.fetch_sub(1, Ordering::AcqRel);
            upstream.limit.queue.wake_one();
            pool.wake_one();
        }
    }
}

/// Records how long a request waited for its slot (`qtime`), on its pool and server.
pub(crate) fn record_wait(counters: [&Counters; 2], since: Instant) {
    let waited = since.elapsed();
    for c in counters {
        c.queue_time.add(waited);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pool() -> Arc<Queue> {
        Arc::new(Queue::default())
    }

    #[tokio::test]
    async fn slots_are_bounded_and_waiters_get_them_in_turn() {
        let (pool, up) = (
            pool(),
            Arc::new(Upstream::new(
                "s".into(),
                "127.0.0.1:1".parse().unwrap(),
                Some(1),
            )),
        );
        let first = try_serve(&up, &pool).expect("room for one");
        assert!(matches!(first, Served::Slot { .. }));
        assert!(try_serve(&up, &pool).is_none(), "full");
        assert_eq!(up.limit.served(), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        let waiter = {
            let (up, pool) = (up.clone(), pool.clone());
            tokio::spawn(async move {
                let counters = up.counters.clone();
                up.limit
                    .queue
                    .wait(deadline, &counters, || try_serve(&up, &pool))
                    .await
                    .is_some()
            })
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
        let (pool, up) = (
            pool(),
            Arc::new(Upstream::new(
                "s".into(),
                "127.0.0.1:1".parse().unwrap(),
                Some(1),
            )),
        );
        let _held = try_serve(&up, &pool).expect("room");
        let deadline = Instant::now() + Duration::from_millis(30);
        let counters = up.counters.clone();
        let waited = up
            .limit
            .queue
            .wait(deadline, &counters, || try_serve(&up, &pool));
        assert!(waited.await.is_none());
        assert_eq!(up.limit.queue.current(), 0);
    }

    #[test]
    fn no_maxconn_counts_nothing() {
        let (pool, up) = (
            pool(),
            Arc::new(Upstream::new(
                "s".into(),
                "127.0.0.1:1".parse().unwrap(),
                None,
            )),
        );
        let slots: Vec<_> = (0..100)
            .map(|_| try_serve(&up, &pool).expect("unlimited"))
            .collect();
        assert_eq!(up.limit.served(), 0);
        drop(slots);
        up.limit.set_maxconn(Some(2));
        assert!(try_serve(&up, &pool).is_some());
    }
}
