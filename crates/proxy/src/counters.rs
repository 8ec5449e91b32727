//! Traffic counters: plain atomics, bumped on the hot path without a lock.
//!
//! One [`Counters`] exists per frontend, per pool and per server; the runtime API and the
//! Prometheus endpoint read them (HAProxy's `show stat` columns are named next to each field).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds, in milliseconds, of the latency histogram buckets (plus an implicit +Inf).
pub const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// A cumulative latency histogram in the Prometheus sense.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        // Compared in microseconds: 1.5ms is above the 1ms bucket's bound.
        let us = d.as_micros() as u64;
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| us <= b * 1000)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn clear(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Relaxed);
        }
        self.sum_us.store(0, Relaxed);
    }

    /// Per-bucket (non-cumulative) counts, the last one being +Inf.
    #[must_use]
    pub fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    /// Sum of observations.
    #[must_use]
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Relaxed))
    }
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
#[derive(Debug, Default)]
pub struct Counters {
    /// `scur`: current sessions (requests in flight, plus open tunnels).
    pub cur_sessions: AtomicU64,
    /// `smax`: highest `scur` seen.
    pub max_sessions: AtomicU64,
    /// `stot`: sessions (requests) handled.
    pub total_sessions: AtomicU64,
    /// `bin`: bytes received from clients (request bodies and tunnel upstream bytes).
    pub bytes_in: AtomicU64,
    /// `bout`: bytes sent to clients (response bodies and tunnel downstream bytes).
    pub bytes_out: AtomicU64,
    /// `ereq`: request errors (malformed, refused by hygiene checks).
    pub req_errors: AtomicU64,
    /// `dreq`: requests denied by a rate limit.
    pub denied_requests: AtomicU64,
    /// `econ`: failed connection attempts to servers.
    pub conn_errors: AtomicU64,
    /// `eresp`: broken or missing server responses.
    pub resp_errors: AtomicU64,
    /// `wretr`: retries.
    pub retries: AtomicU64,
    /// `wredis`: redispatches to another server.
    pub redispatches: AtomicU64,
    /// `lbtot`: times a server was picked.
    pub lb_selected: AtomicU64,
    /// `req_tot`: HTTP requests.
    pub requests: AtomicU64,
    /// `hrsp_1xx` .. `hrsp_5xx`, then `hrsp_other`.
    pub responses: [AtomicU64; 6],
    /// `cli_abrt`: transfers aborted by the client.
    pub client_aborts: AtomicU64,
    /// `srv_abrt`: transfers aborted by the server.
    pub server_aborts: AtomicU64,
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
    /// Response-time distribution, for Prometheus.
    pub response_latency: Histogram,
    /// Seconds since the Unix epoch of the last session (`lastsess` is derived from it);
    /// 0 before the first. Kept by [`Counters::tick`], to the second.
    pub last_session_unix: AtomicU64,
    /// `rate`, `rate_max`: sessions per second.
    pub session_rate: RateMeter,
    /// `req_rate`, `req_rate_max`: HTTP requests per second.
    pub request_rate: RateMeter,
}

impl Counters {
    /// A session starts: bumps `scur`, `smax`, `stot`.
    pub fn session_started(&self) {
        let cur = self.cur_sessions.fetch_add(1, Relaxed) + 1;
        raise(&self.max_sessions, cur);
        self.total_sessions.fetch_add(1, Relaxed);
    }

    /// A session ends.
    pub fn session_ended(&self) {
        self.cur_sessions.fetch_sub(1, Relaxed);
    }

    /// A response with `status` was sent.
    pub fn response(&self, status: u16) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.responses[class].fetch_add(1, Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Reads a counter.
    #[must_use]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Updates the rates and `last_session_unix` from the totals; called about once per
    /// second, `elapsed` after the previous call, `now_unix` seconds after the Unix epoch.
    pub fn tick(&self, elapsed: Duration, now_unix: u64) {
        if self
            .session_rate
            .tick(Self::get(&self.total_sessions), elapsed)
        {
            self.last_session_unix.store(now_unix, Relaxed);
        }
        self.request_rate.tick(Self::get(&self.requests), elapsed);
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
        let totals = [
            &self.total_sessions,
            &self.bytes_in,
            &self.bytes_out,
            &self.req_errors,
            &self.denied_requests,
            &self.conn_errors,
            &self.resp_errors,
            &self.retries,
            &self.redispatches,
            &self.lb_selected,
            &self.requests,
            &self.client_aborts,
            &self.server_aborts,
            &self.last_session_unix,
        ];
        for counter in totals.into_iter().chain(&self.responses) {
            counter.store(0, Relaxed);
        }
        self.clear(true);
        self.response_latency.clear();
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

    #[test]
    fn sessions_track_current_and_max() {
        let c = std::sync::Arc::new(Counters::default());
        {
            let _a = SessionGuard::start([c.clone()]);
            let _b = SessionGuard::start([c.clone()]);
            assert_eq!(Counters::get(&c.cur_sessions), 2);
        }
        assert_eq!(Counters::get(&c.cur_sessions), 0);
        assert_eq!(Counters::get(&c.max_sessions), 2);
        assert_eq!(Counters::get(&c.total_sessions), 2);
    }

    #[test]
    fn clearing_forgets_maxima_or_everything_but_current_sessions() {
        let c = std::sync::Arc::new(Counters::default());
        let open = SessionGuard::start([c.clone()]);
        drop(SessionGuard::start([c.clone()]));
        Counters::add(&c.requests, 7);
        c.response(200);
        c.connect_time.add(Duration::from_millis(40));
        c.response_latency.observe(Duration::from_millis(3));
        c.tick(Duration::from_secs(1), 100);

        c.clear_maxima();
        assert_eq!(Counters::get(&c.max_sessions), 1, "smax restarts at scur");
        assert_eq!(c.request_rate.max(), 0);
        assert_eq!(c.connect_time.max(), Duration::ZERO);
        assert_eq!(c.connect_time.millis(), 40, "averages stay");
        assert_eq!(Counters::get(&c.requests), 7, "totals stay");

        c.clear_all();
        assert_eq!(Counters::get(&c.requests), 0);
        assert_eq!(Counters::get(&c.total_sessions), 0);
        assert_eq!(Counters::get(&c.responses[1]), 0);
        assert_eq!(c.connect_time.millis(), 0);
        assert_eq!(c.response_latency.counts().iter().sum::<u64>(), 0);
        assert_eq!(Counters::get(&c.cur_sessions), 1, "scur is a state");
        Counters::add(&c.requests, 3);
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
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let counts = h.counts();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[5], 1, "30ms falls in the <=50ms bucket");
        assert_eq!(*counts.last().expect("+Inf"), 1);
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
        Counters::add(&c.requests, 7);
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
        Counters::add(&c.requests, 20);
        c.tick(Duration::from_secs(2), 104);
        assert_eq!(c.request_rate.per_second(), 10, "a late tick is averaged");
    }

    #[test]
    fn response_classes() {
        let c = Counters::default();
        for s in [101, 200, 204, 302, 404, 503, 999] {
            c.response(s);
        }
        let got: Vec<u64> = c.responses.iter().map(Counters::get).collect();
        assert_eq!(got, [1, 2, 1, 1, 1, 1]);
    }
}
