//! Pure load-balancing logic for Veza's edge.
//!
//! Every routing and health decision `veza-lb` makes lives here, as plain data and functions:
//! callers pass observations (a check result, a failed connection, an operator command) and
//! the current time, and get back decisions and events. There is no I/O, no async runtime and
//! no clock read in this crate, so all of it is tested with a fake clock, and other Veza
//! services can embed it.
//!
//! - [`hash`]: the stable key hash and Lamping & Veach's jump consistent hash;
//! - [`key`]: which part of a request is the hash key;
//! - [`wrr`]: smooth weighted round-robin, precomputed as a schedule;
//! - [`slowstart`]: the linear weight ramp of a server coming back;
//! - [`health`]: HAProxy's health state machine and status strings;
//! - [`cookie`]: the sticky cookie;
//! - [`pool`]: all of the above combined into a pool's state and its lock-free [`Router`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lb_core::*;
//!
//! let now = Instant::now();
//! let spec = PoolSpec {
//!     balance: Balance::RoundRobin,
//!     sticky: Some(StickyCookie::new("SERVERID")?),
//!     hash_key: None,
//!     slowstart: SlowStart::new(Duration::from_secs(30)),
//!     rise: 2,
//!     fall: 3,
//!     error_limit: 3,
//!     servers: vec![
//!         ServerSpec { name: "backend-api-1".into(), weight: 1, checked: true },
//!         ServerSpec { name: "backend-api-2".into(), weight: 1, checked: true },
//!     ],
//!     hash_balance_factor: None,
//! };
//! let mut pool = PoolState::new(spec, now);
//!
//! // A first request is balanced, and told to set the cookie.
//! let router = pool.router(now);
//! let first = router.pick(&PickRequest::plain()).expect("a server is up");
//! assert!(first.set_cookie);
//!
//! // Its follow-up carries the cookie and sticks.
//! let header = format!("SERVERID={}", router.name(first.server));
//! let cookie = router.sticky().expect("configured").find([header.as_bytes()]);
//! let again = router.pick(&PickRequest { cookie, ..PickRequest::plain() }).expect("up");
//! assert_eq!((again.server, again.reason), (first.server, PickReason::Sticky));
//!
//! // Three failed checks mark that server DOWN: the proxy is told, and the cookie is ignored.
//! let failed = CheckResult::failed(CheckStatus::L4Connect, None, Duration::from_millis(1));
//! let mut event = None;
//! for _ in 0..3 {
//!     event = pool.observe_check(first.server, failed, now)?.or(event);
//! }
//! assert!(matches!(event, Some(Transition::MarkedDown(_))));
//! assert_eq!(pool.server(first.server).unwrap().health().status(), "DOWN");
//! let router = pool.router(now);
//! let moved = router.pick(&PickRequest { cookie, ..PickRequest::plain() }).expect("one left");
//! assert_ne!(moved.server, first.server);
//! assert!(moved.set_cookie);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod cookie;
pub mod discovery;
pub mod hash;
pub mod health;
pub mod key;
pub mod pool;
pub mod slowstart;
pub mod wrr;

pub use cookie::{ClientCookie, CookieError, StickyCookie};
pub use discovery::{Decision, Endpoint, Lookup, NameState, fill_slots};
pub use hash::{jump, key_hash};
pub use health::{AdminState, CheckResult, CheckStatus, DownReason, Health, Transition};
pub use key::HashKeyRule;
pub use pool::{
    Balance, CookieSeen, Loads, MAX_WEIGHT, Pick, PickReason, PickRequest, PoolError, PoolSpec,
    PoolState, Reconfigured, Router, ServerId, ServerSpec, ServerState,
};
pub use slowstart::{SlowStart, WEIGHT_SCALE};
