//! Traffic counters, bumped on the hot path without a lock and, on an event loop, without
//! a locked instruction.
//!
//! One [`Counters`] exists per frontend, per pool and per server; the runtime API and the
//! Prometheus endpoint read them (HAProxy's `show stat` columns are named next to each
//! field).
//!
//! Every event loop serves requests for the same frontends, pools and servers. Were their
//! totals one atomic each, every request would take each total's cache line away from the
//! other loops (a locked read-modify-write on a line another core wrote last), a cost that
//! grows with the loops and that one loop never sees. So the totals ([`Total`]) and the
//! latency histogram are kept per loop, each loop's block on cache lines of its own: the
//! thread that drives loop `i` is the only one that writes block `i`, with a plain load and
//! store. Other threads (a multi-threaded runtime an embedder runs the proxy on, blocking
//! tasks) add to a shared block atomically. A reader sums the blocks. HAProxy's `clear
//! counters all` cannot zero a block another thread is writing without losing the clear to
//! its next store, so it records what the totals were, and reads subtract that.
//!
//! `scur` (current sessions) stays one atomic: `smax` needs the true sum at every change.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds, in milliseconds, of the latency histogram buckets (plus an implicit +Inf).
pub const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// Buckets of the latency histogram, +Inf included.
const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// A total kept per event loop (HAProxy's `show stat` column in each variant's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Total {
    /// `stot`: sessions (requests) handled.
    Sessions,
    /// `bin`: bytes received from clients (request bodies and tunnel upstream bytes).
    BytesIn,
    /// `bout`: bytes sent to clients (response bodies and tunnel downstream bytes).
    BytesOut,
    /// `ereq`: request errors (malformed, refused by hygiene checks).
    RequestErrors,
    /// `dreq`: requests denied by a rate limit.
    DeniedRequests,
    /// `econ`: failed connection attempts to servers.
    ConnectErrors,
    /// `eresp`: broken or missing server responses.
    ResponseErrors,
    /// `wretr`: retries.
    Retries,
    /// `wredis`: redispatches to another server.
    Redispatches,
    /// `lbtot`: times a server was picked.
    Selected,
    /// `req_tot`: HTTP requests.
    Requests,
    /// `hrsp_1xx`.
    Responses1xx,
    /// `hrsp_2xx`.
    Responses2xx,
    /// `hrsp_3xx`.
    Responses3xx,
    /// `hrsp_4xx`.
    Responses4xx,
    /// `hrsp_5xx`.
    Responses5xx,
    /// `hrsp_other`.
    ResponsesOther,
    /// `cli_abrt`: transfers aborted by the client.
    ClientAborts,
    /// `srv_abrt`: transfers aborted by the server.
    ServerAborts,
}

impl Total {
    /// How many totals there are.
    pub const COUNT: usize = Self::ServerAborts as usize + 1;

    /// `hrsp_1xx` .. `hrsp_5xx`, then `hrsp_other`, in that order.
    pub const RESPONSES: [Self; 6] = [
        Self::Responses1xx,
        Self::Responses2xx,
        Self::Responses3xx,
        Self::Responses4xx,
        Self::Responses5xx,
        Self::ResponsesOther,
    ];

    /// The response class `status` is counted in.
    #[must_use]
    pub fn response(status: u16) -> Self {
        match status {
            100..=199 => Self::Responses1xx,
            200..=299 => Self::Responses2xx,
            300..=399 => Self::Responses3xx,
            400..=499 => Self::Responses4xx,
            500..=599 => Self::Responses5xx,
            _ => Self::ResponsesOther,
        }
    }
}

/// One writer's totals and latency histogram, on cache lines of their own (128 bytes: the
/// adjacent-line prefetcher pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Block {
    totals: [AtomicU64; Total::COUNT],
    latency: [AtomicU64; BUCKETS],
    latency_sum_us: AtomicU64,
}

impl Block {
    /// How many cells a block has.
    const CELLS: usize = Total::COUNT + BUCKETS + 1;

