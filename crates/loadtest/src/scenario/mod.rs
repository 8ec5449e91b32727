//! The scenario file: what traffic to send, how much, for how long, what counts as passing,
//! and which faults to inject. Parsed from TOML and validated whole: every problem is reported
//! at once, named by its field, before any request is sent.
//!
//! ```toml
//! name = "veza-nightly"
//! duration = "5m"
//!
//! [load]
//! executor = "arrival-rate"          # iterations started per second (open model), or "vus"
//! stages = [{ duration = "10%", target = 40 }, { duration = "80%", target = 40 }]
//!
//! [[flow]]
//! name = "api"
//! kind = "api"
//! weight = 70
//! steps = [{ method = "GET", path = "/api/v1/tracks" }]
//! thresholds = ["p95 < 50ms", "errors < 0.1%"]
//! ```

use std::time::Duration;

mod file;

use crate::threshold::Threshold;
pub use file::parse_duration;
#[cfg(test)]
use file::span;

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name, shown in the report.
    pub name: String,
    /// What it is for, one sentence.
    pub description: String,
    /// How long the load runs.
    pub duration: Duration,
    /// Seed of the pseudo-random choices (flows, tracks): a run is reproducible.
    pub seed: u64,
    /// The load model.
    pub load: Load,
    /// The flows, each with its weight.
    pub flows: Vec<Flow>,
    /// Thresholds on all flows together.
    pub thresholds: Vec<Threshold>,
    /// Faults, in time order.
    pub faults: Vec<Fault>,
}

/// How much load, over time.
#[derive(Debug, Clone)]
pub struct Load {
    /// Open or closed model.
    pub executor: Executor,
    /// The target before the first stage.
    pub start: f64,
    /// Linear ramps, in order; the last target holds until the end.
    pub stages: Vec<Stage>,
    /// The most iterations in progress at once (arrival-rate); a start that finds none free
    /// is counted as dropped, as k6 does.
    pub max_vus: usize,
    /// How long one request (or WebSocket exchange) may take.
    pub timeout: Duration,
    /// Pause between two iterations of one virtual user (`vus`).
    pub think_time: Duration,
}

/// The load model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// Open model: `target` iterations start per second, whatever the response times
    /// (k6's ramping-arrival-rate). Latency cannot slow the load down.
    ArrivalRate,
    /// Closed model: `target` virtual users each run iterations back to back (k6's
    /// ramping-vus).
    Vus,
}

impl Executor {
    /// As written in the scenario.
    pub fn as_str(self) -> &'static str {
        match self {
            Executor::ArrivalRate => "arrival-rate",
            Executor::Vus => "vus",
        }
    }

    /// The unit of `target`.
    pub fn unit(self) -> &'static str {
        match self {
            Executor::ArrivalRate => "iterations/s",
            Executor::Vus => "virtual users",
        }
    }
}

/// One ramp: from the previous target to `target` over `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    /// How long the ramp lasts.
    pub duration: Duration,
    /// Where it ends.
    pub target: f64,
}

impl Load {
    /// The target at `t` after the start: linear within a stage, the last target after the
    /// last stage.
    pub fn target_at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut stage_start = Duration::ZERO;
        for stage in &self.stages {
            let end = stage_start + stage.duration;
            if t < end {
                let progress = (t - stage_start).as_secs_f64() / stage.duration.as_secs_f64();
                return from + (stage.target - from) * progress;
            }
            from = stage.target;
            stage_start = end;
        }
        from
    }

    /// The highest target of the run.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }
}

/// One kind of user journey.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its name (thresholds and the report use it).
    pub name: String,
    /// Relative share of iterations.
    pub weight: u32,
    /// What it does.
    pub kind: FlowKind,
    /// Its pass/fail criteria.
    pub thresholds: Vec<Threshold>,
}

/// What a flow does in one iteration.
#[derive(Debug, Clone)]
pub enum FlowKind {
    /// HTTP requests in order on the user's keep-alive connection, with the user's cookies
    /// (the `SERVERID` sticky cookie included).
    Api {
        /// The requests.
        steps: Vec<ApiStep>,
    },
    /// A WebSocket session that stays open and echoes.
    WebSocket {
        /// Where to connect.
        path: String,
        /// How long the session stays open.
        session: Duration,
        /// Pause between two messages.
        message_interval: Duration,
    },
    /// An HLS player: the playlist of a track drawn from a Zipf distribution, then its first
    /// segments.
    Hls {
        /// The playlist path, `{track}` replaced by the track id.
        path: String,
        /// Track ids are 1..=tracks.
        tracks: u32,
        /// The Zipf exponent (about 1 for media popularity).
        zipf_exponent: f64,
        /// Segments fetched after the playlist.
        segments: u32,
    },
}

