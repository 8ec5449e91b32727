//! Comparing received names and options with the lowercase ones the codec and the proxy look
//! for, eight bytes at a time.

const LETTER_BIT: u64 = 0x4040_4040_4040_4040;

/// Whether `input` is `lower` in any letter case, for a `lower` made of lowercase letters,
/// digits and `-` (every field name and connection option a proxy looks for). Such bytes
/// have the 0x40 bit set exactly when they are letters, and a letter's case is its 0x20 bit,
/// so a word of `input` matches when it differs from `lower` in nothing but the case bits of
/// letters. Exact for any `input`; `[u8]::eq_ignore_ascii_case` takes one byte at a time.
#[must_use]
pub fn eq_lowercase(input: &[u8], lower: &[u8]) -> bool {
    debug_assert!(
        lower
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{lower:?} is not lowercase letters, digits and -"
    );
    let n = input.len();
    if n != lower.len() {
        return false;
    }
    if n < 8 {
        return input
            .iter()
            .zip(lower)
            .all(|(&a, &l)| same(u64::from(a), u64::from(l)));
    }
    // Whole words, then the last eight bytes (overlapping the last whole word).
    (0..n / 8).all(|i| same(word(input, i * 8), word(lower, i * 8)))
        && same(word(input, n - 8), word(lower, n - 8))
}

/// `input` and `lower` differ at most in the case bits of `lower`'s letters.
fn same(input: u64, lower: u64) -> bool {
    (input ^ lower) & !((lower & LETTER_BIT) >> 1) == 0
}

fn word(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |w| u64::from_le_bytes(*w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_match_in_any_case_and_nothing_else_does() {
        for name in [
            "te",
            "host",
            "upgrade",
            "trailer",
            "connection",
            "keep-alive",
            "content-length",
            "x-forwarded-for",
            "transfer-encoding",
            "strict-transport-security",
        ] {
            let lower = name.as_bytes();
            assert!(eq_lowercase(lower, lower));
            assert!(eq_lowercase(name.to_ascii_uppercase().as_bytes(), lower));
            // Every byte changed to each other value: equal only where a letter's case
            // flipped.
            for i in 0..lower.len() {
                for b in 0..=255u8 {
                    let mut input = lower.to_vec();
                    input[i] = b;
                    assert_eq!(
                        eq_lowercase(&input, lower),
                        input.eq_ignore_ascii_case(lower),
                        "{name} with byte {i} = {b:#x}"
                    );
                }
            }
            assert!(!eq_lowercase(&lower[1..], lower));
            assert!(!eq_lowercase(&[lower, b"x"].concat(), lower));
        }
    }
}