    /// Every cell, in one order, for summing and clearing.
    fn cells(&self) -> impl Iterator<Item = &AtomicU64> {
        self.totals
            .iter()
            .chain(&self.latency)
            .chain(std::iter::once(&self.latency_sum_us))
    }
}

thread_local! {
    /// The per-loop block this thread writes: the index of the event loop it alone drives.
    static OWN_BLOCK: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Records that this thread alone drives event loop `index` (a current-thread runtime
/// driven by this thread for its life), and so writes that loop's block of every
/// [`Counters`] without a locked instruction; `None`: it drives no loop, or one whose tasks
/// may run on other threads too. Two threads must never own the same loop.
pub(crate) fn own_loop_block(index: Option<usize>) {
    OWN_BLOCK.with(|b| b.set(index));
}

/// How many event loops new [`Counters`] keep blocks for.
static LOOP_BLOCKS: AtomicUsize = AtomicUsize::new(1);

/// New [`Counters`] keep one block for each of `loops` event loops (set when the loops are
/// made, before any counter set).
pub(crate) fn set_loop_blocks(loops: usize) {
    LOOP_BLOCKS.store(loops.max(1), Relaxed);
}

/// Adds `n` to a cell: with a plain load and store when this thread is the cell's only
/// writer (`own`), else atomically.
#[inline]
fn bump(cell: &AtomicU64, n: u64, own: bool) {
    if own {
        cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
    } else {
        cell.fetch_add(n, Relaxed);
    }
}

/// A latency histogram as read, in the Prometheus sense: per-bucket counts and their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    sum: Duration,
}

impl Histogram {
    /// Per-bucket (non-cumulative) counts, the last one being +Inf.
    #[must_use]
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Sum of observations.
    #[must_use]
    pub fn sum(&self) -> Duration {
        self.sum
    }
}

/// The latency bucket of `d`, compared in microseconds: 1.5ms is above the 1ms bucket's
/// bound.
fn bucket(d: Duration) -> usize {
    let us = d.as_micros() as u64;
    LATENCY_BUCKETS_MS
        .iter()
        .position(|&b| us <= b * 1000)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// HAProxy's "average over the last 1024 samples" for `qtime`/`ctime`/`rtime`/`ttime`, as an
/// exponentially weighted moving average in microseconds, plus the largest sample seen
/// (`ctime_max`...).
#[derive(Debug, Default)]
pub struct Average {
    avg_us: AtomicU64,
    max_us: AtomicU64,
}

impl Average {
    const WINDOW: u64 = 1024;

    /// Adds a sample.
    pub fn add(&self, d: Duration) {
        let sample = d.as_micros() as u64;
        // Lost updates under a race only nudge an average; a CAS loop is not worth it here.
        let old = self.avg_us.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / Self::WINDOW + sample / Self::WINDOW
        };
        self.avg_us.store(new, Relaxed);
        raise(&self.max_us, sample);
    }

    /// Current average in milliseconds.
    #[must_use]
    pub fn millis(&self) -> u64 {
        self.avg_us.load(Relaxed) / 1000
    }

    /// Current average.
    #[must_use]
    pub fn average(&self) -> Duration {
        Duration::from_micros(self.avg_us.load(Relaxed))
    }

    /// Largest sample seen.
    #[must_use]
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us.load(Relaxed))
    }

    fn clear(&self, all: bool) {
        self.max_us.store(0, Relaxed);
        if all {
            self.avg_us.store(0, Relaxed);
        }
    }
}

/// An events-per-second rate (`rate`, `req_rate`) and its maximum (`rate_max`...).
///
/// The hot path only bumps the total it watches; a ticker calls [`RateMeter::tick`] about
/// once per second with that total, so measuring a rate costs requests nothing.
#[derive(Debug, Default)]
pub struct RateMeter {
    last_total: AtomicU64,
    per_second: AtomicU64,
    max: AtomicU64,
}

