//! `cargo xtask smoke`: the seed's `test_backend_failover.sh`, steps 0 to 5, plus the WebSocket
//! sticky/failover check, a steady request loop across the failover, HLS locality and
//! shutdown-sessions; every check printed as it ends, a summary table at the end.
//!
//! tidy: long file: the seed's steps in order, as one script; each step is its own function.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::build::{self, Profile};
use crate::http::{self, Greeted};
use crate::topology::{
    API_POOL, API_SERVERS, COOKIE, STREAM_POOL, STREAM_SERVERS, Settings, StatsSocket, Topology,
};
use crate::{Error, Result, fail, parse_duration};

/// Options of `cargo xtask smoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Health check interval written into veza-lb's configuration (the seed used 5s); with
    /// --lb, the interval the deployed configuration uses, for the expected detection time.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// How long to wait for a DOWN or UP mark.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    mark_timeout: Duration,
    /// Run against a deployed load balancer at ADDR (host:port) instead of a loopback one.
    #[arg(long, value_name = "ADDR", requires_all = ["stats", "kill_cmd", "start_cmd"])]
    lb: Option<String>,
    /// With --lb: its runtime API, `host:port` or `unix:/path`.
    #[arg(long, value_name = "ADDR", requires = "lb")]
    stats: Option<String>,
    /// With --lb: a shell command that kills backend-api-1 (e.g. `incus stop --force
    /// backend-api-1`).
    #[arg(long, value_name = "CMD", requires = "lb")]
    kill_cmd: Option<String>,
    /// With --lb: a shell command that starts backend-api-1 again.
    #[arg(long, value_name = "CMD", requires = "lb")]
    start_cmd: Option<String>,
}

const FALL: u32 = 3;
const RISE: u32 = 2;
const VICTIM: &str = API_SERVERS[0];
const SURVIVOR: &str = API_SERVERS[1];
const HEALTH_PATH: &str = "/api/v1/health";
/// Tracks fetched by the HLS check: enough that both stream servers get some.
const TRACKS: usize = 16;
/// WebSockets opened without a cookie to get one balanced onto backend-api-1 (other clients of
/// a deployed balancer move the round-robin too).
const PIN_ATTEMPTS: usize = 8;
/// How long the request loop runs before the kill and after the recovery.
const LOOP_MARGIN: Duration = Duration::from_secs(1);
/// Concurrent clients of the request loop, each pausing this long between requests.
const LOOP_CLIENTS: usize = 4;
const LOOP_PAUSE: Duration = Duration::from_millis(5);
/// Files fetched per track: the playlist and the first segments.
const TRACK_FILES: [&str; 5] = ["index.m3u8", "seg-0.ts", "seg-1.ts", "seg-2.ts", "seg-3.ts"];

/// Where the checks run: a topology we started, or a deployed one driven by shell commands.
enum Target {
    Local(Box<Topology>),
    Remote {
        lb: String,
        stats: StatsSocket,
        kill_cmd: String,
        start_cmd: String,
    },
}

impl Target {
    fn lb(&self) -> String {
        match self {
            Target::Local(topology) => topology.lb_addr.to_string(),
            Target::Remote { lb, .. } => lb.clone(),
        }
    }

    fn stats(&self) -> StatsSocket {
        match self {
            Target::Local(topology) => topology.stats(),
            Target::Remote { stats, .. } => stats.clone(),
        }
    }

    fn local(&mut self) -> Option<&mut Topology> {
        match self {
            Target::Local(topology) => Some(topology),
            Target::Remote { .. } => None,
        }
    }

    async fn kill(&mut self, server: &str) -> Result<()> {
        match self {
            Target::Local(topology) => topology.kill(server).await,
            Target::Remote { kill_cmd, .. } => shell(kill_cmd).await,
        }
    }

    async fn start(&mut self, server: &str) -> Result<()> {
        match self {
            Target::Local(topology) => topology.restart(server).await,
            Target::Remote { start_cmd, .. } => shell(start_cmd).await,
        }
    }
}

async fn shell(command: &str) -> Result<()> {
    let status = tokio::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .await
        .map_err(Error::io(format!("cannot run `{command}`")))?;
    if status.success() {
        Ok(())
    } else {
        fail(format!("`{command}` failed ({status})"))
    }
}

