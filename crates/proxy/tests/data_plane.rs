//! The data plane against real demo backends on loopback: balancing, stickiness, hashing,
//! health transitions, WebSocket pinning and shutdown-sessions, failover under load, and bad
//! input. Modelled on HAProxy's reg-tests: assertions on what the client sees, on what the
//! server received, and on the server states the proxy reports.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lb_core::AdminState;
use proxy::AdminCommand;
use support::{Lb, backend, config, get, one_server_config, raw, scripted_server};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use veza_demo_backend::Kind;

const DOWN_WAIT: Duration = Duration::from_secs(5);

fn is_down(s: &str) -> bool {
    s == "DOWN"
}

#[tokio::test]
async fn round_robin_alternates_and_sticky_cookie_pins_and_is_stripped() {
    let (a, b) = (
        backend("api-1", Kind::Api).await,
        backend("api-2", Kind::Api).await,
    );
    let lb = Lb::start(config(&[&a, &b], &[], "")).await;

    let first = get(lb.addr, "/x", None).await;
    let second = get(lb.addr, "/x", None).await;
    assert_eq!(first.status, 200);
    assert_ne!(
        first.served_by(),
        second.served_by(),
        "round-robin alternates"
    );
    assert_eq!(
        first.set_cookie("SERVERID").as_deref(),
        Some(first.served_by()),
        "the cookie names the server"
    );
    assert_eq!(
        first.header("cache-control"),
        Some("private"),
        "nocache marks it private"
    );

    let pinned = first.served_by().to_owned();
    let cookie = format!("lang=fr; SERVERID={pinned}; theme=dark");
    for _ in 0..6 {
        let r = get(lb.addr, "/y", Some(&cookie)).await;
        assert_eq!(r.served_by(), pinned);
        assert_eq!(
            r.set_cookie("SERVERID"),
            None,
            "a valid cookie is not re-sent (indirect)"
        );
        assert!(
            r.text().contains("cookies=lang=fr; theme=dark\n"),
            "indirect strips SERVERID before the server: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn cookie_naming_down_maint_or_unknown_server_is_rebalanced_and_reset() {
    let (a, b) = (
        backend("api-1", Kind::Api).await,
        backend("api-2", Kind::Api).await,
    );
    let lb = Lb::start(config(&[&a, &b], &[], "")).await;

    let r = get(lb.addr, "/", Some("SERVERID=nonexistent")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.set_cookie("SERVERID").as_deref(),
        Some(r.served_by()),
        "unknown server: re-set"
    );
    let r = get(lb.addr, "/", Some("SERVERID=\"bad value\"")).await;
    assert_eq!(
        r.set_cookie("SERVERID").as_deref(),
        Some(r.served_by()),
        "garbage cookie: re-set"
    );

    a.set_health(503);
    lb.wait_status("api", "api-1", DOWN_WAIT, is_down).await;
    for _ in 0..3 {
        let r = get(lb.addr, "/", Some("SERVERID=api-1")).await;
        assert_eq!(
            (r.served_by(), r.set_cookie("SERVERID").as_deref()),
            ("api-2", Some("api-2"))
        );
    }

    a.set_health(200);
    lb.wait_status("api", "api-1", DOWN_WAIT, |s| s == "UP")
        .await;
    lb.admin(AdminCommand::SetState {
        pool: "api".into(),
        server: "api-1".into(),
        state: AdminState::Maint,
    })
    .await;
    assert_eq!(lb.status("api", "api-1").await, "MAINT");
    let r = get(lb.addr, "/", Some("SERVERID=api-1")).await;
    assert_eq!(
        (r.served_by(), r.set_cookie("SERVERID").as_deref()),
        ("api-2", Some("api-2"))
    );
}

#[tokio::test]
async fn drain_keeps_sticky_clients_and_takes_no_new_ones() {
    let (a, b) = (
        backend("api-1", Kind::Api).await,
        backend("api-2", Kind::Api).await,
    );
    let lb = Lb::start(config(&[&a, &b], &[], "")).await;
    lb.admin(AdminCommand::SetState {
        pool: "api".into(),
        server: "api-1".into(),
        state: AdminState::Drain,
    })
    .await;
    assert!(lb.status("api", "api-1").await.starts_with("DRAIN"));
    for _ in 0..6 {
        assert_eq!(get(lb.addr, "/", None).await.served_by(), "api-2");
        assert_eq!(
            get(lb.addr, "/", Some("SERVERID=api-1")).await.served_by(),
            "api-1"
        );
    }
}

#[tokio::test]
async fn jump_hash_keeps_tracks_together_and_moves_only_a_dead_servers_tracks() {
    let api = backend("api-1", Kind::Api).await;
    let s1 = backend("stream-1", Kind::Stream).await;
    let s2 = backend("stream-2", Kind::Stream).await;
    let lb = Lb::start(config(&[&api], &[&s1, &s2], "")).await;

    let mut owner = HashMap::new();
    for track in 0..12 {
        let mut servers = HashSet::new();
        for seg in 0..5 {
            let r = get(lb.addr, &format!("/stream/t{track}/seg-{seg}.ts"), None).await;
            assert_eq!(r.status, 200);
            servers.insert(r.served_by().to_owned());
        }
        assert_eq!(servers.len(), 1, "track {track} split over {servers:?}");
        owner.insert(track, servers.into_iter().next().unwrap_or_default());
    }
    assert!(owner.values().any(|s| s == "stream-1") && owner.values().any(|s| s == "stream-2"));

    s1.set_health(503);
    lb.wait_status("stream", "stream-1", DOWN_WAIT, is_down)
        .await;
    for (track, before) in &owner {
        let now = get(lb.addr, &format!("/stream/t{track}/seg-9.ts"), None).await;
        if before == "stream-2" {
            assert_eq!(
                now.served_by(),
                "stream-2",
                "track {track} of a live server moved"
            );
        } else {
            assert_eq!(
                now.served_by(),
                "stream-2",
                "track {track} must leave the dead server"
            );
        }
    }
}

#[tokio::test]
async fn a_header_hash_key_is_read_from_the_fields_passed_as_received() {
    // `X-Track` is none of the fields the proxy rewrites: it reaches routing from the
    // request's passed fields, whatever its spelling.
    let s1 = backend("stream-1", Kind::Stream).await;
    let s2 = backend("stream-2", Kind::Stream).await;
    let text = format!(
        r#"
[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "stream"
[pool.stream]
balance = "jump-hash"
hash_key = {{ source = "header", name = "X-Track" }}
servers = [{{ name = "stream-1", addr = "{}" }}, {{ name = "stream-2", addr = "{}" }}]
"#,
        s1.addr(),
        s2.addr()
    );
    let config = proxy::config::Config::parse(&text, "test.toml").expect("valid config");
    let lb = Lb::start(config).await;
    let mut owners = HashSet::new();
    for track in 0..12 {
        let mut servers = HashSet::new();
        for (i, name) in ["X-Track", "x-track", "X-TRACK"].into_iter().enumerate() {
            let value = format!("t{track}");
            let path = format!("/stream/seg-{i}.ts");
            let r = testkit::http::request(lb.addr, "GET", &path, &[(name, &value)])
                .await
                .expect("answered");
            assert_eq!(r.status, 200);
            servers.insert(r.served_by().to_owned());
        }
        assert_eq!(servers.len(), 1, "track {track} split over {servers:?}");
        owners.extend(servers);
    }
    assert_eq!(owners.len(), 2, "the key spreads tracks: {owners:?}");
}

#[tokio::test]
async fn health_goes_through_haproxy_statuses_and_slow_start_ramps() {
    let (a, b) = (
        backend("api-1", Kind::Api).await,
        backend("api-2", Kind::Api).await,
    );
    let lb = Lb::start(config(&[&a, &b], &[], "slowstart = \"10s\"")).await;
    lb.wait_status("api", "api-1", DOWN_WAIT, |s| s == "UP")
        .await;

    a.set_health(503);
    let down = lb.wait_status("api", "api-1", DOWN_WAIT, is_down).await;
    assert_eq!(down, ["UP", "UP 2/3", "UP 1/3", "DOWN"]);

    a.set_health(200);
    let up = lb
        .wait_status("api", "api-1", DOWN_WAIT, |s| s == "UP")
        .await;
    assert_eq!(up, ["DOWN", "DOWN 1/2", "UP"]);

    let (_, snap) = lb.handle().stats().await.expect("running");
    let server = &snap.pools[0].servers[0];
    assert_eq!(server.chkdown, 1);
    let throttle = server.throttle.expect("ramping after coming back");
    assert!((1..100).contains(&throttle), "throttle {throttle}%");
}

#[tokio::test]
async fn websocket_is_pinned_then_closed_on_mark_down_and_reconnects_elsewhere() {
    let (a, b) = (
        backend("api-1", Kind::Api).await,
        backend("api-2", Kind::Api).await,
    );
    let lb = Lb::start(config(&[&a, &b], &[], "")).await;

    let connect = |cookie: Option<String>| {
        let mut req = format!("ws://{}/ws", lb.addr)
            .into_client_request()
            .expect("valid ws url");
        if let Some(c) = cookie {
            req.headers_mut()
                .insert("cookie", c.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(req)
    };
    let (mut ws, resp) = connect(Some("SERVERID=api-1".into()))
        .await
        .expect("ws handshake");
    assert_eq!(resp.status(), 101);
    let hello = ws.next().await.expect("greeting").expect("frame");
    assert_eq!(hello.into_text().expect("text").as_str(), "api-1");

    // The backend keeps running and never closes the socket itself: only the proxy can.
    a.set_health(503);
    lb.wait_status("api", "api-1", DOWN_WAIT, is_down).await;
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "shutdown-sessions must close the tunnel");

    let (mut ws, resp) = connect(Some("SERVERID=api-1".into()))
        .await
        .expect("reconnect");
    let set = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        set.starts_with("SERVERID=api-2"),
        "new cookie on the 101: {set:?}"
    );
    let hello = ws.next().await.expect("greeting").expect("frame");
    assert_eq!(hello.into_text().expect("text").as_str(), "api-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_loses_no_request() {
    let (a, b) = (
        backend("api-1", Kind::Api).await,
        backend("api-2", Kind::Api).await,
    );
    let lb = Arc::new(Lb::start(config(&[&a, &b], &[], "")).await);
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (lb, failed, done) = (lb.clone(), failed.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..150 {
                let r = get(lb.addr, "/api/v1/orders", None).await;
                if r.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while done.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill().await;
    for c in clients {
        c.await.expect("client task");
    }
    assert_eq!(done.load(Ordering::Relaxed), 600);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed across the kill"
    );
    lb.wait_status("api", "api-1", DOWN_WAIT, is_down).await;
    drop(b);
}

#[tokio::test]
async fn bad_input_gets_4xx_and_the_proxy_keeps_serving() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "")).await;
    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(9_000));
    let one_line_20k = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage request line", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "bad version",
            b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        ("oversized header block", huge_header.into_bytes(), 431),
        ("long uri", long_uri.into_bytes(), 414),
        (
            "differing Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd"
                .to_vec(),
            400,
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec(),
            400,
        ),
        ("missing Host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("one 20 KB header line", one_line_20k.into_bytes(), 431),
        (
            "chunked twice in one field",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "chunked twice in two fields",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "Content-Length with a sign",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd".to_vec(),
            400,
        ),
        (
            "absolute form naming another authority than Host",
            b"GET http://other.example/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "invalid chunk size",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "CONNECT",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(),
            405,
        ),
    ];
    for (what, request, want) in cases {
        let r = raw(lb.addr, &request).await;
        assert_eq!(r.status, want, "{what}");
    }
    // Content-Length with Transfer-Encoding: refused (RFC 9112 section 6.1 allows it; the
    // alternative, dropping the length, still leaves two parsers' views to reconcile), and
    // what follows on the connection is never read as a request.
    let smuggle = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = raw(lb.addr, smuggle).await;
    assert_eq!(r.status, 400);
    assert!(
        !r.text().contains("/smuggled"),
        "a second request must not be read"
    );
    assert_eq!(r.header("connection"), Some("close"));
    // A NUL in a chunk extension: the codec refuses it (hyper let it through).
    let nul_ext = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\0\r\nhello\r\n0\r\n\r\n";
    assert_eq!(raw(lb.addr, nul_ext).await.status, 400);

    let hostile_cookie = format!("SERVERID={}; é=;;;=;SERVERID, ==\\", "\"".repeat(3000));
    let r = get(lb.addr, "/", Some(&hostile_cookie)).await;
    assert_eq!(r.status, 200, "garbage cookies are ignored, not fatal");
    assert_eq!(get(lb.addr, "/", None).await.status, 200, "still serving");
}

#[tokio::test]
async fn no_usable_server_is_503_and_server_timeout_is_504() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "timeout_server = \"300ms\"")).await;
    let r = get(lb.addr, "/slow?ms=2000", None).await;
    assert_eq!(r.status, 504);
    a.set_health(503);
    lb.wait_status("api", "api-1", DOWN_WAIT, is_down).await;
    let r = get(lb.addr, "/", None).await;
    assert_eq!(r.status, 503);
    assert!(r.text().contains("No server is available"));
}

