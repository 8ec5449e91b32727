//! The HTTP/1.1 and WebSocket client the checks use: one request per connection, raw and
//! explicit, so what is sent and received is exactly what a test reads.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{Error, Result, fail};

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names as received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Which demo backend answered (`X-Served-By`), or `?`.
    pub fn served_by(&self) -> &str {
        self.header("x-served-by").unwrap_or("?")
    }
}

/// `GET path` on `addr` (`host:port`), with extra header lines.
pub async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
    request(addr, "GET", path, headers).await
}

/// `POST path` on `addr` with an empty body.
pub async fn post(addr: &str, path: &str) -> Result<Response> {
    request(addr, "POST", path, &[("Content-Length", "0")]).await
}

async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(Error::io(format!("cannot connect to {addr}")))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes())
            .await
            .map_err(Error::io(format!("cannot send {method} {path} to {addr}")))?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.map_err(Error::io(format!(
            "cannot read the answer to {method} {path}"
        )))?;
        parse_response(&raw)
    };
    match timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => fail(format!(
            "{method} {path} on {addr}: no answer within {REQUEST_TIMEOUT:?}"
        )),
    }
}

/// Parses a whole HTTP/1.1 response read until the connection closed.
fn parse_response(raw: &[u8]) -> Result<Response> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return fail(format!(
            "the connection closed before a complete response header ({} bytes received)",
            raw.len()
        ));
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::Message(format!("not an HTTP status line: {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| Error::Message(format!("bad Content-Length {length:?}")))?;
        if rest.len() < length {
            return fail(format!("body cut short: {} of {length} bytes", rest.len()));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return fail("chunked body cut short");
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| Error::Message(format!("bad chunk size {size_text:?}")))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return fail("chunked body cut short");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// An open WebSocket through the proxy.
pub type WebSocket = WebSocketStream<TcpStream>;

/// A WebSocket opened on a demo backend's `/ws` (directly or through a proxy).
pub struct Greeted {
    /// The socket, still open.
    pub socket: WebSocket,
    /// The first message: the backend's name.
    pub greeting: String,
    /// `Set-Cookie` values of the 101 answer.
    pub set_cookies: Vec<String>,
}

/// Opens `ws://addr/ws`, optionally with a `Cookie` header, and reads the greeting.
pub async fn websocket(addr: &str, cookie: Option<&str>) -> Result<Greeted> {
    let open = async {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .map_err(|e| Error::Message(format!("bad WebSocket URL for {addr}: {e}")))?;
        if let Some(cookie) = cookie {
            let value = HeaderValue::from_str(cookie)
                .map_err(|e| Error::Message(format!("bad cookie {cookie:?}: {e}")))?;
            request.headers_mut().insert("cookie", value);
        }
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(Error::io(format!("cannot connect to {addr}")))?;
        let (mut socket, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .map_err(|e| Error::Message(format!("WebSocket handshake with {addr} failed: {e}")))?;
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let greeting = match socket.next().await {
            Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
            Some(Ok(other)) => return fail(format!("WebSocket greeting was {other:?}")),
            Some(Err(e)) => return fail(format!("WebSocket closed before the greeting: {e}")),
            None => return fail("WebSocket closed before the greeting"),
        };
        Ok(Greeted {
            socket,
            greeting,
            set_cookies,
        })
    };
    match timeout(REQUEST_TIMEOUT, open).await {
        Ok(outcome) => outcome,
        Err(_) => fail(format!(
            "WebSocket to {addr}: no greeting within {REQUEST_TIMEOUT:?}"
        )),
    }
}

/// Waits up to `limit` for the peer to end `socket` (close frame, EOF or reset); other
/// messages are skipped. Returns whether it ended.
pub async fn ended_within(socket: &mut WebSocket, limit: Duration) -> bool {
    let ended = async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    };
    timeout(limit, ended).await.is_ok()
}

/// The value of cookie `name` in a `Set-Cookie` header value (`SERVERID=x; Path=/`).
pub fn set_cookie_value<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    let pair = set_cookie.split(';').next()?.trim();
    let (n, v) = pair.split_once('=')?;
    (n == name).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_responses() {
        let raw = b"HTTP/1.1 200 OK\r\nX-Served-By: api-1\r\nContent-Length: 3\r\n\r\nok\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.served_by(), "api-1");
        assert_eq!(response.body, b"ok\n");

        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                    2\r\nab\r\n3;x=1\r\ncde\r\n0\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"abcde");

        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn reads_set_cookie_values() {
        let header = "SERVERID=backend-api-2; Path=/; HttpOnly";
        assert_eq!(set_cookie_value(header, "SERVERID"), Some("backend-api-2"));
        assert_eq!(set_cookie_value(header, "OTHER"), None);
    }
}
