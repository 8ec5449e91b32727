//! Parsers and character classes for configuration values. Errors are plain sentences that
//! the caller places at the value's position.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest duration accepted anywhere: one year. Longer values are surely typos, and
/// keeping them bounded means deadlines computed from them never overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration such as `"500ms"`, `"5s"`, `"1m30s"`, `"1h"` or `"2d"`.
///
/// A duration is one or more `<integer><unit>` parts, largest unit first, each unit at most
/// once; units are `ms`, `s`, `m`, `h` and `d`. The error says what is wrong, for a user.
///
/// ```
/// use std::time::Duration;
/// use proxy::config::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(
///     parse_duration("5x").unwrap_err(),
///     "unknown unit `x`; use ms, s, m, h or d"
/// );
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let help = "write a whole number and a unit (ms, s, m, h or d), such as \"500ms\", \"5s\" \
                or \"1m30s\"";
    if text.is_empty() {
        return Err(format!("it is empty; {help}"));
    }
    if text.starts_with('-') {
        return Err("durations cannot be negative".to_owned());
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen; each part must use a smaller unit.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(help.to_owned());
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(if after.is_empty() {
                format!("the number has no unit; add one, such as \"{number}s\" or \"{number}ms\"")
            } else if after.starts_with('.') {
                "fractions are not supported; use a smaller unit, such as \"1500ms\" for 1.5 \
                 seconds"
                    .to_owned()
            } else {
                help.to_owned()
            });
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit `{unit}`; use ms, s, m, h or d"));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(
                "write the largest unit first and each unit once, such as \"1m30s\"".to_owned(),
            );
        }
        last_unit = Some(index);
        let sum = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .and_then(|ms| total_ms.checked_add(ms));
        match sum {
            Some(ms) if u128::from(ms) <= MAX_DURATION.as_millis() => total_ms = ms,
            _ => return Err("it is too long; the maximum is 365 days".to_owned()),
        }
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses `IP:PORT` (IPv6 as `[::1]:8080`); the error says what is wrong, for a user.
pub(crate) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let example = "such as \"127.0.0.1:8080\" or \"[::1]:8080\"";
    if text.is_empty() {
        return Err(format!(
            "it is empty; write an IP address and port, {example}"
        ));
    }
    if text.trim() != text {
        return Err("remove the spaces around it".to_owned());
    }
    // `::1:8080` style: an IPv6 address with a port glued on, missing brackets.
    if !text.starts_with('[')
        && let Some((ip, port)) = text.rsplit_once(':')
        && ip.parse::<Ipv6Addr>().is_ok()
        && port.parse::<u16>().is_ok()
    {
        return Err(format!(
            "write IPv6 addresses in brackets, as \"[{ip}]:{port}\""
        ));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        let with_port = match ip {
            IpAddr::V4(ip) => format!("{ip}:PORT"),
            IpAddr::V6(ip) => format!("[{ip}]:PORT"),
        };
        return Err(format!("it has no port; write it as \"{with_port}\""));
    }
    let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
    let host_is_ip = host.parse::<IpAddr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok());
    if host_is_ip && port.is_empty() {
        return Err("the port after `:` is missing".to_owned());
    }
    if host_is_ip {
        return Err(format!(
            "`{port}` is not a port; a port is a number from 0 to 65535"
        ));
    }
    if looks_like_host_name(host) {
        return Err(format!(
            "`{host}` is a host name, and veza-lb does not resolve names in its configuration; \
             write an IP address and port, {example}"
        ));
    }
    Err(format!("write an IP address and port, {example}"))
}

fn looks_like_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && host.chars().any(|c| c.is_ascii_alphabetic())
}

/// RFC 9110 `tchar`: the characters of a token (header names, methods, cookie names).
pub(crate) fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// RFC 6265 `cookie-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
pub(crate) fn is_cookie_octet(c: char) -> bool {
    matches!(c, '!' | '#'..='+' | '-'..=':' | '<'..='[' | ']'..='~')
}

/// Characters HAProxy accepts in frontend and backend names, which keeps them safe in stats
/// CSV and in runtime commands like `set server POOL/SERVER`.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// The first character of `text` that `allowed` rejects, if any.
pub(crate) fn first_invalid(text: &str, allowed: impl Fn(char) -> bool) -> Option<char> {
    text.chars().find(|&c| !allowed(c))
}

/// Describes a character for a message: `'x'`, `a space`, `U+0007`.
pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely
/// typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_every_unit_and_compound_forms() {
        let ok = [
            ("0s", 0),
            ("500ms", 500),
            ("5s", 5_000),
            ("1m", 60_000),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1m30s", 90_000),
            ("1h1m1s1ms", 3_661_001),
            ("365d", 31_536_000_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_explain_themselves() {
        let cases = [
            ("", "it is empty"),
            ("5x", "unknown unit `x`; use ms, s, m, h or d"),
            (
                "5",
                "the number has no unit; add one, such as \"5s\" or \"5ms\"",
            ),
            ("-5s", "durations cannot be negative"),
            ("s", "write a whole number and a unit"),
            ("5 s", "write a whole number and a unit"),
            ("1.5s", "fractions are not supported"),
            ("30s1m", "largest unit first"),
            ("1s1s", "each unit once"),
            ("366d", "the maximum is 365 days"),
            ("99999999999999999999s", "the maximum is 365 days"),
            ("5S", "unknown unit `S`"),
        ];
        for (text, expected) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn addresses_and_why_they_are_wrong() {
        assert_eq!(
            parse_socket_addr("127.0.0.1:80"),
            Ok("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_socket_addr("[::1]:8080"),
            Ok("[::1]:8080".parse().unwrap())
        );
        let cases = [
            ("localhost:8080", "`localhost` is a host name"),
            ("backend.internal:80", "`backend.internal` is a host name"),
            (
                "127.0.0.1",
                "it has no port; write it as \"127.0.0.1:PORT\"",
            ),
            ("::1", "write it as \"[::1]:PORT\""),
            (
                "::1:8080",
                "write IPv6 addresses in brackets, as \"[::1]:8080\"",
            ),
            ("127.0.0.1:99999", "`99999` is not a port"),
            ("127.0.0.1:", "the port after `:` is missing"),
            ("[::1]:x", "`x` is not a port"),
            ("", "it is empty"),
            (" 127.0.0.1:80", "remove the spaces around it"),
            ("1.2.3.4.5:80", "write an IP address and port"),
            ("%%:80", "write an IP address and port"),
        ];
        for (text, expected) in cases {
            let err = parse_socket_addr(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn character_classes_follow_the_rfcs() {
        assert!("SERVERID".chars().all(is_tchar));
        assert!(!"SERVER ID".chars().all(is_tchar));
        assert!(!"a=b".chars().all(is_tchar));
        assert!("backend-api-1".chars().all(is_cookie_octet));
        for c in [' ', '"', ',', ';', '\\', '\u{7f}', 'é'] {
            assert!(!is_cookie_octet(c), "{c:?}");
        }
        for c in ['!', '#', '+', '-', ':', '<', '[', ']', '~', '='] {
            assert!(is_cookie_octet(c), "{c:?}");
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["timeout_connect", "timeout_client", "retries"];
        assert_eq!(closest("timeout_conect", keys), Some("timeout_connect"));
        assert_eq!(closest("retrys", keys), Some("retries"));
        assert_eq!(closest("weight", keys), None);
    }
}
