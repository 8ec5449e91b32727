//! Property tests of the codec: arbitrary bytes never panic it or make it consume past its
//! input, and generated valid messages round-trip byte-exact through parse and write.
//!
//! CI runs them as part of `cargo test` (proptest's default 256 cases per property, bounded
//! time); `PROPTEST_CASES=100000 cargo test -p h1 --test fuzz` fuzzes longer.

use h1::{Decoder, Framing, Limits, Parse, RequestHead, ResponseHead, encode};
use proptest::prelude::*;

fn small_limits() -> Limits {
    Limits {
        max_head: 2048,
        max_uri: 512,
        max_fields: 16,
    }
}

/// Feeds `input` to a decoder in pieces, checking the step invariants.
fn drive(framing: Framing, input: &[u8], piece: usize) {
    let mut d = Decoder::new(framing);
    let mut rest = input;
    let mut budget = input.len() + 2;
    while !rest.is_empty() && budget > 0 {
        budget -= 1;
        let chunk = &rest[..piece.min(rest.len())];
        let Ok(step) = d.decode(chunk) else { return };
        assert!(step.consumed <= chunk.len(), "consumed past the input");
        assert!(step.data.start <= step.data.end && step.data.end <= step.consumed);
        if step.done || step.consumed == 0 {
            return;
        }
        rest = &rest[step.consumed..];
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut req = RequestHead::default();
        if let Ok(Parse::Complete) = req.parse(&bytes, &small_limits()) {
            prop_assert!(req.len <= bytes.len());
            let _ = req.origin_form(&bytes);
        }
        let mut resp = ResponseHead::default();
        if let Ok(Parse::Complete) = resp.parse(&bytes, false, &small_limits()) {
            prop_assert!(resp.len <= bytes.len());
        }
        for framing in [Framing::Chunked, Framing::Length(100), Framing::UntilClose] {
            drive(framing, &bytes, 7);
            drive(framing, &bytes, 4096);
        }
    }

    #[test]
    fn chunk_like_bytes_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(b"\r\n".to_vec()), Just(b"\n".to_vec()), Just(b";".to_vec()),
                Just(b"0".to_vec()), Just(b"f".to_vec()), Just(b" ".to_vec()),
                Just(b"ffffffffffffffffff".to_vec()), proptest::collection::vec(any::<u8>(), 0..8),
            ],
            0..64,
        ),
        piece in 1usize..16,
    ) {
        let bytes: Vec<u8> = parts.concat();
        drive(Framing::Chunked, &bytes, piece);
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn field_value() -> impl Strategy<Value = String> {
    // Visible characters with inner spaces, no surrounding whitespace.
    "[!-~]([ !-~]{0,20}[!-~])?"
}

#[derive(Debug, Clone)]
struct Message {
    method: String,
    target: String,
    fields: Vec<(String, String)>,
    chunks: Vec<Vec<u8>>,
    chunked: bool,
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
        "/[a-z0-9/._-]{0,40}(\\?[a-z0-9=&]{0,20})?",
        proptest::collection::vec((token(), field_value()), 0..8),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..6),
        any::<bool>(),
    )
        .prop_map(|(method, target, fields, chunks, chunked)| Message {
            method: method.to_owned(),
            target,
            // Framing and Host fields are the generator's to write.
            fields: fields
                .into_iter()
                .filter(|(n, _)| {
                    !["host", "content-length", "transfer-encoding"]
                        .contains(&n.to_ascii_lowercase().as_str())
                })
                .collect(),
            chunks,
            chunked,
        })
}

fn wire(m: &Message) -> (Vec<u8>, Vec<u8>) {
    let mut head = format!("{} {} HTTP/1.1\r\nHost: veza.test\r\n", m.method, m.target);
    for (n, v) in &m.fields {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let body_len: usize = m.chunks.iter().map(Vec::len).sum();
    let mut body = Vec::new();
    if m.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
        for c in &m.chunks {
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
    } else if body_len > 0 {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
        body = m.chunks.concat();
    }
    head.push_str("\r\n");
    (head.into_bytes(), body)
}

proptest! {
    #[test]
    fn valid_messages_round_trip_byte_exact(m in message(), piece in 1usize..32) {
        let (head_bytes, body) = wire(&m);
        let mut buf = head_bytes.clone();
        buf.extend_from_slice(&body);
        buf.extend_from_slice(b"GET /next HTTP/1.1\r\n");

        let mut head = RequestHead::default();
        prop_assert_eq!(head.parse(&buf, &Limits::default()), Ok(Parse::Complete));
        prop_assert_eq!(head.len, head_bytes.len());
        let mut written = Vec::new();
        encode::request_head(&mut written, &buf, &head);
        prop_assert_eq!(&written, &head_bytes);

        // The body: decoded in pieces, then framed again exactly as it came.
        let mut decoder = Decoder::new(head.framing);
        let mut rest = &buf[head.len..];
        let mut data: Vec<Vec<u8>> = Vec::new();
        let mut used = 0;
        while !decoder.is_done() {
            let chunk = &rest[..piece.min(rest.len())];
            let step = decoder.decode(chunk).expect("valid body");
            if !step.data.is_empty() {
                data.push(chunk[step.data.clone()].to_vec());
            }
            used += step.consumed;
            rest = &rest[step.consumed..];
            prop_assert!(step.consumed > 0 || step.done);
        }
        prop_assert_eq!(used, body.len(), "the body ends where the generator ended it");
        prop_assert_eq!(data.concat(), m.chunks.concat());
        if m.chunked {
            let mut again = Vec::new();
            let mut line = [0; 18];
            for c in &m.chunks {
                again.extend_from_slice(encode::chunk_size_line(c.len() as u64, &mut line));
                again.extend_from_slice(c);
                again.extend_from_slice(encode::CRLF);
            }
            again.extend_from_slice(encode::LAST_CHUNK);
            prop_assert_eq!(again, body);
        }
    }
}
