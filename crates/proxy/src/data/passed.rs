//! Header fields passed on as received, in both directions. As a head is read, each of its
//! fields is dropped (hop-by-hop), entered in the message's `HeaderMap` (the few the proxy
//! reads or rewrites), or passed on untouched, as a span of the head it was parsed from.
//! Passed fields are written to the next hop straight from those spans: they are never
//! hashed into a map only to be read out again. An HTTP/2 client gets a server's passed
//! fields in the map, as hyper needs them.
//!
//! - A server's answer: `Cache-Control` (for `nocache`), `Strict-Transport-Security` (for
//!   HSTS) and a `101`'s `Upgrade` enter the map; the hop-by-hop fields are dropped.
//! - A client's request: the hop-by-hop fields (for the upgrade handshake), `Cookie` (the
//!   sticky cookie) and the forwarding fields (`X-Forwarded-For`, `X-Forwarded-Proto`,
//!   `Forwarded`) enter the map, where `headers::prepare_upstream_request` rewrites them.
//!
//! Either way a field the `Connection` field nominates is never passed on (RFC 9110 section
//! 7.6.1).

use std::ops::Range;

use bytes::Bytes;
use h1::{Field, RequestHead, ResponseHead, Span, encode};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// What becomes of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Hop-by-hop, or a `Content-Length` the chunked framing overrides: not forwarded.
    Drop,
    /// A field the proxy may read or replace: into the message's map, unless `Connection`
    /// nominates it.
    Edit,
    /// Into the map whatever `Connection` says: the map's own rewrite decides (a request's
    /// hop-by-hop fields, the upgrade handshake's; a `101`'s `Upgrade`, which `Connection`
    /// names as it must).
    Map,
    /// Forwarded as received.
    Pass,
    /// `Content-Length`, forwarded as received: the next hop's framing is this one's.
    PassLength,
}

/// The fate of a server's field by its name, the status and whether the framing overrides a
/// length. One comparison at most per name length: most names are none of these.
fn response_fate(name: &[u8], status: u16, drop_length: bool) -> Fate {
    let is = |n: &[u8]| h1::eq_lowercase(name, n);
    match name.len() {
        2 if is(b"te") => Fate::Drop,
        7 if is(b"trailer") => Fate::Drop,
        7 if is(b"upgrade") => {
            if status == 101 {
                Fate::Map
            } else {
                Fate::Drop
            }
        }
        10 if is(b"connection") || is(b"keep-alive") => Fate::Drop,
        13 if is(b"cache-control") => Fate::Edit,
        14 if is(b"content-length") => {
            if drop_length {
                Fate::Drop
            } else {
                Fate::PassLength
            }
        }
        16 if is(b"proxy-connection") => Fate::Drop,
        17 if is(b"transfer-encoding") => Fate::Drop,
        25 if is(b"strict-transport-security") => Fate::Edit,
        _ => Fate::Pass,
    }
}

/// The fate of a client's field by its name: what the proxy rewrites for the server enters
/// the map, where the hop-by-hop fields are removed with the upgrade handshake in mind.
fn request_fate(name: &[u8]) -> Fate {
    let is = |n: &[u8]| h1::eq_lowercase(name, n);
    match name.len() {
        2 if is(b"te") => Fate::Map,
        6 if is(b"cookie") => Fate::Map,
        7 if is(b"trailer") || is(b"upgrade") => Fate::Map,
        9 if is(b"forwarded") => Fate::Map,
        10 if is(b"connection") || is(b"keep-alive") => Fate::Map,
        14 if is(b"content-length") => Fate::PassLength,
        15 if is(b"x-forwarded-for") => Fate::Map,
        16 if is(b"proxy-connection") => Fate::Map,
        17 if is(b"transfer-encoding") || is(b"x-forwarded-proto") => Fate::Map,
        _ => Fate::Pass,
    }
}

/// The end-to-end fields of a message that nothing edits, in the order received: spans of
/// the head they were parsed from.
#[derive(Debug)]
pub(crate) struct PassedFields {
    head: Bytes,
    fields: Vec<Field>,
    content_length: bool,
}

impl PassedFields {
    /// Splits the fields of a server's answer `parsed` (parsed from `head`): the hop-by-hop
    /// ones are dropped, those the proxy may edit are appended to `edited`, the others are
    /// kept as spans. Takes `parsed`'s field list, whose allocation
    /// [`PassedFields::into_list`] gives back.
    pub(crate) fn of_response(
        parsed: &mut ResponseHead,
        head: Bytes,
        edited: &mut HeaderMap,
    ) -> Self {
        let (status, drop_length) = (parsed.status, parsed.drop_content_length);
        let fields = std::mem::take(&mut parsed.fields);
        let options = parsed.connection.options;
        Self::split(fields, head, options, edited, |name| {
            response_fate(name, status, drop_length)
        })
    }

