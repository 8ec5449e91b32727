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

use serde::Deserialize;

use crate::threshold::Threshold;

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
    /// Stop or start.
    pub action: FaultAction,
    /// Which backend server.
    pub server: String,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Kill the server (as `incus stop --force`).
    Stop,
    /// Start it again.
    Start,
}

impl FaultAction {
    /// `stop` or `start`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Stop => "stop",
            FaultAction::Start => "start",
        }
    }
}

/// Why a scenario file was refused: every problem, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ScenarioError {
    /// Each problem, naming its field.
    pub problems: Vec<String>,
}

// ----- the file as written -----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    description: String,
    duration: String,
    #[serde(default = "default_seed")]
    seed: u64,
    load: LoadFile,
    #[serde(rename = "flow")]
    flows: Vec<FlowFile>,
    #[serde(default)]
    thresholds: Vec<String>,
    #[serde(default, rename = "fault")]
    faults: Vec<FaultFile>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadFile {
    executor: String,
    #[serde(default)]
    start: f64,
    stages: Vec<StageFile>,
    max_vus: Option<usize>,
    timeout: Option<String>,
    think_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    duration: String,
    target: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    name: String,
    kind: String,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    thresholds: Vec<String>,
    // api
    steps: Option<Vec<StepFile>>,
    // websocket, hls
    path: Option<String>,
    session: Option<String>,
    message_interval: Option<String>,
    // hls
    tracks: Option<u32>,
    zipf_exponent: Option<f64>,
    segments: Option<u32>,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    #[serde(default = "default_method")]
    method: String,
    path: String,
    #[serde(default)]
    body_bytes: usize,
}

fn default_method() -> String {
    "GET".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    at: String,
    stop: Option<String>,
    start: Option<String>,
}

/// A point or a span of the run: `90s` or `40%` of its duration.
fn span(text: &str, total: Duration) -> Result<Duration, String> {
    if let Some(percent) = text.trim().strip_suffix('%') {
        let share: f64 = percent
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a percentage like 40%"))?;
        if !(0.0..=100.0).contains(&share) {
            return Err(format!("{text:?} must be between 0% and 100%"));
        }
        return Ok(total.mul_f64(share / 100.0));
    }
    parse_duration(text)
}

/// Parses `1s`, `500ms`, `2m`, `1.5s`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 5m or 1h"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Collects problems while building the validated scenario.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|e| self.0.push(format!("{field}: {e}")))
            .ok()
    }

    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }
}

impl Scenario {
    /// Parses and validates a scenario; `duration` overrides the file's (`--duration`), and
    /// percentages in stages and faults are of the duration that applies.
    pub fn parse(text: &str, duration: Option<Duration>) -> Result<Scenario, ScenarioError> {
        let file: File = toml::from_str(text).map_err(|e| ScenarioError {
            problems: vec![e.to_string().trim_end().to_owned()],
        })?;
        let mut problems = Problems::default();
        let duration = match duration {
            Some(d) => d,
            None => problems
                .check("duration", parse_duration(&file.duration))
                .unwrap_or(Duration::from_secs(1)),
        };
        let load = build_load(&file.load, duration, &mut problems);
        let flows = build_flows(&file.flows, &mut problems);
        let thresholds = file
            .thresholds
            .iter()
            .filter_map(|t| problems.check("thresholds", t.parse::<Threshold>()))
            .collect();
        let faults = build_faults(&file.faults, duration, &mut problems);
        if file.name.trim().is_empty() {
            problems.push("name: must not be empty".into());
        }
        if !problems.0.is_empty() {
            return Err(ScenarioError {
                problems: problems.0,
            });
        }
        Ok(Scenario {
            name: file.name,
            description: file.description,
            duration,
            seed: file.seed,
            load,
            flows,
            thresholds,
            faults,
        })
    }

    /// The servers the faults name, each once, in order of first mention.
    pub fn faulted_servers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for fault in &self.faults {
            if !out.contains(&fault.server.as_str()) {
                out.push(&fault.server);
            }
        }
        out
    }
}