#[tokio::test]
async fn a_server_stalling_mid_body_is_cut_after_timeout_server() {
    // A server that sends its head and 5 of the 100 bytes it announced, then goes silent.
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello";
    let addr = scripted_server(answer, Duration::from_secs(30)).await;
    let config = one_server_config("stall", addr, "timeout_server = \"300ms\"");
    let lb = Lb::start(config).await;
    let started = tokio::time::Instant::now();
    let r = get(lb.addr, "/", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the proxy must not wait forever"
    );
    assert_eq!(r.status, 200, "the head was already sent");
    assert_eq!(r.body, b"hello", "the body is cut where the server stalled");
}

#[tokio::test]
async fn maint_cuts_requests_waiting_on_the_server_at_once() {
    // One server that answers nothing, one that sends 5 of 100 bytes; `timeout_server` is
    // long, so only shutdown-sessions can end the waits within the test's bound.
    let silent = scripted_server(b"", Duration::from_secs(30)).await;
    let stalling = scripted_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello",
        Duration::from_secs(30),
    )
    .await;
    for (addr, want_status, want_body) in [(silent, 503, None), (stalling, 200, Some("hello"))] {
        let config = one_server_config("stall", addr, "timeout_server = \"30s\"");
        let lb = Lb::start(config).await;
        let waiting = tokio::spawn(get(lb.addr, "/", None));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the server has not finished answering"
        );
        let started = tokio::time::Instant::now();
        lb.admin(AdminCommand::SetState {
            pool: "stall".into(),
            server: "stall-1".into(),
            state: AdminState::Maint,
        })
        .await;
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("MAINT ends the wait, long before timeout_server")
            .expect("request task");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(r.status, want_status, "{}", r.text());
        if let Some(body) = want_body {
            assert_eq!(
                r.body,
                body.as_bytes(),
                "the body is cut where the kill came"
            );
        }
    }
}

