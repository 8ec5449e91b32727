//! The sticky cookie: reading it from requests, stripping it, and writing `Set-Cookie`.
//!
//! Cookie headers come from clients and are hostile until proven otherwise: parsing is a
//! single pass over borrowed bytes, never allocates unless the header is rewritten, and treats
//! anything outside RFC 6265's grammar as "no valid cookie", never as an error that could stop
//! a request.

use std::fmt;

/// Why a cookie or server name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieError {
    /// The cookie name is not an RFC 9110 token.
    InvalidName(String),
    /// The value has a character outside RFC 6265's cookie-octets (or is empty).
    InvalidValue(String),
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName(name) => write!(
                f,
                "cookie name {name:?} is not a valid token: use letters, digits and !#$%&'*+-.^_`|~"
            ),
            Self::InvalidValue(value) => write!(
                f,
                "{value:?} cannot be a cookie value: it must be non-empty, without spaces, quotes, commas, semicolons or backslashes"
            ),
        }
    }
}

impl std::error::Error for CookieError {}

/// Whether `s` is an RFC 9110 token (valid cookie and header name).
#[must_use]
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether `bytes` are RFC 6265 cookie-octets (and non-empty): what a server name must be to
/// serve as a sticky cookie value.
#[must_use]
pub fn is_cookie_value(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// What the client's request said about the sticky cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCookie<'a> {
    /// No cookie of that name.
    Absent,
    /// A syntactically valid value (not yet known to name a server).
    Value(&'a str),
    /// A cookie of that name whose value is not valid cookie-octets.
    Invalid,
}

/// The configuration of a pool's sticky cookie (HAProxy's `cookie NAME insert indirect
/// nocache`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    name: String,
    /// Insert `Set-Cookie` in responses when the client has no valid cookie for its server.
    pub insert: bool,
    /// Do not re-send a valid cookie, and strip it from requests before they reach servers.
    pub indirect: bool,
    /// Mark responses that set the cookie `Cache-Control: private`.
    pub nocache: bool,
    /// Add `HttpOnly` to `Set-Cookie`.
    pub httponly: bool,
    /// Add `Secure` to `Set-Cookie`.
    pub secure: bool,
}

impl StickyCookie {
    /// A cookie named `name` in insert mode with no other options.
    ///
    /// # Errors
    /// When `name` is not a token.
    pub fn new(name: &str) -> Result<Self, CookieError> {
        if !is_token(name) {
            return Err(CookieError::InvalidName(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            insert: true,
            indirect: false,
            nocache: false,
            httponly: false,
            secure: false,
        })
    }

    /// The cookie's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Finds the cookie in a request's `Cookie` header values (HTTP/2 may split cookies over
    /// several headers). The first occurrence wins.
    ///
    /// ```
    /// use lb_core::{ClientCookie, StickyCookie};
    /// let c = StickyCookie::new("SERVERID").unwrap();
    /// let headers = [&b"lang=fr; SERVERID=backend-api-1"[..]];
    /// assert_eq!(c.find(headers), ClientCookie::Value("backend-api-1"));
    /// assert_eq!(c.find([&b"SERVERID=a b"[..]]), ClientCookie::Invalid);
    /// ```
    pub fn find<'a>(&self, headers: impl IntoIterator<Item = &'a [u8]>) -> ClientCookie<'a> {
        for header in headers {
            for (name, value) in pairs(header) {
                if name != self.name.as_bytes() {
                    continue;
                }
                let value = unquote(value);
                return match std::str::from_utf8(value) {
                    Ok(v) if is_cookie_value(value) => ClientCookie::Value(v),
                    _ => ClientCookie::Invalid,
                };
            }
        }
        ClientCookie::Absent
    }

    /// Removes every occurrence of this cookie from one `Cookie` header value.
    ///
    /// Returns `None` when the header does not contain it (forward it untouched),
    /// `Some(None)` when nothing else is left (drop the header), and `Some(Some(rest))`
    /// otherwise.
    #[must_use]
    pub fn strip(&self, header: &[u8]) -> Option<Option<Vec<u8>>> {
        if !pairs(header).any(|(name, _)| name == self.name.as_bytes()) {
            return None;
        }
        let mut rest = Vec::with_capacity(header.len());
        for segment in header.split(|&b| b == b';') {
            let segment = trim(segment);
            if segment.is_empty() {
                continue;
            }
            let name = segment
                .iter()
                .position(|&b| b == b'=')
                .map_or(segment, |i| trim(&segment[..i]));
            if name == self.name.as_bytes() {
                continue;
            }
            if !rest.is_empty() {
                rest.extend_from_slice(b"; ");
            }
            rest.extend_from_slice(segment);
        }
        Some((!rest.is_empty()).then_some(rest))
    }

    /// The `Set-Cookie` value pinning a client to `server`.
    ///
    /// ```
    /// let c = lb_core::StickyCookie::new("SERVERID").unwrap();
    /// assert_eq!(c.set_cookie("backend-api-2"), "SERVERID=backend-api-2; path=/");
    /// ```
    #[must_use]
    pub fn set_cookie(&self, server: &str) -> String {
        let mut v = format!("{}={server}; path=/", self.name);
        if self.httponly {
            v.push_str("; HttpOnly");
        }
        if self.secure {
            v.push_str("; Secure");
        }
        v
    }
}

