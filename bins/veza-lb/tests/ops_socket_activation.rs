//! Socket activation, with systemd's own tool: `systemd-socket-activate` binds the addresses,
//! waits for a first connection, and starts veza-lb with the sockets (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`) as a `veza-lb.socket` unit would. veza-lb adopts the one its
//! configuration binds, serves the connection that woke it, and closes (and reports) the one
//! no bind address uses.

mod support;

use std::path::Path;

use support::{ApiConfig, Lb, backend, free_port, get};

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_the_sockets_it_binds_and_reports_the_rest() {
    if !Path::new(ACTIVATE).exists() {
        eprintln!("SKIPPED: systemd-socket-activate (package systemd) is not installed");
        return;
    }
    let backend = backend("api-1").await;
    let web = format!("127.0.0.1:{}", free_port());
    let spare = format!("127.0.0.1:{}", free_port());
    let config = ApiConfig::new(&[backend.addr()]).bind(&web).render();
    let wrapper = [
        ACTIVATE,
        "-l",
        web.as_str(),
        "-l",
        spare.as_str(),
        "--fdname=web:spare",
        "-E",
        "NO_COLOR=1",
    ];
    let mut lb = Lb::start_under(&wrapper, &config, &[]);
    // The first connection is what starts veza-lb; it waits in the socket's backlog. Until
    // systemd-socket-activate has bound the address, connections are refused.
    let mut tries = 0;
    let first = loop {
        match get(web.parse().expect("addr"), "/").await {
            Ok(response) => break response,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("first request: {e}; logs: {:#?}", lb.logs()),
        }
    };
    assert_eq!(first.status, 200);
    assert_eq!(first.served_by(), "api-1");
    let adopted = lb
        .wait_for(&format!("adopted listening socket {web} (web)"))
        .await;
    assert!(adopted.contains("from the service manager"), "{adopted}");
    let unused = lb
        .wait_for(&format!("passed a socket on {spare} that no bind address"))
        .await;
    assert!(unused.contains("closed"), "{unused}");
    assert!(
        lb.lines_with("address already in use").is_empty(),
        "veza-lb did not try to bind the adopted address itself: {:#?}",
        lb.logs()
    );
    for _ in 0..5 {
        let again = get(web.parse().expect("addr"), "/").await.expect("served");
        assert_eq!(again.status, 200);
    }
    drop(backend);
}

/// A listening socket as a socket unit holds it: bound once, kept across the service's stops
/// and starts, with room in its backlog for the clients that connect meanwhile.
fn held(addr: std::net::SocketAddr) -> std::net::TcpListener {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(4096).expect("listen");
    socket.into()
}

/// Five graceful stops and starts behind sockets held as systemd holds a socket unit's,
/// under the client mix: nothing is refused and no request fails, because the listening
/// socket never closes, connections made while no process runs wait in its backlog, and
/// each stopping process ends its connections as a drain does (`Connection: close`, GOAWAY).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_stops_and_starts_behind_held_sockets_refuse_and_fail_nothing() {
    const CYCLES: usize = 5;
    let edge = support::UnderLoad::new("shutdown_grace = \"1500ms\"\nthreads = 2").await;
    let sockets = [held(edge.web), held(edge.tls)];
    let sockets: Vec<&std::net::TcpListener> = sockets.iter().collect();
    let mut lb = Lb::start_with_sockets(&edge.config, &sockets);
    lb.wait_for("adopted listening socket").await;
    let traffic = edge.traffic();
    traffic.flows(100).await;
    for cycle in 0..CYCLES {
        lb.signal(support::Sig::SIGTERM);
        let status = lb.wait_exit().await;
        assert!(status.success(), "stop {cycle}: {status}");
        assert!(
            lb.lines_with("address already in use").is_empty(),
            "{:#?}",
            lb.logs()
        );
        lb = Lb::start_with_sockets(&edge.config, &sockets);
        lb.wait_for("adopted listening socket").await;
        traffic.flows(200).await;
    }
    let report = traffic.stop().await;
    assert_eq!(report.total_failed(), 0, "{report}");
    println!("{CYCLES} stops and starts: {report}");
    lb.signal(support::Sig::SIGTERM);
    assert!(lb.wait_exit().await.success());
}
