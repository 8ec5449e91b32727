//! The runtime API and the metrics endpoint against a real in-process proxy and real demo
//! backends on loopback: `show stat` read with a CSV reader, by HAProxy's column positions.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proxy::Proxy;
use proxy::config::Config;
use proxy::stats::StatTable;
use support::backend;
use testkit::http;
use testkit::runtime_api::{self, Interactive, ctl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veza_demo_backend::{Kind, RunningBackend};

/// The `show stat` header of HAProxy 2.6.12 (`/usr/sbin/haproxy`, `stats socket`), captured
/// from a throwaway instance. The columns after `agg_check_status` (from `-` on) come from
/// HAProxy's SSL/H2/H1 modules; veza-lb emits everything before them.
const HAPROXY_2_6_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

// Column positions in HAProxy's CSV, as existing tooling hard-codes them.
const SCUR: usize = 4;
const STOT: usize = 7;
const BOUT: usize = 9;
const STATUS: usize = 17;
const WEIGHT: usize = 18;
const CHKDOWN: usize = 22;
const TYPE: usize = 32;
const LBTOT: usize = 30;
const CHECK_STATUS: usize = 36;
const HRSP_2XX: usize = 40;
const REQ_TOT: usize = 48;
const CHECK_HEALTH: usize = 69;
const ADDR: usize = 73;
const MODE: usize = 75;
const ALGO: usize = 76;

/// The column at `index` of HAProxy's header is `name`: the constants above are HAProxy's.
#[test]
fn column_constants_are_haproxy_positions() {
    let names: Vec<&str> = HAPROXY_2_6_HEADER[2..].split(',').collect();
    for (index, name) in [
        (SCUR, "scur"),
        (STOT, "stot"),
        (BOUT, "bout"),
        (STATUS, "status"),
        (WEIGHT, "weight"),
        (CHKDOWN, "chkdown"),
        (TYPE, "type"),
        (LBTOT, "lbtot"),
        (CHECK_STATUS, "check_status"),
        (HRSP_2XX, "hrsp_2xx"),
        (REQ_TOT, "req_tot"),
        (CHECK_HEALTH, "check_health"),
        (ADDR, "addr"),
        (MODE, "mode"),
        (ALGO, "algo"),
    ] {
        assert_eq!(names[index], name);
    }
}

struct Lab {
    proxy: Proxy,
    api1: Option<RunningBackend>,
    api2: Option<RunningBackend>,
    front: SocketAddr,
    stats: SocketAddr,
}

fn config(api: &[&RunningBackend], global: &str) -> Config {
    support::api_config(api, global, "")
}

impl Lab {
    async fn start() -> Lab {
        let api1 = backend("api-1", Kind::Api).await;
        let api2 = backend("api-2", Kind::Api).await;
        let config = config(
            &[&api1, &api2],
            "stats_socket = \"127.0.0.1:0\"\nstats_socket_level = \"admin\"\n\
             metrics_listen = \"127.0.0.1:0\"",
        );
        let proxy = Proxy::start(config).await.expect("proxy starts");
        let front = proxy.frontend_addrs("veza")[0];
        let stats = proxy.stats_addr().expect("stats socket bound");
        let lab = Lab {
            proxy,
            api1: Some(api1),
            api2: Some(api2),
            front,
            stats,
        };
        // Both servers pass their first check (fully UP) before the test starts.
        lab.wait_for("both servers fully UP", |rows| {
            ["api-1", "api-2"]
                .iter()
                .all(|s| row(rows, "api", s)[STATUS] == *"UP")
        })
        .await;
        lab
    }

    async fn ctl(&self, command: &str) -> String {
        ctl(self.stats, command).await
    }

    async fn stat(&self) -> StatTable {
        StatTable::parse(&self.ctl("show stat").await).expect("show stat is a table")
    }

    async fn wait_for(&self, what: &str, ok: impl Fn(&StatTable) -> bool) -> StatTable {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let rows = self.stat().await;
            if ok(&rows) {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last show stat: {:?}",
                rows.rows()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn row<'a>(table: &'a StatTable, pxname: &str, svname: &str) -> &'a [String] {
    table
        .row(pxname, svname)
        .unwrap_or_else(|| panic!("no row {pxname}/{svname} in {:?}", table.rows()))
}

fn num(row: &[String], col: usize) -> u64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("column {col} is not a number in {row:?}"))
}