impl RateMeter {
    /// Records that the watched total is `total`, `elapsed` after the previous tick. Returns
    /// whether the total moved.
    pub fn tick(&self, total: u64, elapsed: Duration) -> bool {
        let last = self.last_total.swap(total, Relaxed);
        let events = total.saturating_sub(last);
        let ms = elapsed.as_millis().max(1) as u64;
        // A late tick spreads its events over the time that really passed.
        let rate = if ms <= 1000 {
            events
        } else {
            events.saturating_mul(1000) / ms
        };
        self.per_second.store(rate, Relaxed);
        self.max.fetch_max(rate, Relaxed);
        events > 0
    }

    /// Events during the last second.
    #[must_use]
    pub fn per_second(&self) -> u64 {
        self.per_second.load(Relaxed)
    }

    /// Highest per-second rate seen.
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    /// Forgets the maximum; with `all`, the rate too, and `total` becomes the new baseline.
    fn clear(&self, all: bool, total: u64) {
        self.max.store(0, Relaxed);
        if all {
            self.per_second.store(0, Relaxed);
            self.last_total.store(total, Relaxed);
        }
    }
}

/// Raises a maximum to `value`. Once a maximum is reached, most values are below it: a plain
/// load finds that out, where `fetch_max` would take the cache line exclusively (a locked
/// compare-and-swap loop) on every call.
fn raise(max: &AtomicU64, value: u64) {
    if value > max.load(Relaxed) {
        max.fetch_max(value, Relaxed);
    }
}

/// Counters of one frontend, pool or server.
#[derive(Debug)]
pub struct Counters {
    /// `scur`: current sessions (requests in flight, plus open tunnels).
    pub cur_sessions: AtomicU64,
    /// `smax`: highest `scur` seen.
    pub max_sessions: AtomicU64,
    /// `ctime`: connect time average.
    pub connect_time: Average,
    /// `rtime`: response (first byte) time average.
    pub response_time: Average,
    /// `ttime`: total time average.
    pub total_time: Average,
    /// `qtime`: time spent waiting in a queue for a server's `maxconn` (pools and servers
    /// with one).
    pub queue_time: Average,
    /// `qmax`: the most requests that waited in this pool's or server's queue at once.
    pub max_queued: AtomicU64,
    /// Seconds since the Unix epoch of the last session (`lastsess` is derived from it);
    /// 0 before the first. Kept by [`Counters::tick`], to the second.
    pub last_session_unix: AtomicU64,
    /// `rate`, `rate_max`: sessions per second.
    pub session_rate: RateMeter,
    /// `req_rate`, `req_rate_max`: HTTP requests per second.
    pub request_rate: RateMeter,
    /// The totals and histogram, one block per event loop (written by that loop alone).
    loops: Box<[Block]>,
    /// The totals and histogram of every other thread, written atomically.
    shared: Block,
    /// What the sums were at the last `clear counters all`.
    cleared: Block,
}

impl Default for Counters {
    /// Counters with a block for each of the process's event loops.
    fn default() -> Self {
        let loops = LOOP_BLOCKS.load(Relaxed);
        Self {
            cur_sessions: AtomicU64::default(),
            max_sessions: AtomicU64::default(),
            connect_time: Average::default(),
            response_time: Average::default(),
            total_time: Average::default(),
            queue_time: Average::default(),
            max_queued: AtomicU64::default(),
            last_session_unix: AtomicU64::default(),
            session_rate: RateMeter::default(),
            request_rate: RateMeter::default(),
            loops: (0..loops).map(|_| Block::default()).collect(),
            shared: Block::default(),
            cleared: Block::default(),
        }
    }
}

impl Counters {
    /// The block this thread writes, and whether it is its only writer.
    #[inline]
    fn block(&self) -> (&Block, bool) {
        match OWN_BLOCK.with(Cell::get).and_then(|i| self.loops.get(i)) {
            Some(own) => (own, true),
            None => (&self.shared, false),
        }
    }

