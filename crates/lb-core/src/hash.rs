//! Stable key hashing and the jump consistent hash.
//!
//! Every `veza-lb` instance, and every restart of one, must send a given key to the same
//! server, so the hash is a fixed, documented function rather than `std`'s randomly seeded
//! (and unspecified) `DefaultHasher`:
//!
//! ```text
//! key_hash(bytes) = fmix64(fnv1a64(bytes))
//! ```
//!
//! FNV-1a (64-bit offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) is cheap for the
//! short keys we hash (a path prefix, a query value), and MurmurHash3's 64-bit finaliser
//! (`fmix64`) gives it the avalanche that FNV lacks on keys differing only in their last
//! bytes (`/stream/1`, `/stream/2`, ...), which jump hash needs to spread keys evenly.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
#[must_use]
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// The same stable hash as a [`std::hash::Hasher`], for keys that are not plain bytes (a
/// health-check target's key, say): FNV-1a over whatever the key's `Hash` writes, then
/// `fmix64`. Stable across processes, unlike `DefaultHasher`. Note that `Hash` for `str`
/// writes a terminator byte too, so hashing a `&str` this way differs from
/// [`key_hash`] of its bytes.
///
/// ```
/// use std::hash::{Hash, Hasher};
/// let mut h = lb_core::hash::KeyHasher::default();
/// h.write(b"/stream/42");
/// assert_eq!(h.finish(), lb_core::key_hash(b"/stream/42"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        Self(FNV_OFFSET)
    }
}

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        fmix64(self.0)
    }
}

/// MurmurHash3's 64-bit finaliser: a bijection that makes every input bit affect every
/// output bit.
#[must_use]
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The stable 64-bit hash of a request key: `fmix64(fnv1a64(bytes))`.
///
/// ```
/// assert_eq!(lb_core::key_hash(b"/stream/42"), lb_core::key_hash(b"/stream/42"));
/// assert_ne!(lb_core::key_hash(b"/stream/42"), lb_core::key_hash(b"/stream/43"));
/// ```
#[must_use]
pub const fn key_hash(bytes: &[u8]) -> u64 {
    fmix64(fnv1a64(bytes))
}

/// The hash used for re-hash attempt `attempt` (>= 1) of a key whose first choice was not
/// usable.
///
/// Mixing the attempt number in (times the 64-bit golden ratio, then `fmix64`) gives an
/// independent, deterministic sequence of hashes per key: a key that lands on an unusable
/// server moves to a uniformly chosen other server, and the keys of usable servers never
/// move because their attempt 0 succeeds.
#[must_use]
pub const fn rehash(hash: u64, attempt: u32) -> u64 {
    fmix64(hash ^ (attempt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Lamping & Veach's jump consistent hash ("A Fast, Minimal Memory, Consistent Hash
/// Algorithm", 2014): maps `key` to a bucket in `0..buckets`.
///
/// Growing `buckets` from `n` to `n + 1` moves only the keys that now map to bucket `n`,
/// about `1/(n + 1)` of them. Returns 0 when `buckets` is 0 or 1.
#[must_use]
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The paper's float step: j = (b + 1) * 2^31 / ((key >> 33) + 1).
        j = ((b + 1) as f64 * ((1_i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // `b` is in 0..buckets, which fits u32 by construction.
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn key_hash_is_frozen() {
        // A change here reroutes every key in production: it must never happen by accident.
        assert_eq!(key_hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(key_hash(b"/stream/42"), key_hash(b"/stream/42"));
        let a = key_hash(b"/stream/1");
        let b = key_hash(b"/stream/2");
        assert!(
            (a ^ b).count_ones() > 16,
            "finaliser must avalanche: {a:x} {b:x}"
        );
    }

    #[test]
    fn fmix64_of_zero_is_zero_and_bijective_on_samples() {
        assert_eq!(fmix64(0), 0);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000_u64 {
            assert!(seen.insert(fmix64(i)));
        }
    }

    #[test]
    fn jump_matches_reference_outputs() {
        // Outputs of the paper's reference C++ implementation for buckets 1..=n, as published
        // with dgryski/go-jump's test suite.
        let table: [(u64, &[u32]); 4] = [
            (0, &[0; 20]),
            (
                1,
                &[0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17],
            ),
            (
                0xdead_beef,
                &[0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16],
            ),
            (
                0x0ddc_0ffe_ebad_f00d,
                &[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15],
            ),
        ];
        for (key, expected) in table {
            for (i, want) in expected.iter().enumerate() {
                assert_eq!(jump(key, i as u32 + 1), *want, "jump({key:#x}, {})", i + 1);
            }
        }
    }

    #[test]
    fn jump_with_zero_buckets_is_bucket_zero() {
        assert_eq!(jump(12345, 0), 0);
    }

    #[test]
    fn rehash_differs_per_attempt() {
        let h = key_hash(b"/stream/7");
        assert_ne!(rehash(h, 1), rehash(h, 2));
        assert_ne!(rehash(h, 1), h);
    }
}
