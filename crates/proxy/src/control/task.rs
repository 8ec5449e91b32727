//! The control task: the single owner of every pool's `lb_core::PoolState`.
//!
//! Health check results, passive observations from the data plane and operator commands
//! arrive here as messages. Each is fed to lb-core; whatever it decides is acted on (a server
//! marked DOWN has its sessions shut when the pool says `shutdown-sessions`) and a new routing
//! view is published for the hot path. Nothing here runs per request.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use lb_core::{
    CheckResult, DownReason, PoolSpec, PoolState, ServerId, ServerSpec, SlowStart, StickyCookie,
    Transition,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::admin::{AdminCommand, AdminError, WeightChange};
use crate::config::{self, Config, OnMarkedDown};
use crate::counters::Counters;
use crate::data::upstream::Upstream;
use crate::observe::stats::{PoolStats, ServerStats, StatsSnapshot};
use crate::routing::{PoolSlot, PoolView};

/// Messages to the control task.
#[derive(Debug)]
pub(crate) enum Control {
    /// A connection attempt to a server, made for live traffic, failed or (after a failure)
    /// succeeded again.
    Traffic {
        pool: usize,
        server: ServerId,
        connected: bool,
    },
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

struct PoolControl {
    slot: Arc<PoolSlot>,
    state: PoolState,
    settings: Arc<config::Pool>,
    servers: Vec<Arc<Upstream>>,
    active: bool,
    availability: Cell<Availability>,
}

/// HAProxy's BACKEND `status`, `chkdown`, `lastchg` and `downtime`: a pool is UP while at
/// least one server takes new traffic.
#[derive(Debug, Clone, Copy)]
struct Availability {
    up: bool,
    chkdown: u64,
    last_change: Instant,
    down_since: Option<Instant>,
    downtime: Duration,
}

impl Availability {
    fn of(state: &PoolState) -> bool {
        state
            .servers()
            .any(|(_, s)| !s.is_removed() && s.weight() > 0 && s.health().takes_new_traffic())
    }

    fn update(&mut self, up: bool, now: Instant) {
        if up == self.up {
            return;
        }
        self.up = up;
        self.last_change = now;
        if up {
            if let Some(since) = self.down_since.take() {
                self.downtime += now.saturating_duration_since(since);
            }
        } else {
            self.chkdown += 1;
            self.down_since = Some(now);
        }
    }