/// A GET over a fresh connection: status, `X-Served-By`, body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let r = http::get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (r.status, r.served_by().to_owned(), r.text())
}

#[tokio::test]
async fn header_is_haproxy_s_and_rows_are_typed() {
    let lab = Lab::start().await;
    let answer = lab.ctl("show stat").await;
    let header = answer.lines().next().expect("header line");
    assert_eq!(
        header, HAPROXY_2_6_HEADER,
        "header differs from HAProxy 2.6's"
    );
    assert!(answer.ends_with(",\n\n"), "answer ends with an empty line");
    let rows = StatTable::parse(&answer).expect("show stat is a table");
    let kinds: Vec<(&str, &str, &str)> = rows
        .rows()
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[TYPE].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("veza", "FRONTEND", "0"),
            ("api", "api-1", "2"),
            ("api", "api-2", "2"),
            ("api", "BACKEND", "1"),
        ]
    );
    let api1 = row(&rows, "api", "api-1");
    assert_eq!(api1[ADDR], lab.api1.as_ref().unwrap().addr().to_string());
    assert_eq!(api1[CHECK_STATUS], "L7OK");
    assert_eq!(api1[CHECK_HEALTH], "3", "rise + fall - 1: fully UP");
    assert_eq!(api1[MODE], "http");
    assert_eq!(row(&rows, "api", "BACKEND")[ALGO], "roundrobin");
    lab.proxy.shutdown().await;
}

#[tokio::test]
async fn counters_move_with_traffic() {
    let lab = Lab::start().await;
    for _ in 0..6 {
        let (status, _, _) = get(lab.front, "/hello").await;
        assert_eq!(status, 200);
    }
    let rows = lab.stat().await;
    let fe = row(&rows, "veza", "FRONTEND");
    assert_eq!(num(fe, REQ_TOT), 6);
    assert_eq!(num(fe, HRSP_2XX), 6);
    assert_eq!(num(fe, STOT), 6, "one connection per request");
    let be = row(&rows, "api", "BACKEND");
    assert_eq!(num(be, REQ_TOT), 6);
    assert_eq!(num(be, LBTOT), 6);
    assert_eq!(num(be, HRSP_2XX), 6);
    assert!(num(be, BOUT) > 0, "response bytes counted");
    let (a, b) = (row(&rows, "api", "api-1"), row(&rows, "api", "api-2"));
    assert_eq!(num(a, LBTOT) + num(b, LBTOT), 6);
    assert_eq!(num(a, LBTOT), 3, "round-robin alternates");
    assert_eq!(num(a, HRSP_2XX) + num(b, HRSP_2XX), 6);
    lab.proxy.shutdown().await;
}

#[tokio::test]
async fn killed_server_turns_down_with_l4con() {
    let mut lab = Lab::start().await;
    lab.api2.take().expect("api-2").kill().await;
    let rows = lab
        .wait_for("api-2 DOWN after an L4CON check", |rows| {
            let r = row(rows, "api", "api-2");
            r[STATUS] == "DOWN" && r[CHECK_STATUS] == "L4CON"
        })
        .await;
    let api2 = row(&rows, "api", "api-2");
    assert_eq!(num(api2, CHKDOWN), 1);
    assert_eq!(api2[CHECK_HEALTH], "0");
    let be = row(&rows, "api", "BACKEND");
    assert_eq!(be[STATUS], "UP", "api-1 still serves");
    assert_eq!(be[WEIGHT], "1");
    for _ in 0..4 {
        let (status, served_by, _) = get(lab.front, "/").await;
        assert_eq!((status, served_by.as_str()), (200, "api-1"));
    }
    let state = lab.ctl("show servers state api").await;
    let api2_state: Vec<&str> = state
        .lines()
        .find(|l| l.contains(" api-2 "))
        .expect("api-2 in show servers state")
        .split(' ')
        .collect();
    assert_eq!(api2_state[5], "0", "srv_op_state: stopped");
    assert_eq!(api2_state[10], "8", "srv_check_status: HCHK_STATUS_L4CON");
    lab.proxy.shutdown().await;
}