impl FlowKind {
    /// As written in the scenario.
    pub fn as_str(&self) -> &'static str {
        match self {
            FlowKind::Api { .. } => "api",
            FlowKind::WebSocket { .. } => "websocket",
            FlowKind::Hls { .. } => "hls",
        }
    }
}

/// One request of an API flow.
#[derive(Debug, Clone)]
pub struct ApiStep {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Origin-form target.
    pub path: String,
    /// Bytes of request body (sent with `Content-Length`).
    pub body_bytes: usize,
}

/// A fault injected during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// When, after the start.
    pub at: Duration,
    /// What happens.
    pub action: FaultAction,
    /// What it happens to: a backend server's name, or [`BALANCER`] for the balancer's own
    /// changes (`upgrade`, `reload`).
    pub server: String,
    /// How much a `delay` fault delays the server's link by, each way.
    pub by: Option<Duration>,
    /// The share of packets a `loss` fault drops on the server's link, each way, in percent.
    pub percent: Option<u8>,
}

impl Fault {
    /// `delay stream-server-2 by 200ms`, `stop backend-api-1`, `upgrade lb`.
    pub fn label(&self) -> String {
        let (action, server) = (self.action.as_str(), &self.server);
        match (self.by, self.percent) {
            (Some(by), _) => format!("{action} {server} by {}ms", by.as_millis()),
            (None, Some(percent)) => format!("{action} {server} {percent}%"),
            (None, None) => format!("{action} {server}"),
        }
    }
}

/// What a balancer fault names as its target.
pub const BALANCER: &str = "lb";

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Kill the server (as `incus stop --force`).
    Stop,
    /// Start it again.
    Start,
    /// Freeze the server (SIGSTOP): it keeps its connections and answers nothing.
    Hang,
    /// Let a frozen server go on (SIGCONT).
    Resume,
    /// Replace the balancer's binary (veza-lb: `upgrade`; HAProxy: a master-worker reload).
    Upgrade,
    /// Reload the balancer's configuration (veza-lb: SIGHUP; HAProxy: a master-worker
    /// reload, its only kind).
    Reload,
    /// Delay the server's link, each way, by the fault's `by` (a slow or distant server).
    Delay,
    /// Drop the fault's `percent` of the packets on the server's link, each way (a lossy
    /// network).
    Loss,
    /// Take the delay and the loss off the server's link.
    Heal,
    /// The server's DNS name resolves to another address from now on, where a new instance
    /// of it serves; the old one stops a few seconds later (a server moved by its name).
    Dns,
}

impl FaultAction {
    /// `stop`, `start`, `hang`, `resume`, `upgrade`, `reload`, `delay`, `loss`, `heal` or
    /// `dns`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Stop => "stop",
            FaultAction::Start => "start",
            FaultAction::Hang => "hang",
            FaultAction::Resume => "resume",
            FaultAction::Upgrade => "upgrade",
            FaultAction::Reload => "reload",
            FaultAction::Delay => "delay",
            FaultAction::Loss => "loss",
            FaultAction::Heal => "heal",
            FaultAction::Dns => "dns",
        }
    }

    /// Whether it acts on the balancer rather than on a backend server.
    pub fn on_balancer(self) -> bool {
        matches!(self, FaultAction::Upgrade | FaultAction::Reload)
    }
}

/// Why a scenario file was refused: every problem, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ScenarioError {
    /// Each problem, naming its field.
    pub problems: Vec<String>,
}

impl Scenario {
    /// Parses and validates a scenario; `duration` overrides the file's (`--duration`), and
    /// percentages in stages and faults are of the duration that applies.
    pub fn parse(text: &str, duration: Option<Duration>) -> Result<Scenario, ScenarioError> {
        file::parse(text, duration)
    }

    /// The backend servers the faults name, each once, in order of first mention.
    pub fn faulted_servers(&self) -> Vec<&str> {
        self.servers_where(|a| !a.on_balancer())
    }

    /// The servers that `action` faults name, each once, in order of first mention.
    pub fn servers_faulted_by(&self, action: FaultAction) -> Vec<&str> {
        self.servers_where(|a| a == action)
    }