#[tokio::test]
async fn a_client_stalling_mid_upload_gets_408() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "timeout_client = \"300ms\"")).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(lb.addr)
        .await
        .expect("connect");
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("answered within the timeout")
        .expect("read");
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(get(lb.addr, "/", None).await.status, 200, "still serving");
}

#[tokio::test]
async fn a_stalled_request_head_gets_408_and_an_idle_keep_alive_closes_silently() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "timeout_client = \"300ms\"")).await;
    let read_all = |mut s: tokio::net::TcpStream| async move {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("closed within the timeout")
            .expect("read");
        String::from_utf8_lossy(&buf).into_owned()
    };

    // Half a head, then nothing.
    let mut s = tokio::net::TcpStream::connect(lb.addr)
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let answer = read_all(s).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");

    // A complete exchange, then an idle keep-alive connection: closed without a word.
    let mut s = tokio::net::TcpStream::connect(lb.addr)
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_all(s).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    assert!(
        !answer.contains("408"),
        "an idle connection gets no 408: {answer:?}"
    );
}

/// With a second event loop, every address has a socket per loop and the kernel spreads
/// connections over them: all are answered, whichever loop accepted them.
#[tokio::test]
async fn connections_accepted_on_a_worker_loop_are_served() {
    let a = backend("api-1", Kind::Api).await;
    let worker = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle = worker.handle().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        worker.block_on(async {
            let _ = stopped.await;
        });
    });
    let proxy = proxy::Proxy::start_on(config(&[&a], &[], ""), vec![handle])
        .await
        .expect("proxy starts");
    let addr = proxy.frontend_addrs("veza")[0];
    let answers = futures_util::future::join_all((0..64).map(|_| get(addr, "/", None))).await;
    assert!(answers.iter().all(|r| r.status == 200));
    proxy.shutdown().await;
    let _ = stop.send(());
    thread.join().expect("worker thread");
}

/// `monitor_uri`: the frontend answers it itself, with every server down and without
/// forwarding anything; other paths are still forwarded (here, to nothing: 503). A path that
/// is not one is refused at load time.
#[tokio::test]
async fn monitor_uri_is_answered_by_the_frontend_with_every_server_down() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = |uri: &str| {
        format!(
            "[[frontend]]\nname = \"veza\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"api\"\n\
             monitor_uri = \"{uri}\"\n[pool.api]\nbalance = \"roundrobin\"\n\
             servers = [{{ name = \"api-1\", addr = \"{dead}\" }}]\n"
        )
    };
    let lb =
        Lb::start(proxy::config::Config::parse(&text("/veza-lb/health"), "test.toml").unwrap())
            .await;
    let ready = get(lb.addr, "/veza-lb/health", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.text(), "veza-lb: ready\n");
    let forwarded = get(lb.addr, "/veza-lb/health/more", None).await;
    assert_eq!(
        forwarded.status, 503,
        "only the exact path is the monitor's"
    );
    let error = proxy::config::Config::parse(&text("health"), "test.toml")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`monitor_uri` must start with `/`"),
        "{error}"
    );
}
