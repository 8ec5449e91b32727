//! The connection limit against a real veza-lb under a real open-files limit: with
//! `ulimit -n 256` (set by `prlimit`, from util-linux) and 400 clients at once, veza-lb serves
//! at most `maxconn` of them at a time (derived from the limit: (256 - 64) / 2 = 96), leaves the
//! rest in the kernel's backlog, logs the episode once, serves every client in the end, and
//! takes new ones when they are gone.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{ApiConfig, Lb, backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENTS: usize = 400;

async fn info(stats: &str, key: &str) -> u64 {
    let text = testkit::runtime_api::command(stats.parse().expect("addr"), "show info")
        .await
        .expect("show info");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// One client: a request that takes 300 ms at the backend, `Connection: close`; the status.
async fn client(addr: std::net::SocketAddr) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /slow?ms=300 HTTP/1.1\r\nHost: veza\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer in 60 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or(format!("not an HTTP answer: {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxconn_pauses_listeners_and_every_client_is_served() {
    if !Path::new("/usr/bin/prlimit").exists() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    // This process holds 400 client sockets and the backend's side of veza-lb's connections.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");

    let backend = backend("api-1").await;
    let config = ApiConfig::new(&[backend.addr()])
        .global("stats_socket = \"127.0.0.1:0\"\nthreads = 1")
        .render();
    let mut lb = Lb::start_under(&["prlimit", "--nofile=256:256", "--"], &config, &[]);
    let addr = lb.frontend_addr("veza").await;
    let stats = lb.runtime_api_addr().await;
    assert_eq!(info(&stats, "Ulimit-n").await, 256);
    let maxconn = info(&stats, "Maxconn").await;
    assert_eq!(maxconn, 96, "(256 - 64 reserved) / 2");

    let clients: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(client(addr))).collect();
    let mut busiest = 0;
    while !clients.iter().all(|c| c.is_finished()) {
        busiest = busiest.max(info(&stats, "CurrConns").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = Vec::new();
    for c in clients {
        statuses.push(c.await.expect("client task"));
    }
    let failed: Vec<_> = statuses.iter().filter(|s| *s != &Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} clients failed: {failed:?}",
        failed.len()
    );
    assert!(
        busiest <= maxconn,
        "{busiest} connections at once, over maxconn"
    );
    assert!(
        busiest >= maxconn - 8,
        "the limit was reached ({busiest} of {maxconn}): the test overloaded nothing"
    );

    let warnings = lb.lines_with("the maxconn limit");
    assert_eq!(warnings.len(), 1, "one line per episode: {warnings:#?}");
    assert!(
        lb.lines_with("accept failed").is_empty(),
        "{:#?}",
        lb.logs()
    );

    // Recovered: the clients are gone, a new one is served at once.
    assert_eq!(client(addr).await, Ok(200));
    assert!(info(&stats, "CurrConns").await <= 1);
    drop(backend);
}
