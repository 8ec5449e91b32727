//! The periodic checker: schedules, concurrency, target set changes, shutdown.

use std::collections::HashMap;
use std::time::Duration;

use healthcheck::{CheckEvent, CheckStatus, Checker, FirstProbe, HttpCheck, Target};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

use crate::support::{Behaviour, Peer};

const FAST: Duration = Duration::from_millis(100);

fn http(key: &'static str, peer: &Peer, interval: Duration) -> Target<&'static str> {
    let check = HttpCheck::get("/health").with_timeout(Duration::from_secs(2));
    Target::http(key, peer.addr, check, interval)
}

fn immediate() -> (
    Checker<&'static str>,
    mpsc::Receiver<CheckEvent<&'static str>>,
) {
    let (tx, rx) = mpsc::channel(64);
    (Checker::with_first_probe(tx, FirstProbe::Immediate), rx)
}

/// Every event received during `window`, counted per key.
async fn collect(
    rx: &mut mpsc::Receiver<CheckEvent<&'static str>>,
    window: Duration,
) -> (HashMap<&'static str, usize>, Vec<CheckEvent<&'static str>>) {
    let end = Instant::now() + window;
    let mut counts = HashMap::new();
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(end, rx.recv()).await {
        *counts.entry(event.key).or_default() += 1;
        events.push(event);
    }
    (counts, events)
}

fn drain(rx: &mut mpsc::Receiver<CheckEvent<&'static str>>) {
    while rx.try_recv().is_ok() {}
}

#[tokio::test]
async fn every_target_is_checked_about_every_interval() {
    let ok = Peer::start(Behaviour::Answer).await;
    let bad = Peer::start(Behaviour::Answer).await;
    bad.set_status(503);
    let (mut checker, mut rx) = immediate();
    checker.set_targets([http("ok", &ok, FAST), http("bad", &bad, FAST)]);

    let (counts, events) = collect(&mut rx, Duration::from_secs(1)).await;
    // ~11 each (one at once, then every 100ms); loose bounds for a loaded machine.
    for key in ["ok", "bad"] {
        let n = counts.get(key).copied().unwrap_or(0);
        assert!((4..=13).contains(&n), "{key}: {n} checks in 1s at 100ms");
    }
    for event in &events {
        let expected = match event.key {
            "ok" => (CheckStatus::L7Ok, Some(200), ok.addr),
            _ => (CheckStatus::L7Status, Some(503), bad.addr),
        };
        assert_eq!(
            (event.result.status, event.result.code, event.addr),
            expected
        );
    }
}

#[tokio::test]
async fn a_hung_target_does_not_delay_the_others() {
    let hung = Peer::start(Behaviour::Silent).await;
    let ok = Peer::start(Behaviour::Answer).await;
    let (mut checker, mut rx) = immediate();
    checker.set_targets([
        http("hung", &hung, Duration::from_secs(2)),
        http("ok", &ok, FAST),
    ]);

    let (counts, _) = collect(&mut rx, Duration::from_secs(1)).await;
    // The hung check cannot report before its 2s timeout.
    assert_eq!(counts.get("hung"), None);
    let n = counts.get("ok").copied().unwrap_or(0);
    assert!(
        n >= 4,
        "only {n} checks of the healthy target in 1s at 100ms"
    );
}

#[tokio::test]
async fn set_targets_keeps_unchanged_schedules_stops_removed_and_starts_new() {
    let slow = Peer::start(Behaviour::Answer).await;
    let gone = Peer::start(Behaviour::Answer).await;
    let new = Peer::start(Behaviour::Answer).await;
    let (mut checker, mut rx) = immediate();
    let kept = http("kept", &slow, Duration::from_secs(1));
    checker.set_targets([kept.clone(), http("gone", &gone, FAST)]);

    // "kept" is checked at once, then not for another second.
    loop {
        let event = timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if event.key == "kept" {
            break;
        }
    }
    let changes = checker.set_targets([kept, http("new", &new, FAST)]);
    assert_eq!(changes.added, ["new"]);
    assert_eq!(changes.removed, ["gone"]);
    assert!(changes.changed.is_empty());
    assert_eq!(changes.unchanged, 1);
    assert_eq!(checker.len(), 2);

    // Let a check of "gone" that was already under way finish.
    sleep(Duration::from_millis(50)).await;
    drain(&mut rx);
    let gone_served = gone.served(200);

    let (counts, _) = collect(&mut rx, Duration::from_millis(400)).await;
    assert_eq!(counts.get("gone"), None, "a removed target still reports");
    assert_eq!(
        gone.served(200),
        gone_served,
        "a removed target is still checked"
    );
    assert!(counts.get("new").copied().unwrap_or(0) >= 2, "{counts:?}");
    // Restarting "kept" would have checked it at once.
    assert_eq!(
        counts.get("kept"),
        None,
        "an unchanged target was rescheduled"
    );
}

#[tokio::test]
async fn a_changed_address_restarts_the_target() {
    let first = Peer::start(Behaviour::Answer).await;
    let second = Peer::start(Behaviour::Answer).await;
    second.set_status(503);
    let (mut checker, mut rx) = immediate();
    checker.set_targets([http("db", &first, FAST)]);
    let event = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.addr, first.addr);

    let changes = checker.set_targets([http("db", &second, FAST)]);
    assert_eq!(changes.changed, ["db"]);
    assert!(changes.added.is_empty() && changes.removed.is_empty());
    loop {
        let event = timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if event.addr == second.addr {
            assert_eq!(event.result.code, Some(503));
            break;
        }
    }
}

#[tokio::test]
async fn spread_first_checks_still_happen_within_the_interval() {
    let peer = Peer::start(Behaviour::Answer).await;
    let (tx, mut rx) = mpsc::channel(64);
    let mut checker = Checker::new(tx);
    let interval = Duration::from_millis(300);
    checker.set_targets(["a", "b", "c"].map(|k| http(k, &peer, interval)));
    // All three within one interval (plus slack), even though none is checked at once.
    let (counts, _) = collect(&mut rx, Duration::from_millis(1500)).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
}

#[tokio::test]
async fn dropping_the_checker_stops_every_check() {
    let peer = Peer::start(Behaviour::Answer).await;
    let (mut checker, mut rx) = immediate();
    checker.set_targets([http("a", &peer, FAST), http("b", &peer, FAST)]);
    timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    drop(checker);

    // The channel closes once every task has ended and dropped its sender.
    timeout(Duration::from_secs(5), async {
        while rx.recv().await.is_some() {}
    })
    .await
    .expect("checks still running after the checker was dropped");
    let served = peer.served(200);
    sleep(Duration::from_millis(300)).await;
    assert_eq!(peer.served(200), served);
}

#[tokio::test]
async fn dropping_the_receiver_stops_every_check() {
    let peer = Peer::start(Behaviour::Answer).await;
    let (mut checker, rx) = immediate();
    checker.set_targets([http("a", &peer, FAST)]);
    drop(rx);
    sleep(Duration::from_millis(300)).await;
    // At most the first check ran: its result had nowhere to go, so the task ended.
    assert!(peer.served(200) <= 1, "{}", peer.served(200));
}
