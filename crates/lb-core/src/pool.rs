//! A pool of servers: the mutable control-plane state, and the immutable routing snapshot
//! requests are routed with.
//!
//! [`PoolState`] is owned by one task (the one that receives check results, passive
//! observations and operator commands). Each change that affects routing makes it produce a
//! new [`Router`], which the proxy publishes with an atomic pointer swap; requests read the
//! current `Router` without taking a lock. Time enters when a `Router` is built (slow-start
//! weights are evaluated at that `now`), so a pick never reads a clock.
//!
//! Server slots ([`ServerId`]) are stable for the life of a process: a reload keeps each
//! server that stays in its slot, puts new servers in free slots or at the end, and leaves a
//! removed server's slot as a tombstone that is never usable. For jump hash, whose buckets are
//! slots, this means removing a server on reload moves only that server's keys. A restart
//! starts from the configuration's order again; to retire a server without moving other keys
//! across restarts, keep its entry with `weight = 0`, which also keeps its slot unusable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::cookie::{ClientCookie, StickyCookie};
use crate::hash::{jump, key_hash, rehash};
use crate::health::{AdminState, CheckResult, Health, Transition};
use crate::key::HashKeyRule;
use crate::slowstart::{SlowStart, WEIGHT_SCALE};
use crate::wrr;

mod loads;

pub use loads::Loads;

/// Highest weight a server may have (HAProxy's limit).
pub const MAX_WEIGHT: u16 = 256;

/// Re-hash attempts before jump hash falls back to scanning slots. The scan is for nearly
/// empty pools (1 usable slot of 256 misses 64 re-hashes 78% of the time); with half the
/// slots usable, 64 attempts all miss with probability 2^-64.
const MAX_REHASH: u32 = 64;

/// A server's slot in its pool: the index into per-server tables in the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub u16);

impl ServerId {
    /// The slot as an index.
    #[must_use]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// How a pool spreads requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round-robin (with the sticky cookie when configured).
    RoundRobin,
    /// Jump consistent hash of the request key over the server slots; weights are not
    /// used, except that weight 0 makes a server unusable.
    JumpHash,
}

/// One server as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Unique name within the pool; also its sticky cookie value.
    pub name: String,
    /// Weight in `0..=MAX_WEIGHT`.
    pub weight: u16,
    /// Whether active health checks run for it.
    pub checked: bool,
}

/// A pool as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// Balancing algorithm.
    pub balance: Balance,
    /// Sticky cookie (round-robin pools).
    pub sticky: Option<StickyCookie>,
    /// Hash key (jump-hash pools). Without one, or when a request has no key, the pool
    /// falls back to round-robin.
    pub hash_key: Option<HashKeyRule>,
    /// Slow start for servers coming back UP.
    pub slowstart: Option<SlowStart>,
    /// Consecutive passed checks to come UP.
    pub rise: u32,
    /// Consecutive failed checks to go DOWN.
    pub fall: u32,
    /// Consecutive connection failures on live traffic that mark a server DOWN (0: off).
    pub error_limit: u32,
    /// Servers, in slot order.
    pub servers: Vec<ServerSpec>,
    /// Consistent hashing with bounded loads (HAProxy's `hash-balance-factor`, in percent,
    /// above 100): a key stays on its server while that server's in-flight load is under
    /// `factor` times its share of the pool's, else it moves along its re-hash sequence.
    /// `None`: plain jump hash.
    pub hash_balance_factor: Option<u32>,
}