    fn servers_where(&self, wanted: impl Fn(FaultAction) -> bool) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for fault in self.faults.iter().filter(|f| wanted(f.action)) {
            if !out.contains(&fault.server.as_str()) {
                out.push(&fault.server);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
duration = "1m"
[load]
executor = "arrival-rate"
stages = [{ duration = "10s", target = 10 }, { duration = "50%", target = 20 }]
[[flow]]
name = "api"
kind = "api"
steps = [{ path = "/a" }, { method = "POST", path = "/b", body_bytes = 10 }]
thresholds = ["p95 < 50ms"]
"#;

    #[test]
    fn parses_a_minimal_scenario_with_defaults() {
        let s = Scenario::parse(MINIMAL, None).unwrap();
        assert_eq!(s.duration, Duration::from_secs(60));
        assert_eq!(s.load.stages[1].duration, Duration::from_secs(30));
        assert_eq!(s.load.timeout, Duration::from_secs(10));
        assert_eq!(s.flows[0].weight, 1);
        let FlowKind::Api { steps } = &s.flows[0].kind else {
            panic!("api flow")
        };
        assert_eq!(steps[0].method, "GET");
        assert_eq!(steps[1].body_bytes, 10);
    }

    #[test]
    fn duration_override_rescales_percentages_and_checks_absolute_stages() {
        let s = Scenario::parse(MINIMAL, Some(Duration::from_secs(100))).unwrap();
        assert_eq!(s.load.stages[1].duration, Duration::from_secs(50));
        let err = Scenario::parse(MINIMAL, Some(Duration::from_secs(12))).unwrap_err();
        assert!(err.to_string().contains("load.stages: they last"), "{err}");
    }

    #[test]
    fn target_ramps_linearly_and_holds_the_last_value() {
        let s = Scenario::parse(MINIMAL, None).unwrap();
        let at = |secs: f64| s.load.target_at(Duration::from_secs_f64(secs));
        assert_eq!(at(0.0), 0.0);
        assert!((at(5.0) - 5.0).abs() < 1e-9);
        assert!((at(25.0) - 15.0).abs() < 1e-9);
        assert_eq!(at(45.0), 20.0);
        assert_eq!(at(1000.0), 20.0);
        assert_eq!(s.load.peak(), 20.0);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = r#"
name = ""
duration = "1m"
[load]
executor = "closed"
stages = [{ duration = "2 parsecs", target = -1 }]
[[flow]]
name = "x"
kind = "api"
tracks = 4
steps = [{ method = "get", path = "b" }]
thresholds = ["p95 < fast"]
[[flow]]
name = "x"
kind = "ftp"
[[fault]]
at = "150%"
stop = "a"
[[fault]]
at = "10s"
start = "b"
"#;
        let err = Scenario::parse(text, None).unwrap_err().to_string();
        for needle in [
            "load.executor",
            "load.stages[0].duration",
            "load.stages[0].target",
            "flow \"x\".tracks: only applies",
            "is not a method",
            "must start with /",
            "flow \"x\".thresholds",
            "the name is used twice",
            "flow \"x\".kind",
            "fault[0].at",
            "b is started at 10.0s but was not stopped",
            "name: must not be empty",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = MINIMAL.replace("[load]", "[load]\nrate = 4");
        let err = Scenario::parse(&text, None).unwrap_err().to_string();
        assert!(err.contains("unknown field `rate`"), "{err}");
    }

    #[test]
    fn faults_sort_by_time_and_pair_up() {
        let text = format!(
            "{MINIMAL}\n[[fault]]\nat = \"70%\"\nstart = \"s1\"\n[[fault]]\nat = \"30s\"\nstop = \"s1\"\n"
        );
        let s = Scenario::parse(&text, None).unwrap();
        assert_eq!(s.faults[0].action, FaultAction::Stop);
        assert_eq!(s.faults[1].at, Duration::from_secs(42));
        assert_eq!(s.faulted_servers(), ["s1"]);
    }

    #[test]
    fn servers_hang_and_resume_and_the_balancer_upgrades_and_reloads() {
        let text = format!(
            "{MINIMAL}\n[[fault]]\nat = \"10s\"\nhang = \"s1\"\n[[fault]]\nat = \"20s\"\n\
             resume = \"s1\"\n[[fault]]\nat = \"30s\"\nlb = \"upgrade\"\n[[fault]]\n\
             at = \"40s\"\nlb = \"reload\"\n"
        );
        let s = Scenario::parse(&text, None).unwrap();
        let faults: Vec<(FaultAction, &str)> = (s.faults.iter())
            .map(|f| (f.action, f.server.as_str()))
            .collect();
        assert_eq!(
            faults,
            [
                (FaultAction::Hang, "s1"),
                (FaultAction::Resume, "s1"),
                (FaultAction::Upgrade, BALANCER),
                (FaultAction::Reload, BALANCER),
            ]
        );
        assert_eq!(s.faulted_servers(), ["s1"], "the balancer is not a server");
    }

    #[test]
    fn links_are_delayed_by_an_amount_and_healed() {
        let text = format!(
            "{MINIMAL}\n[[fault]]\nat = \"10s\"\ndelay = \"s1\"\nby = \"150ms\"\n[[fault]]\n\
             at = \"20s\"\nheal = \"s1\"\n"
        );
        let s = Scenario::parse(&text, None).unwrap();
        assert_eq!(s.faults[0].action, FaultAction::Delay);
        assert_eq!(s.faults[0].by, Some(Duration::from_millis(150)));
        assert_eq!(s.faults[0].label(), "delay s1 by 150ms");
        assert_eq!(
            (s.faults[1].action, s.faults[1].by),
            (FaultAction::Heal, None)
        );
        let problems = |faults: &str| {
            Scenario::parse(&format!("{MINIMAL}\n{faults}"), None)
                .unwrap_err()
                .problems
        };
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\ndelay = \"s1\"\n"),
            ["fault[0]: delay needs by = \"DURATION\" (each way), like \"200ms\""]
        );
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\nstop = \"s1\"\nby = \"1s\"\n"),
            ["fault[0].by: only a delay has one"]
        );
        let lossy = Scenario::parse(
            &format!("{MINIMAL}\n[[fault]]\nat = \"1s\"\nloss = \"s1\"\npercent = 5\n"),
            None,
        )
        .unwrap();
        assert_eq!(lossy.faults[0].label(), "loss s1 5%");
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\nloss = \"s1\"\npercent = 0\n"),
            ["fault[0].percent: 1 to 100, the share of packets dropped each way"]
        );
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\nloss = \"s1\"\n"),
            ["fault[0]: loss needs percent = N (1 to 100)"]
        );
        assert_eq!(
            problems(
                "[[fault]]\nat = \"1s\"\nhang = \"s1\"\n[[fault]]\nat = \"2s\"\ndns = \"s1\"\n"
            ),
            [
                "fault: s1's name moves at 2.0s but it is hung then (a new instance takes the traffic of a running one)"
            ]
        );
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\nheal = \"s1\"\n"),
            ["fault: s1 is healed at 1.0s but its link was not delayed or lossy before"]
        );
    }

    #[test]
    fn fault_entries_name_one_action_and_servers_change_state_in_order() {
        let problems = |faults: &str| {
            Scenario::parse(&format!("{MINIMAL}\n{faults}"), None)
                .unwrap_err()
                .problems
        };
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\nstop = \"s1\"\nlb = \"upgrade\"\n"),
            [
                "fault[0]: needs exactly one of stop, start, hang, resume, delay, loss, heal or \
                 dns = \"SERVER\", or lb = \"upgrade\" or \"reload\""
            ]
        );
        assert_eq!(
            problems("[[fault]]\nat = \"1s\"\nlb = \"restart\"\n"),
            ["fault[0]: lb = \"restart\": the balancer's faults are \"upgrade\" and \"reload\""]
        );
        assert_eq!(
            problems(
                "[[fault]]\nat = \"1s\"\nhang = \"s1\"\n[[fault]]\nat = \"2s\"\nstop = \"s1\"\n\
                 [[fault]]\nat = \"3s\"\nresume = \"s2\"\n"
            ),
            [
                "fault: s1 is stopped at 2.0s but is already hung then",
                "fault: s2 is resumed at 3.0s but was not hung before"
            ]
        );
    }

    #[test]
    fn durations_and_spans() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10").is_err());
        assert_eq!(
            span("25%", Duration::from_secs(40)),
            Ok(Duration::from_secs(10))
        );
        assert!(span("101%", Duration::from_secs(40)).is_err());
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        for (name, text) in crate::SCENARIOS {
            let s = Scenario::parse(text, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.flows.is_empty());
            // They must also scale down to the 30 s the CI runs.
            Scenario::parse(text, Some(Duration::from_secs(30)))
                .unwrap_or_else(|e| panic!("{name} at 30s: {e}"));
        }
    }
}
