//! A virtual user's HTTP side: one keep-alive HTTP/1.1 connection (hyper's client
//! connection, driven on its own task), reopened when it breaks, and a cookie jar, so the
//! load balancer's sticky cookie is sent back as a browser would.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_LENGTH, COOKIE, HOST, HeaderValue, SET_COOKIE};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::record::ErrorKind;

/// Where the load goes: `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The `Host` header (the URL's authority).
    pub authority: String,
}

impl Target {
    /// Parses `http://host:port` (a path, if any, is ignored: flows have their own) and
    /// resolves the host.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(format!(
                    "{url}: https targets are not supported; point the load at the plain HTTP listener"
                ));
            }
            _ => return Err(format!("{url} is not a URL like http://127.0.0.1:8080")),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
            .map_err(|e| format!("{url}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: {with_port} resolves to nothing"))?;
        Ok(Target {
            addr,
            authority: authority.to_owned(),
        })
    }

    /// The WebSocket URL for `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.authority)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// Cookies set by the server, sent back on every request (names unique, last value wins).
#[derive(Debug, Default, Clone)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Stores the cookie of one `Set-Cookie` value (attributes ignored: one origin, one path).
    pub fn store(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return;
        }
        match self.cookies.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.cookies.push((name.to_owned(), value.to_owned())),
        }
    }

    /// The `Cookie` header value, if any cookie is held.
    pub fn header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// A cookie's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One virtual user's HTTP client.
pub struct Client {
    target: Target,
    timeout: Duration,
    connection: Option<SendRequest<Full<Bytes>>>,
    /// The user's cookies.
    pub jar: CookieJar,
}

impl Client {
    /// A client without a connection yet.
    pub fn new(target: Target, timeout: Duration) -> Client {
        Client {
            target,
            timeout,
            connection: None,
            jar: CookieJar::default(),
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request and reads the whole response, within the timeout (connecting
    /// included). Any failure drops the connection: the next request opens a new one.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<Response, ErrorKind> {
        let outcome = tokio::time::timeout(self.timeout, self.exchange(method, path, body)).await;
        let result = outcome.unwrap_or(Err(ErrorKind::Timeout));
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<Response, ErrorKind> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| ErrorKind::Protocol)?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.target.authority);
        if !body.is_empty() {
            request = request.header(CONTENT_LENGTH, body.len());
        }
        if let Some(cookies) = self.jar.header() {
            request = request.header(COOKIE, cookies);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| ErrorKind::Protocol)?;
        let sender = self.connection().await?;
        let response = sender.send_request(request).await.map_err(classify)?;
        for value in response.headers().get_all(SET_COOKIE) {
            if let Ok(text) = value.to_str() {
                self.jar.store(text);
            }
        }
        let keep = !response
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(classify)?
            .to_bytes();
        if !keep {
            self.connection = None;
        }
        Ok(Response { status, body })
    }

    async fn connection(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ErrorKind> {
        let reusable = match &mut self.connection {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            let stream = TcpStream::connect(self.target.addr)
                .await
                .map_err(|_| ErrorKind::Connect)?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ErrorKind::Connect)?;
            tokio::spawn(connection);
            self.connection = Some(sender);
        }
        self.connection.as_mut().ok_or(ErrorKind::Connect)
    }

    /// The `Cookie` header for a WebSocket handshake.
    pub fn cookie_header(&self) -> Option<HeaderValue> {
        self.jar
            .header()
            .and_then(|c| HeaderValue::from_str(&c).ok())
    }
}

fn classify(error: hyper::Error) -> ErrorKind {
    if error.is_parse() || error.is_parse_status() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_targets_only() {
        let t = Target::parse("http://127.0.0.1:8080/ignored").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.ws_url("/ws"), "ws://127.0.0.1:8080/ws");
        assert_eq!(Target::parse("http://127.0.0.1").unwrap().addr.port(), 80);
        assert!(
            Target::parse("https://127.0.0.1:443")
                .unwrap_err()
                .contains("https")
        );
        assert!(Target::parse("127.0.0.1:80").is_err());
        assert!(Target::parse("http://").is_err());
    }

    #[test]
    fn cookie_jar_keeps_the_last_value_of_each_name() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        jar.store("SERVERID=backend-api-1; path=/; HttpOnly");
        jar.store("lang=fr");
        jar.store("SERVERID=backend-api-2");
        jar.store("garbage");
        jar.store("=nameless");
        assert_eq!(jar.get("SERVERID"), Some("backend-api-2"));
        assert_eq!(
            jar.header().as_deref(),
            Some("SERVERID=backend-api-2; lang=fr")
        );
    }
}
