//! A raw HTTP/1.1 client for tests: one request per connection, written exactly as given,
//! the answer read until the server closes and parsed strictly (a chunked body is
//! de-chunked; a body cut short is returned as received); and [`next_response`], one answer
//! read off a keep-alive connection.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// A response as read from the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The demo backend's `X-Served-By`, or `""`.
    #[must_use]
    pub fn served_by(&self) -> &str {
        self.header("x-served-by").unwrap_or("")
    }

    /// The body as text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value a `Set-Cookie` of this response gives cookie `name`, if any.
    #[must_use]
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers_named("set-cookie").find_map(|v| {
            let (n, rest) = v.split_once('=')?;
            (n.trim() == name).then(|| rest.split(';').next().unwrap_or("").to_owned())
        })
    }
}

/// Reads the next answer off a keep-alive connection (framed by `Content-Length`), within
/// [`WAIT`]: `Ok(None)` when the connection ended (closed or reset) before any byte of it.
///
/// # Errors
/// The connection ended or broke inside the answer, nothing came within [`WAIT`], or the
/// answer is not an HTTP/1.x response with a `Content-Length`.
pub async fn next_response<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Response>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
            Ok(Ok(0)) if raw.is_empty() => return Ok(None),
            Ok(Err(e)) if raw.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
                return Ok(None);
            }
            Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
        };
        raw.extend_from_slice(&chunk[..n]);
        if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            continue;
        }
        let answer = parse(&raw)?;
        let length: usize = answer
            .header("content-length")
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Content-Length"))?;
        if answer.body.len() >= length {
            return Ok(Some(answer));
        }
    }
}

/// Writes `request` on a fresh connection and reads the answer until the server closes.
///
/// # Errors
/// Connecting or I/O fails, nothing complete arrives within [`WAIT`], or the answer is not
/// an HTTP/1.x response.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut raw = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await {
        Ok(read) => {
            read?;
        }
        Err(_) if !raw.is_empty() => {}
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
    }
    parse(&raw)
}

/// One request (`Connection: close`, `Host: test`) with extra header lines; `POST` and
/// `PUT` get an empty body.
///
/// # Errors
/// As [`exchange`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if matches!(method, "POST" | "PUT") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    exchange(addr, head.as_bytes()).await
}

/// `GET path` on a fresh connection.
///
/// # Errors
/// As [`exchange`].
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    request(addr, "GET", path, &[]).await
}

/// Parses a complete HTTP/1.x response.
///
/// # Errors
/// No end of head, a head that is not UTF-8, a bad status line, or a malformed chunked body.
pub fn parse(raw: &[u8]) -> io::Result<Response> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{why}: {:?}", String::from_utf8_lossy(raw)),
        )
    };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_cookies_and_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nX-Served-By: api-1\r\nSet-Cookie: A=1\r\nset-cookie: SERVERID=api-2; path=/\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        let r = parse(raw).expect("valid");
        assert_eq!(r.status, 200);
        assert_eq!(r.served_by(), "api-1");
        assert_eq!(r.set_cookie("SERVERID").as_deref(), Some("api-2"));
        assert_eq!(r.set_cookie("B"), None);
        assert_eq!(r.text(), "hello world");
    }

    #[test]
    fn refuses_what_is_not_a_response() {
        assert!(parse(b"").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