#[tokio::test]
async fn drain_and_maint_act_on_traffic_at_once() {
    let lab = Lab::start().await;
    assert_eq!(lab.ctl("set server api/api-2 state drain").await, "\n");
    let rows = lab.stat().await;
    assert_eq!(row(&rows, "api", "api-2")[STATUS], "DRAIN");
    let drained_before = num(row(&rows, "api", "api-2"), LBTOT);
    for _ in 0..6 {
        let (status, served_by, _) = get(lab.front, "/").await;
        assert_eq!((status, served_by.as_str()), (200, "api-1"));
    }
    let rows = lab.stat().await;
    assert_eq!(num(row(&rows, "api", "api-2"), LBTOT), drained_before);

    assert_eq!(lab.ctl("disable server api/api-2").await, "\n");
    assert_eq!(row(&lab.stat().await, "api", "api-2")[STATUS], "MAINT");
    assert_eq!(lab.ctl("enable server api/api-2").await, "\n");
    assert_eq!(row(&lab.stat().await, "api", "api-2")[STATUS], "UP");
    let mut served = Vec::new();
    for _ in 0..4 {
        served.push(get(lab.front, "/").await.1);
    }
    assert!(
        served.iter().any(|s| s == "api-2"),
        "back in rotation: {served:?}"
    );

    assert_eq!(lab.ctl("get weight api/api-1").await, "1 (initial 1)\n\n");
    assert_eq!(lab.ctl("set weight api/api-1 3").await, "\n");
    assert_eq!(lab.ctl("get weight api/api-1").await, "3 (initial 1)\n\n");
    assert_eq!(row(&lab.stat().await, "api", "api-1")[WEIGHT], "3");
    assert_eq!(lab.ctl("set server api/api-1 weight 100%").await, "\n");
    assert_eq!(lab.ctl("get weight api/api-1").await, "1 (initial 1)\n\n");

    assert_eq!(
        lab.ctl("disable server api/nope").await,
        "No such server.\n\n"
    );
    assert_eq!(
        lab.ctl("disable server nope/api-1").await,
        "No such backend.\n\n"
    );
    assert_eq!(
        lab.ctl("set weight api/api-1 257").await,
        "Absolute weight can only be between 0 and 256 inclusive.\n\n"
    );
    lab.proxy.shutdown().await;
}

#[tokio::test]
async fn protocol_answers_in_order_and_drops_abuse() {
    let lab = Lab::start().await;
    let answer = lab.ctl("show info;bogus;show servers state").await;
    let parts: Vec<&str> = answer.split("\n\n").collect();
    assert_eq!(
        parts.len(),
        4,
        "three answers, each ending with an empty line: {answer:?}"
    );
    assert!(parts[0].starts_with("Name: veza-lb\nVersion: "));
    assert!(parts[0].contains(&format!("\nPid: {}\n", std::process::id())));
    assert!(parts[0].contains("\nUptime_sec: "));
    assert!(parts[0].contains("\nIdle_pct: "));
    assert!(
        parts[1].starts_with("Unknown command. Please enter one of the following commands only:\n")
    );
    assert!(parts[2].starts_with("1\n# be_id be_name srv_id srv_name srv_addr "));
    assert_eq!(parts[3], "");

    let help = lab.ctl("help").await;
    assert!(help.contains("\n  set server <bk>/<srv> [opts]"));

    // A line over 16 KiB: dropped without an answer.
    let mut stream = TcpStream::connect(lab.stats).await.unwrap();
    let long = format!("show stat {}\n", "x".repeat(17 * 1024));
    let _ = stream.write_all(long.as_bytes()).await;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "no answer to an oversized line");

    // `quit` ends the line: nothing after it runs.
    assert_eq!(lab.ctl("quit;show info").await, "");
    lab.proxy.shutdown().await;
}