/// One line of the report.
struct Check {
    step: &'static str,
    title: &'static str,
    passed: bool,
    took: Duration,
    detail: String,
}

/// The checks so far; each is printed when recorded.
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn record(
        &mut self,
        step: &'static str,
        title: &'static str,
        started: Instant,
        outcome: Result<String>,
    ) -> bool {
        let took = started.elapsed();
        let (passed, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(e) => (false, e.to_string()),
        };
        println!(
            "[{}] {step:<6} {title}: {detail} ({:.2}s)",
            if passed { "PASS" } else { "FAIL" },
            took.as_secs_f64()
        );
        self.checks.push(Check {
            step,
            title,
            passed,
            took,
            detail,
        });
        passed
    }

    fn skip(&mut self, step: &'static str, title: &'static str, why: &str) {
        println!("[SKIP] {step:<6} {title}: {why}");
        self.checks.push(Check {
            step,
            title,
            passed: false,
            took: Duration::ZERO,
            detail: format!("skipped: {why}"),
        });
    }

    fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn print_summary(&self, total: Duration) {
        let width = self.checks.iter().map(|c| c.title.len()).max().unwrap_or(5);
        println!("\nsummary");
        println!(
            "  {:<6} {:<width$} {:<6} {:>7}",
            "step", "check", "result", "time"
        );
        for c in &self.checks {
            let result = if c.detail.starts_with("skipped") {
                "SKIP"
            } else if c.passed {
                "PASS"
            } else {
                "FAIL"
            };
            println!(
                "  {:<6} {:<width$} {:<6} {:>6.2}s",
                c.step,
                c.title,
                result,
                c.took.as_secs_f64()
            );
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        println!(
            "  {passed}/{} checks passed in {:.1}s: {}",
            self.checks.len(),
            total.as_secs_f64(),
            if self.passed() { "PASS" } else { "FAIL" }
        );
    }
}

/// Runs the smoke test; exit code 1 when any check fails.
pub async fn run(args: Args) -> Result<ExitCode> {
    let settings = Settings {
        interval: args.interval,
        fall: FALL,
        rise: RISE,
        ..Settings::default()
    };
    let mut target = match (&args.lb, &args.stats, &args.kill_cmd, &args.start_cmd) {
        (Some(lb), Some(stats), Some(kill_cmd), Some(start_cmd)) => Target::Remote {
            lb: lb
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            stats: StatsSocket::new(stats.clone()),
            kill_cmd: kill_cmd.clone(),
            start_cmd: start_cmd.clone(),
        },
        _ => {
            let binaries = build::build(Profile::Dev).await?;
            let topology = Topology::start(&binaries, settings.clone()).await?;
            println!(
                "veza-lb on http://{} (runtime API {}), config and logs in {}",
                topology.lb_addr,
                topology.stats_addr,
                topology.dir().display()
            );
            Target::Local(Box::new(topology))
        }
    };
    println!(
        "health checks every {:?}, fall {FALL}, rise {RISE}: DOWN expected within ~{:?}\n",
        settings.interval,
        settings.interval * FALL
    );
    let start = Instant::now();
    let mut report = Report { checks: Vec::new() };
    let mut smoke = Smoke {
        target: &mut target,
        report: &mut report,
        settings,
        mark_timeout: args.mark_timeout,
    };
    smoke.run().await;
    report.print_summary(start.elapsed());
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Target::Local(topology) = &mut target {
        if !topology.lb_running() {
            println!("\nveza-lb is no longer running!");
        }
        println!("\nend of the logs:\n{}", topology.log_tails(15));
    }
    Ok(ExitCode::FAILURE)
}

struct Smoke<'a> {
    target: &'a mut Target,
    report: &'a mut Report,
    settings: Settings,
    mark_timeout: Duration,
}

