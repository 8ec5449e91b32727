//! [`ProxyHandle`]: what the runtime API, metrics and the daemon's watchdog read the proxy
//! through.

use std::sync::{Arc, OnceLock};

use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

use arc_swap::ArcSwap;

use crate::control::{AdminCommand, AdminError, ControlHandle};
use crate::counters::Counters;
use crate::data::admission::Admission;
use crate::data::ratelimit::RateTable;
use crate::data::standby::Standby;
use crate::stats::{FrontendStats, StatsSnapshot};

/// A cheap, cloneable handle for the runtime API and metrics: statistics and operator
/// commands.
#[derive(Clone, Debug)]
pub struct ProxyHandle {
    pub(crate) control: ControlHandle,
    pub(crate) frontends: Arc<ArcSwap<Vec<FrontendStats>>>,
    /// Process-wide counters (`CurrConns`, `CumConns`...).
    pub process: Arc<Counters>,
    /// When the proxy started.
    pub started: SystemTime,
    /// The process-wide connection limit (`Maxconn`).
    pub(crate) admission: Arc<Admission>,
    /// The rate-limit tables (`show table`), frontends' then routes', in file order.
    pub(crate) tables: Arc<ArcSwap<Vec<Arc<RateTable>>>>,
    /// Where the runtime API's `upgrade` asks the daemon for a binary upgrade; unset in a
    /// proxy not run by `veza-lb run` (tests embedding it).
    pub(crate) upgrades: Arc<OnceLock<mpsc::Sender<UpgradeRequest>>>,
    /// Standby (`set standby on|off`): connections close after their next answer.
    pub(crate) standby: Arc<Standby>,
}

/// A request for a binary upgrade, answered with what happened (`Ok`: upgraded; `Err`: why
/// not, the running process still serving).
pub(crate) type UpgradeRequest = oneshot::Sender<Result<String, String>>;

impl ProxyHandle {
    /// A consistent snapshot of every pool, plus the frontends' counters.
    pub async fn stats(&self) -> Option<(Vec<FrontendStats>, StatsSnapshot)> {
        let pools = self.control.stats().await?;
        Some((self.frontends.load().as_ref().clone(), pools))
    }

    /// Applies an operator command (`set server`, `set weight`...).
    ///
    /// # Errors
    /// Unknown pool or server, out-of-range value, or the proxy stopping.
    pub async fn admin(&self, command: AdminCommand) -> Result<(), AdminError> {
        self.control.admin(command).await
    }
}
