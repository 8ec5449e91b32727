//! Smooth weighted round-robin, precomputed as a schedule.
//!
//! The schedule is one cycle of nginx's smooth weighted round-robin (each step: every server's
//! `current += weight`, pick the largest `current`, subtract the total from it). Over a cycle
//! each server appears exactly in proportion to its weight, and picks interleave: weights
//! 5, 1, 1 give `a a b a c a a`, never `a a a a a b c`.
//!
//! Precomputing turns a pick into one atomic increment and an index, with no lock: the
//! schedule is part of the immutable routing snapshot and is rebuilt off the hot path
//! whenever weights change.

/// Longest schedule built; larger totals are scaled down (each weight keeps at least 1), which
/// keeps proportions exact to within rounding.
pub const MAX_SCHEDULE: u64 = 1 << 16;

/// One cycle of smooth weighted round-robin over `weights` (index = server slot; weight 0 =
/// not scheduled). Empty when every weight is 0.
///
/// ```
/// let s = lb_core::wrr::schedule(&[5, 1, 1]);
/// assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
/// ```
#[must_use]
pub fn schedule(weights: &[u32]) -> Vec<u16> {
    let weights = reduce(weights);
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0_i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = usize::MAX;
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 {
                continue;
            }
            current[i] += i64::from(w);
            if best == usize::MAX || current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        // Slots are u16 by construction (a pool holds at most u16::MAX servers).
        out.push(best as u16);
    }
    out
}

/// Divides weights by their GCD, then scales them down if the cycle would exceed
/// [`MAX_SCHEDULE`].
fn reduce(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().fold(0, |g, &w| gcd(g, w));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let mut reduced: Vec<u32> = weights.iter().map(|&w| w / g).collect();
    let total: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if total > MAX_SCHEDULE {
        for w in &mut reduced {
            if *w > 0 {
                *w = ((u64::from(*w) * MAX_SCHEDULE / total) as u32).max(1);
            }
        }
    }
    reduced
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &[u16], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in s {
            c[usize::from(i)] += 1;
        }
        c
    }

    fn longest_run(s: &[u16]) -> usize {
        // Cyclic: the schedule repeats.
        let doubled: Vec<_> = s.iter().chain(s).collect();
        let mut best = 0;
        let mut run = 0;
        for w in doubled.windows(2) {
            run = if w[0] == w[1] { run + 1 } else { 0 };
            best = best.max(run + 1);
        }
        best.min(s.len())
    }

    #[test]
    fn proportions_exact_over_a_cycle() {
        let s = schedule(&[1, 2, 5]);
        assert_eq!(s.len(), 8);
        assert_eq!(counts(&s, 3), vec![1, 2, 5]);
        // 5 of 8 slots for one server: runs of 2 are unavoidable, 3 would not be smooth.
        assert!(longest_run(&s) <= 2, "{s:?}");
    }

    #[test]
    fn equal_weights_alternate() {
        assert_eq!(schedule(&[16, 16]), vec![0, 1]);
        assert_eq!(schedule(&[1, 1, 1]), vec![0, 1, 2]);
    }

    #[test]
    fn zero_weights_are_skipped() {
        let s = schedule(&[0, 3, 0, 1]);
        assert_eq!(counts(&s, 4), vec![0, 3, 0, 1]);
        assert!(schedule(&[0, 0]).is_empty());
        assert!(schedule(&[]).is_empty());
    }

    #[test]
    fn huge_totals_are_capped_keeping_every_server() {
        let weights: Vec<u32> = (0..300).map(|i| 4096 + i).collect();
        let s = schedule(&weights);
        assert!(s.len() as u64 <= MAX_SCHEDULE + 300);
        assert!(counts(&s, 300).iter().all(|&c| c > 0));
    }
}