impl Smoke<'_> {
    async fn run(&mut self) {
        let lb = self.target.lb();
        let stats = self.target.stats();

        let t = Instant::now();
        let preflight = async {
            for server in API_SERVERS {
                wait_status(&stats, API_POOL, server, "UP", self.mark_timeout).await?;
            }
            Ok(format!("{} UP per `show stat`", API_SERVERS.join(" and ")))
        }
        .await;
        if !self.report.record("0", "pre-flight", t, preflight) {
            return;
        }

        let t = Instant::now();
        let baseline = gets(&lb, 5, None).await;
        self.report.record("1", "baseline GETs", t, baseline);

        let t = Instant::now();
        let pinned = pin_websocket(&lb).await;
        let (pinned, cookie) = match pinned {
            Ok((greeted, cookie, detail)) => {
                self.report.record("ws", "WebSocket pinned", t, Ok(detail));
                (Some(greeted), Some(cookie))
            }
            Err(e) => {
                self.report.record("ws", "WebSocket pinned", t, Err(e));
                (None, None)
            }
        };

        // The loop runs a moment before the kill, so requests are in flight to the victim.
        let steady = SteadyLoop::start(lb.clone());
        tokio::time::sleep(LOOP_MARGIN).await;

        // Step 2: the kill; the pinned WebSocket is watched from now on.
        let t0 = Instant::now();
        let ws_end = pinned.map(|mut greeted| {
            tokio::spawn(async move {
                http::ended_within(&mut greeted.socket, Duration::from_secs(120))
                    .await
                    .then(Instant::now)
            })
        });
        let how = match self.target {
            Target::Local(_) => "SIGKILLed",
            Target::Remote { .. } => "stopped by --kill-cmd",
        };
        let killed = self.target.kill(VICTIM).await;
        let killed = killed.map(|()| format!("{VICTIM} {how}, t0 recorded"));
        if !self.report.record("2", "kill backend-api-1", t0, killed) {
            steady.stop().await;
            return;
        }

        // Step 3.
        let expected = self.settings.interval * self.settings.fall;
        let down = wait_status(&stats, API_POOL, VICTIM, "DOWN", self.mark_timeout).await;
        let marked_down = down.is_ok();
        let down = down.map(|_| {
            format!(
                "{VICTIM} DOWN {:.2}s after the kill (active checks alone: ~{:.0?} = fall {} x \
                 interval {:?}; passive health can be faster)",
                t0.elapsed().as_secs_f64(),
                expected,
                self.settings.fall,
                self.settings.interval
            )
        });
        self.report.record("3", "DOWN detected", t0, down);

        if let Some(ws_end) = ws_end {
            let t = Instant::now();
            let closed = async {
                match tokio::time::timeout(Duration::from_secs(5), ws_end).await {
                    Ok(Ok(Some(at))) => Ok(format!(
                        "the pinned WebSocket was closed {:.2}s after the kill",
                        at.duration_since(t0).as_secs_f64()
                    )),
                    _ => fail("the WebSocket pinned to backend-api-1 is still open 5s after DOWN"),
                }
            }
            .await;
            self.report.record("ws", "WebSocket closed", t, closed);
        }
        if let Some(cookie) = &cookie {
            let t = Instant::now();
            let reconnect = reconnect_websocket(&lb, cookie, marked_down).await;
            self.report
                .record("ws", "WebSocket reconnect", t, reconnect);
        }

        // Step 4.
        let t = Instant::now();
        let outage = gets(&lb, 5, Some(SURVIVOR)).await;
        self.report.record("4", "GETs during outage", t, outage);

        // Step 5.
        let t = Instant::now();
        let recovered = async {
            self.target.start(VICTIM).await?;
            let restarted = t.elapsed();
            let table = wait_status(&stats, API_POOL, VICTIM, "UP", self.mark_timeout).await?;
            let throttle = table.get(API_POOL, VICTIM, "throttle").unwrap_or_default();
            let detail = format!(
                "restarted in {:.2}s, UP {:.2}s later (expected ~{:?} = rise {} x interval)",
                restarted.as_secs_f64(),
                (t.elapsed() - restarted).as_secs_f64(),
                self.settings.interval * self.settings.rise,
                self.settings.rise
            );
            match throttle.parse::<u32>() {
                Ok(percent) if percent < 100 => {
                    Ok(format!("{detail}; slow start: throttle {percent}%"))
                }
                _ => fail(format!(
                    "{detail}, but `throttle` is {throttle:?}: slow start does not show"
                )),
            }
        }
        .await;
        let recovered_ok = self.report.record("5", "recovery", t, recovered);

        // And a moment after: the recovered server takes its slow-start share again.
        tokio::time::sleep(LOOP_MARGIN).await;
        let steady = steady.stop().await;
        self.report
            .record("loop", "no request lost (2-5)", t0, steady.verdict());

        self.hls(&lb, &stats).await;

        if recovered_ok {
            self.shutdown_sessions(&lb, &stats).await;
        } else if self.target.local().is_some() {
            self.report
                .skip("ws", "shutdown-sessions", "backend-api-1 did not come back");
        }
    }

    /// HLS locality: every file of a track from one stream server; only the tracks of a
    /// server that dies move, and they come back when it does.
    async fn hls(&mut self, lb: &str, stats: &StatsSocket) {
        let t = Instant::now();
        let home = match track_map(lb).await {
            Ok(map) => map,
            Err(e) => {
                self.report.record("hls", "HLS locality", t, Err(e));
                return;
            }
        };
        let used: BTreeSet<&str> = home.values().map(String::as_str).collect();
        let detail = format!(
            "{TRACKS} tracks x {} files, each track on one server ({})",
            TRACK_FILES.len(),
            count_by_server(&home)
        );
        self.report.record("hls", "HLS locality", t, Ok(detail));
        if self.target.local().is_none() {
            return;
        }
        let Some(victim) = STREAM_SERVERS.into_iter().find(|s| used.contains(s)) else {
            return;
        };
        let t = Instant::now();
        let failover = async {
            self.target.kill(victim).await?;
            let before_down = track_map(lb).await?;
            compare_moves(&home, &before_down, victim)?;
            wait_status(stats, STREAM_POOL, victim, "DOWN", self.mark_timeout).await?;
            let after_down = track_map(lb).await?;
            compare_moves(&home, &after_down, victim)?;
            let moved = home.values().filter(|s| *s == victim).count();
            Ok(format!(
                "{victim} killed: its {moved} tracks moved, the other {} stayed, before and \
                 after the DOWN mark",
                TRACKS - moved
            ))
        }
        .await;
        let failover_ok = self.report.record("hls", "HLS failover", t, failover);
        let t = Instant::now();
        let back = async {
            self.target.start(victim).await?;
            wait_status(stats, STREAM_POOL, victim, "UP", self.mark_timeout).await?;
            let now = track_map(lb).await?;
            if now == home {
                Ok(format!("{victim} UP again: every track back on its server"))
            } else {
                fail(format!(
                    "{victim} UP again but tracks did not all return: {}",
                    differences(&home, &now)
                ))
            }
        }
        .await;
        if failover_ok {
            self.report.record("hls", "HLS recovery", t, back);
        } else {
            let _ = back;
            self.report
                .skip("hls", "HLS recovery", "the failover check failed");
        }
    }

    /// shutdown-sessions with a live backend: health switched to 503, so only the proxy can
    /// close the pinned WebSocket.
    async fn shutdown_sessions(&mut self, lb: &str, stats: &StatsSocket) {
        let Some(topology) = self.target.local() else {
            return;
        };
        let admin = match topology.backend(VICTIM) {
            Ok(backend) => backend.addr.to_string(),
            Err(e) => {
                self.report
                    .record("ws", "shutdown-sessions", Instant::now(), Err(e));
                return;
            }
        };
        let t = Instant::now();
        let outcome = async {
            let cookie = format!("{COOKIE}={VICTIM}");
            let mut greeted = http::websocket(lb, Some(&cookie)).await?;
            if greeted.greeting != VICTIM {
                return fail(format!(
                    "a WebSocket with {cookie} was greeted by {:?}",
                    greeted.greeting
                ));
            }
            let switched = http::post(&admin, "/admin/health?status=503").await?;
            if switched.status != 200 {
                return fail(format!(
                    "{VICTIM} refused the health switch ({})",
                    switched.status
                ));
            }
            let marked = wait_status(stats, API_POOL, VICTIM, "DOWN", self.mark_timeout).await;
            let down_at = Instant::now();
            let closed = http::ended_within(&mut greeted.socket, Duration::from_secs(5)).await;
            // Back to healthy whatever happened, so the topology ends as it started.
            let _ = http::post(&admin, "/admin/health?status=200").await;
            marked?;
            if closed {
                Ok(format!(
                    "{VICTIM} alive but failing checks: marked DOWN, its WebSocket closed by \
                     the proxy {:.2}s later",
                    down_at.elapsed().as_secs_f64()
                ))
            } else {
                fail(format!(
                    "{VICTIM} marked DOWN but its WebSocket is still open 5s later"
                ))
            }
        }
        .await;
        self.report.record("ws", "shutdown-sessions", t, outcome);
    }
}

