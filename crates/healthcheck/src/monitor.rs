//! A [`Checker`] plus lb-core's [`Health`] per target: the embedding story for services that
//! watch their own dependencies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lb_core::{CheckResult, Health, Transition};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::checker::{CheckEvent, Checker, FirstProbe, Target, TargetKey};

/// Changes waiting for [`Monitor::next_change`] beyond this are dropped (the state behind
/// [`Monitor::status`] stays exact); transitions are rare, so only a consumer that stopped
/// reading loses any.
pub const CHANGE_BACKLOG: usize = 1024;

const EVENT_BACKLOG: usize = 64;

/// A target went DOWN or came back UP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<K> {
    /// Which target.
    pub key: K,
    /// Its address.
    pub addr: SocketAddr,
    /// `MarkedDown` (with the check that caused it) or `MarkedUp`.
    pub transition: Transition,
    /// HAProxy's status string right after the change (`DOWN`, `UP`).
    pub status: String,
    /// The check that caused the change.
    pub result: CheckResult,
    /// HAProxy's `info` for that check.
    pub info: Option<String>,
    /// When that check finished.
    pub at: Instant,
}

impl<K> Change<K> {
    /// Whether the target is now UP.
    #[must_use]
    pub fn is_up(&self) -> bool {
        matches!(self.transition, Transition::MarkedUp)
    }
}

type States<K> = Arc<Mutex<HashMap<K, Health>>>;

/// A cheap, cloneable read-only view of a [`Monitor`]'s health states, for a readiness
/// endpoint or a metrics exporter running beside the loop that consumes changes.
#[derive(Debug)]
pub struct HealthView<K> {
    states: States<K>,
}

impl<K> Clone for HealthView<K> {
    fn clone(&self) -> Self {
        Self {
            states: Arc::clone(&self.states),
        }
    }
}

impl<K: TargetKey> HealthView<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Health>> {
        // The map is only ever updated by whole `Health` operations, so a panic elsewhere
        // cannot have left it half-written.
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// HAProxy's status string (`UP`, `UP 2/3`, `DOWN`, `DOWN 1/2`), or `None` for a key that
    /// is not monitored.
    #[must_use]
    pub fn status(&self, key: &K) -> Option<String> {
        self.lock().get(key).map(Health::status)
    }

    /// Whether the target is UP; `false` for a key that is not monitored.
    #[must_use]
    pub fn is_up(&self, key: &K) -> bool {
        self.lock().get(key).is_some_and(Health::is_up)
    }

    /// The target's latest check result, if it has been checked.
    #[must_use]
    pub fn last_check(&self, key: &K) -> Option<CheckResult> {
        self.lock().get(key).and_then(Health::last_check)
    }

    /// A copy of the target's whole health state (counters included).
    #[must_use]
    pub fn health(&self, key: &K) -> Option<Health> {
        self.lock().get(key).cloned()
    }
}

/// Watches targets with HAProxy's `rise`/`fall` semantics and reports when they go DOWN or
/// come back UP.
///
/// Targets start UP but one failure away from DOWN (`UP 1/fall`), as HAProxy's servers do,
/// and are checked at once rather than spread. Checks run on a background task, so
/// [`Monitor::status`] is current whether or not [`Monitor::next_change`] is being awaited.
/// Dropping the monitor stops everything.
pub struct Monitor<K: TargetKey> {
    checker: Checker<K>,
    view: HealthView<K>,
    changes: mpsc::Receiver<Change<K>>,
    pump: JoinHandle<()>,
    rise: u32,
    fall: u32,
}

impl<K: TargetKey> Monitor<K> {
    /// Starts checking `targets`: `rise` passed checks bring a DOWN target UP, `fall` failed
    /// ones take an UP target DOWN (both at least 1).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[must_use]
    pub fn start(targets: impl IntoIterator<Item = Target<K>>, rise: u32, fall: u32) -> Self {
        let (event_tx, event_rx) = mpsc::channel(EVENT_BACKLOG);
        let (change_tx, changes) = mpsc::channel(CHANGE_BACKLOG);
        let view = HealthView {
            states: Arc::new(Mutex::new(HashMap::new())),
        };
        let pump = tokio::spawn(apply_events(event_rx, view.clone(), change_tx));
        let mut monitor = Self {
            checker: Checker::with_first_probe(event_tx, FirstProbe::Immediate),
            view,
            changes,
            pump,
            rise,
            fall,
        };
        monitor.set_targets(targets);
        monitor
    }

    /// Makes `targets` the monitored set: targets already monitored under the same key keep
    /// their health (even if their address changed), others start fresh, missing ones are
    /// forgotten.
    pub fn set_targets(&mut self, targets: impl IntoIterator<Item = Target<K>>) {
        let targets: Vec<Target<K>> = targets.into_iter().collect();
        {
            let now = Instant::now().into_std();
            let mut states = self.view.lock();
            states.retain(|key, _| targets.iter().any(|t| t.key == *key));
            for target in &targets {
                states
                    .entry(target.key.clone())
                    .or_insert_with(|| Health::new(self.rise, self.fall, true, 0, now));
            }
        }
        self.checker.set_targets(targets);
    }

    /// Waits for the next target to go DOWN or come back UP. Returns `None` only once the
    /// background task has ended (the runtime is shutting down).
    pub async fn next_change(&mut self) -> Option<Change<K>> {
        self.changes.recv().await
    }

    /// HAProxy's status string for a target, `None` if it is not monitored.
    #[must_use]
    pub fn status(&self, key: &K) -> Option<String> {
        self.view.status(key)
    }

    /// Whether a target is UP; `false` if it is not monitored.
    #[must_use]
    pub fn is_up(&self, key: &K) -> bool {
        self.view.is_up(key)
    }

    /// A read-only view to share with other tasks.
    #[must_use]
    pub fn view(&self) -> HealthView<K> {
        self.view.clone()
    }

    /// The underlying checker (to inspect its targets).
    #[must_use]
    pub fn checker(&self) -> &Checker<K> {
        &self.checker
    }
}

impl<K: TargetKey> Drop for Monitor<K> {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl<K: TargetKey> std::fmt::Debug for Monitor<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("checker", &self.checker)
            .field("rise", &self.rise)
            .field("fall", &self.fall)
            .finish_non_exhaustive()
    }
}

async fn apply_events<K: TargetKey>(
    mut events: mpsc::Receiver<CheckEvent<K>>,
    view: HealthView<K>,
    changes: mpsc::Sender<Change<K>>,
) {
    while let Some(event) = events.recv().await {
        let change = {
            let mut states = view.lock();
            // Unknown keys are late results of targets removed meanwhile.
            let Some(health) = states.get_mut(&event.key) else {
                continue;
            };
            let Some(transition) = health.observe_check(event.result, event.at.into_std()) else {
                continue;
            };
            Change {
                status: health.status(),
                key: event.key,
                addr: event.addr,
                transition,
                result: event.result,
                info: event.info,
                at: event.at,
            }
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = changes.try_send(change) {
            return;
        }
    }
}
