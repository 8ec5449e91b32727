//! Per-server `maxconn` and its queue against a real veza-lb and a backend that counts how many
//! requests it works on at once: the backend never sees more than `maxconn`, the excess waits
//! in veza-lb's queue (`qcur`/`qmax` in `show stat`, `Tw` in the log) and is served in turn,
//! and a request that waits past `timeout_queue` gets 503 with HAProxy's `sQ`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proxy::stats::StatTable;
use support::{ApiConfig, Lb, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const QCUR: usize = 2;
const QMAX: usize = 3;
const SLIM: usize = 6;
const QTIME: usize = 58;

/// A backend that answers every request after `delay`, recording the most requests it was
/// working on at once.
struct Counting {
    addr: SocketAddr,
    busiest: Arc<AtomicUsize>,
    /// Requests answered.
    served: Arc<AtomicUsize>,
}

async fn counting_backend(delay: Duration) -> Counting {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (now, busiest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let served = Arc::new(AtomicUsize::new(0));
    let (max, answered) = (busiest.clone(), served.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (now, max, answered) = (now.clone(), max.clone(), answered.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
                    buf.drain(..end);
                    let busy = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(busy, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    answered.fetch_add(1, Ordering::SeqCst);
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Counting {
        addr,
        busiest,
        served,
    }
}

fn config(backend: SocketAddr, timeout_queue: &str) -> String {
    ApiConfig::new(&[backend])
        .global(r#"stats_socket = "127.0.0.1:0""#)
        .defaults(&format!("timeout_queue = \"{timeout_queue}\""))
        .server("maxconn = 2")
        .render()
}

async fn stat(stats: &str) -> StatTable {
    let text = testkit::runtime_api::command(stats.parse().expect("addr"), "show stat")
        .await
        .expect("show stat");
    StatTable::parse(&text).expect("a table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_through_maxconn_two_all_succeed_two_at_a_time() {
    let backend = counting_backend(Duration::from_millis(40)).await;
    let mut lb = Lb::start(&config(backend.addr, "20s"));
    let addr = lb.frontend_addr("veza").await;
    let stats = lb.runtime_api_addr().await;

    let clients: Vec<_> = (0..50).map(|_| tokio::spawn(get(addr, "/"))).collect();
    for c in clients {
        let response = c.await.expect("task").expect("response");
        assert_eq!(response.status, 200);
    }
    assert_eq!(
        backend.busiest.load(Ordering::SeqCst),
        2,
        "the backend worked on at most maxconn requests at once"
    );
    let table = stat(&stats).await;
    let server = table.row("api", "api-1").expect("server row");
    let pool = table.row("api", "BACKEND").expect("backend row");
    assert_eq!(server[SLIM], "2");
    assert_eq!(pool[SLIM], "2", "the pool's capacity");
    let qmax: u32 = pool[QMAX].parse().expect("qmax");
    assert!(
        qmax >= 48,
        "48 waited in the pool's queue at once (50 minus the 2 served), saw {qmax}"
    );
    assert_eq!(pool[QCUR], "0", "nobody waits any more");
    assert!(pool[QTIME].parse::<u64>().expect("qtime") > 0);

    // The log shows the wait: Tw, and the queue left behind.
    lb.wait_for_nth("\"GET / HTTP/1.1\"", 50).await;
    let lines = lb.access_lines();
    assert_eq!(lines.len(), 50);
    assert!(
        lines
            .iter()
            .all(|l| l.status == 200 && l.termination == "--")
    );
    let waited = lines.iter().filter(|l| l.timers[1] > 0).count();
    assert!(waited >= 40, "only {waited} lines show a queue wait");
    assert!(
        lines.iter().any(|l| l.queues[1] > 0),
        "lines show the requests left waiting in the pool's queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_past_timeout_queue_is_503_sq_and_nothing_else_fails() {
    let backend = counting_backend(Duration::from_millis(600)).await;
    let mut lb = Lb::start(&config(backend.addr, "150ms"));
    let addr = lb.frontend_addr("veza").await;

    let clients: Vec<_> = (0..10).map(|_| tokio::spawn(get(addr, "/"))).collect();
    let mut statuses = Vec::new();
    for c in clients {
        statuses.push(c.await.expect("task").expect("response").status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503, 503, 503, 503, 503, 503, 503]);
    lb.wait_for_nth("\"GET / HTTP/1.1\"", 10).await;
    let mut terminations = Vec::new();
    for line in lb.access_lines() {
        terminations.push((line.status, line.termination.clone()));
        if line.status == 503 {
            assert!(
                line.timers[1] >= 140,
                "waited its timeout_queue: {:?}",
                line.timers
            );
            assert_eq!(line.server, "<NOSRV>");
        }
    }
    terminations.sort();
    assert_eq!(terminations[..2], [(200, "--".into()), (200, "--".into())]);
    assert!(
        terminations[2..]
            .iter()
            .all(|t| *t == (503, "sQ".to_owned())),
        "{terminations:?}"
    );
    assert_eq!(backend.busiest.load(Ordering::SeqCst), 2);
}

/// `rate_limit` on a frontend: N + 10 requests from one source within the period, exactly 10
/// refused with 429 and `Retry-After`; another source is not affected; `show table` lists the
/// sources; the frontend's `dreq` counts the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refuses_exactly_the_excess_of_one_source() {
    let backend = counting_backend(Duration::from_millis(0)).await;
    let config = ApiConfig::new(&[backend.addr])
        .global(r#"stats_socket = "127.0.0.1:0""#)
        .frontend(r#"rate_limit = { key = "src", requests = 20, per = "1h" }"#)
        .render();
    let mut lb = Lb::start(&config);
    let addr = lb.frontend_addr("veza").await;
    let stats = lb.runtime_api_addr().await;

    let mut statuses = Vec::new();
    for _ in 0..30 {
        let response = get(addr, "/").await.expect("response");
        if response.status == 429 {
            let retry_after: u64 = response
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .expect("seconds");
            assert!((1..=3600).contains(&retry_after), "{retry_after}");
        }
        statuses.push(response.status);
    }
    assert_eq!(statuses[..20], [200; 20]);
    assert_eq!(statuses[20..], [429; 10], "exactly the 10 over the limit");

    // Another source (127.0.0.2 is loopback too) has its own count.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut stream = socket.connect(addr).await.expect("connect from 127.0.0.2");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: veza\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let tables = testkit::runtime_api::command(stats.parse().expect("addr"), "show table veza")
        .await
        .expect("show table");
    assert!(
        tables.starts_with("# table: veza, type: ip, size:100000, used:2"),
        "{tables}"
    );
    assert!(
        tables.contains("key=127.0.0.1 http_req_rate(3600000)=30\n"),
        "{tables}"
    );
    assert!(
        tables.contains("key=127.0.0.2 http_req_rate(3600000)=1\n"),
        "{tables}"
    );
    let table = stat(&stats).await;
    assert_eq!(
        table.row("veza", "FRONTEND").expect("frontend")[10],
        "10",
        "dreq"
    );
    lb.wait_for_nth(" 429 ", 10).await;
    let denied: Vec<_> = lb
        .access_lines()
        .into_iter()
        .filter(|l| l.status == 429)
        .collect();
    assert_eq!(denied.len(), 10);
    assert!(
        denied
            .iter()
            .all(|l| l.termination == "PR" && l.server == "<NOSRV>")
    );
}

/// A request pinned by its sticky cookie to a full server waits in that server's queue (the
/// other server, free, is not used), and is served there once the slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_request_waits_for_its_own_server() {
    let busy = counting_backend(Duration::from_millis(600)).await;
    let idle = counting_backend(Duration::ZERO).await;
    let config = ApiConfig::new(&[busy.addr, idle.addr])
        .global(r#"stats_socket = "127.0.0.1:0""#)
        .defaults("timeout_queue = \"5s\"\nmaxconn = 1")
        .pool(r#"cookie = { name = "SERVERID", insert = true }"#)
        .render();
    let mut lb = Lb::start(&config);
    let addr = lb.frontend_addr("veza").await;
    let stats = lb.runtime_api_addr().await;
    let pinned = || support::request(addr, "GET", "/", &[("Cookie", "SERVERID=api-1")]);
    let first = tokio::spawn(pinned());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = tokio::spawn(pinned());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let table = stat(&stats).await;
    assert_eq!(
        table.row("api", "api-1").expect("api-1")[QCUR],
        "1",
        "waiting for api-1"
    );
    assert_eq!(
        table.row("api", "BACKEND").expect("pool")[QCUR],
        "0",
        "not in the pool's queue"
    );
    assert_eq!(first.await.expect("task").expect("first").status, 200);
    assert_eq!(second.await.expect("task").expect("second").status, 200);
    assert_eq!(busy.served.load(Ordering::SeqCst), 2, "both on api-1");
    assert_eq!(
        idle.served.load(Ordering::SeqCst),
        0,
        "api-2 was free but not theirs"
    );
    lb.wait_for_nth("\"GET / HTTP/1.1\"", 2).await;
    let waited = lb
        .access_lines()
        .iter()
        .map(|l| l.timers[1])
        .max()
        .unwrap_or(0);
    assert!(
        waited >= 250,
        "the second waited for the first: Tw {waited}"
    );
}
