//! Active health checks for Veza's edge, with HAProxy's semantics.
//!
//! `veza-lb` checks every pool server with this crate and feeds the results to
//! [`lb_core`]'s health state machine; any other Veza service can embed it the same way to
//! watch the things it depends on (a database, another HTTP service). lb-core decides, this
//! crate does the I/O:
//!
//! - [`probe`] runs one HTTP check on a fresh connection and classifies it the way HAProxy's
//!   `check_status` does (`L7OK`, `L7STS`, `L7TOUT`, `L7RSP`, `L4TOUT`, `L4CON`, `SOCKERR`);
//!   [`probe_tcp`] is the layer 4 variant, and [`describe`] words a result like HAProxy's logs;
//! - [`Checker`] checks a changing set of [`Target`]s periodically, each on its own task, and
//!   sends every [`CheckEvent`] to a channel (this is what the proxy uses);
//! - [`Monitor`] adds a [`Health`] per target on top and reports only the transitions, with
//!   HAProxy's `rise`/`fall` and status strings (this is what embedders use).
//!
//! A service watching its dependencies:
//!
//! ```no_run
//! use std::time::Duration;
//! use healthcheck::{HttpCheck, Monitor, Target, Transition};
//!
//! #[tokio::main]
//! async fn main() {
//!     let every = Duration::from_secs(5);
//!     let targets = vec![
//!         Target::tcp("postgres", "10.0.0.5:5432".parse().unwrap(), Duration::from_secs(1), every),
//!         Target::http(
//!             "stream-server",
//!             "10.0.0.7:18091".parse().unwrap(),
//!             HttpCheck::get("/health").with_timeout(Duration::from_secs(2)),
//!             every,
//!         ),
//!     ];
//!     // Two passed checks bring a dependency back, three failed ones take it down.
//!     let mut monitor = Monitor::start(targets, 2, 3);
//!
//!     // A readiness endpoint elsewhere can read the same state: `UP 1/3` until the first
//!     // check, as HAProxy starts its servers, then `UP`, `UP 2/3`, `DOWN`, `DOWN 1/2`...
//!     let view = monitor.view();
//!     tokio::spawn(async move {
//!         let ready = view.is_up(&"postgres");
//!         eprintln!("ready: {ready}, postgres: {:?}", view.status(&"postgres"));
//!     });
//!
//!     while let Some(change) = monitor.next_change().await {
//!         match change.transition {
//!             Transition::MarkedDown(_) => eprintln!(
//!                 "{} is DOWN, reason: {}",
//!                 change.key,
//!                 healthcheck::describe(&change.result),
//!             ),
//!             Transition::MarkedUp => eprintln!("{} is UP", change.key),
//!         }
//!     }
//! }
//! ```
#![forbid(unsafe_code)]

mod checker;
mod monitor;
mod probe;

pub use checker::{
    CheckEvent, Checker, FirstProbe, MIN_INTERVAL, Target, TargetChanges, TargetKey,
};
pub use lb_core::{CheckResult, CheckStatus, DownReason, Health, Transition};
pub use monitor::{CHANGE_BACKLOG, Change, HealthView, Monitor};
pub use probe::{CHECK_USER_AGENT, Check, HttpCheck, Outcome, describe, probe, probe_tcp};

/// A check that cannot be sent as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The path is not an origin-form request target.
    #[error(
        "health check path {path:?} is not a request path; use one starting with `/`, such as \"/health\""
    )]
    InvalidPath {
        /// The path as configured.
        path: String,
    },
    /// The `Host` value is not a host name or address, with an optional port.
    #[error(
        "health check host {host:?} is not a valid Host header; use a name such as \"api.veza.example\""
    )]
    InvalidHost {
        /// The host as configured.
        host: String,
    },
}
