//! The scenario file as written (serde structures) and its validation into the model, every
//! problem collected with the field it is about.

use std::time::Duration;

use serde::Deserialize;

use super::{
    ApiStep, BALANCER, Executor, Fault, FaultAction, Flow, FlowKind, Load, Scenario, ScenarioError,
    Stage,
};
use crate::threshold::Threshold;

/// Parses and validates a scenario (see [`Scenario::parse`]).
pub(super) fn parse(text: &str, duration: Option<Duration>) -> Result<Scenario, ScenarioError> {
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
    hang: Option<String>,
    resume: Option<String>,
    delay: Option<String>,
    heal: Option<String>,
    /// With `delay`: how much, each way (`200ms`).
    by: Option<String>,
    loss: Option<String>,
    dns: Option<String>,
    /// With `loss`: the share of packets dropped each way, in percent.
    percent: Option<u8>,
    lb: Option<String>,
}

impl FaultFile {
    /// The one action the entry names, and its target; a sentence otherwise.
    fn action(&self) -> Result<(FaultAction, String), String> {
        let named: Vec<(FaultAction, &String)> = [
            (FaultAction::Stop, &self.stop),
            (FaultAction::Start, &self.start),
            (FaultAction::Hang, &self.hang),
            (FaultAction::Resume, &self.resume),
            (FaultAction::Delay, &self.delay),
            (FaultAction::Loss, &self.loss),
            (FaultAction::Dns, &self.dns),
            (FaultAction::Heal, &self.heal),
        ]
        .into_iter()
        .filter_map(|(action, server)| server.as_ref().map(|s| (action, s)))
        .collect();
        let lb = match self.lb.as_deref() {
            None => None,
            Some("upgrade") => Some(FaultAction::Upgrade),
            Some("reload") => Some(FaultAction::Reload),
            Some(other) => {
                return Err(format!(
                    "lb = {other:?}: the balancer's faults are \"upgrade\" and \"reload\""
                ));
            }
        };
        match (named.as_slice(), lb) {
            ([(action, server)], None) => Ok((*action, (*server).clone())),
            ([], Some(action)) => Ok((action, BALANCER.to_owned())),
            _ => Err(
                "needs exactly one of stop, start, hang, resume, delay, loss, heal or \
                 dns = \"SERVER\", or lb = \"upgrade\" or \"reload\""
                    .to_owned(),
            ),
        }
    }
}

/// A point or a span of the run: `90s` or `40%` of its duration.
pub(super) fn span(text: &str, total: Duration) -> Result<Duration, String> {
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
        let (action, server) = match file.action() {
            Ok(named) => named,
            Err(why) => {
                problems.push(format!("{field}: {why}"));
                continue;
            }
        };
        let by = match (action, &file.by) {
            (FaultAction::Delay, Some(by)) => {
                problems.check(&format!("{field}.by"), parse_duration(by))
            }
            (FaultAction::Delay, None) => {
                problems.push(format!(
                    "{field}: delay needs by = \"DURATION\" (each way), like \"200ms\""
                ));
                continue;
            }
            (_, Some(_)) => {
                problems.push(format!("{field}.by: only a delay has one"));
                continue;
            }
            (_, None) => None,
        };
        let percent = match (action, file.percent) {
            (FaultAction::Loss, Some(p @ 1..=100)) => Some(p),
            (FaultAction::Loss, Some(_)) => {
                problems.push(format!(
                    "{field}.percent: 1 to 100, the share of packets dropped each way"
                ));
                continue;
            }
            (FaultAction::Loss, None) => {
                problems.push(format!("{field}: loss needs percent = N (1 to 100)"));
                continue;
            }
            (_, Some(_)) => {
                problems.push(format!("{field}.percent: only a loss has one"));
                continue;
            }
            (_, None) => None,
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
                server,
                by,
                percent,
            });
        }
    }
    faults.sort_by_key(|f| f.at);
    check_server_states(&faults, problems);
    faults
}

/// A server must be running to be stopped or frozen, stopped to be started, frozen to be
/// resumed, and delayed or lossy to be healed.
fn check_server_states(faults: &[Fault], problems: &mut Problems) {
    let mut stopped: Vec<&str> = Vec::new();
    let mut hung: Vec<&str> = Vec::new();
    let mut delayed: Vec<&str> = Vec::new();
    for fault in faults {
        let server = fault.server.as_str();
        let at = fault.at.as_secs_f64();
        let is_stopped = stopped.contains(&server);
        let is_hung = hung.contains(&server);
        match fault.action {
            FaultAction::Dns if is_stopped || is_hung => problems.push(format!(
                "fault: {server}'s name moves at {at:.1}s but it is {} then (a new instance \
                 takes the traffic of a running one)",
                if is_stopped { "stopped" } else { "hung" }
            )),
            FaultAction::Stop | FaultAction::Hang if is_stopped || is_hung => {
                problems.push(format!(
                    "fault: {server} is {} at {at:.1}s but is already {} then",
                    if fault.action == FaultAction::Stop {
                        "stopped"
                    } else {
                        "hung"
                    },
                    if is_stopped { "stopped" } else { "hung" }
                ));
            }
            FaultAction::Start if !is_stopped => problems.push(format!(
                "fault: {server} is started at {at:.1}s but was not stopped before"
            )),
            FaultAction::Resume if !is_hung => problems.push(format!(
                "fault: {server} is resumed at {at:.1}s but was not hung before"
            )),
            FaultAction::Heal if !delayed.contains(&server) => problems.push(format!(
                "fault: {server} is healed at {at:.1}s but its link was not delayed or lossy \
                 before"
            )),
            FaultAction::Stop => stopped.push(server),
            FaultAction::Hang => hung.push(server),
            FaultAction::Start => stopped.retain(|s| *s != server),
            FaultAction::Resume => hung.retain(|s| *s != server),
            // A second delay or loss changes the first.
            FaultAction::Delay | FaultAction::Loss => delayed.push(server),
            FaultAction::Heal => delayed.retain(|s| *s != server),
            FaultAction::Upgrade | FaultAction::Reload | FaultAction::Dns => {}
        }
    }
}