    fn downtime(&self, now: Instant) -> Duration {
        self.downtime
            + self
                .down_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

impl PoolControl {
    fn publish(&self, now: Instant) {
        self.slot.view.store(Arc::new(PoolView {
            settings: self.settings.clone(),
            router: self.state.router(now.into_std()),
            servers: self.servers.clone().into(),
        }));
        // Every change of a pool ends here, so this sees each one.
        let mut availability = self.availability.get();
        availability.update(Availability::of(&self.state), now);
        self.availability.set(availability);
    }
}

/// Handle the data plane uses to reach the control task.
#[derive(Debug, Clone)]
pub(crate) struct ControlHandle {
    tx: mpsc::UnboundedSender<Control>,
}

impl ControlHandle {
    pub(crate) fn send(&self, msg: Control) {
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

/// Key of a health-check target: pool id and server slot.
pub(crate) type CheckKey = (usize, ServerId);

pub(crate) struct ControlTask {
    pools: Vec<PoolControl>,
    by_name: HashMap<String, usize>,
    rx: mpsc::UnboundedReceiver<Control>,
    checker: healthcheck::Checker<CheckKey>,
    checks: mpsc::Receiver<healthcheck::CheckEvent<CheckKey>>,
    started: Instant,
    /// Servers a reload took out of service (removed, moved to another address, or in a
    /// removed pool), by deadline: their requests and tunnels may finish until then, after
    /// which their sessions are shut (`shutdown_grace`).
    retired: Vec<Retired>,
}

struct Retired {
    deadline: Instant,
    pool: Arc<str>,
    upstream: Arc<Upstream>,
}

fn pool_spec(pool: &config::Pool) -> PoolSpec {
    let health = pool.health.as_ref();
    PoolSpec {
        balance: match pool.balance {
            config::Balance::RoundRobin => lb_core::Balance::RoundRobin,
            config::Balance::JumpHash => lb_core::Balance::JumpHash,
        },
        sticky: pool.cookie.as_ref().and_then(|c| {
            // Validation has checked the name; a failure here would be a validator bug, and
            // the pool then simply runs without stickiness.
            let mut sticky = StickyCookie::new(&c.name).ok()?;
            sticky.insert = c.insert;
            sticky.indirect = c.indirect;
            sticky.nocache = c.nocache;
            sticky.httponly = c.httponly;
            sticky.secure = c.secure;
            Some(sticky)
        }),
        hash_key: pool.hash_key.as_ref().map(|k| match k {
            config::HashKey::Path { depth } => lb_core::HashKeyRule::Path { depth: *depth },
            config::HashKey::Query { param } => lb_core::HashKeyRule::Query {
                param: param.clone(),
            },
            config::HashKey::Header { name } => lb_core::HashKeyRule::Header {
                name: name.to_ascii_lowercase(),
            },
        }),
        slowstart: pool.slowstart.and_then(SlowStart::new),
        rise: health.map_or(2, |h| h.rise),
        fall: health.map_or(3, |h| h.fall),
        error_limit: pool.passive_error_limit,
        servers: pool
            .servers
            .iter()
            .map(|s| ServerSpec {
                name: s.name.clone(),
                weight: s.weight,
                checked: s.check && health.is_some(),
            })
            .collect(),
    }
}

fn check_targets(pools: &[PoolControl]) -> Vec<healthcheck::Target<CheckKey>> {
    let mut targets = Vec::new();
    for (id, pool) in pools.iter().enumerate().filter(|(_, p)| p.active) {
        let Some(health) = &pool.settings.health else {
            continue;
        };
        let check = healthcheck::HttpCheck {
            method: health.method.parse().unwrap_or(http::Method::GET),
            path: health.path.clone(),
            host: health.host.clone(),
            timeout: health.timeout,
            expect_status: health.expect_status.clone(),
        };
        for (slot, server) in pool.state.servers() {
            let configured = pool.settings.server(server.name());
            if server.is_removed() || !configured.is_some_and(|s| s.check) {
                continue;
            }
            targets.push(healthcheck::Target::http(
                (id, slot),
                pool.servers[slot.index()].addr,
                check.clone(),
                health.interval,
            ));
        }
    }
    targets
}

impl ControlTask {
    /// Builds the pools of `config` and the task that will own them. Returns the pool slots
    /// (by name) for the frontends to route to.
    pub(crate) fn new(config: &Config) -> (Self, ControlHandle, Vec<Arc<PoolSlot>>) {
        let now = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let (check_tx, checks) = mpsc::channel(1024);
        let mut task = ControlTask {
            pools: Vec::new(),
            by_name: HashMap::new(),
            rx,
            checker: healthcheck::Checker::new(check_tx),
            checks,
            started: now,
            retired: Vec::new(),
        };
        for pool in &config.pools {
            task.add_pool(pool, now);
        }
        task.checker.set_targets(check_targets(&task.pools));
        let slots = task.pools.iter().map(|p| p.slot.clone()).collect();
        (task, ControlHandle { tx }, slots)
    }

    fn add_pool(&mut self, pool: &config::Pool, now: Instant) {
        let id = self.pools.len();
        let state = PoolState::new(pool_spec(pool), now.into_std());
        let servers: Vec<_> = pool
            .servers
            .iter()
            .map(|s| Arc::new(Upstream::new(s.name.clone(), s.addr)))
            .collect();
        let settings = Arc::new(pool.clone());
        let view = PoolView {
            settings: settings.clone(),
            router: state.router(now.into_std()),
            servers: servers.clone().into(),
        };
        let slot = Arc::new(PoolSlot {
            id,
            name: pool.name.as_str().into(),
            view: ArcSwap::from_pointee(view),
            counters: Arc::new(Counters::default()),
        });
        self.by_name.insert(pool.name.clone(), id);
        let up = Availability::of(&state);
        self.pools.push(PoolControl {
            slot,
            state,
            settings,
            servers,
            active: true,
            availability: Cell::new(Availability {
                up,
                chkdown: 0,
                last_change: now,
                down_since: (!up).then_some(now),
                downtime: Duration::ZERO,
            }),
        });
    }

    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            let next_rebuild = self
                .pools
                .iter()
                .filter_map(|p| p.state.next_rebuild(now.into_std()))
                .min()
                .map(Instant::from_std);
            let next_retirement = self.retired.iter().map(|r| r.deadline).min();
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return,
                },
                Some(event) = self.checks.recv() => self.on_check(event.key, event.result),
                () = sleep_until(next_rebuild) => {
                    // Every active pool, not only those still ramping: a ramp that has
                    // just ended needs its final, full-weight snapshot too. This runs at
                    // most once per slow-start step.
                    let now = Instant::now();
                    for pool in self.pools.iter().filter(|p| p.active) {
                        pool.publish(now);
                    }
                }
                () = sleep_until(next_retirement) => self.close_retired(Instant::now()),
            }
        }
    }

