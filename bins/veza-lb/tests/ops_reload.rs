//! Hot reload (SIGHUP) of the real binary under traffic: nothing fails, a bad file is
//! refused, health state survives, and removed servers are closed after `shutdown_grace`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::{HeldBackend, Lb, Sig, backend, get, request};

/// One frontend on a free port and pool `api` with `servers` (`(name, addr)`); `extra` goes
/// into the pool section.
fn config(grace: &str, servers: &[(&str, SocketAddr)], extra: &str) -> String {
    let servers: Vec<String> = servers
        .iter()
        .map(|(name, addr)| format!("  {{ name = \"{name}\", addr = \"{addr}\" }},"))
        .collect();
    format!(
        "[global]\nshutdown_grace = \"{grace}\"\n\n\
         [[frontend]]\nname = \"veza\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"api\"\n\n\
         [pool.api]\n{extra}\nservers = [\n{}\n]\n",
        servers.join("\n")
    )
}

const HEALTH: &str = "health = { path = \"/health\", interval = \"100ms\", timeout = \"100ms\", fall = 1, rise = 1 }";

/// Requests served by `name` in `responses`.
fn served_by(responses: &[String], name: &str) -> usize {
    responses.iter().filter(|s| *s == name).count()
}

/// Sends `n` requests one after the other and returns who served each (all must be 200).
async fn serve_n(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut by = Vec::new();
    for i in 0..n {
        let resp = get(addr, &format!("/n/{i}")).await.expect("request");
        assert_eq!(resp.status, 200, "{resp:?}");
        by.push(resp.header("x-served-by").unwrap_or_default().to_owned());
    }
    by
}

