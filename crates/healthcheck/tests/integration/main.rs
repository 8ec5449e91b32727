//! Integration tests against real loopback sockets.

mod checker;
mod monitor;
mod probe;
mod support;
