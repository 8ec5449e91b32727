//! One probe against each kind of peer, with the exact HAProxy status it must report.

use std::time::Duration;

use healthcheck::{Check, CheckStatus, HttpCheck, Outcome, probe, probe_tcp};

use crate::support::{Behaviour, Peer, black_hole, closed_port};

fn check() -> HttpCheck {
    HttpCheck::get("/api/v1/health").with_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn expected_status_is_l7ok_with_its_code() {
    let peer = Peer::start(Behaviour::Answer).await;
    let result = probe(peer.addr, &check()).await;
    assert_eq!(result.status, CheckStatus::L7Ok);
    assert_eq!(result.code, Some(200));
    assert!(result.duration < Duration::from_millis(500));
}

#[tokio::test]
async fn request_is_a_one_shot_get_with_host_and_user_agent() {
    let peer = Peer::start(Behaviour::Answer).await;
    probe(peer.addr, &check()).await;
    probe(peer.addr, &check().with_host("api.veza.example")).await;
    let requests = peer.requests();
    assert_eq!(requests.len(), 2, "one connection per check");
    let lines = |head: &str| -> Vec<String> { head.lines().map(str::to_ascii_lowercase).collect() };
    let first = lines(&requests[0]);
    assert_eq!(first[0], "get /api/v1/health http/1.1");
    assert!(first.contains(&format!("host: {}", peer.addr)), "{first:?}");
    assert!(
        first.contains(&"user-agent: veza-lb-healthcheck".to_owned()),
        "{first:?}"
    );
    assert!(first.contains(&"connection: close".to_owned()), "{first:?}");
    assert!(lines(&requests[1]).contains(&"host: api.veza.example".to_owned()));
}

#[tokio::test]
async fn unexpected_status_is_l7sts_with_its_code() {
    let peer = Peer::start(Behaviour::Answer).await;
    peer.set_status(503);
    let outcome = Check::Http(check()).run(peer.addr).await;
    assert_eq!(outcome.result.status, CheckStatus::L7Status);
    assert_eq!(outcome.result.code, Some(503));
    assert_eq!(outcome.info.as_deref(), Some("Service Unavailable"));
    assert!(
        outcome.describe().starts_with(
            "Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: "
        ),
        "{}",
        outcome.describe()
    );

    // The same answer passes when listed.
    let result = probe(peer.addr, &check().expecting([200, 503])).await;
    assert_eq!((result.status, result.code), (CheckStatus::L7Ok, Some(503)));
}

#[tokio::test]
async fn response_head_is_enough_and_the_body_is_never_awaited() {
    let peer = Peer::start(Behaviour::HeadOnly).await;
    let result = probe(peer.addr, &check()).await;
    assert_eq!((result.status, result.code), (CheckStatus::L7Ok, Some(200)));
}

#[tokio::test]
async fn silence_after_connect_is_l7tout() {
    let peer = Peer::start(Behaviour::Silent).await;
    let timeout = Duration::from_millis(200);
    let result = probe(peer.addr, &check().with_timeout(timeout)).await;
    assert_eq!((result.status, result.code), (CheckStatus::L7Timeout, None));
    assert!(result.duration >= timeout, "{:?}", result.duration);
}

#[tokio::test]
async fn garbage_is_l7rsp() {
    let peer = Peer::start(Behaviour::Garbage).await;
    let result = probe(peer.addr, &check()).await;
    assert_eq!(
        (result.status, result.code),
        (CheckStatus::L7Response, None)
    );
}

#[tokio::test]
async fn close_without_answer_is_l7rsp() {
    let peer = Peer::start(Behaviour::CloseAfterRequest).await;
    let result = probe(peer.addr, &check()).await;
    assert_eq!(
        (result.status, result.code),
        (CheckStatus::L7Response, None)
    );
}

#[tokio::test]
async fn reset_after_accept_is_l4con() {
    let peer = Peer::start(Behaviour::Reset).await;
    let result = probe(peer.addr, &check()).await;
    assert_eq!((result.status, result.code), (CheckStatus::L4Connect, None));
}

#[tokio::test]
async fn refused_connection_is_l4con_with_strerror_info() {
    let addr = closed_port().await;
    let outcome: Outcome = Check::Http(check()).run(addr).await;
    assert_eq!(outcome.result.status, CheckStatus::L4Connect);
    assert_eq!(outcome.result.code, None);
    assert_eq!(outcome.info.as_deref(), Some("Connection refused"));
    assert_eq!(
        probe_tcp(addr, Duration::from_millis(500)).await.status,
        CheckStatus::L4Connect
    );
}

#[tokio::test]
async fn unanswered_syn_is_l4tout() {
    let (addr, _listener, _fillers) = black_hole().await;
    let timeout = Duration::from_millis(300);
    let result = probe(addr, &check().with_timeout(timeout)).await;
    assert_eq!((result.status, result.code), (CheckStatus::L4Timeout, None));
    assert!(result.duration >= timeout, "{:?}", result.duration);
    assert_eq!(
        probe_tcp(addr, timeout).await.status,
        CheckStatus::L4Timeout
    );
}

#[tokio::test]
async fn tcp_check_passes_on_accept_whatever_follows() {
    let peer = Peer::start(Behaviour::Silent).await;
    let result = probe_tcp(peer.addr, Duration::from_millis(500)).await;
    assert_eq!((result.status, result.code), (CheckStatus::L4Ok, None));
}

#[tokio::test]
async fn invalid_check_is_sockerr_without_connecting() {
    let peer = Peer::start(Behaviour::Answer).await;
    let result = probe(peer.addr, &check().with_host("not a host")).await;
    assert_eq!(result.status, CheckStatus::SocketError);
    assert!(peer.requests().is_empty());
}
