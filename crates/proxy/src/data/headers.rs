//! Request hygiene and header rewriting (RFC 9110 / RFC 9112).

use std::net::SocketAddr;

#[cfg(test)]
use http::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode, Version};

use crate::data::passed::PassedFields;

/// Largest request head accepted (431 beyond): HAProxy's default `tune.bufsize`.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Longest request target accepted (414 beyond).
pub(crate) const MAX_URI_LEN: usize = 8 * 1024;

/// Hop-by-hop headers (RFC 9110 section 7.6.1), plus the historical ones proxies strip.
/// `X-Forwarded-For` and `X-Forwarded-Proto`, named once: a name built from a string for
/// each request would be allocated each time.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

pub(crate) const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Rejects what hyper's parser lets through but a careful proxy must not forward.
///
/// hyper already refuses malformed request lines, invalid header names and values (CR, LF,
/// NUL), differing duplicate `Content-Length`s, and non-chunked `Transfer-Encoding`;
/// this adds the URI length limit, `Content-Length` together with `Transfer-Encoding`
/// (request smuggling), a missing or repeated `Host` in HTTP/1.1, and `CONNECT`.
///
/// # Errors
/// The status to answer with and a sentence for the error page.
pub(crate) fn check_request(
    req: &Parts,
    max_uri: usize,
    max_head: usize,
) -> Result<(), (StatusCode, &'static str)> {
    let target_len = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len());
    if target_len > max_uri {
        return Err((StatusCode::URI_TOO_LONG, "The request target is too long."));
    }
    let h = &req.headers;
    // hyper bounds its read buffer, but a head that arrives whole in one read can exceed it.
    let head: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if head + target_len > max_head {
        return Err((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request header fields are too large.",
        ));
    }
    if req.version <= Version::HTTP_11 {
        // The codec's framing rules: chunked twice or not last, a length with a sign or
        // several different lengths, a length with chunked, chunked in HTTP/1.0.
        let minor = u8::from(req.version == Version::HTTP_11);
        let te = h
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(HeaderValue::as_bytes);
        let cl = h
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .map(HeaderValue::as_bytes);
        if let Err(e) = h1::framing::request(minor, te, cl) {
            return Err((StatusCode::BAD_REQUEST, framing_reason(e)));
        }
    }
    // RFC 9112 section 3.2.2: an absolute-form target's authority wins over Host; a Host
    // that differs is a request two parsers would route differently.
    if let (Some(authority), Some(host)) = (req.uri.authority(), h.get(header::HOST))
        && !host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
    {
        return Err((
            StatusCode::BAD_REQUEST,
            "The request target's authority differs from its Host header.",
        ));
    }
    if req.version == Version::HTTP_11 {
        let mut hosts = h.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (Some(_), None) => {}
            (None, _) if req.uri.authority().is_some() => {}
            (None, _) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "HTTP/1.1 requests need a Host header.",
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "The request has more than one Host header.",
                ));
            }
        }
    }
    check_method(&req.method)
}

/// The one check the `h1` codec leaves to the proxy: methods it does not forward.
///
/// # Errors
/// `405` for `CONNECT` (veza-lb is not a forward proxy).
pub(crate) fn check_method(method: &Method) -> Result<(), (StatusCode, &'static str)> {
    if method == Method::CONNECT {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported."));
    }
    Ok(())
}

