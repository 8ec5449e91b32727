//! A run: the executor starting iterations on schedule, the recorder, the scraper, the
//! faults at their times, and the progress line, from the first iteration to the last
//! sample.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::client::{Client, Target};
use crate::draw::{Rng, Weighted};
use crate::faults::Faults;
use crate::flows::{Runnable, Sink, Vu};
use crate::progress::Progress;
use crate::record::{Recording, Sample};
use crate::scenario::{Executor, Fault, FlowKind, Scenario};
use crate::scrape::{self, ServerTraffic};

/// Where and how to run a scenario.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who is under test, for the report (`veza-lb`, `HAProxy 2.6`).
    pub label: String,
    /// Where the load goes.
    pub target: Target,
    /// The Prometheus endpoint to scrape for traffic per server (`http://host:port/metrics`),
    /// if any.
    pub metrics: Option<String>,
    /// Show progress (a bar on a terminal, a line every 5 s otherwise).
    pub progress: bool,
}

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultEvent {
    /// The fault.
    pub fault: Fault,
    /// When it was applied, seconds after the start.
    pub at: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// The scenario run.
    pub scenario: Scenario,
    /// Who was under test.
    pub label: String,
    /// The target URL's authority.
    pub target: String,
    /// Start, Unix seconds.
    pub started_unix: u64,
    /// From the first iteration to the last sample.
    pub elapsed: Duration,
    /// The samples, aggregated.
    pub recording: Recording,
    /// The faults applied.
    pub faults: Vec<FaultEvent>,
    /// Traffic per server, when a metrics endpoint was scraped.
    pub servers: Option<ServerTraffic>,
}

/// Why a run could not take place.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target does not accept connections.
    #[error("the target {target} is not reachable: {reason}")]
    Unreachable {
        /// Its address.
        target: String,
        /// The connection error.
        reason: String,
    },
}

/// Runs `scenario` against `options.target`, applying its faults through `faults`.
pub async fn run(
    scenario: &Scenario,
    options: &Options,
    faults: &mut dyn Faults,
) -> Result<Run, RunError> {
    preflight(&options.target).await?;
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let start = Instant::now();
    let deadline = start + scenario.duration;
    let (tx, rx) = mpsc::unbounded_channel();
    let live = Arc::new(Live::default());
    let recorder = tokio::spawn(record(rx, scenario.flows.len(), live.clone()));
    let scraper = options.metrics.as_ref().and_then(|url| {
        let (target, path) = split_url(url)?;
        Some(tokio::spawn(scrape::scrape(target, path, start, deadline)))
    });
    let progress = options
        .progress
        .then(|| Progress::start(scenario, &options.label, live.clone(), start));
    let executor = tokio::spawn(execute(
        scenario.clone(),
        options.target.clone(),
        Sink::new(tx, start),
        live.clone(),
        start,
    ));
    let mut events = Vec::new();
    for fault in &scenario.faults {
        tokio::time::sleep_until((start + fault.at).into()).await;
        let error = faults.apply(fault).await.err();
        events.push(FaultEvent {
            fault: fault.clone(),
            at: start.elapsed().as_secs_f64(),
            error,
        });
    }
    // A load that ramps down to zero before the end still lasts the whole duration.
    tokio::time::sleep_until(deadline.into()).await;
    let (iterations, dropped, active_vus) = executor.await.unwrap_or_default();
    // The executor dropped its sinks: the recorder ends once the last sample is in.
    let mut recording = recorder.await.unwrap_or_else(|_| Recording::new(0));
    let elapsed = start
        .elapsed()
        .min(scenario.duration.max(Duration::from_millis(1)));
    recording.finish(elapsed.max(Duration::from_millis(1)));
    recording.iterations = iterations;
    recording.dropped_iterations = dropped;
    recording.active_vus = active_vus;
    let servers = match scraper {
        Some(task) => task.await.ok(),
        None => None,
    };
    if let Some(progress) = progress {
        progress.finish();
    }
    Ok(Run {
        scenario: scenario.clone(),
        label: options.label.clone(),
        target: options.target.authority.clone(),
        started_unix,
        elapsed,
        recording,
        faults: events,
        servers,
    })
}

