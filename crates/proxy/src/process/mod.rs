//! The process around the proxy: the runtime, signals, reload and graceful stop (`daemon`),
//! the only code that talks to systemd (`notify`), and the extra event loops (`workers`).

pub mod daemon;
mod discovery;
pub mod notify;
mod upgrade;
mod workers;