fn build_load(file: &LoadFile, total: Duration, problems: &mut Problems) -> Load {
    let executor = match file.executor.as_str() {
        "arrival-rate" => Executor::ArrivalRate,
        "vus" => Executor::Vus,
        other => {
            problems.push(format!(
                "load.executor: {other:?} is not \"arrival-rate\" or \"vus\""
            ));
            Executor::ArrivalRate
        }
    };
    let mut stages = Vec::new();
    let mut sum = Duration::ZERO;
    for (i, stage) in file.stages.iter().enumerate() {
        let field = format!("load.stages[{i}]");
        let duration = problems.check(&format!("{field}.duration"), span(&stage.duration, total));
        if !(stage.target.is_finite() && stage.target >= 0.0) {
            problems.push(format!("{field}.target: must be a number >= 0"));
        }
        if let Some(duration) = duration {
            sum += duration;
            stages.push(Stage {
                duration,
                target: stage.target.max(0.0),
            });
        }
    }
    if stages.is_empty() {
        problems.push("load.stages: at least one stage is needed".into());
    }
    // A rounding margin for percentages that add up to 100%.
    if sum > total + Duration::from_millis(1) {
        problems.push(format!(
            "load.stages: they last {:.1}s but the run lasts {:.1}s (use percentages to scale with --duration)",
            sum.as_secs_f64(),
            total.as_secs_f64()
        ));
    }
    if !(file.start.is_finite() && file.start >= 0.0) {
        problems.push("load.start: must be a number >= 0".into());
    }
    let mut duration_field = |field: &str, value: &Option<String>, default: Duration| {
        value.as_deref().map_or(Some(default), |text| {
            problems.check(&format!("load.{field}"), parse_duration(text))
        })
    };
    let timeout = duration_field("timeout", &file.timeout, Duration::from_secs(10));
    let think_time = duration_field("think_time", &file.think_time, Duration::ZERO);
    let max_vus = file.max_vus.unwrap_or(1000);
    if max_vus == 0 {
        problems.push("load.max_vus: must be at least 1".into());
    }
    Load {
        executor,
        start: file.start.max(0.0),
        stages,
        max_vus: max_vus.max(1),
        timeout: timeout.unwrap_or(Duration::from_secs(10)),
        think_time: think_time.unwrap_or(Duration::ZERO),
    }
}

fn build_flows(files: &[FlowFile], problems: &mut Problems) -> Vec<Flow> {
    if files.is_empty() {
        problems.push("flow: at least one [[flow]] is needed".into());
    }
    let mut flows: Vec<Flow> = Vec::new();
    for file in files {
        let field = format!("flow {:?}", file.name);
        if flows.iter().any(|f| f.name == file.name) {
            problems.push(format!("{field}: the name is used twice"));
        }
        if file.name.is_empty() || file.name == "all" {
            problems.push(format!(
                "{field}: a flow needs a name, and \"all\" means every flow"
            ));
        }
        let thresholds = file
            .thresholds
            .iter()
            .filter_map(|t| problems.check(&format!("{field}.thresholds"), t.parse()))
            .collect();
        if let Some(kind) = build_kind(file, &field, problems) {
            flows.push(Flow {
                name: file.name.clone(),
                weight: file.weight,
                kind,
                thresholds,
            });
        }
    }
    if !files.is_empty() && files.iter().all(|f| f.weight == 0) {
        problems.push("flow: every weight is 0, nothing would run".into());
    }
    flows
}