    /// Splits the fields of a client's request `parsed` (parsed from `head`): those the
    /// proxy rewrites for the server are appended to `edited`, the others are kept as spans
    /// (but for those `Connection` nominates). Takes `parsed`'s field list, as above.
    pub(crate) fn of_request(
        parsed: &mut RequestHead,
        head: Bytes,
        edited: &mut HeaderMap,
    ) -> Self {
        let fields = std::mem::take(&mut parsed.fields);
        let options = parsed.connection.options;
        Self::split(fields, head, options, edited, request_fate)
    }

    fn split(
        mut fields: Vec<Field>,
        head: Bytes,
        options: bool,
        edited: &mut HeaderMap,
        fate: impl Fn(&[u8]) -> Fate,
    ) -> Self {
        let nominated = if options {
            Nominated::by(&fields, &head)
        } else {
            Nominated::none(&head)
        };
        let mut content_length = false;
        fields.retain(|f| {
            let name = f.name.of(&head);
            match fate(name) {
                Fate::Drop => false,
                Fate::Edit | Fate::Pass | Fate::PassLength if nominated.names(name) => false,
                Fate::Edit | Fate::Map => {
                    // The codec already refused what either constructor refuses (httparse's
                    // token and value rules are `http`'s): nothing is lost here.
                    let name = HeaderName::from_bytes(name);
                    let value = HeaderValue::from_maybe_shared(head.slice(f.value.range()));
                    if let (Ok(name), Ok(value)) = (name, value) {
                        edited.append(name, value);
                    }
                    false
                }
                Fate::Pass => true,
                Fate::PassLength => {
                    content_length = true;
                    true
                }
            }
        });
        Self {
            head,
            fields,
            content_length,
        }
    }

    /// The value of the first field called `name` (case-insensitive).
    pub(crate) fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name.of(&self.head).eq_ignore_ascii_case(name))
            .map(|f| f.value.of(&self.head))
    }

    /// Whether a `Content-Length` is among them (the next hop's framing is then this one's).
    pub(crate) fn has_content_length(&self) -> bool {
        self.content_length
    }

    /// Writes them as `name: value` lines, names as the sender spelled them.
    ///
    /// Fields that follow each other in the head as `name: value` lines are copied as one
    /// run of its bytes: a server's `Server`, `Date` and `Content-Type` are one copy, not
    /// six.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let head = &self.head[..];
        let flush = |out: &mut Vec<u8>, run: Option<Range<usize>>| {
            if let Some(lines) = run.and_then(|run| head.get(run)) {
                encode::field_lines(out, lines);
            }
        };
        // The lines gathered so far, from the first one's name to the last one's value.
        let mut run: Option<Range<usize>> = None;
        for f in &self.fields {
            match (verbatim(head, f), &mut run) {
                (Some(line), Some(run)) if head.get(run.end..line.start) == Some(&b"\r\n"[..]) => {
                    run.end = line.end;
                }
                (Some(line), _) => flush(out, run.replace(line)),
                (None, _) => {
                    flush(out, run.take());
                    encode::field(out, f.name.of(head), f.value.of(head));
                }
            }
        }
        flush(out, run);
    }

    /// Appends them to `map` (for a client hyper writes to); the values share the head's
    /// bytes. Returns the emptied list.
    pub(crate) fn into_map(self, map: &mut HeaderMap) -> Vec<Field> {
        map.reserve(self.fields.len());
        for f in &self.fields {
            let name = HeaderName::from_bytes(f.name.of(&self.head));
            let value = HeaderValue::from_maybe_shared(self.head.slice(f.value.range()));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        self.into_list()
    }

    /// The field list, emptied, for the connection's next head (the head's bytes are let go).
    pub(crate) fn into_list(self) -> Vec<Field> {
        let mut fields = self.fields;
        fields.clear();
        fields
    }
}

/// Where `f`'s line is in `head`, without its line ending, when it reads `name: value` (one
/// space after the colon, as senders should write it: RFC 9110 section 5.6.3). Other
/// spellings are written afresh from name and value.
fn verbatim(head: &[u8], f: &Field) -> Option<Range<usize>> {
    let (name, value) = (f.name.range(), f.value.range());
    (head.get(name.end..value.start)? == b": ").then_some(name.start..value.end)
}

/// Names a `Connection` field nominates beyond the fixed hop-by-hop list (RFC 9110 section
/// 7.6.1). `Connection: keep-alive` or `close` (the usual) nominate none (the codec says
/// so, [`h1::Connection::options`]): then nothing is scanned or allocated and no field
/// costs a lookup.
struct Nominated<'a> {
    head: &'a [u8],
    /// The values of the `Connection` fields, if they nominate any such name.
    values: Vec<Span>,
}