    fn handle(&mut self, msg: Control) {
        match msg {
            Control::Traffic {
                pool,
                server,
                connected,
            } => {
                let now = Instant::now();
                let Some(p) = self.pools.get_mut(pool) else {
                    return;
                };
                if let Ok(Some(t)) = p.state.observe_traffic(server, connected, now.into_std()) {
                    self.on_transition(pool, server, t, None);
                }
            }
            Control::Admin { command, reply } => {
                let _ = reply.send(self.admin(command));
            }
            Control::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Control::Reload { config, reply } => {
                self.reload(&config);
                let _ = reply.send(self.pools.iter().map(|p| p.slot.clone()).collect());
            }
        }
    }

    fn on_check(&mut self, (pool, server): CheckKey, result: CheckResult) {
        let now = Instant::now();
        let Some(p) = self.pools.get_mut(pool) else {
            return;
        };
        // A result for a server removed by a reload can still arrive: it is ignored.
        if let Ok(Some(t)) = p.state.observe_check(server, result, now.into_std()) {
            self.on_transition(pool, server, t, Some(result));
        }
    }

    fn on_transition(
        &mut self,
        pool: usize,
        server: ServerId,
        transition: Transition,
        check: Option<CheckResult>,
    ) {
        let now = Instant::now();
        let p = &self.pools[pool];
        let upstream = &p.servers[server.index()];
        let left = p.state.servers_in_service();
        let sessions = Counters::get(&upstream.counters.cur_sessions);
        match transition {
            Transition::MarkedDown(reason) => {
                let why = match reason {
                    DownReason::Check(r) => healthcheck::describe(&r),
                    DownReason::Passive { consecutive_errors } => {
                        format!(
                            "Health analyze, {consecutive_errors} consecutive connection errors"
                        )
                    }
                    DownReason::Maintenance => "maintenance".to_owned(),
                };
                tracing::warn!(
                    target: "health",
                    "Server {}/{} is DOWN, reason: {why}. {left} active and 0 backup servers left. {sessions} sessions active, 0 requeued, 0 remaining in queue.",
                    p.slot.name, upstream.name
                );
                if left == 0 {
                    tracing::error!(target: "health", "backend {} has no server available!", p.slot.name);
                }
                if p.settings.on_marked_down == OnMarkedDown::ShutdownSessions
                    || reason == DownReason::Maintenance
                {
                    upstream.shutdown_sessions();
                } else {
                    upstream.close_idle();
                }
            }
            Transition::MarkedUp => {
                let why = check.map_or_else(
                    || "maintenance ended".to_owned(),
                    |r| healthcheck::describe(&r),
                );
                tracing::info!(
                    target: "health",
                    "Server {}/{} is UP, reason: {why}. {left} active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
                    p.slot.name, upstream.name
                );
            }
        }
        p.publish(now);
    }

    fn find(&self, pool: &str, server: &str) -> Result<(usize, ServerId), AdminError> {
        let id = *self.by_name.get(pool).ok_or(AdminError::NoSuchPool)?;
        let server = self.pools[id]
            .state
            .find(server)
            .ok_or(AdminError::NoSuchServer)?;
        Ok((id, server))
    }

    fn admin(&mut self, command: AdminCommand) -> Result<(), AdminError> {
        let now = Instant::now();
        match command {
            AdminCommand::SetState {
                pool,
                server,
                state,
            } => {
                let (id, slot) = self.find(&pool, &server)?;
                let transition = self.pools[id]
                    .state
                    .set_admin(slot, state, now.into_std())
                    .map_err(|e| AdminError::Invalid(e.to_string()))?;
                tracing::info!(target: "health", "Server {pool}/{server} admin state set to {state:?} by the runtime API.");
                match transition {
                    Some(t) => self.on_transition(id, slot, t, None),
                    None => self.pools[id].publish(now),
                }
            }
            AdminCommand::SetWeight {
                pool,
                server,
                weight,
            } => {
                let (id, slot) = self.find(&pool, &server)?;
                let p = &mut self.pools[id];
                let weight = match weight {
                    WeightChange::Absolute(w) => w,
                    WeightChange::Percent(pct) => {
                        let initial = p
                            .state
                            .server(slot)
                            .map_or(0, |s| u32::from(s.initial_weight()));
                        (initial * pct).div_ceil(100)
                    }
                };
                p.state
                    .set_weight(slot, weight)
                    .map_err(|e| AdminError::Invalid(e.to_string()))?;
                p.publish(now);
            }
        }
        Ok(())
    }