fn build_kind(file: &FlowFile, field: &str, problems: &mut Problems) -> Option<FlowKind> {
    let only = |problems: &mut Problems, set: bool, key: &str, kinds: &str| {
        if set {
            problems.push(format!(
                "{field}.{key}: only applies to kind = {kinds}, not {:?}",
                file.kind
            ));
        }
    };
    let path = |problems: &mut Problems, default: &str| {
        let path = file.path.clone().unwrap_or_else(|| default.to_owned());
        if !path.starts_with('/') {
            problems.push(format!(
                "{field}.path: {path:?} must start with / (origin-form)"
            ));
        }
        path
    };
    match file.kind.as_str() {
        "api" => {
            only(problems, file.path.is_some(), "path", "websocket or hls");
            only(problems, file.session.is_some(), "session", "websocket");
            only(problems, file.tracks.is_some(), "tracks", "hls");
            let steps = file.steps.as_deref().unwrap_or_default();
            if steps.is_empty() {
                problems.push(format!(
                    "{field}.steps: an api flow needs at least one step"
                ));
            }
            for step in steps {
                let valid =
                    !step.method.is_empty() && step.method.bytes().all(|b| b.is_ascii_uppercase());
                if !valid {
                    problems.push(format!(
                        "{field}.steps: {:?} is not a method like GET or POST",
                        step.method
                    ));
                }
                if !step.path.starts_with('/') || step.path.contains(char::is_whitespace) {
                    problems.push(format!(
                        "{field}.steps: {:?} must start with / and hold no spaces",
                        step.path
                    ));
                }
            }
            let steps = steps
                .iter()
                .map(|s| ApiStep {
                    method: s.method.clone(),
                    path: s.path.clone(),
                    body_bytes: s.body_bytes,
                })
                .collect();
            Some(FlowKind::Api { steps })
        }
        "websocket" => {
            only(problems, file.steps.is_some(), "steps", "api");
            only(problems, file.tracks.is_some(), "tracks", "hls");
            let path = path(problems, "/ws");
            let mut duration = |key: &str, value: &Option<String>, default: u64| {
                value
                    .as_deref()
                    .map_or(Some(Duration::from_millis(default)), |text| {
                        problems.check(&format!("{field}.{key}"), parse_duration(text))
                    })
            };
            let session = duration("session", &file.session, 5000)?;
            let message_interval = duration("message_interval", &file.message_interval, 500)?;
            Some(FlowKind::WebSocket {
                path,
                session,
                message_interval,
            })
        }
        "hls" => {
            only(problems, file.steps.is_some(), "steps", "api");
            only(problems, file.session.is_some(), "session", "websocket");
            let path = path(problems, "/stream/{track}/index.m3u8");
            if !path.contains("{track}") {
                problems.push(format!("{field}.path: {path:?} must contain {{track}}"));
            }
            let tracks = file.tracks.unwrap_or(1000);
            if tracks == 0 {
                problems.push(format!("{field}.tracks: must be at least 1"));
            }
            let zipf_exponent = file.zipf_exponent.unwrap_or(1.0);
            if !(zipf_exponent.is_finite() && zipf_exponent >= 0.0) {
                problems.push(format!("{field}.zipf_exponent: must be a number >= 0"));
            }
            Some(FlowKind::Hls {
                path,
                tracks: tracks.max(1),
                zipf_exponent,
                segments: file.segments.unwrap_or(4),
            })
        }
        other => {
            problems.push(format!(
                "{field}.kind: {other:?} is not \"api\", \"websocket\" or \"hls\""
            ));
            None
        }
    }
}

fn build_faults(files: &[FaultFile], total: Duration, problems: &mut Problems) -> Vec<Fault> {
    let mut faults = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let field = format!("fault[{i}]");
        let at = problems.check(&format!("{field}.at"), span(&file.at, total));
        let (action, server) = match (&file.stop, &file.start) {
            (Some(server), None) => (FaultAction::Stop, server),
            (None, Some(server)) => (FaultAction::Start, server),
            _ => {
                problems.push(format!(
                    "{field}: needs exactly one of stop = \"SERVER\" or start = \"SERVER\""
                ));
                continue;
            }
        };
        if let Some(at) = at {
            if at >= total {
                problems.push(format!(
                    "{field}.at: {:.1}s is not within the run ({:.1}s)",
                    at.as_secs_f64(),
                    total.as_secs_f64()
                ));
            }
            faults.push(Fault {
                at,
                action,
                server: server.clone(),
            });
        }
    }
    faults.sort_by_key(|f| f.at);
    // A server must be running to be stopped and stopped to be started.
    let mut stopped: Vec<&str> = Vec::new();
    for fault in &faults {
        let is_stopped = stopped.contains(&fault.server.as_str());
        match fault.action {
            FaultAction::Stop if is_stopped => problems.push(format!(
                "fault: {} is stopped twice without a start between",
                fault.server
            )),
            FaultAction::Start if !is_stopped => problems.push(format!(
                "fault: {} is started at {:.1}s but was not stopped before",
                fault.server,
                fault.at.as_secs_f64()
            )),
            FaultAction::Stop => stopped.push(&fault.server),
            FaultAction::Start => stopped.retain(|s| *s != fault.server),
        }
    }
    faults
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