/// Errors from operator commands on a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// No server in that slot (or it was removed).
    NoSuchServer(ServerId),
    /// Weight above [`MAX_WEIGHT`].
    WeightOutOfRange(u32),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchServer(id) => write!(f, "no server in slot {}", id.0),
            Self::WeightOutOfRange(w) => {
                write!(f, "weight {w} is out of range: use 0 to {MAX_WEIGHT}")
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// The control-plane state of one server.
#[derive(Debug, Clone)]
pub struct ServerState {
    name: String,
    initial_weight: u16,
    weight: u16,
    health: Health,
    ramp_since: Option<Instant>,
    removed: bool,
}

impl ServerState {
    /// The server's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current user weight (as set by configuration or `set weight`).
    #[must_use]
    pub fn weight(&self) -> u16 {
        self.weight
    }

    /// The weight the configuration gave it (`set weight P/S N%` is relative to this).
    #[must_use]
    pub fn initial_weight(&self) -> u16 {
        self.initial_weight
    }

    /// Health state machine and counters.
    #[must_use]
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether this slot is a tombstone left by a reload.
    #[must_use]
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    fn takes_new_traffic(&self) -> bool {
        !self.removed && self.weight > 0 && self.health.takes_new_traffic()
    }

    fn takes_sticky_traffic(&self) -> bool {
        !self.removed && self.health.takes_sticky_traffic()
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Slots of servers that are new.
    pub added: Vec<ServerId>,
    /// Slots of servers that were removed (now tombstones).
    pub removed: Vec<ServerId>,
}

/// The mutable state of a pool. See the module docs.
#[derive(Debug, Clone)]
pub struct PoolState {
    balance: Balance,
    sticky: Option<StickyCookie>,
    hash_key: Option<HashKeyRule>,
    slowstart: Option<SlowStart>,
    rise: u32,
    fall: u32,
    error_limit: u32,
    servers: Vec<ServerState>,
    hash_balance_factor: Option<u32>,
}

impl PoolState {
    /// A pool at process start: every server UP, none ramping.
    #[must_use]
    pub fn new(spec: PoolSpec, now: Instant) -> Self {
        let servers = spec
            .servers
            .iter()
            .map(|s| ServerState {
                name: s.name.clone(),
                initial_weight: s.weight.min(MAX_WEIGHT),
                weight: s.weight.min(MAX_WEIGHT),
                health: Health::new(spec.rise, spec.fall, s.checked, spec.error_limit, now),
                ramp_since: None,
                removed: false,
            })
            .collect();
        Self {
            balance: spec.balance,
            sticky: spec.sticky,
            hash_key: spec.hash_key,
            slowstart: spec.slowstart,
            rise: spec.rise,
            fall: spec.fall,
            error_limit: spec.error_limit,
            servers,
            hash_balance_factor: spec.hash_balance_factor,
        }
    }

    /// Applies a new configuration (a reload), keeping each surviving server's slot, health,
    /// counters, admin state and slow-start progress. A server whose configured weight changed
    /// takes the new weight; otherwise a weight set at runtime is kept.
    pub fn reconfigure(&mut self, spec: PoolSpec, now: Instant) -> Reconfigured {
        let mut changes = Reconfigured::default();
        let retune = spec.rise != self.rise || spec.fall != self.fall;
        for (slot, server) in self.servers.iter_mut().enumerate() {
            if server.removed {
                continue;
            }
            match spec.servers.iter().find(|s| s.name == server.name) {
                Some(new) => {
                    if new.weight != server.initial_weight {
                        server.initial_weight = new.weight.min(MAX_WEIGHT);
                        server.weight = server.initial_weight;
                    }
                    if retune || new.checked != server.health.checked() {
                        server.health = server.health.retuned(
                            spec.rise,
                            spec.fall,
                            new.checked,
                            spec.error_limit,
                        );
                    }
                }
                None => {
                    server.removed = true;
                    changes.removed.push(ServerId(slot as u16));
                }
            }
        }
        for new in &spec.servers {
            if self.find(&new.name).is_some() {
                continue;
            }
            let state = ServerState {
                name: new.name.clone(),
                initial_weight: new.weight.min(MAX_WEIGHT),
                weight: new.weight.min(MAX_WEIGHT),
                health: Health::new(spec.rise, spec.fall, new.checked, spec.error_limit, now),
                ramp_since: None,
                removed: false,
            };
            let slot = match self.servers.iter().position(|s| s.removed) {
                Some(free) => {
                    self.servers[free] = state;
                    free
                }
                None => {
                    self.servers.push(state);
                    self.servers.len() - 1
                }
            };
            changes.added.push(ServerId(slot as u16));
        }
        self.balance = spec.balance;
        self.hash_balance_factor = spec.hash_balance_factor;
        self.sticky = spec.sticky;
        self.hash_key = spec.hash_key;
        self.slowstart = spec.slowstart;
        self.rise = spec.rise;
        self.fall = spec.fall;
        self.error_limit = spec.error_limit;
        changes
    }

    /// The slot of the (non-removed) server named `name`.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .position(|s| !s.removed && s.name == name)
            .map(|i| ServerId(i as u16))
    }

    /// Every slot, tombstones included, in slot order.
    pub fn servers(&self) -> impl Iterator<Item = (ServerId, &ServerState)> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| (ServerId(i as u16), s))
    }

    /// One server's state.
    #[must_use]
    pub fn server(&self, id: ServerId) -> Option<&ServerState> {
        self.servers.get(id.index())
    }

    fn server_mut(&mut self, id: ServerId) -> Result<&mut ServerState, PoolError> {
        self.servers
            .get_mut(id.index())
            .filter(|s| !s.removed)
            .ok_or(PoolError::NoSuchServer(id))
    }

    /// Balancing algorithm.
    #[must_use]
    pub fn balance(&self) -> Balance {
        self.balance
    }

    /// Sticky cookie configuration.
    #[must_use]
    pub fn sticky(&self) -> Option<&StickyCookie> {
        self.sticky.as_ref()
    }

    /// Servers in service (UP and not in MAINT), for "N active servers left".
    #[must_use]
    pub fn servers_in_service(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| !s.removed && s.health.in_service())
            .count()
    }

    /// Feeds an active check result.
    ///
    /// # Errors
    /// When `id` is not a live server.
    pub fn observe_check(
        &mut self,
        id: ServerId,
        result: CheckResult,
        now: Instant,
    ) -> Result<Option<Transition>, PoolError> {
        let server = self.server_mut(id)?;
        let transition = server.health.observe_check(result, now);
        Ok(self.apply(id, transition, now))
    }

    /// Feeds the outcome of a connection attempt made for live traffic.
    ///
    /// # Errors
    /// When `id` is not a live server.
    pub fn observe_traffic(
        &mut self,
        id: ServerId,
        connected: bool,
        now: Instant,
    ) -> Result<Option<Transition>, PoolError> {
        let server = self.server_mut(id)?;
        let transition = server.health.observe_traffic(connected, now);
        Ok(self.apply(id, transition, now))
    }

    /// Sets a server's admin state (`set server P/S state ready|drain|maint`).
    ///
    /// # Errors
    /// When `id` is not a live server.
    pub fn set_admin(
        &mut self,
        id: ServerId,
        admin: AdminState,
        now: Instant,
    ) -> Result<Option<Transition>, PoolError> {
        let server = self.server_mut(id)?;
        let transition = server.health.set_admin(admin, now);
        Ok(self.apply(id, transition, now))
    }

    /// Sets a server's user weight (`set weight P/S N`).
    ///
    /// # Errors
    /// When `id` is not a live server or `weight` exceeds [`MAX_WEIGHT`].
    pub fn set_weight(&mut self, id: ServerId, weight: u32) -> Result<(), PoolError> {
        let weight = u16::try_from(weight)
            .ok()
            .filter(|w| *w <= MAX_WEIGHT)
            .ok_or(PoolError::WeightOutOfRange(weight))?;
        self.server_mut(id)?.weight = weight;
        Ok(())
    }

    fn apply(
        &mut self,
        id: ServerId,
        transition: Option<Transition>,
        now: Instant,
    ) -> Option<Transition> {
        let slowstart = self.slowstart;
        let server = &mut self.servers[id.index()];
        match transition {
            Some(Transition::MarkedUp) => server.ramp_since = slowstart.map(|_| now),
            Some(Transition::MarkedDown(_)) => server.ramp_since = None,
            None => {}
        }
        transition
    }

    /// Effective weight of a server at `now`, scaled by [`WEIGHT_SCALE`]: 0 when it takes no
    /// new traffic, ramping during slow start (round-robin pools only).
    #[must_use]
    pub fn effective_weight(&self, id: ServerId, now: Instant) -> u32 {
        let Some(server) = self.servers.get(id.index()) else {
            return 0;
        };
        if !server.takes_new_traffic() {
            return 0;
        }
        match (self.slowstart, server.ramp_since, self.balance) {
            (Some(ss), Some(since), Balance::RoundRobin) => {
                ss.effective_weight(server.weight, since, now)
            }
            _ => u32::from(server.weight) * WEIGHT_SCALE,
        }
    }

    /// HAProxy's `throttle`: the slow-start percentage of a ramping server, else `None`.
    #[must_use]
    pub fn throttle(&self, id: ServerId, now: Instant) -> Option<u8> {
        let server = self.servers.get(id.index())?;
        if self.balance != Balance::RoundRobin || !server.takes_new_traffic() {
            return None;
        }
        self.slowstart?
            .throttle(server.weight, server.ramp_since?, now)
    }

    /// When the routing snapshot should next be rebuilt because a slow-start ramp moved on;
    /// `None` when nothing is ramping.
    #[must_use]
    pub fn next_rebuild(&self, now: Instant) -> Option<Instant> {
        let ss = self.slowstart?;
        if self.balance != Balance::RoundRobin {
            return None;
        }
        self.servers
            .iter()
            .filter_map(|s| s.ramp_since)
            .any(|since| ss.ramping(since, now))
            .then(|| now + ss.step())
    }

    /// Builds the routing snapshot for `now`.
    #[must_use]
    pub fn router(&self, now: Instant) -> Router {
        let weights: Vec<u32> = (0..self.servers.len())
            .map(|i| self.effective_weight(ServerId(i as u16), now))
            .collect();
        let mut by_name: Vec<(Box<str>, u16)> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.removed)
            .map(|(i, s)| (s.name.as_str().into(), i as u16))
            .collect();
        by_name.sort_unstable();
        Router {
            balance: self.balance,
            sticky: self.sticky.clone(),
            hash_key: self.hash_key.clone(),
            names: self
                .servers
                .iter()
                .map(|s| s.name.as_str().into())
                .collect(),
            new_ok: self
                .servers
                .iter()
                .map(ServerState::takes_new_traffic)
                .collect(),
            sticky_ok: self
                .servers
                .iter()
                .map(ServerState::takes_sticky_traffic)
                .collect(),
            by_name: by_name.into(),
            schedule: wrr::schedule(&weights).into(),
            weights: weights.into(),
            hash_balance_factor: self.hash_balance_factor,
            cursor: AtomicUsize::new(0),
        }
    }
}

