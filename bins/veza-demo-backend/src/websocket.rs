//! `/ws`: the RFC 6455 handshake on hyper's upgrade, then a session that greets and echoes.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::routes::{Backend, Body};

/// Whether the request asks to switch to WebSocket (`Upgrade` lists the `websocket` token).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(UPGRADE).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

/// Answers the handshake and, when it succeeds, starts the session on its own task, which
/// ends with the client or when `stop` fires.
pub(crate) fn accept(
    request: &mut Request<Incoming>,
    backend: Arc<Backend>,
    stop: watch::Receiver<()>,
) -> Response<Body> {
    let headers = request.headers();
    if headers.get(SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        // RFC 6455 4.4: name the versions we speak so the client can retry with one.
        let mut refusal = backend.bare(
            StatusCode::UPGRADE_REQUIRED,
            Bytes::from_static(b"WebSocket version 13 only\n"),
        );
        refusal
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return refusal;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return backend.bare(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"missing Sec-WebSocket-Key\n"),
        );
    };
    let accept_key = derive_accept_key(key.as_bytes());

    let on_upgrade = hyper::upgrade::on(request);
    let mut switching = backend.bare(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = switching.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept_key) = HeaderValue::from_str(&accept_key) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept_key);
    }
    tokio::spawn(session(on_upgrade, backend, stop));
    switching
}

async fn session(on_upgrade: OnUpgrade, backend: Arc<Backend>, mut stop: watch::Receiver<()>) {
    tokio::select! {
        () = greet_and_echo(on_upgrade, &backend) => {}
        // Dropping the socket mid-session is the point: clients must see a dead server.
        _ = stop.changed() => {}
    }
}

async fn greet_and_echo(on_upgrade: OnUpgrade, backend: &Backend) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let mut socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    if socket
        .send(Message::Text(backend.hello.clone()))
        .await
        .is_err()
    {
        return;
    }
    // tungstenite answers pings and close frames itself while we keep reading.
    while let Some(Ok(message)) = socket.next().await {
        if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
            return;
        }
    }
}