fn framing_reason(e: h1::FramingError) -> &'static str {
    use h1::FramingError as F;
    match e {
        F::BadContentLength => "The request has an invalid Content-Length.",
        F::ConflictingContentLength => "The request has several different Content-Length values.",
        F::ChunkedNotLast | F::UnknownLength => {
            "The request's last transfer coding is not chunked: its length is unknown."
        }
        F::ChunkedTwice => "The request applies the chunked coding twice.",
        F::EmptyTransferEncoding => "The request has an empty Transfer-Encoding.",
        F::LengthAndChunked => {
            "Content-Length and Transfer-Encoding together make the request length ambiguous."
        }
        F::TransferEncodingInHttp10 => "HTTP/1.0 requests cannot use Transfer-Encoding.",
    }
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` + `Upgrade: X`).
pub(crate) fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    let wants = h
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case("upgrade")));
    wants.then(|| h.get(header::UPGRADE).cloned()).flatten()
}

fn tokens(v: &HeaderValue) -> impl Iterator<Item = &str> {
    v.to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the (few) fields finds which of the list are there, usually none or
    // just `Connection`: cheaper than a hashed removal of every name on the list.
    let present = h.keys().fold(0_u8, |seen, name| {
        HOP_BY_HOP
            .iter()
            .position(|n| n == name)
            .map_or(seen, |i| seen | 1 << i)
    });
    if present == 0 {
        return;
    }
    // `Connection: keep-alive`, `close` or `upgrade` nominate nothing beyond the fixed list:
    // the common case costs no allocation.
    let nominates_others = h
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(tokens)
        .any(|t| {
            !t.eq_ignore_ascii_case("close")
                && !HOP_BY_HOP
                    .iter()
                    .any(|n| t.eq_ignore_ascii_case(n.as_str()))
        });
    if nominates_others {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(tokens)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in &named {
            h.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & 1 << i != 0 {
            h.remove(name);
        }
    }
}

/// What a connection's requests tell servers about their client, built once per connection
/// so that forwarding a request costs no formatting or allocation.
#[derive(Debug, Clone)]
pub(crate) struct Forwarding {
    client_ip: HeaderValue,
    proto: HeaderValue,
    forwarded: HeaderValue,
}

impl Forwarding {
    /// Writes the forwarding fields a request's head `h` does not carry yet, after its own:
    /// `X-Forwarded-For` (unless [`prepare_upstream_request`] continued the client's chain),
    /// `X-Forwarded-Proto`, and `Forwarded` (after the client's, if any).
    pub(crate) fn encode(&self, h: &HeaderMap, out: &mut Vec<u8>) {
        if !h.contains_key(X_FORWARDED_FOR) {
            h1::encode::field(out, b"x-forwarded-for", self.client_ip.as_bytes());
        }
        h1::encode::field(out, b"x-forwarded-proto", self.proto.as_bytes());
        h1::encode::field(out, b"forwarded", self.forwarded.as_bytes());
    }

    pub(crate) fn new(peer: SocketAddr, tls: bool) -> Self {
        let proto = if tls { "https" } else { "http" };
        let node = match peer {
            SocketAddr::V4(a) => a.ip().to_string(),
            // RFC 7239: an IPv6 node is bracketed and quoted.
            SocketAddr::V6(a) => format!("\"[{}]\"", a.ip()),
        };
        let value = |s: String| {
            HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        };
        Self {
            client_ip: value(peer.ip().to_string()),
            proto: HeaderValue::from_static(proto),
            forwarded: value(format!("for={node};proto={proto}")),
        }
    }
}

/// Rewrites a client's request for a server: hop-by-hop headers out (kept for an upgrade),
/// the client's own `X-Forwarded-Proto` out and its `X-Forwarded-For` chain continued (the
/// proxy's forwarding fields are written with the head: [`Forwarding::encode`]), `Host`
/// from the target's authority when the request has none (in `parts` or among the fields
/// `passed` on as received).
pub(crate) fn prepare_upstream_request(
    parts: &mut Parts,
    passed: Option<&PassedFields>,
    forwarding: &Forwarding,
    upgrade: Option<&HeaderValue>,
) {
    if let Some(authority) = parts.uri.authority()
        && !parts.headers.contains_key(header::HOST)
        && passed.and_then(|p| p.get(b"host")).is_none()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        // HTTP/2 carries the host in `:authority`; HTTP/1.1 servers need it in `Host`.
        parts.headers.insert(header::HOST, host);
    }
    let h = &mut parts.headers;
    if parts.version == Version::HTTP_2 {
        join_cookies(h);
    }
    strip_hop_by_hop(h);
    if let Some(proto) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, proto.clone());
    }
    // A chain the client started is continued here, in the map; a request without one gets
    // ours from [`Forwarding::encode`] as its head is written, as it gets the others.
    if let Some(prev) = h.get(X_FORWARDED_FOR) {
        let chained = prev.to_str().ok().and_then(|prev| {
            let ip = forwarding.client_ip.to_str().unwrap_or("unknown");
            HeaderValue::from_str(&format!("{prev}, {ip}")).ok()
        });
        h.insert(
            X_FORWARDED_FOR,
            chained.unwrap_or_else(|| forwarding.client_ip.clone()),
        );
    }
    // Clients cannot be trusted to tell a server how they reached us.
    h.remove(X_FORWARDED_PROTO);
}

/// HTTP/2 clients may send one `Cookie` field per cookie; HTTP/1.1 wants a single one,
/// joined with `; ` (RFC 9113 section 8.2.3).
fn join_cookies(h: &mut HeaderMap) {
    let mut all = h.get_all(header::COOKIE).iter();
    if all.next().is_none() || all.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        h.insert(header::COOKIE, v);
    }
}

/// Removes the sticky cookie from every `Cookie` header (`indirect`).
pub(crate) fn strip_cookie(h: &mut HeaderMap, sticky: &lb_core::StickyCookie) {
    if !h.contains_key(header::COOKIE) {
        return;
    }
    let mut kept = Vec::new();
    let mut changed = false;
    for v in h.get_all(header::COOKIE) {
        match sticky.strip(v.as_bytes()) {
            None => kept.push(v.clone()),
            Some(rest) => {
                changed = true;
                if let Some(v) = rest.and_then(|r| HeaderValue::from_bytes(&r).ok()) {
                    kept.push(v);
                }
            }
        }
    }
    if changed {
        h.remove(header::COOKIE);
        for v in kept {
            h.append(header::COOKIE, v);
        }
    }
}

/// Rewrites a server's response for the client: hop-by-hop headers out, except the upgrade
/// handshake's when the response switches protocols.
pub(crate) fn prepare_client_response(h: &mut HeaderMap, upgraded: bool) {
    let upgrade = upgraded.then(|| h.get(header::UPGRADE).cloned()).flatten();
    strip_hop_by_hop(h);
    if let Some(proto) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, proto);
    }
}

/// `nocache`: a response that sets the sticky cookie must not be stored by shared caches,
/// or one client's pin would be served to others.
pub(crate) fn mark_private(h: &mut HeaderMap) {
    let current = h
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let directives: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("public"))
        .collect();
    if directives
        .iter()
        .any(|d| d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store"))
    {
        return;
    }
    let value = std::iter::once("private")
        .chain(directives)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(header::CACHE_CONTROL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(build: impl FnOnce(http::request::Builder) -> http::request::Builder) -> Parts {
        build(Request::builder().uri("/x").header("host", "lb"))
            .body(())
            .expect("valid request")
            .into_parts()
            .0
    }

    #[test]
    fn hygiene_rejects_smuggling_shapes_and_missing_host() {
        assert!(check_request(&req(|b| b), 8192, 65536).is_ok());
        let both = req(|b| {
            b.header("content-length", "3")
                .header("transfer-encoding", "chunked")
        });
        assert_eq!(
            check_request(&both, 8192, 65536).map_err(|e| e.0),
            Err(StatusCode::BAD_REQUEST)
        );
        let two_hosts = req(|b| b.header("host", "other"));
        assert_eq!(
            check_request(&two_hosts, 8192, 65536).map_err(|e| e.0),
            Err(StatusCode::BAD_REQUEST)
        );
        let no_host = Request::builder()
            .uri("/x")
            .body(())
            .expect("valid")
            .into_parts()
            .0;
        assert_eq!(
            check_request(&no_host, 8192, 65536).map_err(|e| e.0),
            Err(StatusCode::BAD_REQUEST)
        );
        let long = Request::builder()
            .uri(format!("/{}", "a".repeat(100)))
            .header("host", "lb")
            .body(())
            .expect("valid")
            .into_parts()
            .0;
        assert_eq!(
            check_request(&long, 50, 65536).map_err(|e| e.0),
            Err(StatusCode::URI_TOO_LONG)
        );
    }

    #[test]
    fn each_hop_by_hop_field_is_removed_alone_or_with_others() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("x"));
            h.append(name.clone(), HeaderValue::from_static("a"));
            h.append(name.clone(), HeaderValue::from_static("b"));
            let next = &HOP_BY_HOP[(i + 3) % HOP_BY_HOP.len()];
            let mut both = h.clone();
            both.insert(next.clone(), HeaderValue::from_static("c"));
            strip_hop_by_hop(&mut h);
            strip_hop_by_hop(&mut both);
            assert_eq!(h.keys().collect::<Vec<_>>(), [header::HOST], "{name}");
            assert_eq!(
                both.keys().collect::<Vec<_>>(),
                [header::HOST],
                "{name} and {next}"
            );
        }
        let mut end_to_end = HeaderMap::new();
        end_to_end.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut end_to_end);
        assert_eq!(end_to_end.len(), 1, "nothing else is touched");
    }

    #[test]
    fn upstream_rewrite_strips_hop_by_hop_and_adds_forwarding() {
        let r = req(|b| {
            b.header("connection", "keep-alive, x-secret")
                .header("x-secret", "1")
                .header("keep-alive", "timeout=5")
                .header("x-forwarded-for", "10.0.0.1")
                .header("x-forwarded-proto", "https")
        });
        let mut parts = r;
        let fwd = Forwarding::new("192.0.2.7:4000".parse().expect("addr"), false);
        prepare_upstream_request(&mut parts, None, &fwd, None);
        let h = &parts.headers;
        assert!(
            h.get("connection").is_none()
                && h.get("x-secret").is_none()
                && h.get("keep-alive").is_none()
                && h.get("x-forwarded-proto").is_none()
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(
            written(&fwd, h),
            "x-forwarded-proto: http\r\nforwarded: for=192.0.2.7;proto=http\r\n",
            "the chain continued in the map is not written twice"
        );
        // A request without a chain gets ours; one whose chain is unreadable gets ours alone.
        let mut fresh = req(|b| b);
        prepare_upstream_request(&mut fresh, None, &fwd, None);
        assert!(fresh.headers.get("x-forwarded-for").is_none());
        assert_eq!(
            written(&fwd, &fresh.headers),
            "x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\
             forwarded: for=192.0.2.7;proto=http\r\n"
        );
        let mut odd = req(|b| {
            b.header(
                "x-forwarded-for",
                HeaderValue::from_bytes(b"\xff").expect("obs-text"),
            )
        });
        prepare_upstream_request(&mut odd, None, &fwd, None);
        assert_eq!(odd.headers["x-forwarded-for"], "192.0.2.7");
    }

    fn written(fwd: &Forwarding, h: &HeaderMap) -> String {
        let mut out = Vec::new();
        fwd.encode(h, &mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn upgrade_is_detected_and_kept() {
        let r = req(|b| {
            b.header("connection", "Upgrade")
                .header("upgrade", "websocket")
        });
        let proto = upgrade_protocol(&r.headers);
        assert_eq!(
            proto.as_ref().map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        let mut parts = r;
        let fwd = Forwarding::new("[::1]:1".parse().expect("addr"), true);
        prepare_upstream_request(&mut parts, None, &fwd, proto.as_ref());
        assert_eq!(parts.headers["connection"], "upgrade");
        assert_eq!(parts.headers["upgrade"], "websocket");
        assert!(
            written(&fwd, &parts.headers).ends_with("forwarded: for=\"[::1]\";proto=https\r\n")
        );
    }

    #[test]
    fn cookie_stripping_keeps_other_cookies() {
        let sticky = lb_core::StickyCookie::new("SERVERID").expect("valid");
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1; SERVERID=s1"));
        h.append("cookie", HeaderValue::from_static("SERVERID=s1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        strip_cookie(&mut h, &sticky);
        let all: Vec<_> = h
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        assert_eq!(all, ["a=1", "b=2"]);
    }

    #[test]
    fn private_marking() {
        let mut h = HeaderMap::new();
        mark_private(&mut h);
        assert_eq!(h["cache-control"], "private");
        h.insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=60"),
        );
        mark_private(&mut h);
        assert_eq!(h["cache-control"], "private, max-age=60");
    }
}
