//! Per-source request rate limits (`rate_limit`), as HAProxy's stick tables tracking
//! `http_req_rate`: a table of client addresses, each with a request rate over the configured
//! period; a request that takes its source over `requests` per period is answered 429 with
//! `Retry-After`.
//!
//! The rate is HAProxy's `freq_ctr`: the count of the current period plus the previous
//! period's, weighted by the share of the period not yet elapsed, so a burst at a period's
//! end is not forgiven at the next one's start. Every request counts, refused ones included
//! (a client that keeps hammering stays refused; one that backs off is served again as its
//! rate decays).
//!
//! Lock-free: the table is a concurrent map (papaya) and each entry one atomic word (period,
//! current and previous counts) updated by compare-and-swap. Memory is bounded: at most
//! `table_size` addresses are tracked (a new source beyond that is let through uncounted, and
//! counted in `untracked`), and a sweep, every second, forgets sources idle for two periods
//! and, above 90% of the size, the least active ones down to 80%.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::RateLimit;

/// What a table says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Refuse it; the source may retry after this many seconds.
    Deny {
        retry_after: u64,
    },
}

/// One source's counts: `period << 32 | current << 16 | previous`.
#[derive(Debug, Default)]
struct Rate(AtomicU64);

fn unpack(word: u64) -> (u32, u32, u32) {
    (
        (word >> 32) as u32,
        (word >> 16) as u32 & 0xFFFF,
        word as u32 & 0xFFFF,
    )
}

fn pack(period: u32, current: u32, previous: u32) -> u64 {
    (u64::from(period) << 32)
        | (u64::from(current.min(0xFFFF)) << 16)
        | u64::from(previous.min(0xFFFF))
}

/// The counts as of `period`: `(current, previous)`.
fn rolled(word: u64, period: u32) -> (u32, u32) {
    let (at, current, previous) = unpack(word);
    match period.wrapping_sub(at) {
        0 => (current, previous),
        1 => (0, current),
        _ => (0, 0),
    }
}

/// A rate-limit table.
#[derive(Debug)]
pub(crate) struct RateTable {
    /// As `show table` names it: the frontend, or `frontend:path_prefix` for a route.
    pub(crate) name: String,
    pub(crate) limit: RateLimit,
    started: Instant,
    sources: papaya::HashMap<IpAddr, Rate>,
    /// Requests refused (`dreq` on the frontend too).
    pub(crate) denied: AtomicU64,
    /// Requests from sources not tracked because the table was full.
    pub(crate) untracked: AtomicU64,
}

impl RateTable {
    pub(crate) fn new(name: String, limit: RateLimit) -> Arc<Self> {
        Arc::new(Self {
            name,
            limit,
            started: Instant::now(),
            sources: papaya::HashMap::new(),
            denied: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        })
    }

    /// The current period's number and how far into it `now` is (0 to 1).
    fn clock(&self) -> (u32, f64) {
        let per = self.limit.per.as_secs_f64().max(1e-3);
        let periods = self.started.elapsed().as_secs_f64() / per;
        (periods as u32, periods.fract())
    }

