//! Test helpers: starting backends, a small HTTP/1.1 client on hyper's client connection, and
//! a timeout so a broken backend fails a test instead of hanging it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderMap};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use veza_demo_backend::{BackendConfig, Kind, RunningBackend};

/// Longest any single step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// An API backend named `name` on a free loopback port.
pub async fn api(name: &str) -> RunningBackend {
    start(BackendConfig::new(name)).await
}

/// A stream backend named `name` on a free loopback port.
pub async fn stream(name: &str) -> RunningBackend {
    start(BackendConfig::new(name).with_kind(Kind::Stream)).await
}

/// A backend with `config` on a free loopback port.
pub async fn start(config: BackendConfig) -> RunningBackend {
    veza_demo_backend::spawn(loopback(), config)
        .await
        .expect("backend starts on 127.0.0.1:0")
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A complete answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
            .to_str()
            .expect("header is ASCII")
    }

    pub fn served_by(&self) -> &str {
        self.header("x-served-by")
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    /// Ends when the server closes the connection.
    pub connection: JoinHandle<Result<(), hyper::Error>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = within("connect", TcpStream::connect(addr))
            .await
            .expect("backend accepts connections");
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .expect("HTTP/1.1 handshake");
        Self {
            sender,
            addr,
            connection: tokio::spawn(connection),
        }
    }

    /// Sends `request` (adding `Host`) and reads the whole answer.
    pub async fn try_send(
        &mut self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Reply, hyper::Error> {
        let host = self
            .addr
            .to_string()
            .parse()
            .expect("address is a header value");
        request.headers_mut().insert(HOST, host);
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (head, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Reply {
        within("request", self.try_send(request))
            .await
            .expect("request succeeds")
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(get_request(path)).await
    }
}

pub fn get_request(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::default())
        .expect("valid request")
}

/// `request` on a fresh connection.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    Client::connect(addr).await.send(request).await
}

/// `GET path` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, get_request(path)).await
}
