//! Slow start: a server coming back UP ramps its effective weight up linearly.
//!
//! Weights are scaled by [`WEIGHT_SCALE`] (HAProxy's `BE_WEIGHT_SCALE`) so that even a
//! server of weight 1 ramps in 16 steps instead of jumping from nothing to everything.

use std::time::{Duration, Instant};

/// Effective weights are user weights times this scale.
pub const WEIGHT_SCALE: u32 = 16;

/// The slow-start window of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowStart {
    window: Duration,
}

impl SlowStart {
    /// A ramp over `window`. `None` for a zero window: no slow start.
    #[must_use]
    pub fn new(window: Duration) -> Option<Self> {
        (!window.is_zero()).then_some(Self { window })
    }

    /// The ramp's length.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether a ramp begun at `since` is still under way at `now`.
    #[must_use]
    pub fn ramping(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) < self.window
    }

    /// Effective weight, scaled by [`WEIGHT_SCALE`], of a server of user weight `weight` whose
    /// ramp began at `since`: `weight * SCALE * elapsed / window`, rounded up, at least 1
    /// (a starting server gets ~1/16th of a weight-1 share right away), and the full scaled
    /// weight once the window has passed. Weight 0 stays 0.
    #[must_use]
    pub fn effective_weight(&self, weight: u16, since: Instant, now: Instant) -> u32 {
        let full = u32::from(weight) * WEIGHT_SCALE;
        let elapsed = now.saturating_duration_since(since);
        if full == 0 || elapsed >= self.window {
            return full;
        }
        let scaled = u128::from(full) * elapsed.as_nanos();
        let ramped = scaled.div_ceil(self.window.as_nanos());
        // `ramped < full` here because `elapsed < window`.
        (ramped as u32).max(1)
    }

    /// HAProxy's `throttle` column: the effective weight as a percentage of the full weight,
    /// rounded up; `None` once the ramp is over.
    #[must_use]
    pub fn throttle(&self, weight: u16, since: Instant, now: Instant) -> Option<u8> {
        if !self.ramping(since, now) {
            return None;
        }
        let full = u32::from(weight) * WEIGHT_SCALE;
        if full == 0 {
            return Some(100);
        }
        let pct = (100 * self.effective_weight(weight, since, now)).div_ceil(full);
        Some(pct.min(100) as u8)
    }

    /// How often a pool with a ramping server should rebuild its routing snapshot so the
    /// ramp shows in traffic: 1/32 of the window, between 100 ms and 1 s.
    #[must_use]
    pub fn step(&self) -> Duration {
        (self.window / 32).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_at_0_25_50_100_percent_of_the_window() {
        let ss = SlowStart::new(Duration::from_secs(30)).expect("non-zero window");
        let t0 = Instant::now();
        let at = |secs: f64| t0 + Duration::from_secs_f64(secs);
        // weight 1: 16 scaled units when full.
        assert_eq!(ss.effective_weight(1, t0, at(0.0)), 1);
        assert_eq!(ss.effective_weight(1, t0, at(7.5)), 4);
        assert_eq!(ss.effective_weight(1, t0, at(15.0)), 8);
        assert_eq!(ss.effective_weight(1, t0, at(30.0)), 16);
        assert_eq!(ss.effective_weight(1, t0, at(300.0)), 16);
        // weight 10: 160 units.
        assert_eq!(ss.effective_weight(10, t0, at(7.5)), 40);
        assert_eq!(ss.effective_weight(10, t0, at(15.0)), 80);

        assert_eq!(ss.throttle(1, t0, at(0.0)), Some(7)); // 1/16 rounded up
        assert_eq!(ss.throttle(10, t0, at(7.5)), Some(25));
        assert_eq!(ss.throttle(10, t0, at(15.0)), Some(50));
        assert_eq!(ss.throttle(10, t0, at(30.0)), None);
    }

    #[test]
    fn weight_zero_never_ramps_and_zero_window_disables() {
        let ss = SlowStart::new(Duration::from_secs(10)).expect("non-zero window");
        let t0 = Instant::now();
        assert_eq!(ss.effective_weight(0, t0, t0), 0);
        assert!(SlowStart::new(Duration::ZERO).is_none());
    }

    #[test]
    fn ramp_is_monotonic() {
        let ss = SlowStart::new(Duration::from_secs(30)).expect("non-zero window");
        let t0 = Instant::now();
        let mut last = 0;
        for ms in (0..31_000).step_by(250) {
            let w = ss.effective_weight(7, t0, t0 + Duration::from_millis(ms));
            assert!(w >= last);
            last = w;
        }
        assert_eq!(last, 7 * WEIGHT_SCALE);
    }
}
