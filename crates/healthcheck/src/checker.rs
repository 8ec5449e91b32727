//! Periodic checks of a changing set of targets, one task per target.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use lb_core::CheckResult;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::probe::{Check, HttpCheck};

/// What identifies a target across [`Checker::set_targets`] calls: the proxy uses
/// `(pool, server)` names, an embedder whatever names its dependencies.
pub trait TargetKey: Clone + Eq + Hash + Send + Sync + 'static {}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> TargetKey for K {}

/// Intervals are clamped to at least this, so a zero interval cannot spin a core.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One server or dependency to check periodically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<K> {
    /// Identity, reported back in every [`CheckEvent`].
    pub key: K,
    /// Where to connect.
    pub addr: SocketAddr,
    /// What to check.
    pub check: Check,
    /// Time between the starts of two checks (at least [`MIN_INTERVAL`]). A check that takes
    /// longer delays the next one; checks of one target never overlap.
    pub interval: Duration,
}

impl<K> Target<K> {
    /// An HTTP-checked target.
    pub fn http(key: K, addr: SocketAddr, check: HttpCheck, interval: Duration) -> Self {
        Self {
            key,
            addr,
            check: Check::Http(check),
            interval,
        }
    }

    /// A target checked by a TCP connect only.
    pub fn tcp(key: K, addr: SocketAddr, timeout: Duration, interval: Duration) -> Self {
        Self {
            key,
            addr,
            check: Check::Tcp { timeout },
            interval,
        }
    }
}

/// One finished check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckEvent<K> {
    /// The target's key.
    pub key: K,
    /// The address that was checked.
    pub addr: SocketAddr,
    /// The verdict, for lb-core's state machine.
    pub result: CheckResult,
    /// HAProxy's `info` for logs (see [`crate::Outcome`]).
    pub info: Option<String>,
    /// When the check finished.
    pub at: Instant,
}

/// When a target's first check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstProbe {
    /// At an offset within the first interval derived from the key, so that many targets
    /// with the same interval are not all checked at the same instant (HAProxy spreads its
    /// first checks across the interval, too).
    #[default]
    Spread,
    /// At once: for callers that need a verdict as soon as possible.
    Immediate,
}

/// What [`Checker::set_targets`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChanges<K> {
    /// Keys that were not checked before, in the order given.
    pub added: Vec<K>,
    /// Keys no longer checked, in no particular order.
    pub removed: Vec<K>,
    /// Keys whose address, check or interval changed, in no particular order: restarted as
    /// if new.
    pub changed: Vec<K>,
    /// Targets left exactly as they were, schedule included.
    pub unchanged: usize,
}

struct Running<K> {
    target: Target<K>,
    task: AbortHandle,
}

/// Checks a set of targets periodically and concurrently, sending every result to a channel.
///
/// Each target has its own task, so a target that hangs until its timeout never delays
/// another's checks. Dropping the `Checker` stops every check. When the receiving side of
/// the channel is dropped, checks stop too; when it is full, the target whose result is
/// waiting pauses until there is room.
pub struct Checker<K: TargetKey> {
    runtime: Handle,
    sink: mpsc::Sender<CheckEvent<K>>,
    first_probe: FirstProbe,
    running: HashMap<K, Running<K>>,
}

impl<K: TargetKey> Checker<K> {
    /// A checker with no targets yet, sending results to `sink`; first checks are spread.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: the checker spawns its tasks on the runtime it was created in
    /// (so [`Checker::set_targets`] may then be called from any thread).
    #[must_use]
    pub fn new(sink: mpsc::Sender<CheckEvent<K>>) -> Self {
        Self::with_first_probe(sink, FirstProbe::Spread)
    }

    /// [`Checker::new`], choosing when new targets get their first check.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[must_use]
    pub fn with_first_probe(sink: mpsc::Sender<CheckEvent<K>>, first_probe: FirstProbe) -> Self {
        Self {
            runtime: Handle::current(),
            sink,
            first_probe,
            running: HashMap::new(),
        }
    }

    /// Makes `targets` the checked set. Targets equal to a running one keep their schedule,
    /// targets no longer listed stop, new or changed ones start (per [`FirstProbe`]). With
    /// duplicate keys, the last one wins.
    ///
    /// A check of a removed target that was finishing at this moment may still deliver one
    /// last event: consumers should ignore events for keys they no longer know.
    pub fn set_targets(
        &mut self,
        targets: impl IntoIterator<Item = Target<K>>,
    ) -> TargetChanges<K> {
        // Keyed for the diff, but started in the caller's order so reports are predictable.
        let mut wanted: HashMap<K, Target<K>> = HashMap::new();
        let mut order = Vec::new();
        for target in targets {
            if wanted.insert(target.key.clone(), target.clone()).is_none() {
                order.push(target.key);
            }
        }
        let mut changes = TargetChanges {
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
        };
        self.running.retain(|key, running| match wanted.get(key) {
            Some(target) if *target == running.target => {
                wanted.remove(key);
                changes.unchanged += 1;
                true
            }
            Some(_) => {
                running.task.abort();
                changes.changed.push(key.clone());
                false
            }
            None => {
                running.task.abort();
                changes.removed.push(key.clone());
                false
            }
        });
        for key in order {
            let Some(target) = wanted.remove(&key) else {
                continue;
            };
            if !changes.changed.contains(&key) {
                changes.added.push(key.clone());
            }
            let delay = first_delay(&key, target.interval, self.first_probe);
            let task = self
                .runtime
                .spawn(check_periodically(target.clone(), delay, self.sink.clone()))
                .abort_handle();
            self.running.insert(key, Running { target, task });
        }
        changes
    }

