//! The runtime API (HAProxy's stats socket): a TCP or unix listener, its line protocol, and
//! the commands it runs against the proxy.
//!
//! Protocol, as HAProxy's non-interactive mode: the client sends one line; `;` separates
//! several commands on it (`\;` is a literal semicolon); each answer is written in order and
//! ends with an empty line; then the connection closes. A line longer than [`MAX_LINE`] or a
//! client silent for [`IDLE_TIMEOUT`] is dropped without an answer. Unknown commands answer
//! HAProxy's `Unknown command` text with the list of commands, never an error status.
//!
//! - `listener`: sockets and clients;
//! - `protocol`: one bounded line, split into commands;
//! - `command`: parsing a command and the help texts;
//! - `execute`: running it and writing the answer.

mod command;
mod execute;
mod listener;
mod protocol;

use std::time::Duration;

pub(crate) use listener::{StatsListener, UnixSocket, serve};

/// Longest command line accepted; a longer one is dropped.
pub const MAX_LINE: usize = 16 * 1024;
/// How long a client may stay silent (or not read its answer) before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
