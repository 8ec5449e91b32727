//! The control task: the thin tokio shell around [`ControlCore`].
//!
//! It feeds the core what arrives (operator commands, stats requests and reloads through
//! [`ControlHandle`], passive reports from the data plane, health-check results from the
//! checker), with the time it arrived; runs the core's actions; and sleeps until the core's
//! next deadline. Nothing here runs per request, and nothing here decides anything.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::admin::{AdminCommand, AdminError};
use super::core::{Action, CheckKey, ControlCore};
use crate::config::Config;
use crate::data::passive::{PassiveReports, TrafficReport};
use crate::data::routing::PoolSlot;
use crate::stats::StatsSnapshot;

/// Requests to the control task.
#[derive(Debug)]
pub(crate) enum Control {
    /// An operator command.
    Admin {
        command: AdminCommand,
        reply: oneshot::Sender<Result<(), AdminError>>,
    },
    /// A consistent snapshot of every pool's state, for `show stat` and metrics.
    Stats {
        reply: oneshot::Sender<StatsSnapshot>,
    },
    /// Apply a new, already validated configuration.
    Reload {
        config: Arc<Config>,
        reply: oneshot::Sender<Vec<Arc<PoolSlot>>>,
    },
}

/// What the rest of the proxy reaches the control task through.
#[derive(Debug, Clone)]
pub(crate) struct ControlHandle {
    tx: mpsc::UnboundedSender<Control>,
}

impl ControlHandle {
    fn send(&self, msg: Control) {
        // Only fails when the control task is gone, i.e. the proxy is stopping.
        let _ = self.tx.send(msg);
    }

    pub(crate) async fn admin(&self, command: AdminCommand) -> Result<(), AdminError> {
        let (reply, rx) = oneshot::channel();
        self.send(Control::Admin { command, reply });
        rx.await.unwrap_or(Err(AdminError::Stopped))
    }

    pub(crate) async fn stats(&self) -> Option<StatsSnapshot> {
        let (reply, rx) = oneshot::channel();
        self.send(Control::Stats { reply });
        rx.await.ok()
    }

    pub(crate) async fn reload(&self, config: Arc<Config>) -> Option<Vec<Arc<PoolSlot>>> {
        let (reply, rx) = oneshot::channel();
        self.send(Control::Reload { config, reply });
        rx.await.ok()
    }
}

/// The task; [`ControlTask::run`] it on the runtime.
pub(crate) struct ControlTask {
    core: ControlCore,
    rx: mpsc::UnboundedReceiver<Control>,
    passive: mpsc::UnboundedReceiver<TrafficReport>,
    checker: healthcheck::Checker<CheckKey>,
    checks: mpsc::Receiver<healthcheck::CheckEvent<CheckKey>>,
}

/// The instant the core is told: tokio's clock, so paused-time tests drive it too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl ControlTask {
    /// Builds the pools of `config` and the task that will own them. Returns the handle, the
    /// data plane's passive-report sender, and the pool slots for the frontends to route to.
    pub(crate) fn new(
        config: &Config,
    ) -> (Self, ControlHandle, PassiveReports, Vec<Arc<PoolSlot>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (reports, passive) = PassiveReports::channel();
        let (check_tx, checks) = mpsc::channel(1024);
        let (core, slots) = ControlCore::new(config, now());
        let task = ControlTask {
            core,
            rx,
            passive,
            checker: healthcheck::Checker::new(check_tx),
            checks,
        };
        (task, ControlHandle { tx }, reports, slots)
    }

    pub(crate) async fn run(mut self) {
        loop {
            while let Some(action) = self.core.poll_action() {
                match action {
                    Action::SetCheckTargets(targets) => {
                        self.checker.set_targets(targets);
                    }
                }
            }
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return,
                },
                Some(report) = self.passive.recv() => self.core.on_traffic(report, now()),
                Some(event) = self.checks.recv() => {
                    self.core.on_check(event.key, event.result, now());
                }
                () = sleep_until(deadline) => self.core.handle_timeout(now()),
            }
        }
    }

    fn handle(&mut self, msg: Control) {
        match msg {
            Control::Admin { command, reply } => {
                let _ = reply.send(self.core.admin(command, now()));
            }
            Control::Stats { reply } => {
                let _ = reply.send(self.core.snapshot(now()));
            }
            Control::Reload { config, reply } => {
                let _ = reply.send(self.core.reload(&config, now()));
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
