//! A consistent picture of every pool and server, taken by the control task, for the runtime
//! API (`show stat`, `show servers state`) and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lb_core::{AdminState, CheckResult, ServerId};

use crate::config;
use crate::counters::Counters;

pub mod csv;
#[cfg(test)]
mod fixture;
pub mod info;
pub mod page;
pub mod prometheus;
pub mod servers_state;
mod table;
pub mod typed;

pub use table::{StatTable, TableError};

/// Every active pool, in configuration order.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Time since the proxy started.
    pub uptime: Duration,
    /// Pools.
    pub pools: Vec<PoolStats>,
}

/// One pool (HAProxy's backend).
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Pool name.
    pub name: String,
    /// Its configuration.
    pub settings: Arc<config::Pool>,
    /// Aggregate counters of the pool.
    pub counters: Arc<Counters>,
    /// Servers UP and not in MAINT.
    pub servers_in_service: usize,
    /// Whether a server takes new traffic (the BACKEND row's `UP`/`DOWN`).
    pub up: bool,
    /// Times the pool went DOWN: no server left taking new traffic (`chkdown`).
    pub chkdown: u64,
    /// Time since the pool last went UP or DOWN (`lastchg`).
    pub last_change: Duration,
    /// Total time the pool was DOWN (`downtime`).
    pub downtime: Duration,
    /// Requests waiting in the pool's queue for any server's `maxconn` (`qcur`).
    pub queued: u32,
    /// Servers, in slot order (removed servers omitted).
    pub servers: Vec<ServerStats>,
}

/// One server.
#[derive(Debug, Clone)]
pub struct ServerStats {
    /// Slot in its pool (`sid` is `id + 1`).
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// Address.
    pub addr: SocketAddr,
    /// Traffic counters.
    pub counters: Arc<Counters>,
    /// HAProxy status string (`UP`, `UP 2/3`, `DOWN`, `MAINT`, `DRAIN`, `no check`...).
    pub status: String,
    /// User weight.
    pub weight: u16,
    /// Effective weight now, scaled by `lb_core::WEIGHT_SCALE`.
    pub effective_weight: u32,
    /// Admin state.
    pub admin: AdminState,
    /// Whether active checks run.
    pub checked: bool,
    /// Whether checks say it is UP.
    pub up: bool,
    /// `check_health`.
    pub health: u32,
    /// `check_rise`.
    pub rise: u32,
    /// `check_fall`.
    pub fall: u32,
    /// `chkfail`.
    pub chkfail: u64,
    /// `chkdown`.
    pub chkdown: u64,
    /// `lastchg`: time since the last status change.
    pub last_change: Duration,
    /// `downtime`.
    pub downtime: Duration,
    /// `throttle`: slow-start percentage while ramping.
    pub throttle: Option<u8>,
    /// Last check result (`check_status`, `check_code`, `check_duration`).
    pub last_check: Option<CheckResult>,
    /// `slim`: requests served at once at most (`maxconn`).
    pub maxconn: Option<u32>,
    /// `qcur`: requests waiting in the server's own queue.
    pub queued: u32,
}

/// A frontend's counters, for the FRONTEND rows.
#[derive(Debug, Clone)]
pub struct FrontendStats {
    /// Frontend name.
    pub name: String,
    /// Counters.
    pub counters: Arc<Counters>,
    /// TLS handshake counters, for frontends with HTTPS listeners.
    pub tls: Option<Arc<crate::tls::TlsCounters>>,
}
