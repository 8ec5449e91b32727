//! The process around the proxy: the runtime, signals, reload and graceful stop (`daemon`),
//! and the only code that talks to systemd (`notify`).

pub mod daemon;
pub mod notify;