/// `http://host:port/path` into a target and a path.
fn split_url(url: &str) -> Option<(Target, String)> {
    let target = Target::parse(url).ok()?;
    let rest = url.split_once("://")?.1;
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    Some((target, path.to_owned()))
}

async fn preflight(target: &Target) -> Result<(), RunError> {
    let connect = tokio::net::TcpStream::connect(target.addr);
    let reason = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5s".into(),
    };
    Err(RunError::Unreachable {
        target: target.authority.clone(),
        reason,
    })
}

/// Counters the progress display reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests recorded.
    pub requests: AtomicU64,
    /// Failed ones.
    pub errors: AtomicU64,
    /// Virtual users busy now.
    pub active: AtomicUsize,
}

async fn record(
    mut rx: mpsc::UnboundedReceiver<Sample>,
    flows: usize,
    live: Arc<Live>,
) -> Recording {
    let mut recording = Recording::new(flows);
    while let Some(sample) = rx.recv().await {
        recording.record(&sample);
        live.requests.fetch_add(1, Ordering::Relaxed);
        if sample.error.is_some() {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    recording
}

/// How long in-flight iterations may go on after the deadline before they are cut.
fn drain_limit(scenario: &Scenario) -> Duration {
    let longest_session = scenario
        .flows
        .iter()
        .map(|f| match f.kind {
            FlowKind::WebSocket { session, .. } => session,
            _ => Duration::ZERO,
        })
        .max()
        .unwrap_or_default();
    longest_session + scenario.load.timeout + Duration::from_secs(1)
}

/// What the executor returns: iterations started, dropped, busy users per second.
type Executed = (u64, u64, Vec<u64>);

async fn execute(
    scenario: Scenario,
    target: Target,
    sink: Sink,
    live: Arc<Live>,
    start: Instant,
) -> Executed {
    let flows: Arc<Vec<Runnable>> = Arc::new(
        scenario
            .flows
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, f)| Runnable::new(i, f))
            .collect(),
    );
    let picker = Weighted::new(scenario.flows.iter().map(|f| f64::from(f.weight)));
    let context = Context {
        flows,
        target,
        sink,
        live,
        start,
        deadline: start + scenario.duration,
        timeout: scenario.load.timeout,
    };
    let mut tasks = JoinSet::new();
    let outcome = match scenario.load.executor {
        Executor::ArrivalRate => arrivals(&scenario, &context, &picker, &mut tasks).await,
        Executor::Vus => users(&scenario, &context, &picker, &mut tasks).await,
    };
    drop(context);
    let drained = tokio::time::timeout(drain_limit(&scenario), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    outcome
}

/// What every iteration task shares.
#[derive(Clone)]
struct Context {
    flows: Arc<Vec<Runnable>>,
    target: Target,
    sink: Sink,
    live: Arc<Live>,
    start: Instant,
    deadline: Instant,
    timeout: Duration,
}

impl Context {
    fn new_vu(&self, seed: u64, id: u64) -> Vu {
        Vu {
            client: Client::new(self.target.clone(), self.timeout),
            rng: Rng::new(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }
}

/// The open model: iterations start on schedule, `target(t)` per second, each on a free
/// virtual user; when all `max_vus` are busy the start is dropped and counted.
async fn arrivals(
    scenario: &Scenario,
    context: &Context,
    picker: &Weighted,
    tasks: &mut JoinSet<()>,
) -> Executed {
    let load = &scenario.load;
    let permits = Arc::new(Semaphore::new(load.max_vus));
    let idle: Arc<Mutex<Vec<Vu>>> = Arc::default();
    let mut rng = Rng::new(scenario.seed);
    let (mut started, mut dropped, mut created) = (0u64, 0u64, 0u64);
    let mut busy_per_second = Vec::new();
    // `due` is the schedule: the time the next iteration should start, in seconds.
    let mut due = 0.0f64;
    let total = scenario.duration.as_secs_f64();
    while due < total {
        let rate = load.target_at(Duration::from_secs_f64(due));
        if rate < 0.01 {
            // Nothing to start now: look again a little later.
            due += 0.05;
            continue;
        }
        tokio::time::sleep_until((context.start + Duration::from_secs_f64(due)).into()).await;
        sample_busy(
            &mut busy_per_second,
            context,
            load.max_vus - permits.available_permits(),
        );
        let flow = picker.pick(&mut rng);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                started += 1;
                let pooled = idle.lock().ok().and_then(|mut v| v.pop());
                let mut vu = pooled.unwrap_or_else(|| {
                    created += 1;
                    context.new_vu(scenario.seed, created)
                });
                let (context, idle) = (context.clone(), idle.clone());
                tasks.spawn(async move {
                    context.live.active.fetch_add(1, Ordering::Relaxed);
                    context.flows[flow]
                        .iterate(&mut vu, &context.sink, context.timeout)
                        .await;
                    context.live.active.fetch_sub(1, Ordering::Relaxed);
                    if let Ok(mut idle) = idle.lock() {
                        idle.push(vu);
                    }
                    drop(permit);
                });
            }
            Err(_) => dropped += 1,
        }
        // Reap finished iterations so the set stays small.
        while tasks.try_join_next().is_some() {}
        due += 1.0 / rate;
    }
    (started, dropped, busy_per_second)
}

/// The closed model: `target(t)` virtual users, each running iterations back to back.
async fn users(
    scenario: &Scenario,
    context: &Context,
    picker: &Weighted,
    tasks: &mut JoinSet<()>,
) -> Executed {
    let wanted = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let mut spawned = 0usize;
    let mut busy_per_second = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < context.deadline {
        tick.tick().await;
        let target = scenario.load.target_at(context.start.elapsed());
        // Rounded half up, so a ramp to 1 user starts one halfway through.
        let target = (target + 0.5) as usize;
        wanted.store(target, Ordering::Relaxed);
        while spawned < target {
            spawned += 1;
            let index = spawned;
            let mut vu = context.new_vu(scenario.seed, index as u64);
            let (context, wanted, started) = (context.clone(), wanted.clone(), started.clone());
            let picker = picker.clone();
            let think = scenario.load.think_time;
            tasks.spawn(async move {
                while Instant::now() < context.deadline {
                    if wanted.load(Ordering::Relaxed) < index {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    started.fetch_add(1, Ordering::Relaxed);
                    let flow = picker.pick(&mut vu.rng);
                    context.live.active.fetch_add(1, Ordering::Relaxed);
                    context.flows[flow]
                        .iterate(&mut vu, &context.sink, context.timeout)
                        .await;
                    context.live.active.fetch_sub(1, Ordering::Relaxed);
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            });
        }
        sample_busy(
            &mut busy_per_second,
            context,
            context.live.active.load(Ordering::Relaxed),
        );
    }
    (started.load(Ordering::Relaxed), 0, busy_per_second)
}

/// Records the busy users once per second of the run.
fn sample_busy(per_second: &mut Vec<u64>, context: &Context, busy: usize) {
    let second = usize::try_from(context.start.elapsed().as_secs()).unwrap_or(usize::MAX);
    while per_second.len() <= second && per_second.len() < 24 * 3600 {
        per_second.push(busy as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_metrics_urls() {
        let (target, path) = split_url("http://127.0.0.1:9101/metrics").unwrap();
        assert_eq!(target.authority, "127.0.0.1:9101");
        assert_eq!(path, "/metrics");
        assert_eq!(split_url("http://127.0.0.1:9101").unwrap().1, "/");
        assert!(split_url("ftp://x").is_none());
    }
}