    fn reload(&mut self, config: &Config) {
        let now = Instant::now();
        let before = self.in_service();
        for p in &mut self.pools {
            p.active = config.pool(&p.slot.name).is_some();
        }
        for pool in &config.pools {
            let Some(&id) = self.by_name.get(&pool.name) else {
                self.add_pool(pool, now);
                continue;
            };
            let p = &mut self.pools[id];
            let changes = p.state.reconfigure(pool_spec(pool), now.into_std());
            for removed in &changes.removed {
                // Requests under way keep their Arc; new ones cannot pick a tombstone.
                p.servers[removed.index()].close_idle();
            }
            let mut servers = Vec::with_capacity(p.state.servers().count());
            for (slot, state) in p.state.servers() {
                let configured = pool.server(state.name());
                let existing = p.servers.get(slot.index());
                let keep = match (existing, configured) {
                    (Some(up), Some(cfg)) => *up.name == *cfg.name && up.addr == cfg.addr,
                    (Some(_), None) => true, // tombstone keeps its runtime for draining requests
                    (None, _) => false,
                };
                let upstream = match (keep, existing, configured) {
                    (true, Some(up), _) => up.clone(),
                    (_, _, Some(cfg)) => Arc::new(Upstream::new(cfg.name.clone(), cfg.addr)),
                    (_, _, None) => Arc::new(Upstream::new(state.name().to_owned(), unspecified())),
                };
                servers.push(upstream);
            }
            p.servers = servers;
            p.settings = Arc::new(pool.clone());
            p.active = true;
            p.publish(now);
        }
        self.checker.set_targets(check_targets(&self.pools));
        self.retire(before, now + config.global.shutdown_grace);
    }

    /// Every upstream that new requests can reach, with its pool's name.
    fn in_service(&self) -> Vec<(Arc<str>, Arc<Upstream>)> {
        self.pools
            .iter()
            .filter(|p| p.active)
            .flat_map(|p| {
                p.state
                    .servers()
                    .filter(|(_, s)| !s.is_removed())
                    .map(|(slot, _)| (p.slot.name.clone(), p.servers[slot.index()].clone()))
            })
            .collect()
    }

    /// Schedules the sessions of upstreams that were in service `before` a reload and no
    /// longer are to be shut at `deadline`.
    fn retire(&mut self, before: Vec<(Arc<str>, Arc<Upstream>)>, deadline: Instant) {
        let after = self.in_service();
        for (pool, upstream) in before {
            if after.iter().any(|(_, u)| Arc::ptr_eq(u, &upstream)) {
                continue;
            }
            upstream.close_idle();
            self.retired.push(Retired {
                deadline,
                pool,
                upstream,
            });
        }
    }

    /// Shuts the sessions of retired upstreams whose grace is over, unless a later reload
    /// brought them back.
    fn close_retired(&mut self, now: Instant) {
        let (due, waiting) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|r| r.deadline <= now);
        self.retired = waiting;
        let in_service = self.in_service();
        for r in due {
            if in_service.iter().any(|(_, u)| Arc::ptr_eq(u, &r.upstream)) {
                continue;
            }
            let sessions = Counters::get(&r.upstream.counters.cur_sessions);
            if sessions > 0 {
                tracing::info!(
                    target: "health",
                    "Server {}/{} was removed: closing its {sessions} remaining sessions, shutdown_grace is over.",
                    r.pool, r.upstream.name
                );
            }
            r.upstream.shutdown_sessions();
        }
    }

    fn snapshot(&self) -> StatsSnapshot {
        let now = Instant::now();
        let std_now = now.into_std();
        let pools = self
            .pools
            .iter()
            .filter(|p| p.active)
            .map(|p| PoolStats {
                name: p.slot.name.to_string(),
                settings: p.settings.clone(),
                counters: p.slot.counters.clone(),
                servers_in_service: p.state.servers_in_service(),
                up: p.availability.get().up,
                chkdown: p.availability.get().chkdown,
                last_change: now.saturating_duration_since(p.availability.get().last_change),
                downtime: p.availability.get().downtime(now),
                servers: p
                    .state
                    .servers()
                    .filter(|(_, s)| !s.is_removed())
                    .map(|(id, s)| {
                        let upstream = &p.servers[id.index()];
                        let health = s.health();
                        ServerStats {
                            id,
                            name: s.name().to_owned(),
                            addr: upstream.addr,
                            counters: upstream.counters.clone(),
                            status: health.status(),
                            weight: s.weight(),
                            effective_weight: p.state.effective_weight(id, std_now),
                            admin: health.admin(),
                            checked: health.checked(),
                            health: health.health(),
                            rise: health.rise(),
                            fall: health.fall(),
                            chkfail: health.chkfail(),
                            chkdown: health.chkdown(),
                            last_change: std_now.saturating_duration_since(health.last_change()),
                            downtime: health.downtime(std_now),
                            throttle: p.state.throttle(id, std_now),
                            last_check: health.last_check(),
                            up: health.is_up(),
                        }
                    })
                    .collect(),
            })
            .collect();
        StatsSnapshot {
            uptime: now.saturating_duration_since(self.started),
            pools,
        }
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
