//! Brings a host to the state a Veza role file describes, like the `backend_api` Ansible role
//! did: a system user, directories with owner and mode, the env file, a hardened systemd unit
//! (from `systemd-unit`), then `daemon-reload`, a restart when the unit or env changed, and
//! `enable`.
//!
//! [`Plan::load`] validates a role file completely (positions on errors) before [`apply`]
//! touches anything. `apply` reports each step `ok`, `changed`, `skipped` or `failed`, is
//! idempotent, and with [`Options::check`] changes nothing.
//!
//! ```no_run
//! use provision::{Options, Plan, apply};
//!
//! let plan = Plan::load("examples/provision/backend-api.toml".as_ref())?;
//! let report = apply(&plan, &Options { root: Some("/tmp/image".into()), check: true, diff: true, systemctl: None });
//! for step in &report.steps {
//!     println!("{step}");
//! }
//! println!("{}", report.recap());
//! # Ok::<(), provision::Error>(())
//! ```
#![forbid(unsafe_code)]

mod accounts;
mod apply;
mod plan;
pub mod vrrp;

use std::path::PathBuf;

pub use accounts::{Account, Accounts};
pub use apply::{Options, Report, Status, Step, apply};
pub use plan::{DirectorySpec, EnvFileSpec, EnvValue, Mode, Plan, ServiceConfig, UserSpec};

/// Everything that stops a role file from being applied before any step runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The role file could not be read.
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The role file is not valid; nothing was changed.
    #[error("{file}:{line}:{column}: {message}")]
    Config {
        /// The file as named on the command line.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// A mode is not 3 or 4 octal digits.
    #[error("{0:?} is not a file mode; write 3 or 4 octal digits (0-7) in quotes, like \"0750\"")]
    InvalidMode(String),
    /// An env file default uses characters systemd would reinterpret.
    #[error(
        "env value {0:?} has quotes, a backslash, '$', a control character or surrounding spaces; write a plain value and put anything else in the env file by hand"
    )]
    InvalidEnvValue(String),
    /// `render-unit` was asked for a unit the file does not define.
    #[error("this role file defines {defined}, not {asked}; pass that name")]
    UnknownUnit {
        /// The name asked for.
        asked: String,
        /// The unit the file defines.
        defined: String,
    },
    /// The unit could not be built or rendered.
    #[error(transparent)]
    Unit(#[from] systemd_unit::Error),
    /// keepalived's configuration could not be rendered.
    #[error("cannot render keepalived's configuration: {0}")]
    Keepalived(String),
}

/// Renders the unit of `plan` if `name` (with or without `.service`) names it: the service,
/// its socket or timer unit, and for one side of an LB pair `veza-keepalived` and
/// `keepalived.conf` (keepalived's configuration).
///
/// # Errors
/// [`Error::UnknownUnit`] for another name, [`Error::Unit`] or [`Error::Keepalived`] if
/// rendering fails.
pub fn render_unit(plan: &Plan, name: &str) -> Result<String, Error> {
    let defined = plan.unit_name();
    if plan.socket_unit_name().as_deref() == Some(name) {
        let service = systemd_unit::UnitName::new(defined.clone())?;
        if let Some(socket) = plan.service_spec.socket_unit(&service)? {
            return Ok(socket.render()?);
        }
    }
    if plan.timer_unit_name().as_deref() == Some(name) {
        let service = systemd_unit::UnitName::new(defined.clone())?;
        if let Some(timer) = plan.service_spec.timer_unit(&service)? {
            return Ok(timer.render()?);
        }
    }
    if let Some(spec) = plan.keepalived_spec() {
        let unit = systemd_unit::KeepalivedSpec::UNIT;
        if name == unit || format!("{name}.service") == unit {
            return Ok(spec.unit()?.render()?);
        }
        if name == "keepalived.conf"
            && let Some(conf) = plan.rendered_keepalived_conf()
        {
            return conf.map_err(Error::Keepalived);
        }
    }
    if name != defined && format!("{name}.service") != defined {
        return Err(Error::UnknownUnit {
            asked: name.to_owned(),
            defined,
        });
    }
    Ok(plan.service_spec.unit()?.render()?)
}
