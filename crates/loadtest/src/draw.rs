//! The run's pseudo-random choices, reproducible from the scenario's seed: which flow an
//! iteration runs (by weight) and which track a player asks for (Zipf: a few tracks are
//! very popular, most are rarely played, as on any media service).

/// SplitMix64 (Steele, Lea & Flood, 2014): small, fast, good enough for picking work.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits make an exact double in [0, 1).
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks an index with probability proportional to its weight, from a cumulative table.
#[derive(Debug, Clone)]
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    /// From weights (at least one positive).
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let mut sum = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                sum += w.max(0.0);
                sum
            })
            .collect();
        Weighted { cumulative }
    }

    /// Zipf over ranks 1..=n: rank k has weight 1/k^s.
    pub fn zipf(n: u32, exponent: f64) -> Weighted {
        Weighted::new((1..=n).map(|k| 1.0 / f64::from(k).powf(exponent)))
    }

    /// An index (0-based), drawn with `rng`.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.unit() * total;
        // The first entry whose cumulative weight exceeds x: zero weights are never chosen.
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_its_reference_output() {
        // Rosetta Code, "Pseudo-random numbers/Splitmix64": the first outputs for seed 1234567.
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn weights_are_respected_and_zero_weights_never_picked() {
        let table = Weighted::new([3.0, 0.0, 1.0]);
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[table.pick(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = f64::from(counts[0]) / 40_000.0;
        assert!((0.73..0.77).contains(&share), "{counts:?}");
    }

    #[test]
    fn zipf_favours_low_ranks() {
        let table = Weighted::zipf(1000, 1.0);
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[table.pick(&mut rng)] += 1;
        }
        // Rank 1 has probability 1/H(1000) = 13.4%; rank 2 half of that.
        let first = f64::from(counts[0]) / 100_000.0;
        assert!((0.125..0.143).contains(&first), "{first}");
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[500]);
    }
}
