//! The `veza-lb` data plane: listeners, routing, pools, tunnels, runtime API and metrics.
//!
//! For now this crate holds [`config`]: the TOML configuration, parsed and fully validated
//! (every error at once, each with `FILE:LINE:COLUMN`) before anything starts or changes.
#![forbid(unsafe_code)]

pub mod config;
