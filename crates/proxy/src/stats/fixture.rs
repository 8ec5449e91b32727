//! A snapshot in the state of a real HAProxy 2.6 run (captured with `show stat`), for the
//! renderers' tests: frontend `veza`, pool `api_pool` with `backend-api-1` UP in slow start
//! and `backend-api-2` DOWN, five requests served.

use std::sync::Arc;
use std::time::Duration;

use lb_core::{AdminState, CheckResult, CheckStatus, ServerId};

use super::{FrontendStats, PoolStats, ServerStats, StatsSnapshot};
use crate::config::Config;
use crate::counters::{Counters, Total};

/// "Now" in the fixture, seconds since the Unix epoch.
pub(crate) const NOW_UNIX: u64 = 1_795_710_128;

/// The HAProxy configuration's equivalent.
pub(crate) const CONFIG: &str = r#"
[[frontend]]
name = "veza"
bind = ["127.0.0.1:47545"]
default_pool = "api_pool"

[pool.api_pool]
balance = "roundrobin"
cookie = { name = "SERVERID", insert = true, indirect = true, nocache = true }
health = { path = "/health", interval = "500ms", rise = 2, fall = 3 }
slowstart = "30s"
servers = [
  { name = "backend-api-1", addr = "127.0.0.1:36191" },
  { name = "backend-api-2", addr = "127.0.0.1:53581", weight = 5 },
]
"#;

fn served_five(c: &Counters, max_sessions: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    c.max_sessions.store(max_sessions, Relaxed);
    c.add(Total::Sessions, 5);
    c.add(Total::BytesIn, 440);
    c.add(Total::BytesOut, 985);
    c.add(Total::Requests, 5);
    c.add(Total::Responses2xx, 5);
    c.tick(Duration::from_secs(1), NOW_UNIX);
}

fn upstream_five(c: &Counters) {
    served_five(c, 1);
    c.add(Total::Selected, 5);
    c.response_time.add(Duration::from_millis(1));
    c.total_time.add(Duration::from_millis(1));
}

/// The frontends and pools of the capture.
pub(crate) fn snapshot() -> (Vec<FrontendStats>, StatsSnapshot) {
    let config = Config::parse(CONFIG, "fixture.toml").expect("fixture config is valid");
    let fe = Arc::new(Counters::default());
    served_five(&fe, 2);
    let pool = Arc::new(Counters::default());
    upstream_five(&pool);
    let one = Arc::new(Counters::default());
    upstream_five(&one);
    let settings = Arc::new(config.pools[0].clone());
    let server = |id: u16, name: &str, counters: Arc<Counters>| ServerStats {
        id: ServerId(id),
        name: name.to_owned(),
        addr: settings.servers[usize::from(id)].addr,
        counters,
        status: "UP".to_owned(),
        weight: settings.servers[usize::from(id)].weight,
        effective_weight: u32::from(settings.servers[usize::from(id)].weight)
            * lb_core::WEIGHT_SCALE,
        admin: AdminState::Ready,
        checked: true,
        up: true,
        health: 4,
        rise: 2,
        fall: 3,
        chkfail: 1,
        chkdown: 1,
        last_change: Duration::from_secs(2),
        downtime: Duration::from_secs(5),
        throttle: None,
        last_check: Some(CheckResult::ok(200, Duration::from_millis(1))),
        maxconn: None,
        queued: 0,
    };
    let mut api1 = server(0, "backend-api-1", one);
    api1.throttle = Some(7);
    api1.effective_weight = 2;
    let mut api2 = server(1, "backend-api-2", Arc::default());
    api2.status = "DOWN".to_owned();
    api2.up = false;
    api2.health = 0;
    api2.effective_weight = 0;
    api2.last_change = Duration::from_secs(7);
    api2.downtime = Duration::from_secs(7);
    api2.last_check = Some(CheckResult::failed(
        CheckStatus::L4Connect,
        None,
        Duration::ZERO,
    ));
    let frontends = vec![FrontendStats {
        name: "veza".to_owned(),
        counters: fe,
        tls: None,
    }];
    let snapshot = StatsSnapshot {
        uptime: Duration::from_secs(7),
        pools: vec![PoolStats {
            name: "api_pool".to_owned(),
            settings,
            counters: pool,
            servers_in_service: 1,
            up: true,
            chkdown: 1,
            last_change: Duration::from_secs(2),
            downtime: Duration::from_secs(5),
            queued: 0,
            servers: vec![api1, api2],
        }],
    };
    (frontends, snapshot)
}
