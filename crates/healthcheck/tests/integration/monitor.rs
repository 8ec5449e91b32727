//! The embedder's view: transitions with HAProxy's rise/fall and status strings.

use std::time::Duration;

use healthcheck::{
    Change, CheckStatus, DownReason, HttpCheck, Monitor, Target, Transition, describe,
};
use tokio::time::{sleep, timeout};

use crate::support::{Behaviour, Peer, closed_port};

const INTERVAL: Duration = Duration::from_millis(50);

fn target(key: &'static str, addr: std::net::SocketAddr) -> Target<&'static str> {
    let check = HttpCheck::get("/health").with_timeout(Duration::from_secs(1));
    Target::http(key, addr, check, INTERVAL)
}

async fn next(monitor: &mut Monitor<&'static str>) -> Change<&'static str> {
    timeout(Duration::from_secs(5), monitor.next_change())
        .await
        .expect("no change within 5s")
        .expect("monitor stopped")
}

async fn wait_for_status(monitor: &Monitor<&'static str>, key: &'static str, status: &str) {
    for _ in 0..500 {
        if monitor.status(&key).as_deref() == Some(status) {
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{key} never reached {status:?}, is {:?}",
        monitor.status(&key)
    );
}

#[tokio::test]
async fn marked_down_after_fall_failures_and_up_after_rise_passes() {
    let peer = Peer::start(Behaviour::Answer).await;
    let mut monitor = Monitor::start([target("api", peer.addr)], 2, 3);
    // One passed check takes the server from `UP 1/3` (as HAProxy starts it) to fully UP.
    wait_for_status(&monitor, "api", "UP").await;

    peer.set_status(503);
    let down = next(&mut monitor).await;
    assert_eq!(down.key, "api");
    assert!(!down.is_up());
    let expected_result = down.result;
    assert_eq!(
        down.transition,
        Transition::MarkedDown(DownReason::Check(expected_result))
    );
    assert_eq!(
        (down.result.status, down.result.code),
        (CheckStatus::L7Status, Some(503))
    );
    assert_eq!(down.status, "DOWN");
    assert!(!monitor.is_up(&"api"));
    // Marked down on the third failure, not before (and checks went on meanwhile at most a
    // few times).
    let failures = peer.served(503);
    assert!(
        (3..=6).contains(&failures),
        "DOWN after {failures} failures, fall is 3"
    );

    let passes_before = peer.served(200);
    peer.set_status(200);
    let up = next(&mut monitor).await;
    assert_eq!(up.transition, Transition::MarkedUp);
    assert!(up.is_up());
    assert_eq!(up.status, "UP");
    assert_eq!(
        (up.result.status, up.result.code),
        (CheckStatus::L7Ok, Some(200))
    );
    assert!(monitor.is_up(&"api"));
    let passes = peer.served(200) - passes_before;
    assert!(passes >= 2, "UP after {passes} passes, rise is 2");
}

#[tokio::test]
async fn unreachable_dependency_goes_down_with_the_layer4_reason() {
    let addr = closed_port().await;
    let mut monitor = Monitor::start([target("db", addr)], 2, 2);
    let view = monitor.view();
    let down = next(&mut monitor).await;
    assert_eq!(down.result.status, CheckStatus::L4Connect);
    assert_eq!(down.info.as_deref(), Some("Connection refused"));
    assert!(describe(&down.result).starts_with("Layer4 connection problem, check duration: "));
    assert_eq!(view.status(&"db").as_deref(), Some("DOWN"));
    // A fresh target starts one failure away from DOWN, as HAProxy's servers do.
    let health = view.health(&"db").unwrap();
    assert!(health.chkfail() >= 1);
    assert_eq!(health.chkdown(), 1);
}

#[tokio::test]
async fn set_targets_keeps_known_health_and_forgets_removed_targets() {
    let peer = Peer::start(Behaviour::Answer).await;
    let refused = closed_port().await;
    let mut monitor = Monitor::start([target("api", peer.addr), target("db", refused)], 1, 1);
    wait_for_status(&monitor, "db", "DOWN").await;
    wait_for_status(&monitor, "api", "UP").await;

    monitor.set_targets([target("db", refused), target("cache", peer.addr)]);
    assert_eq!(monitor.status(&"api"), None);
    assert!(!monitor.is_up(&"api"));
    assert_eq!(
        monitor.status(&"db").as_deref(),
        Some("DOWN"),
        "health survives a reload"
    );
    wait_for_status(&monitor, "cache", "UP").await;
    assert_eq!(monitor.checker().len(), 2);
}