/// Traffic for the whole test: fresh connections in one loop, slow requests (in flight
/// across reloads) in another. Bounded: each loop stops after `MAX` requests at most.
struct Traffic {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    served_by_s3: Arc<AtomicUsize>,
    loops: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Traffic {
    const MAX: usize = 20_000;

    fn start(addr: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let served_by_s3 = Arc::new(AtomicUsize::new(0));
        let loops = ["/fast", "/slow?ms=40"]
            .into_iter()
            .map(|path| {
                let (stop, done, s3) = (stop.clone(), done.clone(), served_by_s3.clone());
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    for _ in 0..Self::MAX {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match get(addr, path).await {
                            Ok(r) if r.status == 200 => {
                                if r.header("x-served-by") == Some("s3") {
                                    s3.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(r) => failures.push(format!("{path}: status {}", r.status)),
                            Err(e) => failures.push(format!("{path}: {e}")),
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    failures
                })
            })
            .collect();
        Traffic {
            stop,
            done,
            served_by_s3,
            loops,
        }
    }

    /// Waits until `n` more requests have completed.
    async fn progress(&self, n: usize) {
        let target = self.done.load(Ordering::Relaxed) + n;
        for _ in 0..1500 {
            if self.done.load(Ordering::Relaxed) >= target {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("traffic stalled");
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for l in self.loops {
            failures.extend(l.await.expect("traffic loop"));
        }
        (self.done.load(Ordering::Relaxed), failures)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_traffic_fail_no_request() {
    let (s1, s2, s3) = (
        backend("s1").await,
        backend("s2").await,
        backend("s3").await,
    );
    let two = config("30s", &[("s1", s1.addr()), ("s2", s2.addr())], HEALTH);
    let three = config(
        "30s",
        &[("s1", s1.addr()), ("s2", s2.addr()), ("s3", s3.addr())],
        HEALTH,
    );
    let mut lb = Lb::start(&two);
    let addr = lb.frontend_addr("veza").await;
    let traffic = Traffic::start(addr);
    traffic.progress(5).await;
    for i in 0..10 {
        lb.write_config(if i % 2 == 0 { &three } else { &two });
        lb.signal(Sig::SIGHUP);
        lb.wait_for_nth("reload complete", i + 1).await;
        // Round robin over equal weights: a few requests reach every server, s3 included.
        traffic.progress(6).await;
    }
    let reached_s3 = traffic.served_by_s3.load(Ordering::Relaxed);
    let (done, failures) = traffic.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {done} failed: {failures:#?}",
        failures.len()
    );
    assert!(reached_s3 > 0, "s3 never served a request");
    // The listener kept its socket across every reload (same address, never refused).
    assert_eq!(lb.lines_with("listening on").len(), 1, "{:#?}", lb.logs());
    // The last configuration has no s3.
    let by = serve_n(addr, 6).await;
    assert_eq!(served_by(&by, "s3"), 0, "{by:?}");
    lb.signal(Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_and_down_state_survives_a_reload() {
    let (s1, s2) = (backend("s1").await, backend("s2").await);
    let servers = [("s1", s1.addr()), ("s2", s2.addr())];
    let mut lb = Lb::start(&config("30s", &servers, HEALTH));
    let addr = lb.frontend_addr("veza").await;

    s2.set_health(503);
    lb.wait_for("Server api/s2 is DOWN").await;

    // An invalid file: refused with its errors, the running configuration keeps serving.
    let broken = config("30s", &servers, &HEALTH.replace("fall = 1", "fall = 0"));
    lb.write_config(&broken);
    lb.signal(Sig::SIGHUP);
    lb.wait_for("reload refused, configuration unchanged").await;
    let located = lb.wait_for("veza-lb.toml:").await;
    assert!(located.contains("`fall` must be at least 1"), "{located}");
    let by = serve_n(addr, 6).await;
    assert_eq!(served_by(&by, "s1"), 6, "s2 is DOWN: {by:?}");

    // A valid one that changes the pool but keeps both servers: s2 stays DOWN.
    lb.write_config(&config("30s", &servers, &format!("{HEALTH}\nretries = 2")));
    lb.signal(Sig::SIGHUP);
    lb.wait_for("reload complete").await;
    let by = serve_n(addr, 6).await;
    assert_eq!(served_by(&by, "s1"), 6, "s2 must still be DOWN: {by:?}");
    // Several check rounds later, s2 was never seen UP and marked DOWN again.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        lb.lines_with("Server api/s2 is DOWN").len(),
        1,
        "{:#?}",
        lb.logs()
    );
    assert!(
        lb.lines_with("Server api/s2 is UP").is_empty(),
        "{:#?}",
        lb.logs()
    );

    // And it comes back when its health does.
    s2.set_health(200);
    lb.wait_for("Server api/s2 is UP").await;
    lb.signal(Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_server_drains_then_is_closed_after_shutdown_grace() {
    let mut held = HeldBackend::start().await;
    let s1 = backend("s1").await;
    let mut lb = Lb::start(&config("300ms", &[("held", held.addr())], ""));
    let addr = lb.frontend_addr("veza").await;

    // POST is not retried elsewhere: the client sees what happens to its server.
    let in_flight = tokio::spawn(request(addr, "POST", "/hold", &[]));
    assert_eq!(held.received().await, "/hold");

    lb.write_config(&config("300ms", &[("s1", s1.addr())], ""));
    lb.signal(Sig::SIGHUP);
    lb.wait_for("reload complete").await;
    // New requests go to the new server at once.
    let by = serve_n(addr, 3).await;
    assert_eq!(served_by(&by, "s1"), 3, "{by:?}");

    // The held request outlives its server's removal only by `shutdown_grace`.
    let resp = in_flight.await.expect("task").expect("an answer");
    assert_eq!(resp.status, 502, "{resp:?}");
    lb.wait_for("Server api/held was removed: closed its 1 remaining connections")
        .await;
    let log = lb.wait_access("POST /hold HTTP/1.1").await;
    assert_eq!(
        (log.server.as_str(), log.termination.as_str()),
        ("held", "DH")
    );
    lb.signal(Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_bind_moves_the_listener() {
    let s1 = backend("s1").await;
    let (old_port, new_port) = (support::free_port(), support::free_port());
    let on = |port: u16| {
        config("30s", &[("s1", s1.addr())], "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    };
    let mut lb = Lb::start(&on(old_port));
    let old = lb.frontend_addr("veza").await;
    assert_eq!(old.port(), old_port);
    lb.write_config(&on(new_port));
    lb.signal(Sig::SIGHUP);
    lb.wait_for("reload complete").await;
    let new = SocketAddr::from(([127, 0, 0, 1], new_port));
    assert_eq!(get(new, "/").await.expect("new address").status, 200);
    // The old socket closes right after the swap (polled: closing is asynchronous).
    let mut refused = false;
    for _ in 0..500 {
        match tokio::net::TcpStream::connect(old).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    assert!(refused, "the old address still accepts connections");
    lb.signal(Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}

/// Twenty reloads under the client mix (64 keep-alive connections, new-connection clients,
/// HTTP/2 over TLS), alternating two configurations: no request fails, no connection is told
/// to close, and every WebSocket stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_reloads_under_the_client_mix_lose_nothing_and_keep_every_websocket() {
    const RELOADS: usize = 20;
    let edge = support::UnderLoad::new("threads = 2").await;
    let changed = edge
        .config
        .replace("[defaults]\n", "[defaults]\nretries = 1\n");
    assert_ne!(changed, edge.config);
    let mut lb = Lb::start(&edge.config);
    lb.frontend_addr("veza").await;
    let traffic = edge.traffic();
    traffic.flows(100).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut websockets = Vec::new();
    for _ in 0..4 {
        websockets.push(support::websocket(edge.web, stop.clone()).await);
    }
    for i in 0..RELOADS {
        lb.write_config(if i % 2 == 0 { &changed } else { &edge.config });
        lb.signal(Sig::SIGHUP);
        lb.wait_for_nth("reload complete", i + 1).await;
        traffic.flows(200).await;
    }
    let report = traffic.stop().await;
    assert_eq!(report.total_failed(), 0, "{report}");
    assert_eq!(
        report.reconnects, 0,
        "a reload closes no client connection: {report}"
    );
    stop.store(true, Ordering::Relaxed);
    for ws in websockets {
        let closed = ws.await.expect("websocket task");
        assert_eq!(closed, None, "a WebSocket closed during the reloads");
    }
    println!("{RELOADS} reloads: {report}");
    lb.signal(Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}