#[tokio::test]
async fn stats_socket_answers_under_load() {
    let lab = Lab::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..24 {
        let (stop, front) = (stop.clone(), lab.front);
        clients.push(tokio::spawn(async move {
            let mut ok = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if get(front, "/slow?ms=20").await.0 == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut busy_seen = false;
    for _ in 0..10 {
        let answer = tokio::time::timeout(Duration::from_secs(2), lab.ctl("show stat"))
            .await
            .expect("show stat answers within 2s under load");
        let rows = StatTable::parse(&answer).expect("show stat is a table");
        busy_seen |= num(row(&rows, "veza", "FRONTEND"), SCUR) > 0;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for c in clients {
        served += c.await.expect("client task");
    }
    assert!(
        busy_seen,
        "requests were in flight while the socket answered"
    );
    assert!(served > 0);
    let rows = lab.stat().await;
    assert!(
        num(row(&rows, "veza", "FRONTEND"), REQ_TOT) >= u64::from(served),
        "every request served was counted"
    );
    lab.proxy.shutdown().await;
}

#[tokio::test]
async fn metrics_and_stats_csv_over_http() {
    let lab = Lab::start().await;
    let metrics = lab.proxy.metrics_addr().expect("metrics listener bound");
    get(lab.front, "/hello").await;
    let (status, _, body) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "haproxy_server_status{proxy=\"api\",server=\"api-1\",state=\"UP\"} 1\n",
        "haproxy_server_check_status{proxy=\"api\",server=\"api-1\",state=\"L7OK\"} 1\n",
        "haproxy_backend_http_responses_total{proxy=\"api\",code=\"2xx\"} 1\n",
        "haproxy_frontend_http_requests_total{proxy=\"veza\"} 1\n",
        "veza_lb_backend_response_latency_seconds_count{proxy=\"api\"} 1\n",
        "# TYPE veza_lb_server_response_latency_seconds histogram\n",
    ] {
        assert!(body.contains(series), "missing {series:?} in:\n{body}");
    }

    let (status, _, csv_page) = get(metrics, "/stats;csv").await;
    assert_eq!(status, 200);
    let over_http = StatTable::parse(&csv_page).expect("a table over HTTP");
    let over_socket = lab.stat().await;
    assert_eq!(over_http.columns(), over_socket.columns(), "same header");
    assert_eq!(
        over_http.rows().len(),
        over_socket.rows().len(),
        "same rows"
    );

    let (status, _, html) = get(metrics, "/stats").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-name=\"api/api-1\""), "{html}");
    assert_eq!(get(metrics, "/stats?refresh=abc").await.0, 400);
    assert_eq!(get(metrics, "/stats?refresh=3601").await.0, 400);
    assert_eq!(get(metrics, "/nope").await.0, 404);
    lab.proxy.shutdown().await;
}

/// The permission bits of the file or directory at `path`.
fn permission_bits(path: &std::path::Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777
}

/// The example's `/run/veza-lb/admin.sock` on a machine where nothing made `/run/veza-lb`:
/// veza-lb makes the directory when it may, and otherwise says which directory is missing
/// and what makes it.
#[tokio::test]
async fn a_missing_socket_directory_is_made_or_named_with_what_to_do() {
    let dir = testkit::temp_dir();
    let api1 = backend("api-1", Kind::Api).await;
    let path = dir.path().join("run/veza-lb/admin.sock");
    let global = format!("stats_socket = \"unix:{}\"", path.display());
    let proxy = Proxy::start(config(&[&api1], &global))
        .await
        .expect("proxy starts and makes the socket's directory");
    assert_eq!(permission_bits(&dir.path().join("run/veza-lb")), 0o755);
    let answer = runtime_api::command_unix(&path, "show info")
        .await
        .expect("unix socket answers");
    assert!(answer.contains("Name: veza-lb"), "{answer}");
    proxy.shutdown().await;

    // A file where the directory would go: it cannot be made, and the error says so.
    std::fs::write(dir.path().join("blocked"), "a file").expect("write");
    let path = dir.path().join("blocked/veza-lb/admin.sock");
    let global = format!("stats_socket = \"unix:{}\"", path.display());
    let Err(error) = Proxy::start(config(&[&api1], &global)).await else {
        panic!("a socket whose directory cannot be made is refused");
    };
    let error = error.to_string();
    assert!(
        error.contains(&format!(
            "its directory {} does not exist and cannot be created",
            dir.path().join("blocked/veza-lb").display()
        )),
        "{error}"
    );
    assert!(error.contains("RuntimeDirectory=veza-lb"), "{error}");
}

#[tokio::test]
async fn unix_socket_is_private_and_replaces_a_stale_one() {
    let dir = testkit::temp_dir();
    let path = dir.path().join("admin.sock");
    // A previous instance's socket, left behind.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    let api1 = backend("api-1", Kind::Api).await;
    let global = format!(
        "stats_socket = \"unix:{}\"\nstats_socket_mode = \"0640\"",
        path.display()
    );
    let proxy = Proxy::start(config(&[&api1], &global))
        .await
        .expect("proxy starts over a stale socket");
    assert_eq!(proxy.stats_addr(), None, "no TCP address for a unix socket");
    assert_eq!(permission_bits(&path), 0o640);
    let answer = runtime_api::command_unix(&path, "show servers state")
        .await
        .expect("unix socket answers");
    assert!(answer.contains(" api-1 "), "{answer}");
    proxy.shutdown().await;
    assert!(!path.exists(), "the socket is removed on shutdown");
}

#[tokio::test]
async fn taken_stats_address_is_a_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api1 = backend("api-1", Kind::Api).await;
    let global = format!("stats_socket = \"{}\"", taken.local_addr().unwrap());
    match Proxy::start(config(&[&api1], &global)).await {
        Err(proxy::Error::Bind { what, .. }) => assert_eq!(what, "stats socket"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("bound an address already in use"),
    }
}

/// A session as hatop drives one: `prompt`, `set timeout cli`, then commands one at a time,
/// each answer followed by the `> ` prompt, on one connection, until `quit`.
#[tokio::test]
async fn interactive_mode_as_hatop_drives_it() {
    let lab = Lab::start().await;
    let mut cli = Interactive::tcp(lab.stats).await.expect("interactive mode");
    assert_eq!(cli.send("set timeout cli 60").await.unwrap(), "");
    let info = cli.send("show info").await.unwrap();
    assert!(info.starts_with("Name: veza-lb\n"), "{info}");
    let stat = StatTable::parse(&cli.send("show stat").await.unwrap()).expect("a table");
    assert_eq!(row(&stat, "api", "api-2")[STATUS], "UP");
    assert_eq!(cli.send("disable server api/api-2").await.unwrap(), "");
    assert_eq!(
        cli.send("get weight api/api-1").await.unwrap(),
        "1 (initial 1)\n"
    );
    assert_eq!(cli.send("set weight api/api-1 2").await.unwrap(), "");
    let stat = StatTable::parse(&cli.send("show stat").await.unwrap()).expect("a table");
    assert_eq!(row(&stat, "api", "api-2")[STATUS], "MAINT");
    assert_eq!(row(&stat, "api", "api-1")[WEIGHT], "2");
    assert_eq!(cli.send("enable server api/api-2").await.unwrap(), "");
    // Errors keep the session.
    assert_eq!(
        cli.send("set timeout cli 0").await.unwrap(),
        "Invalid timeout value.\n"
    );
    assert!(cli.send("").await.unwrap().starts_with("Unknown command."));
    // Two commands on a line: two answers, each with its prompt.
    assert_eq!(
        cli.send("show cli level;get weight api/api-2")
            .await
            .unwrap(),
        "admin\n"
    );
    assert_eq!(cli.answer().await.unwrap(), "1 (initial 1)\n");
    assert_eq!(
        cli.quit().await.unwrap(),
        "",
        "quit closes without an answer"
    );

    // `prompt` again leaves interactive mode: the connection closes once answered.
    let mut stream = TcpStream::connect(lab.stats).await.unwrap();
    stream.write_all(b"prompt\nprompt\n").await.unwrap();
    let mut all = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut all))
        .await
        .expect("closed after leaving interactive mode")
        .unwrap();
    assert_eq!(all, "\n> \n");
    lab.proxy.shutdown().await;
}