/// What the request said about the sticky cookie, and what the response does about it, as
/// HAProxy's log flags show it (`N`o cookie, `I`nvalid, `D`own server, `V`alid; `I`nserted or
/// `N`ot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSeen {
    /// The pool has no sticky cookie: `-`.
    NotApplicable,
    /// The request had none: `N`.
    None,
    /// Unparseable, or naming no server of the pool: `I`.
    Invalid,
    /// Naming a server that cannot take it (DOWN, MAINT) or that failed: `D`.
    Down,
    /// Naming a usable server, which got the request: `V`.
    Valid,
}

impl CookieSeen {
    /// The log character.
    #[must_use]
    pub const fn flag(self) -> char {
        match self {
            Self::NotApplicable => '-',
            Self::None => 'N',
            Self::Invalid => 'I',
            Self::Down => 'D',
            Self::Valid => 'V',
        }
    }
}

/// Why a server was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickReason {
    /// The sticky cookie named it.
    Sticky,
    /// Round-robin.
    Balanced,
    /// Jump hash of the request key, after `rehashes` re-hashes past unusable servers.
    Hashed {
        /// Re-hash attempts needed (0 = the key's own bucket).
        rehashes: u32,
    },
    /// The pinned or hashed server was excluded (it failed this request): another one.
    Redispatched,
}