    /// Adds `n` to a total.
    #[inline]
    pub fn add(&self, total: Total, n: u64) {
        let (block, own) = self.block();
        bump(&block.totals[total as usize], n, own);
    }

    /// A total, since the process started or the last `clear counters all`.
    #[must_use]
    pub fn total(&self, total: Total) -> u64 {
        let i = total as usize;
        let sum = self.sum(|b| &b.totals[i]);
        sum.saturating_sub(self.cleared.totals[i].load(Relaxed))
    }

    /// Every block written: each loop's, then the shared one.
    fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.loops.iter().chain(std::iter::once(&self.shared))
    }

    /// The sum of one cell over every block.
    fn sum(&self, cell: impl Fn(&Block) -> &AtomicU64) -> u64 {
        self.blocks()
            .map(|b| cell(b).load(Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// A session starts: bumps `scur`, `smax`, `stot`.
    pub fn session_started(&self) {
        let cur = self.cur_sessions.fetch_add(1, Relaxed) + 1;
        raise(&self.max_sessions, cur);
        self.add(Total::Sessions, 1);
    }

    /// A session ends.
    pub fn session_ended(&self) {
        self.cur_sessions.fetch_sub(1, Relaxed);
    }

    /// A response with `status` was sent.
    pub fn response(&self, status: u16) {
        self.add(Total::response(status), 1);
    }

    /// Records one server response time (for the Prometheus histogram).
    pub fn observe_response(&self, d: Duration) {
        let (block, own) = self.block();
        bump(&block.latency[bucket(d)], 1, own);
        bump(&block.latency_sum_us, d.as_micros() as u64, own);
    }

    /// The response-time distribution.
    #[must_use]
    pub fn response_latency(&self) -> Histogram {
        let counts = std::array::from_fn(|i| {
            self.sum(|b| &b.latency[i])
                .saturating_sub(self.cleared.latency[i].load(Relaxed))
        });
        let sum_us = self
            .sum(|b| &b.latency_sum_us)
            .saturating_sub(self.cleared.latency_sum_us.load(Relaxed));
        Histogram {
            counts,
            sum: Duration::from_micros(sum_us),
        }
    }

    /// Reads one of the values kept outside the per-loop totals (`scur`, `smax`, `qmax`,
    /// the last session's time).
    #[must_use]
    pub fn get(value: &AtomicU64) -> u64 {
        value.load(Relaxed)
    }

    /// Updates the rates and `last_session_unix` from the totals; called about once per
    /// second, `elapsed` after the previous call, `now_unix` seconds after the Unix epoch.
    pub fn tick(&self, elapsed: Duration, now_unix: u64) {
        if self.session_rate.tick(self.total(Total::Sessions), elapsed) {
            self.last_session_unix.store(now_unix, Relaxed);
        }
        self.request_rate.tick(self.total(Total::Requests), elapsed);
    }

    /// HAProxy's `clear counters`: the maxima (`smax`, `rate_max`, `req_rate_max`,
    /// `ctime_max`...) start again from now. `smax` restarts at `scur`, which is still true.
    pub fn clear_maxima(&self) {
        self.clear(false);
    }

    /// The maxima, and with `all` the rates and averages too.
    fn clear(&self, all: bool) {
        self.max_sessions
            .store(Self::get(&self.cur_sessions), Relaxed);
        self.max_queued.store(0, Relaxed);
        self.session_rate.clear(all, 0);
        self.request_rate.clear(all, 0);
        for average in [
            &self.connect_time,
            &self.response_time,
            &self.total_time,
            &self.queue_time,
        ] {
            average.clear(all);
        }
    }

    /// HAProxy's `clear counters all`: every total, average, maximum and the histogram back
    /// to zero. `scur` is a state, not a counter, and stays.
    pub fn clear_all(&self) {
        // Each block's writer may be storing into it right now: what the sums are now
        // becomes the zero that reads subtract.
        let mut sums = [0u64; Block::CELLS];
        for block in self.blocks() {
            for (sum, cell) in sums.iter_mut().zip(block.cells()) {
                *sum = sum.wrapping_add(cell.load(Relaxed));
            }
        }
        for (cleared, sum) in self.cleared.cells().zip(sums) {
            cleared.store(sum, Relaxed);
        }
        self.last_session_unix.store(0, Relaxed);
        self.clear(true);
    }
}

/// Counts a session for as long as it is alive, on several counter sets at once.
#[derive(Debug)]
pub struct SessionGuard<const N: usize> {
    counters: [std::sync::Arc<Counters>; N],
}

impl<const N: usize> SessionGuard<N> {
    /// Starts a session on every set.
    #[must_use]
    pub fn start(counters: [std::sync::Arc<Counters>; N]) -> Self {
        for c in &counters {
            c.session_started();
        }
        Self { counters }
    }
}

impl<const N: usize> Drop for SessionGuard<N> {
    fn drop(&mut self) {
        for c in &self.counters {
            c.session_ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Counters with `loops` blocks, whatever the process-wide number.
    fn with_loops(loops: usize) -> Counters {
        Counters {
            loops: (0..loops).map(|_| Block::default()).collect(),
            ..Counters::default()
        }
    }

    /// Adds `n` to `total` from a thread of its own that owns loop `index`'s block.
    fn add_on_loop(c: &Arc<Counters>, index: usize, total: Total, n: u64) {
        let c = c.clone();
        std::thread::spawn(move || {
            own_loop_block(Some(index));
            c.add(total, n);
        })
        .join()
        .expect("loop thread");
    }

    #[test]
    fn sessions_track_current_and_max() {
        let c = Arc::new(Counters::default());
        {
            let _a = SessionGuard::start([c.clone()]);
            let _b = SessionGuard::start([c.clone()]);
            assert_eq!(Counters::get(&c.cur_sessions), 2);
        }
        assert_eq!(Counters::get(&c.cur_sessions), 0);
        assert_eq!(Counters::get(&c.max_sessions), 2);
        assert_eq!(c.total(Total::Sessions), 2);
    }

    #[test]
    fn loops_write_their_own_blocks_and_readers_sum_them_with_everyone_elses() {
        const EACH: u64 = 200_000;
        let c = Arc::new(with_loops(2));
        let start = Arc::new(std::sync::Barrier::new(4));
        // Two loops, and two other threads that share the atomic block: the other threads'
        // updates would be lost if they wrote it with plain stores.
        let threads: Vec<_> = [Some(0), Some(1), None, None]
            .into_iter()
            .map(|own| {
                let (c, start) = (c.clone(), start.clone());
                std::thread::spawn(move || {
                    own_loop_block(own);
                    start.wait();
                    for _ in 0..EACH {
                        c.add(Total::Requests, 1);
                        c.response(200);
                        c.observe_response(Duration::from_micros(1500));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        assert_eq!(c.total(Total::Requests), 4 * EACH, "no update lost");
        assert_eq!(c.total(Total::Responses2xx), 4 * EACH);
        let requests = |b: &Block| b.totals[Total::Requests as usize].load(Relaxed);
        assert_eq!(requests(&c.loops[0]), EACH);
        assert_eq!(requests(&c.loops[1]), EACH);
        assert_eq!(requests(&c.shared), 2 * EACH);
        let h = c.response_latency();
        assert_eq!(h.counts()[1], 4 * EACH, "1.5ms is in the 2ms bucket");
        assert_eq!(h.sum(), Duration::from_micros(1500 * 4 * EACH));
    }

    #[test]
    fn a_loop_beyond_the_blocks_writes_the_shared_one() {
        let c = Arc::new(with_loops(1));
        add_on_loop(&c, 3, Total::BytesOut, 7);
        assert_eq!(c.shared.totals[Total::BytesOut as usize].load(Relaxed), 7);
        assert_eq!(c.total(Total::BytesOut), 7);
    }

    #[test]
    fn clearing_forgets_maxima_or_everything_but_current_sessions() {
        let c = Arc::new(with_loops(2));
        let open = SessionGuard::start([c.clone()]);
        drop(SessionGuard::start([c.clone()]));
        add_on_loop(&c, 1, Total::Requests, 5);
        c.add(Total::Requests, 2);
        c.response(200);
        c.connect_time.add(Duration::from_millis(40));
        c.observe_response(Duration::from_millis(3));
        c.tick(Duration::from_secs(1), 100);

        c.clear_maxima();
        assert_eq!(Counters::get(&c.max_sessions), 1, "smax restarts at scur");
        assert_eq!(c.request_rate.max(), 0);
        assert_eq!(c.connect_time.max(), Duration::ZERO);
        assert_eq!(c.connect_time.millis(), 40, "averages stay");
        assert_eq!(c.total(Total::Requests), 7, "totals stay");

        c.clear_all();
        assert_eq!(c.total(Total::Requests), 0);
        assert_eq!(c.total(Total::Sessions), 0);
        assert_eq!(c.total(Total::Responses2xx), 0);
        assert_eq!(c.connect_time.millis(), 0);
        assert_eq!(c.response_latency().counts().iter().sum::<u64>(), 0);
        assert_eq!(c.response_latency().sum(), Duration::ZERO);
        assert_eq!(Counters::get(&c.cur_sessions), 1, "scur is a state");
        c.add(Total::Requests, 3);
        assert_eq!(
            c.total(Total::Requests),
            3,
            "totals count on from the clear"
        );
        c.tick(Duration::from_secs(1), 101);
        assert_eq!(
            c.request_rate.per_second(),
            3,
            "rates count from the cleared totals"
        );
        drop(open);
    }

    #[test]
    fn histogram_buckets_and_average() {
        let c = Counters::default();
        c.observe_response(Duration::from_micros(500));
        c.observe_response(Duration::from_millis(30));
        c.observe_response(Duration::from_secs(60));
        let h = c.response_latency();
        let counts = h.counts();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[5], 1, "30ms falls in the <=50ms bucket");
        assert_eq!(*counts.last().expect("+Inf"), 1);
        assert_eq!(h.sum(), Duration::from_micros(60_030_500));
        let avg = Average::default();
        avg.add(Duration::from_millis(10));
        assert_eq!(avg.millis(), 10);
        avg.add(Duration::from_millis(2));
        assert_eq!(avg.max(), Duration::from_millis(10));
    }

    #[test]
    fn rates_follow_totals_between_ticks() {
        let c = Counters::default();
        let second = Duration::from_secs(1);
        for _ in 0..5 {
            c.session_started();
            c.session_ended();
        }
        c.add(Total::Requests, 7);
        c.tick(second, 100);
        assert_eq!(c.session_rate.per_second(), 5);
        assert_eq!(c.request_rate.per_second(), 7);
        assert_eq!(Counters::get(&c.last_session_unix), 100);
        c.session_started();
        c.tick(second, 101);
        assert_eq!(c.session_rate.per_second(), 1);
        assert_eq!(c.session_rate.max(), 5);
        assert_eq!(Counters::get(&c.last_session_unix), 101);
        c.tick(second, 102);
        assert_eq!(c.session_rate.per_second(), 0);
        assert_eq!(Counters::get(&c.last_session_unix), 101, "no session since");
        c.add(Total::Requests, 20);
        c.tick(Duration::from_secs(2), 104);
        assert_eq!(c.request_rate.per_second(), 10, "a late tick is averaged");
    }

    #[test]
    fn response_classes() {
        let c = Counters::default();
        for s in [101, 200, 204, 302, 404, 503, 999] {
            c.response(s);
        }
        let got: Vec<u64> = Total::RESPONSES.iter().map(|&t| c.total(t)).collect();
        assert_eq!(got, [1, 2, 1, 1, 1, 1]);
    }
}