/// Non-interactive mode answers every line the client has already sent (pipelined), then
/// closes, as HAProxy 2.6 does.
#[tokio::test]
async fn pipelined_lines_are_all_answered() {
    let lab = Lab::start().await;
    let answer = lab.ctl("show cli level\nget weight api/api-1").await;
    assert_eq!(answer, "admin\n\n1 (initial 1)\n\n");
    lab.proxy.shutdown().await;
}

/// Access levels: a TCP socket is `operator` by default (reads and `clear counters`, no state
/// change), a unix socket `admin`; `user`/`operator` lower a session's level, never raise it.
#[tokio::test]
async fn access_levels_guard_state_changes() {
    let dir = testkit::temp_dir();
    let admin_path = dir.path().join("admin.sock");
    let api1 = backend("api-1", Kind::Api).await;
    let api2 = backend("api-2", Kind::Api).await;
    let global = format!(
        "stats_socket = [\"127.0.0.1:0\", \"unix:{}\"]\nmetrics_listen = \"127.0.0.1:0\"",
        admin_path.display()
    );
    let proxy = Proxy::start(config(&[&api1, &api2], &global))
        .await
        .expect("proxy starts");
    let tcp = proxy.stats_addr().expect("TCP socket");
    let front = proxy.frontend_addrs("veza")[0];
    get(front, "/").await;

    assert_eq!(ctl(tcp, "show cli level").await, "operator\n\n");
    for denied in [
        "disable server api/api-2",
        "enable server api/api-2",
        "set server api/api-2 state drain",
        "set weight api/api-1 7",
        "set server api/api-1 weight 7",
        "clear counters all",
        "disable server",
    ] {
        assert_eq!(
            ctl(tcp, denied).await,
            "Permission denied\n\n",
            "{denied} on an operator socket"
        );
    }
    let stat = StatTable::parse(&ctl(tcp, "show stat").await).expect("reads are allowed");
    let status = &row(&stat, "api", "api-2")[STATUS];
    assert!(status.starts_with("UP"), "nothing changed: {status}");
    assert_eq!(row(&stat, "api", "api-1")[WEIGHT], "1", "nothing changed");
    assert_eq!(num(row(&stat, "veza", "FRONTEND"), REQ_TOT), 1);
    assert_eq!(
        ctl(tcp, "clear counters").await,
        "\n",
        "operators clear maxima"
    );
    assert_eq!(
        ctl(tcp, "user;clear counters;show cli level").await,
        "\nPermission denied\n\nuser\n\n"
    );
    assert_eq!(
        ctl(tcp, "user;operator;show cli level").await,
        "\n\nuser\n\n",
        "a level is never raised"
    );

    let unix = |line: &'static str| {
        let path = admin_path.clone();
        async move { runtime_api::command_unix(&path, line).await.unwrap() }
    };
    assert_eq!(unix("show cli level").await, "admin\n\n");
    assert_eq!(unix("disable server api/api-2").await, "\n");
    assert_eq!(unix("clear counters all").await, "\n");
    let stat = StatTable::parse(&ctl(tcp, "show stat").await).expect("a table");
    assert_eq!(row(&stat, "api", "api-2")[STATUS], "MAINT");
    assert_eq!(
        num(row(&stat, "veza", "FRONTEND"), REQ_TOT),
        0,
        "clear counters all"
    );
    let mut admin = Interactive::unix(&admin_path).await.expect("interactive");
    assert_eq!(admin.send("operator").await.unwrap(), "");
    assert_eq!(
        admin.send("enable server api/api-2").await.unwrap(),
        "Permission denied\n"
    );
    proxy.shutdown().await;
}