/// The outcome of a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The chosen server.
    pub server: ServerId,
    /// Why it was chosen.
    pub reason: PickReason,
    /// What the request's sticky cookie said.
    pub cookie: CookieSeen,
    /// Whether the response must set the sticky cookie for this server.
    pub set_cookie: bool,
}

/// One request, as far as routing is concerned.
#[derive(Debug, Clone, Copy)]
pub struct PickRequest<'a> {
    /// The hash key, extracted with [`Router::hash_key`]'s rule.
    pub key: Option<&'a [u8]>,
    /// The sticky cookie found with [`Router::sticky`]'s configuration.
    pub cookie: ClientCookie<'a>,
    /// Servers this request already failed on (retries with redispatch).
    pub exclude: &'a [ServerId],
    /// The servers' load now, when the pool limits or balances it (`maxconn`,
    /// `hash_balance_factor`); `None` picks as if every server were idle.
    pub loads: Option<Loads<'a>>,
}

impl PickRequest<'_> {
    /// A request with no key, no cookie, nothing excluded and no load information.
    #[must_use]
    pub const fn plain() -> Self {
        PickRequest {
            key: None,
            cookie: ClientCookie::Absent,
            exclude: &[],
            loads: None,
        }
    }
}

/// An immutable routing snapshot of a pool (see the module docs). Only the round-robin
/// cursor changes, atomically.
#[derive(Debug)]
pub struct Router {
    balance: Balance,
    sticky: Option<StickyCookie>,
    hash_key: Option<HashKeyRule>,
    names: Box<[Box<str>]>,
    new_ok: Box<[bool]>,
    sticky_ok: Box<[bool]>,
    by_name: Box<[(Box<str>, u16)]>,
    schedule: Box<[u16]>,
    /// Effective weights (slow start applied), for bounded loads.
    weights: Box<[u32]>,
    hash_balance_factor: Option<u32>,
    cursor: AtomicUsize,
}