    /// Counts a request from `source` and says whether it may go on.
    pub(crate) fn check(&self, source: IpAddr) -> Verdict {
        let (period, into) = self.clock();
        let sources = self.sources.pin();
        let rate = match sources.get(&source) {
            Some(rate) => rate,
            None if sources.len() >= self.limit.table_size => {
                self.untracked.fetch_add(1, Ordering::Relaxed);
                return Verdict::Allow;
            }
            None => sources.get_or_insert_with(source, Rate::default),
        };
        let mut word = rate.0.load(Ordering::Acquire);
        let (current, previous) = loop {
            let (current, previous) = rolled(word, period);
            let next = pack(period, current + 1, previous);
            match rate
                .0
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (current + 1, previous),
                Err(seen) => word = seen,
            }
        };
        let estimate = f64::from(current) + f64::from(previous) * (1.0 - into);
        if estimate <= f64::from(self.limit.requests) {
            return Verdict::Allow;
        }
        self.denied.fetch_add(1, Ordering::Relaxed);
        let left = self.limit.per.as_secs_f64() * (1.0 - into);
        Verdict::Deny {
            retry_after: (left.ceil() as u64).max(1),
        }
    }

    /// Each tracked source and its rate now (requests per period), most active first.
    pub(crate) fn entries(&self) -> Vec<(IpAddr, u32)> {
        let (period, into) = self.clock();
        let sources = self.sources.pin();
        let mut entries: Vec<(IpAddr, u32)> = sources
            .iter()
            .map(|(ip, rate)| {
                let (current, previous) = rolled(rate.0.load(Ordering::Relaxed), period);
                let estimate = f64::from(current) + f64::from(previous) * (1.0 - into);
                (*ip, estimate.round() as u32)
            })
            .collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        entries
    }

    /// Tracked sources.
    pub(crate) fn len(&self) -> usize {
        self.sources.pin().len()
    }

    /// Forgets sources idle for two periods and, above 90% of the size, the least active
    /// down to 80%.
    pub(crate) fn sweep(&self) {
        let (period, _) = self.clock();
        let sources = self.sources.pin();
        sources.retain(|_, rate| rolled(rate.0.load(Ordering::Relaxed), period) != (0, 0));
        let size = self.limit.table_size;
        if sources.len() * 10 > size * 9 {
            let mut entries = self.entries();
            let keep = size * 8 / 10;
            for (ip, _) in entries.drain(keep.min(entries.len())..) {
                sources.remove(&ip);
            }
        }
    }
}

/// Sweeps `table` every second while anything still uses it.
pub(crate) fn spawn_sweeper(table: &Arc<RateTable>) {
    let table = Arc::downgrade(table);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match table.upgrade() {
                Some(table) => table.sweep(),
                None => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(requests: u32, per: Duration, table_size: usize) -> Arc<RateTable> {
        RateTable::new(
            "t".to_owned(),
            RateLimit {
                requests,
                per,
                table_size,
            },
        )
    }

    #[test]
    fn exactly_the_excess_is_refused_per_source() {
        let t = table(5, Duration::from_secs(3600), 100);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let verdicts: Vec<Verdict> = (0..8).map(|_| t.check(a)).collect();
        assert_eq!(verdicts[..5], [Verdict::Allow; 5]);
        assert!(
            verdicts[5..]
                .iter()
                .all(|v| matches!(v, Verdict::Deny { retry_after } if *retry_after > 3500))
        );
        assert_eq!(
            t.check(b),
            Verdict::Allow,
            "another source has its own count"
        );
        assert_eq!(t.denied.load(Ordering::Relaxed), 3);
        assert_eq!(t.entries(), [(a, 8), (b, 1)]);
    }

    #[test]
    fn counts_roll_into_the_previous_period() {
        assert_eq!(rolled(pack(7, 3, 9), 7), (3, 9));
        assert_eq!(rolled(pack(7, 3, 9), 8), (0, 3));
        assert_eq!(rolled(pack(7, 3, 9), 10), (0, 0));
        assert_eq!(
            unpack(pack(1, 70_000, 2)),
            (1, 0xFFFF, 2),
            "counts saturate"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let t = table(10, Duration::from_secs(3600), 4);
        for i in 0..10_u8 {
            let _ = t.check(IpAddr::from([198, 51, 100, i]));
        }
        assert_eq!(t.len(), 4);
        assert_eq!(
            t.untracked.load(Ordering::Relaxed),
            6,
            "let through, uncounted"
        );
        // A hot source among them: the sweep keeps it and forgets the quiet ones.
        for _ in 0..5 {
            let _ = t.check(IpAddr::from([198, 51, 100, 3]));
        }
        t.sweep();
        assert_eq!(t.len(), 3, "80% of 4");
        assert_eq!(t.entries()[0], (IpAddr::from([198, 51, 100, 3]), 6));
    }
}