/// `show stat json` and `show info json` parse as JSON, in HAProxy's typed layout.
#[tokio::test]
async fn json_answers_in_haproxy_s_layout() {
    let lab = Lab::start().await;
    get(lab.front, "/").await;
    let answer = lab.ctl("show stat json").await;
    assert!(answer.ends_with("]\n\n"), "{answer}");
    let rows: serde_json::Value = serde_json::from_str(&answer).expect("valid JSON");
    let rows = rows.as_array().expect("an array of rows");
    assert_eq!(rows.len(), 4, "FRONTEND, two servers, BACKEND");
    let field = |row: &serde_json::Value, name: &str| -> serde_json::Value {
        row.as_array()
            .expect("a row is an array of fields")
            .iter()
            .find(|f| f["field"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {row}"))
            .clone()
    };
    let server = &rows[1];
    assert_eq!(field(server, "svname")["value"]["value"], "api-1");
    assert_eq!(field(server, "svname")["objType"], "Server");
    assert_eq!(field(server, "status")["value"]["value"], "UP");
    assert_eq!(
        field(server, "status")["tags"],
        serde_json::json!({"origin": "Status", "nature": "Gauge", "scope": "Process"})
    );
    let req_tot = field(&rows[0], "req_tot");
    assert_eq!(req_tot["field"]["pos"], 48);
    assert_eq!(
        req_tot["value"],
        serde_json::json!({"type": "u64", "value": 1})
    );
    assert_eq!(field(&rows[3], "act")["tags"]["nature"], "Gauge");

    let info: serde_json::Value =
        serde_json::from_str(&lab.ctl("show info json").await).expect("valid JSON");
    let pid = info
        .as_array()
        .expect("an array of fields")
        .iter()
        .find(|f| f["field"]["name"] == "Pid")
        .expect("Pid");
    assert_eq!(pid["field"]["pos"], 6);
    assert_eq!(pid["value"]["value"], std::process::id());

    let typed = lab.ctl("show stat typed").await;
    assert!(
        typed.starts_with("F.1.0.0.pxname.1:KNS:str:veza\n"),
        "{typed}"
    );
    lab.proxy.shutdown().await;
}