/// `name=value` pairs of a Cookie header, trimmed, skipping empty and malformed segments.
fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|segment| {
        let eq = segment.iter().position(|&b| b == b'=')?;
        Some((trim(&segment[..eq]), trim(&segment[eq + 1..])))
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sid() -> StickyCookie {
        StickyCookie::new("SERVERID").expect("valid name")
    }

    #[test]
    fn finds_among_others_with_odd_spacing_and_quotes() {
        let c = sid();
        assert_eq!(c.find([&b"a=1;SERVERID=s1"[..]]), ClientCookie::Value("s1"));
        assert_eq!(
            c.find([&b"  SERVERID = s1 ; b=2"[..]]),
            ClientCookie::Value("s1")
        );
        assert_eq!(c.find([&b"SERVERID=\"s1\""[..]]), ClientCookie::Value("s1"));
        assert_eq!(
            c.find([&b"a=1"[..], &b"SERVERID=s2"[..]]),
            ClientCookie::Value("s2")
        );
        assert_eq!(
            c.find([&b"serverid=s1"[..]]),
            ClientCookie::Absent,
            "names are case-sensitive"
        );
        assert_eq!(c.find([&b"XSERVERID=s1"[..]]), ClientCookie::Absent);
        assert_eq!(c.find(std::iter::empty()), ClientCookie::Absent);
    }

    #[test]
    fn duplicates_take_the_first() {
        let c = sid();
        assert_eq!(
            c.find([&b"SERVERID=s1; SERVERID=s2"[..]]),
            ClientCookie::Value("s1")
        );
    }

    #[test]
    fn invalid_values_are_invalid_not_errors() {
        let c = sid();
        for bad in [
            &b"SERVERID="[..],
            b"SERVERID=a,b",
            b"SERVERID=a\\b",
            b"SERVERID=\xff\xfe",
            b"SERVERID=\"\"",
        ] {
            assert_eq!(c.find([bad]), ClientCookie::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn strip_removes_only_ours() {
        let c = sid();
        assert_eq!(c.strip(b"a=1; b=2"), None);
        assert_eq!(c.strip(b"SERVERID=s1"), Some(None));
        assert_eq!(
            c.strip(b"a=1; SERVERID=s1;b=2"),
            Some(Some(b"a=1; b=2".to_vec()))
        );
        assert_eq!(
            c.strip(b"SERVERID=s1; SERVERID=s2; a"),
            Some(Some(b"a".to_vec()))
        );
    }

    #[test]
    fn set_cookie_flags() {
        let mut c = sid();
        c.httponly = true;
        c.secure = true;
        assert_eq!(c.set_cookie("s1"), "SERVERID=s1; path=/; HttpOnly; Secure");
    }

    #[test]
    fn names_and_values_validated() {
        assert!(StickyCookie::new("SERVER ID").is_err());
        assert!(StickyCookie::new("").is_err());
        assert!(StickyCookie::new("SERVERID").is_ok());
        assert!(is_cookie_value(b"backend-api-1"));
        assert!(!is_cookie_value(b"backend api"));
        assert!(!is_cookie_value(b""));
    }

    proptest! {
        #[test]
        fn hostile_headers_never_panic(header in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let c = sid();
            let found = c.find([header.as_slice()]);
            let stripped = c.strip(&header);
            // Whatever strip leaves never contains our cookie any more.
            if let Some(Some(rest)) = &stripped {
                prop_assert_eq!(c.find([rest.as_slice()]), ClientCookie::Absent);
            }
            if let ClientCookie::Value(v) = found {
                prop_assert!(is_cookie_value(v.as_bytes()));
                prop_assert!(stripped.is_some());
            }
        }

        #[test]
        fn any_valid_value_round_trips(value in "[!#-+\\--:<-\\[\\]-~]{1,64}") {
            let c = sid();
            let header = format!("x=1; {}", c.set_cookie(&value).split(';').next().unwrap_or_default());
            prop_assert_eq!(c.find([header.as_bytes()]), ClientCookie::Value(value.as_str()));
        }
    }
}
