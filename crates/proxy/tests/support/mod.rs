//! Setup for the proxy's data-plane tests: a configuration over demo backends, an in-process
//! proxy on loopback port 0, and polling of server status. The HTTP client and the backends
//! come from the workspace's test kit.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use proxy::config::Config;
use proxy::{AdminCommand, Proxy, ProxyHandle};
pub use testkit::backend;
use testkit::http::{self, Response};
use veza_demo_backend::RunningBackend;

/// The TOML server list of `list`: `{ name = "...", addr = "..." }, ...`.
fn servers(list: &[&RunningBackend]) -> String {
    list.iter()
        .map(|b| format!("{{ name = \"{}\", addr = \"{}\" }}", b.name(), b.addr()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A config with an `api` round-robin pool (sticky cookie, fast checks, shutdown-sessions)
/// over `api`, and, when `stream` is not empty, a `stream` jump-hash pool routed at
/// `/stream/`. `extra_api` is appended to the api pool's table.
pub fn config(api: &[&RunningBackend], stream: &[&RunningBackend], extra_api: &str) -> Config {
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

/// One frontend `veza` in front of a round-robin pool `api` over `api` (checks every 100 ms,
/// fall 2, rise 2), with `global` in `[global]` and `pool_extra` in the pool's table.
pub fn api_config(api: &[&RunningBackend], global: &str, pool_extra: &str) -> Config {
    let text = format!(
        r#"
[global]
shutdown_grace = "1s"
{global}

[defaults]
timeout_connect = "1s"
timeout_server = "5s"

[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "api"

[pool.api]
balance = "roundrobin"
health = {{ path = "/health", interval = "100ms", timeout = "100ms", fall = 2, rise = 2 }}
servers = [{}]
{pool_extra}
"#,
        servers(api)
    );
    Config::parse(&text, "test.toml")
        .unwrap_or_else(|e| panic!("test config is valid:\n{e}\n{text}"))
}

/// A config with one frontend `veza` in front of one round-robin pool `pool` holding one
/// server at `addr`; `pool_extra` is appended to the pool's table.
pub fn one_server_config(pool: &str, addr: SocketAddr, pool_extra: &str) -> Config {
    let text = format!(
        r#"
[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "{pool}"
[pool.{pool}]
balance = "roundrobin"
{pool_extra}
servers = [{{ name = "{pool}-1", addr = "{addr}" }}]
"#
    );
    Config::parse(&text, "test.toml")
        .unwrap_or_else(|e| panic!("test config is valid:\n{e}\n{text}"))
}

/// A server that reads a request, writes `answer` as it is, then keeps the connection open
/// for `hold` before closing it.
pub async fn scripted_server(answer: &'static [u8], hold: Duration) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0_u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    addr
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

/// Sends raw bytes on a fresh connection and reads the response until the server closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    http::exchange(addr, request)
        .await
        .unwrap_or_else(|e| panic!("no valid answer from the proxy: {e}"))
}

/// `GET path` with an optional Cookie header, `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Response {
    let cookie: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    http::request(addr, "GET", path, &cookie)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}
