//! Plain HTTP answers: echo line, health switch, status and slow endpoints, keep-alive.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use veza_demo_backend::BackendConfig;

use crate::support::{Client, api, get, send, start, within};

fn request(method: Method, path: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from_static(body)))
        .expect("valid request")
}

#[tokio::test]
async fn echo_names_the_backend_the_path_and_the_cookies_as_received() {
    let backend = api("backend-api-1").await;
    let with_cookies = Request::get("/api/v1/tracks/42?page=2")
        .header("cookie", "SERVERID=backend-api-2; session=abc")
        .body(Full::default())
        .unwrap();
    let reply = send(backend.addr(), with_cookies).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.served_by(), "backend-api-1");
    assert_eq!(reply.header("content-type"), "text/plain");
    assert_eq!(
        reply.text(),
        "served-by=backend-api-1 path=/api/v1/tracks/42 cookies=SERVERID=backend-api-2; session=abc\n"
    );

    let plain = get(backend.addr(), "/").await;
    assert_eq!(plain.text(), "served-by=backend-api-1 path=/ cookies=\n");
}

#[tokio::test]
async fn uploads_are_counted_and_discarded() {
    let backend = api("api").await;
    let mut client = Client::connect(backend.addr()).await;

    let post = client
        .send(request(Method::POST, "/upload", &[7; 100_000]))
        .await;
    assert_eq!(
        post.text(),
        "served-by=api path=/upload cookies= body-bytes=100000\n"
    );
    let put = client.send(request(Method::PUT, "/tracks/1", b"")).await;
    assert_eq!(
        put.text(),
        "served-by=api path=/tracks/1 cookies= body-bytes=0\n"
    );
    // Other methods read their body too, so the connection stays usable, but do not report it.
    let delete = client
        .send(request(Method::DELETE, "/tracks/1", b"why"))
        .await;
    assert_eq!(delete.text(), "served-by=api path=/tracks/1 cookies=\n");
    let after = client.get("/after").await;
    assert_eq!(after.text(), "served-by=api path=/after cookies=\n");
}

#[tokio::test]
async fn health_follows_the_admin_switch_without_restarting() {
    let backend = api("api-1").await;
    let addr = backend.addr();
    for path in ["/health", "/api/v1/health"] {
        let healthy = get(addr, path).await;
        assert_eq!((healthy.status, healthy.text()), (StatusCode::OK, "ok"));
        assert_eq!(healthy.served_by(), "api-1");
    }

    let switched = send(addr, request(Method::POST, "/admin/health?status=503", b"")).await;
    assert_eq!(
        (switched.status, switched.text()),
        (StatusCode::OK, "health=503\n")
    );
    for path in ["/health", "/api/v1/health"] {
        let sick = get(addr, path).await;
        assert_eq!(
            (sick.status, sick.text()),
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
        );
        assert_eq!(sick.served_by(), "api-1");
    }
    assert_eq!(get(addr, "/admin/health").await.text(), "health=503\n");
    // Only health checks fail: the backend keeps serving traffic.
    assert_eq!(get(addr, "/work").await.status, StatusCode::OK);

    backend.set_health(200);
    assert_eq!(get(addr, "/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_switch_refuses_statuses_that_are_not_final() {
    let backend = api("api").await;
    for query in ["status=99", "status=600", "status=abc", "stat=503", ""] {
        let path = format!("/admin/health?{query}");
        let refused = send(backend.addr(), request(Method::POST, &path, b"")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(get(backend.addr(), "/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_switch_in_the_config_is_shared_with_the_backend() {
    let config = BackendConfig::new("api");
    let switch = config.health.clone();
    let backend = start(config).await;
    switch.set(500);
    assert_eq!(
        get(backend.addr(), "/health").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(backend.health().get(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn status_endpoint_answers_the_requested_code() {
    let backend = api("api").await;
    let mut client = Client::connect(backend.addr()).await;
    for code in [200u16, 302, 404, 500, 503] {
        let reply = client.get(&format!("/status/{code}")).await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.served_by(), "api");
        assert_eq!(
            reply.text(),
            format!("served-by=api path=/status/{code} cookies=\n")
        );
    }
    let empty = client.get("/status/204").await;
    assert_eq!(
        (empty.status, empty.body.len()),
        (StatusCode::NO_CONTENT, 0)
    );
    for bad in ["/status/99", "/status/600", "/status/abc"] {
        assert_eq!(
            client.get(bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn slow_answers_after_the_requested_delay() {
    let backend = api("api").await;
    let started = Instant::now();
    let reply = get(backend.addr(), "/slow?ms=150").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(reply.text(), "served-by=api path=/slow cookies=\n");
    assert_eq!(
        get(backend.addr(), "/slow").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn one_connection_serves_many_requests() {
    let backend = api("api").await;
    let mut client = Client::connect(backend.addr()).await;
    for index in 0..50 {
        let reply = client.get(&format!("/n/{index}")).await;
        assert_eq!(
            reply.text(),
            format!("served-by=api path=/n/{index} cookies=\n")
        );
    }
    assert!(!client.connection.is_finished());
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let backend = api("api").await;
    let mut tcp = TcpStream::connect(backend.addr()).await.unwrap();
    tcp.write_all(
        b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    within("pipelined answers", tcp.read_to_string(&mut raw))
        .await
        .unwrap();
    let paths: Vec<&str> = raw
        .match_indices("path=")
        .map(|(at, _)| raw[at + 5..].split(' ').next().unwrap())
        .collect();
    assert_eq!(paths, ["/first", "/second", "/third"]);
    assert_eq!(raw.matches("HTTP/1.1 200 OK\r\n").count(), 3);
}

#[tokio::test]
async fn ws_path_without_upgrade_is_a_plain_request() {
    let backend = api("api").await;
    assert_eq!(
        get(backend.addr(), "/ws").await.text(),
        "served-by=api path=/ws cookies=\n"
    );
}
