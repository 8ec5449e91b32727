//! The control plane's timing, with made-up instants: no sleeps, no sockets.

use std::time::{Duration, Instant};

use lb_core::{AdminState, CheckResult, CheckStatus, PickRequest, ServerId};

use super::{Action, ControlCore};
use crate::config::Config;
use crate::control::{AdminCommand, AdminError, WeightChange};
use crate::data::passive::TrafficReport;

const API: usize = 0;
const A: ServerId = ServerId(0);
const B: ServerId = ServerId(1);

fn config(api_servers: &str, extra: &str) -> Config {
    Config::parse(
        &format!(
            r#"
[global]
shutdown_grace = "10s"

[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "api"

[pool.api]
health = {{ path = "/health", interval = "5s", fall = 3, rise = 2 }}
slowstart = "32s"
on_marked_down = "shutdown-sessions"
passive_error_limit = 2
{extra}
servers = [{api_servers}]
"#
        ),
        "core-test.toml",
    )
    .expect("test config is valid")
}

fn two_servers() -> Config {
    config(
        r#"{ name = "a", addr = "127.0.0.1:9001" }, { name = "b", addr = "127.0.0.1:9002" }"#,
        "",
    )
}

struct Harness {
    core: ControlCore,
    t0: Instant,
}

impl Harness {
    fn new(config: &Config) -> Self {
        let t0 = Instant::now();
        let (core, _) = ControlCore::new(config, t0);
        Self { core, t0 }
    }

    /// Two passed checks per server at t=0: every server fully UP (`health` at its top, as
    /// after a while in service), so `fall` failures are needed to mark one DOWN.
    fn settled(config: &Config, servers: &[ServerId]) -> Self {
        let mut h = Self::new(config);
        for &s in servers {
            h.check(s, true, 0.0);
            h.check(s, true, 0.0);
        }
        h
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn check(&mut self, server: ServerId, ok: bool, secs: f64) {
        let result = if ok {
            CheckResult::ok(200, Duration::from_millis(1))
        } else {
            CheckResult::failed(CheckStatus::L4Connect, None, Duration::from_millis(1))
        };
        let now = self.at(secs);
        self.core.on_check((API, server), result, now);
    }

    fn status(&self, server: &str, secs: f64) -> String {
        let snap = self.core.snapshot(self.at(secs));
        let s = snap.pools[0].servers.iter().find(|s| s.name == server);
        s.expect("server in snapshot").status.clone()
    }

    fn throttle(&self, server: usize, secs: f64) -> Option<u8> {
        self.core.snapshot(self.at(secs)).pools[0].servers[server].throttle
    }

    /// Which servers the published snapshot sends 64 new requests to.
    fn picks(&self) -> Vec<usize> {
        let view = self.core.pools[API].slot.view.load_full();
        let mut counts = vec![0; view.servers.len()];
        for _ in 0..64 {
            let pick = view.router.pick(&PickRequest::plain());
            counts[pick.expect("a server is available").server.index()] += 1;
        }
        counts
    }

    fn check_targets(&mut self) -> Vec<Vec<String>> {
        let mut sets = Vec::new();
        while let Some(Action::SetCheckTargets(targets)) = self.core.poll_action() {
            sets.push(targets.iter().map(|t| t.addr.to_string()).collect());
        }
        sets
    }
}

#[test]
fn every_checked_server_is_scheduled_and_a_reload_reschedules() {
    let mut h = Harness::new(&two_servers());
    assert_eq!(
        h.check_targets(),
        [["127.0.0.1:9001", "127.0.0.1:9002"]],
        "one action with both servers at start"
    );
    let one = config(r#"{ name = "a", addr = "127.0.0.1:9001" }"#, "");
    h.core.reload(&one, h.at(1.0));
    assert_eq!(h.check_targets(), [["127.0.0.1:9001"]]);
    assert!(h.core.poll_action().is_none());
}

#[test]
fn fall_checks_mark_down_and_shut_sessions_rise_checks_bring_it_back() {
    let mut h = Harness::settled(&two_servers(), &[A, B]);
    let session = h.core.pools[API].servers[0].sessions();
    h.check(A, false, 5.0);
    assert_eq!(h.status("a", 5.0), "UP 2/3", "HAProxy counts what is left");
    h.check(A, false, 10.0);
    assert_eq!(h.status("a", 10.0), "UP 1/3");
    assert!(!session.is_tripped());
    h.check(A, false, 15.0);
    assert_eq!(h.status("a", 15.0), "DOWN");
    assert!(session.is_tripped(), "on-marked-down shutdown-sessions");
    assert_eq!(h.picks(), [0, 64], "a DOWN server gets no new request");

    h.check(A, true, 20.0);
    assert_eq!(h.status("a", 20.0), "DOWN 1/2");
    h.check(A, true, 25.0);
    assert_eq!(h.status("a", 25.0), "UP");
    // Fresh sessions are not born killed.
    assert!(!h.core.pools[API].servers[0].sessions().is_tripped());
}

#[test]
fn slow_start_ramps_on_the_cores_own_schedule() {
    let mut h = Harness::settled(&two_servers(), &[A, B]);
    assert_eq!(h.core.poll_timeout(), None, "nothing ramps at start");
    for t in [5.0, 10.0, 15.0] {
        h.check(A, false, t);
    }
    h.check(A, true, 20.0);
    h.check(A, true, 25.0);
    assert_eq!(h.status("a", 25.0), "UP");
    // A 32 s ramp is republished every second (1/32 of the window, at most 1 s); the first
    // snapshot gives `a` 1/16 of its weight.
    assert_eq!(h.core.poll_timeout(), Some(h.at(26.0)));
    assert_eq!(h.throttle(0, 25.0), Some(7));
    assert_eq!(h.throttle(0, 41.0), Some(50));
    let early = h.picks()[0];
    assert!(early <= 4, "ramping server got {early} of 64");

    // Stats requests every second must not postpone the ramp (they do not publish).
    for t in [25.3, 25.6, 25.9] {
        let _ = h.core.snapshot(h.at(t));
    }
    assert_eq!(h.core.poll_timeout(), Some(h.at(26.0)));

    // Walk the ramp the way the task does: sleep until poll_timeout, then handle_timeout.
    let mut wakeups = 0;
    while let Some(at) = h.core.poll_timeout() {
        h.core.handle_timeout(at);
        wakeups += 1;
        assert!(wakeups <= 32, "the ramp must end");
    }
    assert_eq!(wakeups, 32, "one republish per second of the ramp");
    assert_eq!(h.throttle(0, 57.0), None, "ramp over: no throttle");
    assert_eq!(h.picks(), [32, 32], "full weight again");
}

#[test]
fn handle_timeout_before_the_deadline_changes_nothing() {
    let mut h = Harness::settled(&two_servers(), &[A, B]);
    for t in [5.0, 10.0, 15.0] {
        h.check(A, false, t);
    }
    h.check(A, true, 20.0);
    h.check(A, true, 25.0);
    let due = h.core.poll_timeout().expect("ramping");
    h.core.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(h.core.poll_timeout(), Some(due));
}

#[test]
fn drain_takes_no_new_traffic_and_maint_shuts_sessions() {
    let mut h = Harness::new(&two_servers());
    let session = h.core.pools[API].servers[1].sessions();
    let set = |state| AdminCommand::SetState {
        pool: "api".into(),
        server: "b".into(),
        state,
    };
    h.core.admin(set(AdminState::Drain), h.at(1.0)).unwrap();
    assert!(h.status("b", 1.0).starts_with("DRAIN"));
    assert_eq!(h.picks(), [64, 0]);
    assert!(!session.is_tripped(), "drain lets sessions finish");
    h.core.admin(set(AdminState::Maint), h.at(2.0)).unwrap();
    assert_eq!(h.status("b", 2.0), "MAINT");
    assert!(session.is_tripped(), "maintenance shuts sessions");
    h.core.admin(set(AdminState::Ready), h.at(3.0)).unwrap();
    let back = h.picks()[1];
    assert!(
        back > 0 && back < 32,
        "back from MAINT on a slow start: {back} of 64"
    );
}

#[test]
fn weights_and_admin_errors() {
    let mut h = Harness::new(&two_servers());
    let weight = |server: &str, weight| AdminCommand::SetWeight {
        pool: "api".into(),
        server: server.into(),
        weight,
    };
    h.core
        .admin(weight("b", WeightChange::Percent(300)), h.at(1.0))
        .unwrap();
    assert_eq!(h.picks(), [16, 48]);
    h.core
        .admin(weight("b", WeightChange::Absolute(0)), h.at(2.0))
        .unwrap();
    assert_eq!(h.picks(), [64, 0]);
    assert_eq!(
        h.core
            .admin(weight("zz", WeightChange::Absolute(1)), h.at(3.0)),
        Err(AdminError::NoSuchServer)
    );
    let other_pool = AdminCommand::SetWeight {
        pool: "nope".into(),
        server: "a".into(),
        weight: WeightChange::Absolute(1),
    };
    assert_eq!(
        h.core.admin(other_pool, h.at(3.0)),
        Err(AdminError::NoSuchPool)
    );
    assert!(matches!(
        h.core
            .admin(weight("a", WeightChange::Absolute(1000)), h.at(3.0)),
        Err(AdminError::Invalid(_))
    ));
}

#[test]
fn passive_errors_mark_down_at_the_limit() {
    let mut h = Harness::settled(&two_servers(), &[A, B]);
    let report = |connected| TrafficReport {
        pool: API,
        server: B,
        connected,
    };
    h.core.on_traffic(report(false), h.at(1.0));
    assert_eq!(h.status("b", 1.0), "UP");
    h.core.on_traffic(report(true), h.at(1.5));
    h.core.on_traffic(report(false), h.at(2.0));
    assert!(
        h.status("b", 2.0).starts_with("UP"),
        "a success resets the count"
    );
    h.core.on_traffic(report(false), h.at(2.5));
    assert_eq!(h.status("b", 2.5), "DOWN");
    // Reports for unknown pools are ignored.
    h.core.on_traffic(
        TrafficReport {
            pool: 7,
            server: B,
            connected: false,
        },
        h.at(3.0),
    );
}

#[test]
fn a_removed_server_keeps_its_sessions_until_the_grace_is_over() {
    let mut h = Harness::new(&two_servers());
    let removed = h.core.pools[API].servers[1].sessions();
    let one = config(r#"{ name = "a", addr = "127.0.0.1:9001" }"#, "");
    h.core.reload(&one, h.at(100.0));
    assert_eq!(h.picks(), [64, 0]);
    let deadline = h.at(110.0);
    assert_eq!(h.core.poll_timeout(), Some(deadline));
    h.core.handle_timeout(h.at(109.9));
    assert!(!removed.is_tripped(), "grace not over");
    h.core.handle_timeout(deadline);
    assert!(removed.is_tripped(), "grace over: sessions shut");
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn a_reload_that_brings_a_server_back_cancels_its_retirement() {
    let mut h = Harness::new(&two_servers());
    let kept = h.core.pools[API].servers[1].sessions();
    let one = config(r#"{ name = "a", addr = "127.0.0.1:9001" }"#, "");
    h.core.reload(&one, h.at(1.0));
    h.core.reload(&two_servers(), h.at(2.0));
    h.core.handle_timeout(h.at(11.0));
    // The server came back under the same name and address: it keeps its runtime, and its
    // retirement is void.
    assert!(!kept.is_tripped());
    assert!(std::ptr::eq(
        h.core.pools[API].servers[1].as_ref(),
        h.core.pools[API].slot.view.load().servers[1].as_ref()
    ));
    assert_eq!(h.picks(), [32, 32]);
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn pool_availability_counts_its_downtime() {
    let one = config(r#"{ name = "a", addr = "127.0.0.1:9001" }"#, "");
    let mut h = Harness::settled(&one, &[A]);
    for t in [5.0, 10.0, 15.0] {
        h.check(A, false, t);
    }
    let snap = h.core.snapshot(h.at(20.0));
    assert!(!snap.pools[0].up);
    assert_eq!(snap.pools[0].chkdown, 1);
    assert_eq!(snap.pools[0].downtime, Duration::from_secs(5));
    assert_eq!(snap.uptime, Duration::from_secs(20));
    h.check(A, true, 25.0);
    h.check(A, true, 30.0);
    let snap = h.core.snapshot(h.at(40.0));
    assert!(snap.pools[0].up);
    assert_eq!(snap.pools[0].downtime, Duration::from_secs(15));
    assert_eq!(snap.pools[0].last_change, Duration::from_secs(10));
}
