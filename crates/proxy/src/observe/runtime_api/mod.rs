//! The runtime API (HAProxy's stats socket): a TCP or unix listener, its line protocol, and
//! the commands it runs against the proxy.
//!
//! Protocol, as HAProxy's: a line holds one or more commands separated by `;` (`\;` is a
//! literal semicolon); each answer is written in order and ends with an empty line. In the
//! default, non-interactive mode the connection closes once the lines the client has sent are
//! answered; `prompt` switches to interactive mode, where a `> ` follows every answer and the
//! session lasts until `quit`, the idle timeout (`set timeout cli`) or the client closes. A
//! line longer than [`MAX_LINE`] or a client silent for the idle timeout ([`IDLE_TIMEOUT`] at
//! first) is dropped without an answer. Unknown commands answer HAProxy's `Unknown command`
//! text with the list of commands, never an error status. Every socket has an access level
//! (`user`, `operator`, `admin`); a command above it is answered `Permission denied`.
//!
//! - `listener`: sockets and clients;
//! - `session`: one client: mode, idle timeout, level;
//! - `protocol`: bounded lines, split into commands;
//! - `command`: parsing a command, the level it needs, and the help texts;
//! - `execute`: running it and writing the answer.

mod command;
mod execute;
mod listener;
mod protocol;
mod session;

use std::time::Duration;

pub(crate) use listener::{StatsListener, UnixSocket, ensure_directory, serve};

use crate::config::AccessLevel;

/// The access level a runtime API command line needs: the highest of its commands'
/// (`veza-lb ctl` names it when a socket refuses a command).
#[must_use]
pub fn required_level(line: &str) -> AccessLevel {
    protocol::split_commands(line)
        .iter()
        .map(|command| command::required_level(command))
        .max()
        .unwrap_or(AccessLevel::User)
}

/// Longest command line accepted; a longer one is dropped.
pub const MAX_LINE: usize = 16 * 1024;
/// How long a client may stay silent (or not read its answer) before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
