use super::*;

fn request(raw: &[u8]) -> Result<(Parse, RequestHead), HeadError> {
    let mut head = RequestHead::default();
    let parsed = head.parse(raw, &Limits::default())?;
    Ok((parsed, head))
}

fn status_of(raw: &[u8]) -> u16 {
    match request(raw) {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

#[test]
fn parses_a_request_in_place() {
    let raw = b"GET /stream/42/seg-1.ts?x=1 HTTP/1.1\r\nHost: veza\r\nCookie: SERVERID=a\r\nConnection: keep-alive\r\n\r\n";
    let (parsed, head) = request(raw).expect("valid");
    assert_eq!(parsed, Parse::Complete);
    assert_eq!(head.method(raw), b"GET");
    assert_eq!(head.target(raw), b"/stream/42/seg-1.ts?x=1");
    assert_eq!(head.origin_form(raw), b"/stream/42/seg-1.ts?x=1");
    assert_eq!(head.minor, 1);
    assert_eq!(head.len, raw.len());
    assert_eq!(head.fields.len(), 3);
    assert_eq!(
        head.values(raw, b"COOKIE").collect::<Vec<_>>(),
        [b"SERVERID=a"]
    );
    assert_eq!(head.framing, Framing::Empty);
    assert!(head.connection.keep_alive);
    assert_eq!(head.host.map(|h| h.of(raw)), Some(&b"veza"[..]));
}

#[test]
fn partial_heads_ask_for_more_until_the_limit() {
    let raw = b"GET / HTTP/1.1\r\nHost: veza\r\n";
    assert_eq!(request(raw).map(|r| r.0), Ok(Parse::Partial));
    let mut long = b"GET / HTTP/1.1\r\nHost: veza\r\nX-Big: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 20 * 1024));
    assert_eq!(request(&long).map(|r| r.0), Err(HeadError::TooLarge));
    long.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        status_of(&long),
        431,
        "one 20 KB line is over the 16 KiB head limit"
    );
}

#[test]
fn persistence_follows_the_version() {
    let h10 = b"GET / HTTP/1.0\r\n\r\n";
    assert!(!request(h10).unwrap().1.connection.keep_alive);
    let h10_ka = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    assert!(request(h10_ka).unwrap().1.connection.keep_alive);
    let h11_close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n";
    assert!(!request(h11_close).unwrap().1.connection.keep_alive);
    let ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert!(request(ws).unwrap().1.connection.upgrade);
    let no_upgrade = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n";
    assert!(!request(no_upgrade).unwrap().1.connection.upgrade);
}

#[test]
fn connection_options_beyond_persistence_and_upgrade_are_flagged() {
    let plain = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close, Upgrade\r\n\r\n";
    assert!(!request(plain).unwrap().1.connection.options);
    let named = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: X-Hop\r\n\r\n";
    assert!(request(named).unwrap().1.connection.options);
    let none = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(!request(none).unwrap().1.connection.options);
}

/// The framing table of docs/http1.md, as tests: (what, request, veza-lb's status).
const FRAMING_CASES: &[(&str, &[u8], u16)] = &[
    ("Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 200),
    ("Content-Length list, equal", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 200),
    ("Content-Length with a sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
    ("Content-Length with a space inside", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400),
    ("Content-Length overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
    ("Content-Length, two different", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    ("chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 200),
    ("chunked twice, one field", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    ("chunked twice, two fields", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("last coding not chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("unknown length (gzip only)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("Content-Length and Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("Transfer-Encoding in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("absolute form, same authority", b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 200),
    ("absolute form, other authority", b"GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("absolute form with userinfo", b"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
    ("CR inside a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    ("space before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
];

#[test]
fn framing_table() {
    for (what, raw, want) in FRAMING_CASES {
        assert_eq!(status_of(raw), *want, "{what}");
    }
}

#[test]
fn uri_over_the_limit_is_414() {
    let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    let limits = Limits {
        max_head: 64 * 1024,
        ..Limits::default()
    };
    let mut head = RequestHead::default();
    assert_eq!(
        head.parse(raw.as_bytes(), &limits),
        Err(HeadError::UriTooLong)
    );
    assert_eq!(HeadError::UriTooLong.status(), 414);
}

#[test]
fn absolute_form_is_served_in_origin_form() {
    let raw = b"GET HTTP://Veza.example:8080?q=1 HTTP/1.1\r\nHost: veza.example:8080\r\n\r\n";
    let (_, head) = request(raw).expect("valid");
    assert_eq!(head.origin_form(raw), b"?q=1");
    let raw = b"GET http://veza.example HTTP/1.1\r\nHost: veza.example\r\n\r\n";
    assert_eq!(request(raw).unwrap().1.origin_form(raw), b"/");
}

#[test]
fn too_many_fields_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..120 {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_eq!(status_of(&raw), 431);
}

#[test]
fn the_field_list_keeps_its_allocation() {
    let mut head = RequestHead::default();
    let a = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n";
    head.parse(a, &Limits::default()).unwrap();
    let capacity = head.fields.capacity();
    let b = b"GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
    head.parse(b, &Limits::default()).unwrap();
    assert_eq!(head.fields.len(), 1);
    assert_eq!(head.fields.capacity(), capacity);
}

fn response(raw: &[u8], head_request: bool) -> Result<ResponseHead, HeadError> {
    let mut head = ResponseHead::default();
    assert_eq!(
        head.parse(raw, head_request, &Limits::default())?,
        Parse::Complete
    );
    Ok(head)
}

#[test]
fn response_framing_and_persistence() {
    let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false).unwrap();
    assert_eq!(
        (r.status, r.framing, r.connection.keep_alive),
        (200, Framing::Length(3), true)
    );
    let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).unwrap();
    assert_eq!(r.framing, Framing::Empty, "HEAD");
    let r = response(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
    assert_eq!(
        (r.framing, r.connection.keep_alive),
        (Framing::UntilClose, false)
    );
    let r = response(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap();
    assert_eq!(r.framing, Framing::Empty);
    let r = response(b"HTTP/1.1 100 Continue\r\n\r\n", false).unwrap();
    assert!(r.is_interim());
    let r = response(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        false,
    )
    .unwrap();
    assert!(!r.is_interim() && r.connection.upgrade);
    let r = response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!((r.framing, r.drop_content_length), (Framing::Chunked, true));
    assert_eq!(
        r.reason(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        b"OK"
    );
    assert!(matches!(
        response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        ),
        Err(HeadError::Framing(_))
    ));
    assert!(response(b"HTTP/1.1 abc OK\r\n\r\n", false).is_err());
}

#[test]
fn authority_form_is_only_for_connect() {
    assert_eq!(
        status_of(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        200
    );
    assert_eq!(
        status_of(b"GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        400
    );
    assert_eq!(
        status_of(b"CONNECT example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        400
    );
}

#[test]
fn framing_and_persistence_fields_are_read_in_any_case_and_only_by_their_whole_name() {
    // Mixed case, and names of the same lengths that are not the known ones.
    let raw = b"POST / HTTP/1.1\r\nhOsT: a\r\nHoss: b\r\nTRANSFER-encoding: chunked\r\n\
                Transfer-Encodinx: gzip\r\nconnection: keep-alive, Upgrade\r\n\
                Connectiom: close\r\nUPGRADE: websocket\r\nContent-Lengtx: 9\r\n\r\n";
    let (_, head) = request(raw).expect("parsed");
    assert_eq!(head.host.map(|h| h.of(raw)), Some(&b"a"[..]));
    assert_eq!(head.framing, Framing::Chunked);
    assert!(
        head.connection.keep_alive,
        "`Connectiom: close` is not Connection"
    );
    assert!(head.connection.upgrade);
    // Without the real fields, their look-alikes count for nothing.
    let decoys = b"GET / HTTP/1.1\r\nHost: a\r\nUpgradx: websocket\r\nConnection: upgrade\r\n\
                   Content-Lengtx: 5\r\nTransfer-Encodinx: chunked\r\n\r\n";
    let (_, head) = request(decoys).expect("parsed");
    assert_eq!(head.framing, Framing::Empty);
    assert!(!head.connection.upgrade);
    let one_host = b"GET / HTTP/1.1\r\nHost: a\r\nHosT: b\r\n\r\n";
    assert_eq!(
        status_of(one_host),
        400,
        "two Host fields in different case"
    );
    let response_fields = b"HTTP/1.1 200 OK\r\ncontent-LENGTH: 3\r\nCONNECTION: close\r\n\r\n";
    let head = response(response_fields, false).expect("parsed");
    assert_eq!(head.framing, Framing::Length(3));
    assert!(!head.connection.keep_alive);
}
