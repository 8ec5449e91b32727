//! Stopping a backend: everything closes at once, as when the process is killed.

use std::io::ErrorKind;

use futures_util::StreamExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use veza_demo_backend::BackendConfig;

use crate::support::{Client, api, get_request, loopback, within};

#[tokio::test]
async fn kill_closes_open_websockets_and_the_listener() {
    let backend = api("api-1").await;
    let addr = backend.addr();
    let (mut socket, _) = within("ws handshake", connect_async(format!("ws://{addr}/ws")))
        .await
        .unwrap();
    let hello = within("hello", socket.next()).await.unwrap().unwrap();
    assert_eq!(hello, Message::text("api-1"));

    within("kill", backend.kill()).await;

    // No close frame: the connection just ends, as with a killed process.
    let after = within("socket end", socket.next()).await;
    assert!(
        !matches!(after, Some(Ok(Message::Close(_)) | Ok(Message::Text(_)))),
        "{after:?}"
    );
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn kill_closes_idle_and_busy_http_connections() {
    let backend = api("api").await;
    let mut idle = Client::connect(backend.addr()).await;
    idle.get("/warm").await;
    let mut busy = Client::connect(backend.addr()).await;
    let in_flight = tokio::spawn(async move { busy.try_send(get_request("/slow?ms=60000")).await });
    // Let the slow request reach the backend before killing it.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    within("kill", backend.kill()).await;

    within("idle connection closes", &mut idle.connection)
        .await
        .unwrap()
        .ok();
    let cut = within("in-flight request ends", in_flight).await.unwrap();
    assert!(cut.is_err(), "{cut:?}");
}

#[tokio::test]
async fn dropping_the_serve_future_closes_its_connections() {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(veza_demo_backend::serve(
        listener,
        BackendConfig::new("api"),
    ));
    let (mut socket, _) = within("ws handshake", connect_async(format!("ws://{addr}/ws")))
        .await
        .unwrap();
    within("hello", socket.next()).await.unwrap().unwrap();

    serving.abort();

    let after = within("socket end", socket.next()).await;
    assert!(!matches!(after, Some(Ok(Message::Text(_)))), "{after:?}");
}

#[tokio::test]
async fn dropping_the_running_backend_stops_it() {
    let backend = api("api").await;
    let addr = backend.addr();
    let (mut socket, _) = within("ws handshake", connect_async(format!("ws://{addr}/ws")))
        .await
        .unwrap();
    within("hello", socket.next()).await.unwrap().unwrap();

    drop(backend);

    let after = within("socket end", socket.next()).await;
    assert!(!matches!(after, Some(Ok(Message::Text(_)))), "{after:?}");
}

#[tokio::test]
async fn refuses_names_that_cannot_be_a_header() {
    let refused = veza_demo_backend::spawn(loopback(), BackendConfig::new("two words"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput);
    assert!(refused.to_string().contains("two words"), "{refused}");
}