/// Polls `show stat` every 50 ms until `pool/server` has exactly `status`.
async fn wait_status(
    stats: &StatsSocket,
    pool: &str,
    server: &str,
    status: &str,
    limit: Duration,
) -> Result<crate::topology::StatTable> {
    let start = Instant::now();
    loop {
        let last = match stats.show_stat().await {
            Ok(table) => match table.status(pool, server) {
                Some(s) if s == status => return Ok(table),
                Some(s) => s.to_owned(),
                None => format!("no {pool}/{server} row"),
            },
            Err(e) => e.to_string(),
        };
        if start.elapsed() > limit {
            return fail(format!(
                "{pool}/{server} not {status} after {limit:?} (last: {last})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` GETs of the health path through the LB, all must be 200 (and served by `only` if set).
async fn gets(lb: &str, n: usize, only: Option<&str>) -> Result<String> {
    let mut served = BTreeMap::new();
    for i in 1..=n {
        let response = http::get(lb, HEALTH_PATH, &[]).await?;
        if response.status != 200 {
            return fail(format!(
                "GET {HEALTH_PATH} #{i} answered {} by {}",
                response.status,
                response.served_by()
            ));
        }
        *served.entry(response.served_by().to_owned()).or_insert(0) += 1;
    }
    let by = count_by(&served);
    if let Some(only) = only
        && served.keys().any(|s| s != only)
    {
        return fail(format!("{n} x 200 but not all from {only}: {by}"));
    }
    Ok(format!("{n} x GET {HEALTH_PATH} all 200 ({by})"))
}

fn count_by(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(server, n)| format!("{server}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens WebSockets without a cookie until round-robin lands one on backend-api-1, checks the
/// 101 set `SERVERID=backend-api-1` and that a second socket with that cookie sticks.
async fn pin_websocket(lb: &str) -> Result<(Greeted, String, String)> {
    let mut greeted = None;
    for _ in 0..PIN_ATTEMPTS {
        let g = http::websocket(lb, None).await?;
        if g.greeting == VICTIM {
            greeted = Some(g);
            break;
        }
    }
    let Some(greeted) = greeted else {
        return fail(format!(
            "4 WebSockets without a cookie, none reached {VICTIM}"
        ));
    };
    let Some(value) = greeted
        .set_cookies
        .iter()
        .find_map(|c| http::set_cookie_value(c, COOKIE))
    else {
        return fail(format!(
            "the 101 from {VICTIM} set no {COOKIE} cookie (Set-Cookie: {:?})",
            greeted.set_cookies
        ));
    };
    if value != VICTIM {
        return fail(format!("greeted by {VICTIM} but {COOKIE}={value}"));
    }
    let cookie = format!("{COOKIE}={value}");
    for _ in 0..3 {
        let again = http::websocket(lb, Some(&cookie)).await?;
        if again.greeting != VICTIM {
            return fail(format!(
                "a WebSocket with {cookie} was greeted by {}",
                again.greeting
            ));
        }
        if !again.set_cookies.is_empty() {
            return fail(format!(
                "indirect cookie: a valid {cookie} got Set-Cookie {:?}",
                again.set_cookies
            ));
        }
    }
    Ok((
        greeted,
        cookie.clone(),
        format!("greeted by {VICTIM} with Set-Cookie {cookie}; 3 more with the cookie stuck"),
    ))
}

/// After the DOWN mark, a reconnect with the old cookie lands on the survivor with a new cookie.
async fn reconnect_websocket(lb: &str, cookie: &str, marked_down: bool) -> Result<String> {
    if !marked_down {
        return fail(format!("{VICTIM} was never marked DOWN"));
    }
    let greeted = http::websocket(lb, Some(cookie)).await?;
    if greeted.greeting != SURVIVOR {
        return fail(format!(
            "reconnect with {cookie} greeted by {:?}, not {SURVIVOR}",
            greeted.greeting
        ));
    }
    let new = greeted
        .set_cookies
        .iter()
        .find_map(|c| http::set_cookie_value(c, COOKIE));
    if new != Some(SURVIVOR) {
        return fail(format!(
            "reconnect reached {SURVIVOR} but Set-Cookie was {:?}",
            greeted.set_cookies
        ));
    }
    Ok(format!(
        "reconnect with {cookie} greeted by {SURVIVOR}, Set-Cookie {COOKIE}={SURVIVOR}"
    ))
}

/// Which stream server serves each track; fails if a track's files come from two servers or
/// any answer is not 200.
async fn track_map(lb: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for track in 1..=TRACKS {
        let track = format!("track-{track}");
        let mut servers = BTreeSet::new();
        for file in TRACK_FILES {
            let path = format!("/stream/{track}/{file}");
            let response = http::get(lb, &path, &[]).await?;
            if response.status != 200 {
                return fail(format!(
                    "GET {path} answered {} by {}",
                    response.status,
                    response.served_by()
                ));
            }
            servers.insert(response.served_by().to_owned());
        }
        if servers.len() != 1 {
            return fail(format!(
                "{track} split across {}",
                servers.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        map.insert(track, servers.into_iter().next().unwrap_or_default());
    }
    Ok(map)
}

fn count_by_server(map: &BTreeMap<String, String>) -> String {
    let mut counts = BTreeMap::new();
    for server in map.values() {
        *counts.entry(server.clone()).or_insert(0) += 1;
    }
    count_by(&counts)
}

/// Only the victim's tracks may move, and they must.
fn compare_moves(
    home: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    victim: &str,
) -> Result<()> {
    for (track, server) in home {
        let current = now.get(track).map(String::as_str).unwrap_or("?");
        if server == victim && current == victim {
            return fail(format!("{track} still served by the dead {victim}"));
        }
        if server != victim && current != server {
            return fail(format!(
                "{track} moved from {server} to {current} though {server} is alive"
            ));
        }
    }
    Ok(())
}

fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    a.iter()
        .filter(|(track, server)| b.get(*track) != Some(server))
        .map(|(track, server)| {
            format!(
                "{track}: {server} -> {}",
                b.get(track).map(String::as_str).unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// GETs in a loop from a few concurrent clients, one connection per request, until stopped.
struct SteadyLoop {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<LoopOutcome>>,
}

#[derive(Default)]
struct LoopOutcome {
    sent: u64,
    failures: Vec<String>,
    served: BTreeMap<String, u64>,
}

impl LoopOutcome {
    fn merge(&mut self, other: LoopOutcome) {
        self.sent += other.sent;
        self.failures.extend(other.failures);
        for (server, n) in other.served {
            *self.served.entry(server).or_insert(0) += n;
        }
    }

    fn verdict(&self) -> Result<String> {
        let summary = format!(
            "{} requests from {LOOP_CLIENTS} clients, {} failed ({})",
            self.sent,
            self.failures.len(),
            count_by(&self.served)
        );
        if self.sent == 0 {
            fail("the request loop sent nothing")
        } else if self.failures.is_empty() {
            Ok(summary)
        } else {
            let first: Vec<&str> = self.failures.iter().take(3).map(String::as_str).collect();
            fail(format!("{summary}; first: {}", first.join("; ")))
        }
    }
}

impl SteadyLoop {
    fn start(lb: String) -> SteadyLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let tasks = (0..LOOP_CLIENTS)
            .map(|_| {
                let (flag, lb) = (stop.clone(), lb.clone());
                tokio::spawn(async move {
                    let mut outcome = LoopOutcome::default();
                    while !flag.load(Ordering::Relaxed) {
                        outcome.sent += 1;
                        let at = start.elapsed().as_secs_f64();
                        match http::get(&lb, HEALTH_PATH, &[]).await {
                            Ok(response) if response.status == 200 => {
                                *outcome
                                    .served
                                    .entry(response.served_by().to_owned())
                                    .or_insert(0) += 1;
                            }
                            Ok(response) => outcome.failures.push(format!(
                                "+{at:.2}s: {} from {}",
                                response.status,
                                response.served_by()
                            )),
                            Err(e) => outcome.failures.push(format!("+{at:.2}s: {e}")),
                        }
                        tokio::time::sleep(LOOP_PAUSE).await;
                    }
                    outcome
                })
            })
            .collect();
        SteadyLoop { stop, tasks }
    }

    async fn stop(self) -> LoopOutcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoopOutcome::default();
        for task in self.tasks {
            total.merge(task.await.unwrap_or_default());
        }
        total
    }
}
