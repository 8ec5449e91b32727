//! Writing heads and chunked framing straight into an output buffer.
//!
//! A proxy writes the head it forwards field by field: what it keeps as received, what it
//! drops ([`is_hop_by_hop`], fields the `Connection` field nominates), what it adds
//! (`X-Forwarded-For`...). Nothing here allocates beyond growing the caller's buffer.

use crate::head::{RequestHead, ResponseHead};

/// The line ending.
pub const CRLF: &[u8] = b"\r\n";
/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Fields that describe one connection, never forwarded (RFC 9110 section 7.6.1), plus
/// `Proxy-Connection` (a pre-standard spelling clients still send).
#[must_use]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP.iter().any(|h| crate::eq_lowercase(name, h))
}

/// Whether `name` is nominated by one of the `Connection` field values (and so is
/// hop-by-hop for this message).
pub fn nominated<'a>(connection: impl IntoIterator<Item = &'a [u8]>, name: &[u8]) -> bool {
    connection.into_iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// `{len:x}\r\n`, the line that starts a chunk of `len` bytes, written into `out`.
#[must_use]
pub fn chunk_size_line(len: u64, out: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((len >> shift) & 0xf) as usize];
    }
    out[digits..digits + 2].copy_from_slice(CRLF);
    &out[..digits + 2]
}

/// `METHOD TARGET HTTP/1.1\r\n`.
pub fn request_line(out: &mut Vec<u8>, method: &[u8], target: &[u8]) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// `HTTP/1.1 STATUS REASON\r\n`.
pub fn status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let digits = [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(CRLF);
}

/// `name: value\r\n`.
pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(CRLF);
}

/// Field lines as received (`name: value` lines, the last without its line ending), then
/// the line ending.
pub fn field_lines(out: &mut Vec<u8>, lines: &[u8]) {
    out.extend_from_slice(lines);
    out.extend_from_slice(CRLF);
}

/// The empty line that ends a head.
pub fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(CRLF);
}

/// A parsed request head written back as received: request line in its version, fields as
/// `name: value`.
pub fn request_head(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead) {
    out.extend_from_slice(head.method(buf));
    out.push(b' ');
    out.extend_from_slice(head.target(buf));
    out.extend_from_slice(if head.minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for f in &head.fields {
        field(out, f.name.of(buf), f.value.of(buf));
    }
    end_head(out);
}

/// A parsed response head written back as received, in HTTP/1.1.
pub fn response_head(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead) {
    status_line(out, head.status, head.reason(buf));
    for f in &head.fields {
        field(out, f.name.of(buf), f.value.of(buf));
    }
    end_head(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines_are_lowercase_hex() {
        let mut buf = [0; 18];
        assert_eq!(chunk_size_line(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_size_line(5, &mut buf), b"5\r\n");
        assert_eq!(chunk_size_line(0x1000, &mut buf), b"1000\r\n");
        assert_eq!(chunk_size_line(u64::MAX, &mut buf), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn hop_by_hop_and_nominated_fields() {
        assert!(is_hop_by_hop(b"Connection"));
        assert!(is_hop_by_hop(b"TRANSFER-ENCODING"));
        assert!(!is_hop_by_hop(b"Cookie"));
        assert!(nominated([&b"close, X-Secret"[..]], b"x-secret"));
        assert!(!nominated([&b"close"[..]], b"x-secret"));
    }

    #[test]
    fn lines() {
        let mut out = Vec::new();
        request_line(&mut out, b"GET", b"/a");
        field(&mut out, b"Host", b"veza");
        end_head(&mut out);
        status_line(&mut out, 503, b"Service Unavailable");
        assert_eq!(
            out,
            b"GET /a HTTP/1.1\r\nHost: veza\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n"
        );
    }
}