    /// The targets being checked, in no particular order.
    pub fn targets(&self) -> impl Iterator<Item = &Target<K>> {
        self.running.values().map(|r| &r.target)
    }

    /// How many targets are checked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether no target is checked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl<K: TargetKey> Drop for Checker<K> {
    fn drop(&mut self) {
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

impl<K: TargetKey> std::fmt::Debug for Checker<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("first_probe", &self.first_probe)
            .field("targets", &self.running.len())
            .finish_non_exhaustive()
    }
}

async fn check_periodically<K: TargetKey>(
    target: Target<K>,
    first_delay: Duration,
    sink: mpsc::Sender<CheckEvent<K>>,
) {
    let interval = target.interval.max(MIN_INTERVAL);
    let mut next = Instant::now() + first_delay;
    loop {
        tokio::time::sleep_until(next).await;
        let started = Instant::now();
        let outcome = target.check.run(target.addr).await;
        let event = CheckEvent {
            key: target.key.clone(),
            addr: target.addr,
            result: outcome.result,
            info: outcome.info,
            at: Instant::now(),
        };
        if sink.send(event).await.is_err() {
            return;
        }
        // Missed starts are not made up for: a slow check or a full channel pushes the
        // schedule back instead of firing a burst of checks.
        next = (started + interval).max(Instant::now());
    }
}

/// The delay before a target's first check: stable for a key (lb-core's specified key hash,
/// never `DefaultHasher`), anywhere in `[0, interval)`.
pub(crate) fn first_delay<K: Hash>(key: &K, interval: Duration, first: FirstProbe) -> Duration {
    match first {
        FirstProbe::Immediate => Duration::ZERO,
        FirstProbe::Spread => {
            let mut hasher = lb_core::hash::KeyHasher::default();
            key.hash(&mut hasher);
            let span = u64::try_from(interval.max(MIN_INTERVAL).as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(hasher.finish() % span)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_first_probe_has_no_delay() {
        let d = first_delay(&"a", Duration::from_secs(5), FirstProbe::Immediate);
        assert_eq!(d, Duration::ZERO);
    }

    #[test]
    fn spread_is_stable_and_within_the_interval() {
        let interval = Duration::from_secs(5);
        let key = ("api_pool", "backend-api-1");
        let d = first_delay(&key, interval, FirstProbe::Spread);
        assert!(d < interval);
        assert_eq!(d, first_delay(&key, interval, FirstProbe::Spread));
    }

    #[test]
    fn spread_covers_the_interval() {
        let interval = Duration::from_secs(10);
        let mut buckets = [0u32; 10];
        for i in 0..200 {
            let key = ("pool", format!("server-{i}"));
            let d = first_delay(&key, interval, FirstProbe::Spread);
            buckets[usize::try_from(d.as_secs()).unwrap()] += 1;
        }
        // 20 expected per one-second bucket; a clump would leave some nearly empty.
        assert!(buckets.iter().all(|&n| n >= 5), "{buckets:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn set_targets_reports_added_removed_changed_and_unchanged() {
        let (tx, _rx) = mpsc::channel(16);
        let mut checker = Checker::new(tx);
        // Never contacted: the test never yields, and spread delays at a 1h interval keep the
        // first checks far in the (paused) future anyway.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let t = |k: &'static str| Target::tcp(k, addr, Duration::from_secs(1), hour);
        let first = checker.set_targets([t("b"), t("a"), t("b")]);
        assert_eq!(first.added, ["b", "a"], "in order, duplicates once");
        assert_eq!(first.unchanged, 0);

        let mut moved = t("b");
        moved.addr = "127.0.0.1:2".parse().unwrap();
        let second = checker.set_targets([t("a"), moved, t("c")]);
        assert_eq!(second.added, ["c"]);
        assert_eq!(second.changed, ["b"]);
        assert!(second.removed.is_empty());
        assert_eq!(second.unchanged, 1);

        let third = checker.set_targets([t("c")]);
        let mut removed = third.removed.clone();
        removed.sort_unstable();
        assert_eq!(removed, ["a", "b"]);
        assert_eq!(third.unchanged, 1);
        assert_eq!(checker.len(), 1);
    }
}
