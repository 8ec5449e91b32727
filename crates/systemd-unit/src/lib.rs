//! A typed model of systemd service units, the hardening profile Veza's services share, and
//! the units of `veza-backend-api`, `veza-lb`, `veza-stream-server` and `veza-load` (with its
//! timer).
//!
//! Every directive value is a type that validates on construction and knows how systemd
//! reads it back (specifier `%`, `$` in command lines, quoting of lists), so a rendered unit
//! never means something other than the model. Rendering goes through an askama template
//! (`templates/service.unit`, with HTML escaping off).
//!
//! ```
//! use systemd_unit::{AbsPath, AccountName, Command, Role, ServiceSpec, Text, Timespan};
//!
//! let spec = ServiceSpec {
//!     role: Role::BackendApi,
//!     description: Text::new("Veza backend API")?,
//!     user: AccountName::new("veza-api")?,
//!     exec_start: Command::new(AbsPath::new("/opt/veza/backend-api/veza-backend-api")?),
//!     working_directory: Some(AbsPath::new("/opt/veza/backend-api")?),
//!     env_file: Some(AbsPath::new("/etc/veza/backend-api.env")?),
//!     read_write_paths: vec![AbsPath::new("/var/log/veza")?],
//!     ip_address_allow: None,
//!     listen_ports: vec![8080],
//!     sockets: Vec::new(),
//!     jit: false,
//!     watchdog: None,
//!     stop_timeout: Timespan::from_secs(30),
//!     schedule: None,
//!     start_timeout: None,
//! };
//! let text = spec.unit()?.render()?;
//! assert!(text.contains("\nProtectSystem=strict\n"));
//! assert!(text.contains("\nCapabilityBoundingSet=\n"));
//! # Ok::<(), systemd_unit::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod analyze;
mod model;
pub mod parse;
mod render;
mod value;
mod veza;

pub use model::{Hardening, Service, SocketUnit, TimerUnit, Unit};
pub use value::{
    AbsPath, AccountName, AddressFamily, Arg, CalendarSpec, Capability, Command, DevicePolicy,
    DirName, EnvName, EnvironmentFile, IpAddressSpec, KeyringMode, NotifyAccess, ProcSubset,
    ProtectHome, ProtectProc, ProtectSystem, Restart, ServiceType, SyscallFilter, SyscallSet, Text,
    Timespan, Umask, UnitName, Uri,
};
pub use veza::{KeepalivedSpec, Role, Schedule, ServiceSpec};

/// Everything that can go wrong building or rendering a unit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value cannot be represented faithfully in a unit file.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// What kind of value (path, user name, ...).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused and what to write instead.
        reason: String,
    },
    /// The template engine failed.
    #[error("rendering the unit failed: {0}; this is a bug in systemd-unit, please report it")]
    Render(String),
    /// `systemd-analyze` could not run or rejected a unit.
    #[error("{0}")]
    Analyze(String),
    /// Unit text could not be read back.
    #[error("unit text line {line}: {reason}")]
    Parse {
        /// 1-based line, or 0 when parsing a single value.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}
