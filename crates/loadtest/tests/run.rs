//! Runs against a real demo backend on loopback (the stream kind serves all three flows:
//! API echo, `/ws`, HLS), short and bounded: what a run records, what the verdict says, what
//! the report holds, and (with Debian's chromium) that a browser renders its charts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use loadtest::{Fault, FaultAction, Faults, NoFaults, Options, Run, RunError, Scenario, Target};
use veza_demo_backend::{BackendConfig, Kind, RunningBackend};

const CHROMIUM: &str = "/usr/bin/chromium";

async fn backend() -> RunningBackend {
    let config = BackendConfig::new("demo-1").with_kind(Kind::Stream);
    veza_demo_backend::spawn("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("demo backend")
}

/// The three flows at 40 iterations/s for `duration`, `api_thresholds` on the API flow.
fn scenario(executor: &str, api_thresholds: &str, extra: &str) -> String {
    format!(
        r#"
name = "test-mix"
duration = "3s"
{extra}
[load]
executor = "{executor}"
start = 40
stages = [{{ duration = "100%", target = 40 }}]
think_time = "20ms"
timeout = "2s"

[[flow]]
name = "api"
kind = "api"
weight = 60
steps = [{{ path = "/api/v1/tracks" }}, {{ method = "POST", path = "/api/v1/plays", body_bytes = 100 }}]
thresholds = [{api_thresholds}]

[[flow]]
name = "ws"
kind = "websocket"
weight = 10
session = "1s"
message_interval = "200ms"
thresholds = ["errors < 1%"]

[[flow]]
name = "hls"
kind = "hls"
weight = 30
tracks = 50
segments = 2
thresholds = ["errors < 1%"]
"#
    )
}

async fn run_against(backend: &RunningBackend, text: &str, faults: &mut dyn Faults) -> Run {
    let scenario = Scenario::parse(text, None).expect("valid scenario");
    let options = Options {
        label: "demo".into(),
        target: Target::parse(&format!("http://{}", backend.addr())).unwrap(),
        metrics: None,
        progress: false,
    };
    loadtest::run(&scenario, &options, faults)
        .await
        .expect("the run")
}

/// The page as the browser built it.
fn browse(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_runs_clean_and_the_report_renders_its_charts() {
    let backend = backend().await;
    let run = run_against(
        &backend,
        &scenario("arrival-rate", "\"p95 < 1s\", \"errors < 1%\"", ""),
        &mut NoFaults,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (written, summary) =
        loadtest::write_report(std::slice::from_ref(&run), dir.path()).unwrap();

    let first = &summary.runs[0];
    assert!(summary.passed, "{}", first.text());
    // 40/s for 3 s: about 120 iterations, every flow chosen.
    assert!(
        (100..=130).contains(&run.recording.iterations),
        "{}",
        run.recording.iterations
    );
    assert_eq!(run.recording.dropped_iterations, 0);
    for flow in &first.flows {
        assert!(flow.requests > 0, "flow {} sent nothing", flow.name);
        assert_eq!(flow.errors, 0, "{}", first.text());
    }
    // An API iteration is two requests; an HLS one a playlist and two segments.
    let api = &first.flows[0];
    assert!(
        api.requests % 2 == 0 && api.requests >= 100,
        "{}",
        api.requests
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written.summary).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["runs"][0]["flows"][2]["name"], "hls");
    assert_eq!(
        json["runs"][0]["all"]["thresholds"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED (browser part): chromium is not installed (apt-get install chromium); CI installs it"
        );
        return;
    }
    let dom = browse(&written.report);
    assert!(dom.contains("id=\"verdict\">PASSED<"), "verdict missing");
    let svgs: Vec<&str> = dom.split("<svg").skip(1).collect();
    // Requests, latency, p95 by flow, errors, busy users (no metrics endpoint: no traffic chart).
    assert_eq!(svgs.len(), 5, "{dom}");
    for svg in svgs {
        let polyline = svg
            .split("<polyline")
            .nth(1)
            .expect("a line in every chart");
        let points = polyline
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(points.split(' ').count() >= 2, "an empty line: {points:?}");
    }
    assert!(dom.contains("Not measured: no metrics endpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_threshold_fails_the_run_and_names_the_flow() {
    let backend = backend().await;
    let run = run_against(
        &backend,
        &scenario("arrival-rate", "\"p99 < 0.001ms\"", ""),
        &mut NoFaults,
    )
    .await;
    let summary = loadtest::Summary::of(&run);
    assert!(!summary.passed);
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    assert!(
        summary.failures[0].starts_with("flow api: threshold `p99 < 0.001ms` failed (p99 = "),
        "{}",
        summary.failures[0]
    );
    assert!(summary.text().contains("FAILED: flow api"));
}

/// Records when each fault came, and refuses the second.
struct Recorder {
    start: Instant,
    applied: Vec<(Duration, FaultAction, String)>,
}

impl Faults for Recorder {
    fn apply<'a>(
        &'a mut self,
        fault: &'a Fault,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + 'a>> {
        Box::pin(async move {
            self.applied
                .push((self.start.elapsed(), fault.action, fault.server.clone()));
            match fault.action {
                FaultAction::Start => Err("the host is unreachable".into()),
                _ => Ok(()),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_come_on_time_are_marked_and_a_failed_one_fails_the_run() {
    let backend = backend().await;
    let faults =
        "[[fault]]\nat = \"1s\"\nstop = \"api-9\"\n[[fault]]\nat = \"60%\"\nstart = \"api-9\"\n";
    // Top-level keys go before the tables: put the faults at the end.
    let text = format!("{}\n{faults}", scenario("vus", "\"errors < 1%\"", ""));
    let mut recorder = Recorder {
        start: Instant::now(),
        applied: Vec::new(),
    };
    let run = run_against(&backend, &text, &mut recorder).await;
    let times: Vec<f64> = recorder
        .applied
        .iter()
        .map(|(t, _, _)| t.as_secs_f64())
        .collect();
    assert_eq!(recorder.applied.len(), 2);
    // Never early (60% of 3 s is 1.8 s); how late depends on the machine.
    assert!(times[0] >= 1.0 && times[1] >= 1.8, "{times:?}");

    let summary = loadtest::Summary::of(&run);
    assert!(!summary.passed);
    assert_eq!(
        summary.failures,
        [format!(
            "fault at {:.1}s: start api-9 failed: the host is unreachable",
            run.faults[1].at
        )]
    );
    // Without a metrics endpoint, whether traffic moved is not claimed either way.
    assert_eq!(summary.faults[0].traffic_moved, None);
    // The closed model: 40 users, each pausing 20 ms between iterations.
    assert!(run.recording.active_vus.iter().all(|&n| n <= 40));
    assert!(run.recording.iterations > 40);

    let html = loadtest::Report::new(std::slice::from_ref(&run), vec![summary])
        .html()
        .unwrap();
    // One marker per fault in each of the five charts.
    assert_eq!(html.matches("<g class=\"fault\">").count(), 10);
    assert!(html.contains(">stop api-9<") && html.contains(">start api-9<"));
}

#[tokio::test]
async fn an_unreachable_target_is_refused_before_the_run() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let scenario = Scenario::parse(&scenario("vus", "", ""), None).unwrap();
    let options = Options {
        label: "nothing".into(),
        target: Target::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        metrics: None,
        progress: false,
    };
    let error = loadtest::run(&scenario, &options, &mut NoFaults)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Unreachable { .. }));
    assert!(error.to_string().contains("is not reachable"), "{error}");
}
