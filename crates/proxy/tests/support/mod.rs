//! Shared setup for the proxy's integration tests: demo backends, an in-process proxy on
//! loopback port 0, a raw HTTP/1.1 client, and polling of server status.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use proxy::config::Config;
use proxy::{AdminCommand, Proxy, ProxyHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veza_demo_backend::{BackendConfig, Kind, RunningBackend};

/// Starts a demo backend on a free loopback port.
pub async fn backend(name: &str, kind: Kind) -> RunningBackend {
    veza_demo_backend::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        BackendConfig::new(name).with_kind(kind),
    )
    .await
    .expect("demo backend starts")
}

/// A config with an `api` round-robin pool (sticky cookie, fast checks, shutdown-sessions)
/// over `api`, and, when `stream` is not empty, a `stream` jump-hash pool routed at
/// `/stream/`. `extra_api` is appended to the api pool's table.
pub fn config(api: &[&RunningBackend], stream: &[&RunningBackend], extra_api: &str) -> Config {
    let servers = |list: &[&RunningBackend]| {
        list.iter()
            .map(|b| format!("{{ name = \"{}\", addr = \"{}\" }}", b.name(), b.addr()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (route, stream_pool) = if stream.is_empty() {
        (String::new(), String::new())
    } else {
        (
            "[[frontend.route]]\npath_prefix = \"/stream/\"\npool = \"stream\"\n".to_owned(),
            format!(
                r#"
[pool.stream]
balance = "jump-hash"
hash_key = {{ source = "path", depth = 2 }}
health = {{ path = "/health", interval = "100ms", timeout = "100ms", fall = 3, rise = 2 }}
servers = [{}]
"#,
                servers(stream)
            ),
        )
    };
    let text = format!(
        r#"
[global]
shutdown_grace = "1s"

[defaults]
timeout_connect = "1s"
timeout_server = "5s"

[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "api"
{route}
[pool.api]
balance = "roundrobin"
cookie = {{ name = "SERVERID", insert = true, indirect = true, nocache = true }}
health = {{ path = "/api/v1/health", interval = "100ms", timeout = "100ms", fall = 3, rise = 2 }}
on_marked_down = "shutdown-sessions"
servers = [{}]
{extra_api}
{stream_pool}"#,
        servers(api)
    );
    Config::parse(&text, "test.toml")
        .unwrap_or_else(|e| panic!("test config is valid:\n{e}\n{text}"))
}

/// A running in-process proxy and its address.
pub struct Lb {
    pub proxy: Proxy,
    pub addr: SocketAddr,
}

impl Lb {
    pub async fn start(config: Config) -> Lb {
        let proxy = Proxy::start(config).await.expect("proxy starts");
        let addr = proxy.frontend_addrs("veza")[0];
        Lb { proxy, addr }
    }

    pub fn handle(&self) -> ProxyHandle {
        self.proxy.handle()
    }

    /// The HAProxy status string of `pool/server`.
    pub async fn status(&self, pool: &str, server: &str) -> String {
        let (_, snap) = self.handle().stats().await.expect("proxy running");
        snap.pools
            .iter()
            .find(|p| p.name == pool)
            .and_then(|p| p.servers.iter().find(|s| s.name == server))
            .map(|s| s.status.clone())
            .expect("server exists")
    }

    /// Polls until `pool/server`'s status satisfies `want`, recording every distinct status
    /// seen on the way. Panics after `timeout`.
    pub async fn wait_status(
        &self,
        pool: &str,
        server: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let status = self.status(pool, server).await;
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if want(&status) {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pool}/{server} never reached the wanted status; saw {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn admin(&self, command: AdminCommand) {
        self.handle()
            .admin(command)
            .await
            .expect("admin command accepted");
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn served_by(&self) -> &str {
        self.header("x-served-by").unwrap_or("")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The SERVERID value the response sets, if any.
    pub fn sticky(&self) -> Option<String> {
        let v = self.header("set-cookie")?;
        let v = v.strip_prefix("SERVERID=")?;
        Some(v.split(';').next().unwrap_or("").to_owned())
    }
}

/// Sends raw bytes on a fresh connection and reads the response until the server closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    s.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    parse(&buf)
}

/// `GET path` with optional Cookie header, `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: lb.test\r\n{cookie}Connection: close\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

fn parse(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf);
    let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head_len = head.len() + 4;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let raw_body = buf.get(head_len..).unwrap_or(&[]).to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(&raw_body)
    } else {
        raw_body
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = b.get(start + size + 2..).unwrap_or(&[]);
    }
    out
}
