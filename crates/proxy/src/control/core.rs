//! The control plane as a state machine, without I/O (in the style of quinn-proto): it owns
//! every pool's `lb_core::PoolState`, takes events with the time they happen at, publishes
//! routing snapshots, and says when it next needs to be woken ([`ControlCore::poll_timeout`])
//! and what the shell must do ([`ControlCore::poll_action`]).
//!
//! Nothing here reads a clock, sleeps or touches a socket: every `now` is an argument, so the
//! check schedule, fall/rise, slow-start ramps, drains and `shutdown_grace` are unit-tested in
//! microseconds with made-up instants. The tokio task around it is `control::task`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lb_core::{
    AdminState, CheckResult, DownReason, PoolSpec, PoolState, ServerId, ServerSpec, SlowStart,
    StickyCookie, Transition,
};

use super::admin::{AdminCommand, AdminError, WeightChange};
use crate::config::{self, Config, OnMarkedDown};
use crate::counters::Counters;
use crate::data::passive::TrafficReport;
use crate::data::routing::{PoolSlot, PoolView};
use crate::data::upstream::Upstream;
use crate::stats::{PoolStats, ServerStats, StatsSnapshot};

/// Key of a health-check target: pool id and server slot.
pub(crate) type CheckKey = (usize, ServerId);

/// What the shell must do for the core.
#[derive(Debug)]
pub(crate) enum Action {
    /// Check exactly these targets from now on (the checker keeps the schedule of targets
    /// that did not change).
    SetCheckTargets(Vec<healthcheck::Target<CheckKey>>),
}

/// The control plane's state. See the module documentation.
pub(crate) struct ControlCore {
    pools: Vec<PoolControl>,
    by_name: HashMap<String, usize>,
    started: Instant,
    /// Servers a reload took out of service (removed, moved to another address, or in a
    /// removed pool), by deadline: their requests and tunnels may finish until then, after
    /// which their sessions are shut (`shutdown_grace`).
    retired: Vec<Retired>,
    actions: VecDeque<Action>,
}

struct PoolControl {
    slot: Arc<PoolSlot>,
    state: PoolState,
    settings: Arc<config::Pool>,
    servers: Vec<Arc<Upstream>>,
    active: bool,
    availability: Availability,
    /// When the snapshot must be rebuilt because a slow-start ramp moved on. Set when a
    /// snapshot is published, so events arriving more often than a ramp step (the stats
    /// ticker asks every second) never postpone it.
    rebuild_at: Option<Instant>,
}

struct Retired {
    deadline: Instant,
    pool: Arc<str>,
    upstream: Arc<Upstream>,
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
    fn new(state: &PoolState, now: Instant) -> Self {
        let up = Self::of(state);
        Self {
            up,
            chkdown: 0,
            last_change: now,
            down_since: (!up).then_some(now),
            downtime: Duration::ZERO,
        }
    }

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
    /// Publishes a new routing snapshot for `now`. Every change of a pool ends here, so this
    /// also sees each change of its availability.
    fn publish(&mut self, now: Instant) {
        self.slot.view.store(Arc::new(PoolView::new(
            self.settings.clone(),
            self.state.router(now),
            self.servers.clone().into(),
        )));
        self.rebuild_at = self.state.next_rebuild(now);
        self.availability.update(Availability::of(&self.state), now);
    }
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
        hash_balance_factor: pool.hash_balance_factor,
    }
}

impl ControlCore {
    /// Builds the pools of `config`. Returns the pool slots for the frontends to route to;
    /// the first action sets the health-check targets.
    pub(crate) fn new(config: &Config, now: Instant) -> (Self, Vec<Arc<PoolSlot>>) {
        let mut core = ControlCore {
            pools: Vec::new(),
            by_name: HashMap::new(),
            started: now,
            retired: Vec::new(),
            actions: VecDeque::new(),
        };
        for pool in &config.pools {
            core.add_pool(pool, now);
        }
        core.schedule_checks();
        let slots = core_slots(&core.pools);
        (core, slots)
    }

