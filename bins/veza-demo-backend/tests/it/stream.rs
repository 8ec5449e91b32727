//! `--kind stream`: HLS playlist and segments, identical on every instance.

use hyper::StatusCode;
use veza_demo_backend::{BackendConfig, Kind, segment_bytes};

use crate::support::{Client, api, get, start, stream};

#[tokio::test]
async fn segments_are_identical_across_instances() {
    let (one, two) = (
        stream("stream-server-1").await,
        stream("stream-server-2").await,
    );
    let path = "/stream/track-42/seg-3.ts";
    let (a, b) = (get(one.addr(), path).await, get(two.addr(), path).await);

    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a.served_by(), "stream-server-1");
    assert_eq!(b.served_by(), "stream-server-2");
    assert_eq!(a.header("content-type"), "video/mp2t");
    assert_eq!(a.body.len(), BackendConfig::DEFAULT_SEGMENT_SIZE);
    assert_eq!(a.body, b.body);
    assert_eq!(
        a.body,
        segment_bytes(path, BackendConfig::DEFAULT_SEGMENT_SIZE)
    );

    let other = get(one.addr(), "/stream/track-43/seg-3.ts").await;
    assert_ne!(other.body, a.body);
}

#[tokio::test]
async fn playlist_lists_ten_segments() {
    let backend = stream("stream-server-1").await;
    let reply = get(backend.addr(), "/stream/7/index.m3u8").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.served_by(), "stream-server-1");
    assert_eq!(
        reply.header("content-type"),
        "application/vnd.apple.mpegurl"
    );
    let text = reply.text();
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    let segments: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
    let expected: Vec<String> = (0..10).map(|index| format!("seg-{index}.ts")).collect();
    assert_eq!(segments, expected);
}

#[tokio::test]
async fn segment_size_is_configurable() {
    let backend = start(
        BackendConfig::new("small")
            .with_kind(Kind::Stream)
            .with_segment_size(1000),
    )
    .await;
    let reply = get(backend.addr(), "/stream/1/seg-0.ts").await;
    assert_eq!(reply.body, segment_bytes("/stream/1/seg-0.ts", 1000));
}

#[tokio::test]
async fn stream_servers_answer_api_paths_too() {
    let backend = stream("stream-server-1").await;
    let mut client = Client::connect(backend.addr()).await;
    assert_eq!(client.get("/health").await.text(), "ok");
    for path in ["/stream/", "/stream/7", "/stream/7/a/b.ts", "/other"] {
        let reply = client.get(path).await;
        assert_eq!(
            reply.text(),
            format!("served-by=stream-server-1 path={path} cookies=\n")
        );
    }
}

#[tokio::test]
async fn api_servers_do_not_serve_streams() {
    let backend = api("api").await;
    let reply = get(backend.addr(), "/stream/7/seg-0.ts").await;
    assert_eq!(reply.header("content-type"), "text/plain");
    assert_eq!(
        reply.text(),
        "served-by=api path=/stream/7/seg-0.ts cookies=\n"
    );
}
