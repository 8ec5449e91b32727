//! Operator commands that change a server (the runtime API's `set server`, `set weight`,
//! `enable`/`disable server`), and why one may be refused.

use lb_core::AdminState;

/// A command that changes a server: the runtime API's, or service discovery's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// `set server P/S state ready|drain|maint`, `enable server`, `disable server`.
    SetState {
        /// Pool name.
        pool: String,
        /// Server name.
        server: String,
        /// New admin state.
        state: AdminState,
    },
    /// Service discovery puts a server in maintenance or takes it out of it (a name gone
    /// longer than `hold_nx`, an empty `server_template` slot), and says why, as HAProxy's
    /// DNS log lines do (`DNS NX status`, `resolves again`).
    Discovered {
        /// Pool name.
        pool: String,
        /// Server name.
        server: String,
        /// `Maint` or `Ready`.
        state: AdminState,
        /// Why, for the log line.
        reason: String,
    },
    /// `set weight P/S N` or `N%`.
    SetWeight {
        /// Pool name.
        pool: String,
        /// Server name.
        server: String,
        /// New weight.
        weight: WeightChange,
    },
}

/// A weight given absolutely or relative to the configured weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightChange {
    /// `N`.
    Absolute(u32),
    /// `N%` of the configured weight.
    Percent(u32),
}

/// Why an operator command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such pool.
    #[error("No such backend.")]
    NoSuchPool,
    /// No such server in the pool.
    #[error("No such server.")]
    NoSuchServer,
    /// Out-of-range weight.
    #[error("{0}")]
    Invalid(String),
    /// The proxy is stopping.
    #[error("The proxy is shutting down.")]
    Stopped,
}