impl<'a> Nominated<'a> {
    fn none(head: &'a [u8]) -> Self {
        Self {
            head,
            values: Vec::new(),
        }
    }

    fn by(fields: &[Field], head: &'a [u8]) -> Self {
        let connection = || {
            fields
                .iter()
                .filter(|f| h1::eq_lowercase(f.name.of(head), b"connection"))
                .map(|f| f.value)
        };
        let any = connection()
            .flat_map(|v| tokens(v.of(head)))
            .any(|t| !encode::is_hop_by_hop(t));
        Self {
            head,
            values: if any {
                connection().collect()
            } else {
                Vec::new()
            },
        }
    }

    fn names(&self, name: &[u8]) -> bool {
        encode::nominated(self.values.iter().map(|v| v.of(self.head)), name)
    }
}

/// The comma-separated tokens of a field value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::headers::HOP_BY_HOP;

    /// A raw head split: (the passed fields as written, the edited map's fields).
    fn split(raw: &[u8]) -> (String, Vec<(String, String)>, bool) {
        let mut parsed = ResponseHead::default();
        let done = parsed.parse(raw, false, &h1::Limits::default());
        assert_eq!(done, Ok(h1::Parse::Complete));
        let mut edited = HeaderMap::new();
        let passed =
            PassedFields::of_response(&mut parsed, Bytes::copy_from_slice(raw), &mut edited);
        let mut out = Vec::new();
        passed.encode(&mut out);
        let edited = edited
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        let length = passed.has_content_length();
        (String::from_utf8(out).expect("ascii"), edited, length)
    }

    #[test]
    fn only_end_to_end_fields_pass_as_received() {
        let raw =
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n\
                    X-Private: secret\r\nSet-Cookie: a=1\r\nUpgrade: h2c\r\nSet-Cookie: b=2\r\n\
                    Proxy-Connection: close\r\nTrailer: x\r\nTE: trailers\r\n\
                    Transfer-Encoding: identity\r\nContent-Type: text/plain\r\n\r\n";
        let (passed, edited, length) = split(raw);
        assert_eq!(
            passed,
            "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\n"
        );
        assert!(edited.is_empty(), "{edited:?}");
        assert!(!length);
        // Without a nominating `Connection`, `X-Private` is an ordinary field.
        let plain =
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Private: 1\r\nContent-Length: 0\r\n\r\n";
        let (passed, _, length) = split(plain);
        assert_eq!(passed, "X-Private: 1\r\nContent-Length: 0\r\n");
        assert!(length);
    }

    #[test]
    fn runs_of_lines_are_copied_and_every_line_ends_in_crlf() {
        // Runs broken by a dropped field, trailing spaces and a bare LF; a tab, extra spaces
        // after the colon and empty values are written afresh, with one space.
        let raw = b"HTTP/1.1 200 OK\r\nServer: s\r\nDate:\tnow\r\nConnection: close\r\n\
                    Vary:   a  \r\nX-Empty:\r\nX-Blank:   \r\nX-Lf: 1\nX-Next: 2\r\n\r\n";
        let (passed, _, _) = split(raw);
        assert_eq!(
            passed,
            "Server: s\r\nDate: now\r\nVary: a\r\nX-Empty: \r\nX-Blank: \r\nX-Lf: 1\r\n\
             X-Next: 2\r\n"
        );
    }

    proptest::proptest! {
        /// Whatever the spelling (spaces or tabs around values, bare LF line endings, dropped
        /// fields between), the written fields are the passed ones, in order, each on its own
        /// CRLF line, its value unchanged.
        #[test]
        fn written_lines_are_the_passed_fields(
            fields in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "Server", "date", "X-A", "ETag", "Keep-Alive", "Vary", "x-long-name-here",
                    ]),
                    "[a-z0-9=;]{0,12}",
                    proptest::sample::select(vec![": ", ":", ":  ", ":\t", ": "]),
                    proptest::sample::select(vec!["", " ", "\t "]),
                    proptest::bool::ANY,
                ),
                0..8,
            ),
        ) {
            let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
            let mut expected = String::new();
            for (name, value, colon, trailing, bare_lf) in &fields {
                raw.extend_from_slice(format!("{name}{colon}{value}{trailing}").as_bytes());
                raw.extend_from_slice(if *bare_lf { b"\n" } else { b"\r\n" });
                if !name.eq_ignore_ascii_case("keep-alive") {
                    expected.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            raw.extend_from_slice(b"\r\n");
            let (passed, _, _) = split(&raw);
            proptest::prop_assert_eq!(passed, expected);
        }
    }

    #[test]
    fn fields_the_proxy_edits_go_to_the_map_whatever_their_case() {
        let raw = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: public\r\nETag: \"1\"\r\n\
                    Strict-Transport-Security: max-age=1\r\nContent-Length: 2\r\n\r\n";
        let (passed, edited, _) = split(raw);
        assert_eq!(passed, "ETag: \"1\"\r\nContent-Length: 2\r\n");
        let edited: Vec<(&str, &str)> = edited
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            edited,
            [
                ("cache-control", "public"),
                ("strict-transport-security", "max-age=1")
            ]
        );
    }

    #[test]
    fn a_length_chunked_framing_overrides_is_dropped_and_upgrade_kept_on_101() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        let (passed, edited, length) = split(chunked);
        assert!(
            passed.is_empty() && edited.is_empty() && !length,
            "{passed}"
        );
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                          Upgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n";
        let (passed, edited, _) = split(switching);
        assert_eq!(passed, "Sec-WebSocket-Accept: x\r\n");
        assert_eq!(edited, [("upgrade".to_owned(), "websocket".to_owned())]);
        // A `Connection` that names more drops those, never the handshake's `Upgrade`.
        let naming = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-Hop\r\n\
                       X-Hop: 1\r\nUpgrade: websocket\r\nX-End: 2\r\n\r\n";
        let (passed, edited, _) = split(naming);
        assert_eq!(passed, "X-End: 2\r\n");
        assert_eq!(edited, [("upgrade".to_owned(), "websocket".to_owned())]);
    }

    #[test]
    fn every_hop_by_hop_name_is_dropped() {
        for name in &HOP_BY_HOP {
            let bytes = name.as_str().as_bytes();
            assert!(
                encode::is_hop_by_hop(bytes),
                "the codec's list is the same: {name}"
            );
            assert_eq!(response_fate(bytes, 200, false), Fate::Drop, "{name}");
            assert_eq!(
                response_fate(&bytes.to_ascii_uppercase(), 200, false),
                Fate::Drop,
                "{name}"
            );
        }
        // Look-alikes of the same lengths pass.
        for name in [&b"tx"[..], b"trailers", b"connected!", b"content-lengtH2"] {
            assert_eq!(response_fate(name, 200, false), Fate::Pass);
        }
    }

    #[test]
    fn a_requests_rewritten_fields_go_to_the_map_and_nominated_ones_nowhere() {
        for name in HOP_BY_HOP.iter().map(HeaderName::as_str).chain([
            "cookie",
            "forwarded",
            "x-forwarded-for",
            "X-Forwarded-Proto",
        ]) {
            assert_eq!(request_fate(name.as_bytes()), Fate::Map, "{name}");
        }
        for name in [
            "host",
            "user-agent",
            "x-forwarded-host",
            "cookie2",
            "accept",
        ] {
            assert_eq!(request_fate(name.as_bytes()), Fate::Pass, "{name}");
        }
        let raw = b"POST /x HTTP/1.1\r\nHost: lb\r\nConnection: keep-alive, X-Hop, Upgrade\r\n\
                    X-Hop: 1\r\nCookie: SERVERID=a\r\nUpgrade: websocket\r\nUser-Agent: t\r\n\
                    X-Forwarded-For: 192.0.2.1\r\nContent-Length: 2\r\n\r\n";
        let mut parsed = RequestHead::default();
        let done = parsed.parse(raw, &h1::Limits::default());
        assert_eq!(done, Ok(h1::Parse::Complete));
        let mut map = HeaderMap::new();
        let passed = PassedFields::of_request(&mut parsed, Bytes::copy_from_slice(raw), &mut map);
        let mut out = Vec::new();
        passed.encode(&mut out);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "Host: lb\r\nUser-Agent: t\r\nContent-Length: 2\r\n"
        );
        assert!(passed.has_content_length());
        assert_eq!(passed.get(b"HOST"), Some(&b"lb"[..]));
        assert_eq!(passed.get(b"x-hop"), None, "nominated by Connection");
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            ["connection", "cookie", "upgrade", "x-forwarded-for"],
            "the upgrade handshake survives a Connection that names more"
        );
    }

    #[test]
    fn into_map_keeps_order_and_shares_the_heads_bytes() {
        let raw = b"HTTP/1.1 200 OK\r\nA: 1\r\nConnection: close\r\nB: 2\r\nA: 3\r\n\r\n";
        let mut parsed = ResponseHead::default();
        assert_eq!(
            parsed.parse(raw, false, &h1::Limits::default()),
            Ok(h1::Parse::Complete)
        );
        let mut map = HeaderMap::new();
        let passed = PassedFields::of_response(&mut parsed, Bytes::copy_from_slice(raw), &mut map);
        let list = passed.into_map(&mut map);
        assert!(
            list.is_empty() && list.capacity() >= 3,
            "the allocation is kept"
        );
        let all: Vec<(&str, &str)> = map
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().expect("ascii")))
            .collect();
        assert_eq!(all, [("a", "1"), ("a", "3"), ("b", "2")]);
    }
}
