//! The real binary's life: graceful and immediate stops, systemd notifications, and the
//! access log of a few kinds of requests.

mod support;

use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use support::{HeldBackend, Lb, Sig, backend, get, parse_response, temp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One frontend on port 0 in front of pool `api` with a single server at `addr`.
fn single(grace: &str, addr: SocketAddr) -> String {
    format!(
        "[global]\nshutdown_grace = \"{grace}\"\n\n\
         [[frontend]]\nname = \"veza\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"api\"\n\n\
         [pool.api]\nservers = [{{ name = \"only\", addr = \"{addr}\" }}]\n"
    )
}

/// Reads one response on a keep-alive connection (its body has a `Content-Length`).
async fn read_one(stream: &mut TcpStream) -> support::HttpResponse {
    let mut raw = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a full response");
        raw.extend_from_slice(&chunk[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        if raw.len() >= end + 4 + len {
            return parse_response(&raw).expect("response");
        }
    }
}

/// A start that fails (here: the stats socket's directory cannot be made) exits 1 with one
/// readable error, and logs no "listening" line first: a frontend is announced only once
/// every listener and socket of the start is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_announces_no_listener() {
    let held = HeldBackend::start().await;
    let dir = support::temp_dir();
    std::fs::write(dir.path().join("blocked"), "a file").expect("write");
    let socket = dir.path().join("blocked/veza-lb/admin.sock");
    let config = single("1s", held.addr()).replace(
        "[global]\n",
        &format!("[global]\nstats_socket = \"unix:{}\"\n", socket.display()),
    );
    let mut lb = Lb::start(&config);
    let status = lb.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{:#?}", lb.logs());
    let logs = lb.logs().join("\n");
    assert!(logs.contains("cannot create stats socket"), "{logs}");
    assert!(logs.contains("RuntimeDirectory=veza-lb"), "{logs}");
    assert!(!logs.contains("listening on"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0() {
    let mut held = HeldBackend::start().await;
    let mut lb = Lb::start(&single("10s", held.addr()));
    let addr = lb.frontend_addr("veza").await;

    // An idle keep-alive connection, which a graceful stop keeps for the drain window (5s by
    // default: a request on it would be answered with `Connection: close`), then closes.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(held.received().await, "/first");
    assert_eq!(read_one(&mut idle).await.status, 200);

    let slow = tokio::spawn(get(addr, "/hold"));
    assert_eq!(held.received().await, "/hold");
    lb.signal(Sig::SIGTERM);
    lb.wait_for("stopping: no longer accepting").await;

    // New connections are refused once the listener is closed.
    let mut refused = false;
    for _ in 0..500 {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(refused, "the listener still accepts during a graceful stop");
    // The idle keep-alive connection is closed at the end of the drain window, without a
    // word, before the grace (10s) is over.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(support::WAIT, idle.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "idle connection not closed: {closed:?}"
    );

    // The request in flight is answered, then the process exits 0.
    held.release();
    let resp = slow
        .await
        .expect("task")
        .expect("answer to the request in flight");
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "held-backend /hold\n")
    );
    let status = lb.wait_exit().await;
    assert!(status.success(), "{status:?}\n{}", lb.logs().join("\n"));
    lb.wait_for("stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_signal_stops_at_once() {
    let mut held = HeldBackend::start().await;
    // A grace far longer than the test's waits: only the second signal can end it in time.
    let mut lb = Lb::start(&single("1h", held.addr()));
    let addr = lb.frontend_addr("veza").await;
    let slow = tokio::spawn(get(addr, "/hold"));
    assert_eq!(held.received().await, "/hold");
    lb.signal(Sig::SIGTERM);
    lb.wait_for("stopping: no longer accepting").await;
    lb.signal(Sig::SIGINT);
    lb.wait_for("second stop signal: stopping now").await;
    assert!(lb.wait_exit().await.success());
    // The held request was cut, not answered.
    assert!(slow.await.expect("task").is_err());
}

/// Collects notifications from a datagram socket on a thread.
struct NotifySocket {
    rx: std::sync::mpsc::Receiver<String>,
}

impl NotifySocket {
    fn bind(addr: &std::os::unix::net::SocketAddr) -> NotifySocket {
        let socket = UnixDatagram::bind_addr(addr).expect("bind notify socket");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        NotifySocket { rx }
    }

    /// Waits for a datagram with a line starting with `key`, returns the datagram.
    fn expect(&self, key: &str) -> String {
        loop {
            match self.rx.recv_timeout(support::WAIT) {
                Ok(msg) if msg.lines().any(|l| l.starts_with(key)) => return msg,
                Ok(_) => {}
                Err(e) => panic!("no {key} notification: {e}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_gets_ready_reloading_watchdog_and_stopping() {
    let backend = backend("b").await;
    let dir = temp_dir();
    let path = dir.path().join("notify.sock");
    let socket =
        NotifySocket::bind(&std::os::unix::net::SocketAddr::from_pathname(&path).expect("path"));
    let env = [
        ("NOTIFY_SOCKET", path.to_str().expect("utf8")),
        ("WATCHDOG_USEC", "200000"),
    ];
    let mut lb = Lb::start_with_env(&single("5s", backend.addr()), &env);

    let ready = socket.expect("READY=1");
    assert!(
        ready.contains("STATUS=Serving 1 frontend, 1 pool, 1 server"),
        "{ready}"
    );
    // Listeners are bound by the time READY=1 is sent.
    let addr = lb.frontend_addr("veza").await;
    assert_eq!(get(addr, "/").await.expect("request").status, 200);
    socket.expect("WATCHDOG=1");

    lb.signal(Sig::SIGHUP);
    let reloading = socket.expect("RELOADING=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    socket.expect("READY=1");
    lb.wait_for("reload complete").await;
    socket.expect("WATCHDOG=1");

    lb.signal(Sig::SIGTERM);
    socket.expect("STOPPING=1");
    assert!(lb.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abstract_notify_sockets_work_too() {
    let backend = backend("b").await;
    let name = format!("veza-lb-test-notify-{}", std::process::id());
    let socket = NotifySocket::bind(
        &std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name"),
    );
    let notify = format!("@{name}");
    let mut lb = Lb::start_with_env(
        &single("5s", backend.addr()),
        &[("NOTIFY_SOCKET", notify.as_str())],
    );
    socket.expect("READY=1");
    lb.signal(Sig::SIGTERM);
    socket.expect("STOPPING=1");
    assert!(lb.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_carry_haproxy_fields() {
    let good = backend("good-1").await;
    let sick = backend("sick-1").await;
    sick.set_health(503);
    let dead = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (good_addr, sick_addr) = (good.addr(), sick.addr());
    let config = format!(
        r#"[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "api"
[[frontend.route]]
path_prefix = "/empty/"
pool = "empty"
[[frontend.route]]
path_prefix = "/flaky/"
pool = "flaky"

[pool.api]
cookie = {{ name = "SERVERID", insert = true }}
servers = [{{ name = "good-1", addr = "{good_addr}" }}]

[pool.empty]
health = {{ path = "/health", interval = "100ms", fall = 1, rise = 1 }}
servers = [{{ name = "sick-1", addr = "{sick_addr}" }}]

[pool.flaky]
passive_error_limit = 0
servers = [
  {{ name = "dead-1", addr = "{dead}" }},
  {{ name = "good-1", addr = "{good_addr}" }},
]
"#
    );
    let mut lb = Lb::start(&config);
    let addr = lb.frontend_addr("veza").await;

    // A 200 through a cookie pool: a fresh cookie is inserted (`NI`).
    let resp = get(addr, "/hello").await.expect("request");
    assert_eq!(resp.status, 200);
    let ok = lb.wait_access("GET /hello HTTP/1.1").await;
    assert_eq!(ok.client.ip().to_string(), "127.0.0.1");
    assert_eq!(
        (ok.frontend.as_str(), ok.pool.as_str(), ok.server.as_str()),
        ("veza", "api", "good-1")
    );
    assert_eq!((ok.status, ok.bytes), (200, resp.body.len() as u64));
    assert_eq!((ok.termination.as_str(), ok.cookie.as_str()), ("--", "NI"));
    assert_eq!(ok.retries, 0);
    let [tq, tw, tc, tr, tt] = ok.timers;
    assert!(
        tq >= 0 && tw >= 0 && tc >= 0 && tr >= tc && tt >= tr,
        "{ok:?}"
    );
    // This request itself counts on the process, frontend, pool and server.
    assert!(ok.conns.iter().all(|&c| c >= 1), "{ok:?}");

    // A 503 with no server to pick: `<NOSRV>`, `SC`, no connect or response time.
    lb.wait_for("Server empty/sick-1 is DOWN").await;
    let resp = get(addr, "/empty/x").await.expect("request");
    assert_eq!(resp.status, 503);
    let none = lb.wait_access("GET /empty/x HTTP/1.1").await;
    assert_eq!(
        (none.pool.as_str(), none.server.as_str()),
        ("empty", "<NOSRV>")
    );
    assert_eq!((none.status, none.bytes), (503, resp.body.len() as u64));
    assert_eq!(none.termination, "SC");
    assert_eq!((none.timers[2], none.timers[3]), (-1, -1), "{none:?}");
    assert!(none.timers[4] >= 0);
    assert_eq!((none.conns[3], none.retries), (0, 0), "{none:?}");

    // Round robin sends one of two requests to the dead server first: it is retried on the
    // live one, and the line says so, with a normal end.
    for i in 0..2 {
        assert_eq!(
            get(addr, &format!("/flaky/{i}"))
                .await
                .expect("request")
                .status,
            200
        );
    }
    let mut flaky = Vec::new();
    for i in 0..2 {
        flaky.push(lb.wait_access(&format!("GET /flaky/{i} HTTP/1.1")).await);
    }
    assert!(
        flaky
            .iter()
            .all(|l| l.status == 200 && l.server == "good-1"),
        "{flaky:#?}"
    );
    assert!(flaky.iter().all(|l| l.termination == "--"), "{flaky:#?}");
    // (Whether the second one also starts on the dead server depends on how round robin
    // counts the retry, so only "at least one" is certain.)
    assert!(flaky.iter().any(|l| l.retries == 1), "{flaky:#?}");
    assert!(flaky.iter().all(|l| l.retries <= 1), "{flaky:#?}");

    // A request the frontend refuses (here a target over 8 KiB): `veza/<NOSRV>`, `PR`, and
    // the request line HAProxy writes for a head it could not accept.
    let long = format!("/{}", "u".repeat(9_000));
    let resp = get(addr, &long).await.expect("request");
    assert_eq!(resp.status, 414);
    let refused = lb.wait_access("<BADREQ>").await;
    assert_eq!(
        (refused.pool.as_str(), refused.server.as_str()),
        ("veza", "<NOSRV>")
    );
    assert_eq!((refused.status, refused.termination.as_str()), (414, "PR"));
    assert_eq!(refused.bytes, resp.body.len() as u64);

    lb.signal(Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_closes_tunnels_after_shutdown_grace() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let backend = backend("ws-1").await;
    let mut lb = Lb::start(&single("300ms", backend.addr()));
    let addr = lb.frontend_addr("veza").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket through veza-lb");
    let hello = ws.next().await.expect("first message").expect("message");
    assert_eq!(hello, Message::text("ws-1"));

    lb.signal(Sig::SIGTERM);
    lb.wait_for("stopping: no longer accepting").await;
    // Within the grace the tunnel still carries messages...
    ws.send(Message::text("still there?")).await.expect("send");
    let echo = ws.next().await.expect("echo").expect("message");
    assert_eq!(echo, Message::text("still there?"));
    // ...then it is closed and the process exits 0.
    let end = tokio::time::timeout(support::WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the tunnel outlived shutdown_grace");
    assert!(lb.wait_exit().await.success());
    let line = lb.wait_access("GET /ws HTTP/1.1").await;
    assert_eq!(
        (line.status, line.termination.as_str()),
        (101, "KD"),
        "{line:?}"
    );
}
