//! The data plane: one client connection and its requests, from the listener to a server
//! and back. It reads the routing snapshots the control plane publishes (`routing`), bumps
//! counters ([`crate::counters`]) and reports what live traffic shows about servers
//! (`passive`); it imports nothing from the control plane. No lock is taken per request.
//!
//! - `routing`: the immutable snapshots of frontends and pools, read without a lock;
//! - `passive`: the channel of passive health observations to the control plane;
//! - `listener`: accept loops, TLS termination, and the protocol each connection speaks;
//! - `loops`: the event loops and the connections each serves (a busy loop hands new
//!   connections to the least loaded one);
//! - `session`: an HTTP/1.1 client connection on the `h1` codec (heads parsed in place,
//!   answers written with their framing, 408 for a stalled head, keep-alive, upgrades);
//!   HTTP/2 is served by hyper;
//! - `framed`: a connection's read buffer: room for reads, body data decoded out of it;
//! - `request_body`: a request's body, read from the client connection the session lends;
//! - `frontend`: what a frontend's connections share, and its HTTPS policy around forwarding;
//! - `forward`: one request, in HAProxy's stream steps (check, route, pick, connect, send,
//!   respond, log), with `attempt` for one try on one server and `termination` for the
//!   two-letter termination state it ends with;
//! - `upstream`: connections to one server, its idle pool, its `shutdown-sessions` switch;
//! - `body`: the response body streamed back, which returns the connection to the pool and
//!   writes the access log at its end;
//! - `tunnel`: WebSocket and other upgraded connections;
//! - `timeout`: inactivity bounds on streamed bodies; `deadline`: a connection's one timer,
//!   moved only when a wait needs it sooner;
//! - `standby`: every connection closes after its next answer while the listeners still
//!   accept (before an LB pair's address moves; a drain is a standby that never ends);
//! - `tripwire`: the lock-free one-shot signals requests check (`shutdown-sessions`, drain,
//!   hard stop);
//! - `headers`: request hygiene and header rewriting; `passed`: which fields of a head are
//!   dropped, rewritten (in the message's map) or passed on as received (as spans);
//! - `accesslog`: HAProxy's HTTP log line.

pub(crate) mod accesslog;
pub(crate) mod admission;
pub(crate) mod attempt;
pub(crate) mod body;
pub(crate) mod deadline;
pub(crate) mod forward;
pub(crate) mod framed;
pub(crate) mod frontend;
pub(crate) mod headers;
pub(crate) mod listener;
pub(crate) mod loops;
pub(crate) mod passed;
pub(crate) mod passive;
pub(crate) mod queue;
pub(crate) mod ratelimit;
pub(crate) mod request_body;
pub(crate) mod routing;
pub(crate) mod session;
pub(crate) mod standby;
pub(crate) mod termination;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod timeout;
pub(crate) mod tripwire;
pub(crate) mod tunnel;
pub(crate) mod upstream;
