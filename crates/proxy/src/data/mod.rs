//! The data plane: one client connection and its requests, from the listener to a server
//! and back. It reads the routing snapshots the control plane publishes (`routing`), bumps
//! counters ([`crate::counters`]) and reports what live traffic shows about servers
//! (`passive`); it imports nothing from the control plane. No lock is taken per request.
//!
//! - `routing`: the immutable snapshots of frontends and pools, read without a lock;
//! - `passive`: the channel of passive health observations to the control plane;
//! - `listener`: accept loops, TLS termination, HTTP/1.1 and HTTP/2 serving (hyper);
//! - `client_io`: the client socket wrapper that answers 408 to a stalled request head;
//! - `forward`: one request, in HAProxy's stream steps (check, route, pick, connect, send,
//!   respond, log), with `attempt` for one try on one server and `termination` for the
//!   two-letter termination state it ends with;
//! - `upstream`: connections to one server, its idle pool, its `shutdown-sessions` switch;
//! - `body`: the response body streamed back, which returns the connection to the pool and
//!   writes the access log at its end;
//! - `tunnel`: WebSocket and other upgraded connections;
//! - `timeout`: inactivity bounds on streamed bodies;
//! - `headers`: request hygiene and header rewriting;
//! - `accesslog`: HAProxy's HTTP log line.

pub(crate) mod accesslog;
pub(crate) mod attempt;
pub(crate) mod body;
pub(crate) mod client_io;
pub(crate) mod forward;
pub(crate) mod headers;
pub(crate) mod listener;
pub(crate) mod passive;
pub(crate) mod routing;
pub(crate) mod termination;
pub(crate) mod timeout;
pub(crate) mod tunnel;
pub(crate) mod upstream;