impl Router {
    /// The pool's sticky cookie, to look it up in requests.
    #[must_use]
    pub fn sticky(&self) -> Option<&StickyCookie> {
        self.sticky.as_ref()
    }

    /// The pool's hash-key rule, to extract keys from requests.
    #[must_use]
    pub fn hash_key(&self) -> Option<&HashKeyRule> {
        self.hash_key.as_ref()
    }

    /// Name of the server in slot `id`.
    #[must_use]
    pub fn name(&self, id: ServerId) -> &str {
        self.names.get(id.index()).map_or("", |n| n)
    }

    /// Number of slots.
    #[must_use]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the pool has no slots.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Picks a server for a request; `None` when no usable server is left (503).
    ///
    /// Order: a sticky cookie naming a server that may take it wins; else jump hash on the
    /// key (jump-hash pools with a key); else smooth weighted round-robin.
    #[must_use]
    pub fn pick(&self, req: &PickRequest<'_>) -> Option<Pick> {
        let excluded = |i: usize| req.exclude.iter().any(|e| e.index() == i);
        let mut cookie = CookieSeen::NotApplicable;
        if self.sticky.is_some() {
            cookie = match req.cookie {
                ClientCookie::Absent => CookieSeen::None,
                ClientCookie::Invalid => CookieSeen::Invalid,
                ClientCookie::Value(v) => match self.slot_of(v) {
                    None => CookieSeen::Invalid,
                    Some(i) if self.sticky_ok[i] && !excluded(i) => {
                        return Some(Pick {
                            server: ServerId(i as u16),
                            reason: PickReason::Sticky,
                            cookie: CookieSeen::Valid,
                            set_cookie: false,
                        });
                    }
                    Some(_) => CookieSeen::Down,
                },
            };
        }
        let (server, reason) = match (self.balance, req.key) {
            (Balance::JumpHash, Some(key)) => {
                let bounded = self.hash_balance_factor.zip(req.loads);
                let (server, rehashes, first_excluded) = match bounded {
                    Some((factor, loads)) => self
                        .pick_bounded(key, &excluded, factor, &loads)
                        .or_else(|| self.pick_hashed(key, &excluded))?,
                    None => self.pick_hashed(key, &excluded)?,
                };
                let reason = if first_excluded {
                    PickReason::Redispatched
                } else {
                    PickReason::Hashed { rehashes }
                };
                (server, reason)
            }
            _ => {
                let server = self.pick_round_robin(&excluded, req.loads.as_ref())?;
                // A valid cookie whose server failed this request is a redispatch.
                let pinned_failed = cookie == CookieSeen::Down && !req.exclude.is_empty();
                let reason = if pinned_failed {
                    PickReason::Redispatched
                } else {
                    PickReason::Balanced
                };
                (server, reason)
            }
        };
        Some(Pick {
            server: ServerId(server as u16),
            reason,
            cookie,
            set_cookie: self.sticky.as_ref().is_some_and(|s| s.insert),
        })
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        self.by_name
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| usize::from(self.by_name[i].1))
    }

    /// The schedule's next server, passing over excluded ones and, while another can take
    /// the request, full ones.
    fn pick_round_robin(
        &self,
        excluded: &impl Fn(usize) -> bool,
        loads: Option<&Loads<'_>>,
    ) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut candidates = (0..len)
            .map(|k| usize::from(self.schedule[start.wrapping_add(k) % len]))
            .filter(|&i| !excluded(i));
        let first = candidates.next()?;
        let Some(loads) = loads.filter(|l| l.full(first)) else {
            return Some(first);
        };
        Some(candidates.find(|&i| !loads.full(i)).unwrap_or(first))
    }

    /// Jump hash with deterministic re-hashing past unusable or excluded slots, then a scan
    /// from the key's bucket so that any usable slot is found. Returns the slot, the number
    /// of re-hashes, and whether the key's own bucket was excluded (a redispatch).
    fn pick_hashed(
        &self,
        key: &[u8],
        excluded: &impl Fn(usize) -> bool,
    ) -> Option<(usize, u32, bool)> {
        self.probe(key, excluded, |i| self.new_ok[i] && !excluded(i))
    }

    /// The key's slots in its jump-hash order (its bucket, then its re-hashes, then a scan
    /// from its bucket), the first that `fits`; with the re-hashes it took and whether the
    /// key's own bucket was excluded.
    pub(super) fn probe(
        &self,
        key: &[u8],
        excluded: &impl Fn(usize) -> bool,
        fits: impl Fn(usize) -> bool,
    ) -> Option<(usize, u32, bool)> {
        let n = self.len();
        let h = key_hash(key);
        let first = jump(h, n as u32) as usize;
        let first_excluded = excluded(first);
        for attempt in 0..=MAX_REHASH {
            let hk = if attempt == 0 { h } else { rehash(h, attempt) };
            let b = jump(hk, n as u32) as usize;
            if b < n && fits(b) {
                return Some((b, attempt, first_excluded));
            }
        }
        (1..n)
            .map(|k| (first + k) % n)
            .find(|&i| fits(i))
            .map(|b| (b, MAX_REHASH + 1, first_excluded))
    }
}

#[cfg(test)]
mod tests;
