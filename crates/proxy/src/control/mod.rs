//! The control plane: the one task that owns every pool's `lb_core::PoolState`.
//!
//! Health check results, passive observations from the data plane, operator commands and
//! reloads arrive as messages; each is fed to lb-core, whatever it decides is acted on, and a
//! new routing snapshot is published for the data plane.
//!
//! - `core`: the state machine, without I/O: events and the time in, snapshots, actions and
//!   its next deadline out; unit-tested with injected time;
//! - `task`: the tokio shell around it, and the handle the rest of the proxy reaches it
//!   through;
//! - `admin`: operator commands (`set server`, `set weight`) and their errors.

mod admin;
mod core;
mod task;

pub use admin::{AdminCommand, AdminError, WeightChange};
pub(crate) use task::{ControlHandle, ControlTask};