    /// The next thing the shell must do, if any.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run: a slow-start step or the
    /// end of a retired server's grace. `None`: only events wake the core.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let rebuilds = self
            .pools
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| p.rebuild_at);
        let retirements = self.retired.iter().map(|r| r.deadline);
        rebuilds.chain(retirements).min()
    }

    /// Runs whatever is due at `now`: snapshots of ramping pools, and the sessions of
    /// retired servers whose grace is over.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for pool in self.pools.iter_mut().filter(|p| p.active) {
            if pool.rebuild_at.is_some_and(|at| at <= now) {
                pool.publish(now);
            }
        }
        if self.retired.iter().any(|r| r.deadline <= now) {
            self.close_retired(now);
        }
    }

    /// A connection attempt made for live traffic failed or (after a failure) succeeded.
    pub(crate) fn on_traffic(&mut self, report: TrafficReport, now: Instant) {
        let Some(p) = self.pools.get_mut(report.pool) else {
            return;
        };
        if let Ok(Some(t)) = p
            .state
            .observe_traffic(report.server, report.connected, now)
        {
            self.on_transition(report.pool, report.server, t, None, now);
        }
    }

    /// A health check finished.
    pub(crate) fn on_check(&mut self, (pool, server): CheckKey, result: CheckResult, now: Instant) {
        let Some(p) = self.pools.get_mut(pool) else {
            return;
        };
        // A result for a server removed by a reload can still arrive: it is ignored.
        if let Ok(Some(t)) = p.state.observe_check(server, result, now) {
            self.on_transition(pool, server, t, Some(result), now);
        }
    }

    fn add_pool(&mut self, pool: &config::Pool, now: Instant) {
        let id = self.pools.len();
        let state = PoolState::new(pool_spec(pool), now);
        let servers: Vec<_> = pool
            .servers
            .iter()
            .map(|s| Arc::new(Upstream::new(s.name.clone(), s.addr, s.maxconn)))
            .collect();
        let settings = Arc::new(pool.clone());
        let view = PoolView::new(settings.clone(), state.router(now), servers.clone().into());
        let slot = Arc::new(PoolSlot {
            id,
            name: pool.name.as_str().into(),
            view: ArcSwap::from_pointee(view),
            counters: Arc::new(Counters::default()),
            queue: Arc::default(),
        });
        self.by_name.insert(pool.name.clone(), id);
        self.pools.push(PoolControl {
            slot,
            availability: Availability::new(&state, now),
            rebuild_at: state.next_rebuild(now),
            state,
            settings,
            servers,
            active: true,
        });
    }

    fn schedule_checks(&mut self) {
        let mut targets = Vec::new();
        for (id, pool) in self.pools.iter().enumerate().filter(|(_, p)| p.active) {
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
        self.actions.push_back(Action::SetCheckTargets(targets));
    }

    fn on_transition(
        &mut self,
        pool: usize,
        server: ServerId,
        transition: Transition,
        check: Option<CheckResult>,
        now: Instant,
    ) {
        let p = &mut self.pools[pool];
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

    /// Sets a server's admin state and acts on what changes.
    fn set_admin(
        &mut self,
        pool: &str,
        server: &str,
        state: AdminState,
        now: Instant,
    ) -> Result<(), AdminError> {
        let (id, slot) = self.find(pool, server)?;
        let transition = self.pools[id]
            .state
            .set_admin(slot, state, now)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        match transition {
            Some(t) => self.on_transition(id, slot, t, None, now),
            None => self.pools[id].publish(now),
        }
        Ok(())
    }

    /// Applies an operator command.
    pub(crate) fn admin(&mut self, command: AdminCommand, now: Instant) -> Result<(), AdminError> {
        match command {
            AdminCommand::SetState {
                pool,
                server,
                state,
            } => {
                self.set_admin(&pool, &server, state, now)?;
                tracing::info!(target: "health", "Server {pool}/{server} admin state set to {state:?} by the runtime API.");
            }
            AdminCommand::Discovered {
                pool,
                server,
                state,
                reason,
            } => {
                self.set_admin(&pool, &server, state, now)?;
                // HAProxy's words for the same changes.
                if state == AdminState::Maint {
                    tracing::warn!(target: "health", "Server {pool}/{server} is going DOWN for maintenance ({reason}).");
                } else {
                    tracing::info!(target: "health", "Server {pool}/{server} is leaving maintenance ({reason}).");
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

    /// Applies a new, validated configuration: pools keep their servers' state, counters and
    /// connections. Returns every pool slot (removed pools too: requests under way keep them).
    pub(crate) fn reload(&mut self, config: &Config, now: Instant) -> Vec<Arc<PoolSlot>> {
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
            // Removed servers' upstreams are retired below with every other one out of
            // service: requests under way keep their Arc; new ones cannot pick a tombstone.
            p.state.reconfigure(pool_spec(pool), now);
            p.servers = reconciled_servers(&p.state, &p.servers, pool);
            p.settings = Arc::new(pool.clone());
            p.active = true;
            p.publish(now);
        }
        self.schedule_checks();
        self.retire(before, now + config.global.shutdown_grace);
        core_slots(&self.pools)
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
        for (_, upstream) in &after {
            upstream.reinstate();
        }
        for (pool, upstream) in before {
            if after.iter().any(|(_, u)| Arc::ptr_eq(u, &upstream)) {
                continue;
            }
            upstream.retire();
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
            // This upstream's own connections: counters are the server's, shared with the
            // upstream at its new address when it moved.
            let open = r.upstream.shutdown_sessions();
            let moved = in_service
                .iter()
                .any(|(pool, u)| *pool == r.pool && u.name == r.upstream.name);
            if open > 0 && moved {
                tracing::info!(
                    target: "health",
                    "Server {}/{} moved from {}: closed the {open} connections still open to the old address, shutdown_grace is over.",
                    r.pool, r.upstream.name, r.upstream.addr
                );
            } else if open > 0 {
                tracing::info!(
                    target: "health",
                    "Server {}/{} was removed: closed its {open} remaining connections, shutdown_grace is over.",
                    r.pool, r.upstream.name
                );
            }
        }
    }

    /// A consistent picture of every active pool at `now`, for `show stat` and metrics.
    pub(crate) fn snapshot(&self, now: Instant) -> StatsSnapshot {
        let pools = self
            .pools
            .iter()
            .filter(|p| p.active)
            .map(|p| PoolStats {
                name: p.slot.name.to_string(),
                settings: p.settings.clone(),
                counters: p.slot.counters.clone(),
                servers_in_service: p.state.servers_in_service(),
                up: p.availability.up,
                chkdown: p.availability.chkdown,
                last_change: now.saturating_duration_since(p.availability.last_change),
                downtime: p.availability.downtime(now),
                queued: p.slot.queue.current(),
                servers: p
                    .state
                    .servers()
                    .filter(|(_, s)| !s.is_removed())
                    .map(|(id, s)| server_stats(p, id, s, now))
                    .collect(),
            })
            .collect();
        StatsSnapshot {
            uptime: now.saturating_duration_since(self.started),
            pools,
        }
    }
}

fn core_slots(pools: &[PoolControl]) -> Vec<Arc<PoolSlot>> {
    pools.iter().map(|p| p.slot.clone()).collect()
}

/// The servers of a reconfigured pool, by slot: a server keeps its runtime (connections,
/// counters, kill switch) when its name and address stay, and its counters when only its
/// address changed; tombstones keep theirs so their requests can finish.
fn reconciled_servers(
    state: &PoolState,
    current: &[Arc<Upstream>],
    pool: &config::Pool,
) -> Vec<Arc<Upstream>> {
    state
        .servers()
        .map(|(slot, server)| {
            let configured = pool.server(server.name());
            match (current.get(slot.index()), configured) {
                (Some(up), Some(cfg)) if *up.name == *cfg.name && up.addr == cfg.addr => {
                    up.limit.set_maxconn(cfg.maxconn);
                    up.clone()
                }
                (Some(up), None) => up.clone(),
                (Some(up), Some(cfg)) if *up.name == *cfg.name => {
                    Arc::new(up.moved(cfg.addr, cfg.maxconn))
                }
                (_, Some(cfg)) => Arc::new(Upstream::new(cfg.name.clone(), cfg.addr, cfg.maxconn)),
                (None, None) => {
                    Arc::new(Upstream::new(server.name().to_owned(), unspecified(), None))
                }
            }
        })
        .collect()
}

fn server_stats(
    p: &PoolControl,
    id: ServerId,
    s: &lb_core::ServerState,
    now: Instant,
) -> ServerStats {
    let upstream = &p.servers[id.index()];
    let health = s.health();
    ServerStats {
        id,
        name: s.name().to_owned(),
        addr: upstream.addr,
        counters: upstream.counters.clone(),
        status: health.status(),
        weight: s.weight(),
        effective_weight: p.state.effective_weight(id, now),
        admin: health.admin(),
        checked: health.checked(),
        health: health.health(),
        rise: health.rise(),
        fall: health.fall(),
        chkfail: health.chkfail(),
        chkdown: health.chkdown(),
        last_change: now.saturating_duration_since(health.last_change()),
        downtime: health.downtime(now),
        throttle: p.state.throttle(id, now),
        last_check: health.last_check(),
        up: health.is_up(),
        maxconn: Some(upstream.limit.maxconn()).filter(|&n| n > 0),
        queued: upstream.limit.queue.current(),
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

#[cfg(test)]
mod tests;
