//! `/ws`: the RFC 6455 handshake on hyper's upgrade, then a session that greets and echoes.
//! It knows nothing of the backend: `routes` builds the answers and hands it the greeting.

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

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

/// What the RFC 6455 handshake makes of a request.
pub(crate) enum Handshake {
    /// Switch protocols with this `Sec-WebSocket-Accept`, then run a [`session`] on the
    /// upgraded connection.
    Accept {
        accept_key: HeaderValue,
        on_upgrade: OnUpgrade,
    },
    /// Not version 13: answer 426 naming the version spoken (RFC 6455 4.4).
    WrongVersion,
    /// No `Sec-WebSocket-Key`: answer 400.
    MissingKey,
}

/// Checks the handshake headers and, when they are right, claims the upgrade.
pub(crate) fn handshake(request: &mut Request<Incoming>) -> Handshake {
    let headers = request.headers();
    if headers.get(SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return Handshake::WrongVersion;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return Handshake::MissingKey;
    };
    let Ok(accept_key) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return Handshake::MissingKey;
    };
    Handshake::Accept {
        accept_key,
        on_upgrade: hyper::upgrade::on(request),
    }
}

/// Writes the `101 Switching Protocols` headers onto `response`.
pub(crate) fn switching(response: &mut Response<impl Sized>, accept_key: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept_key);
}

/// Greets with `hello`, then echoes, until the client leaves or `stop` fires.
pub(crate) async fn session(
    on_upgrade: OnUpgrade,
    hello: Utf8Bytes,
    mut stop: watch::Receiver<()>,
) {
    tokio::select! {
        () = greet_and_echo(on_upgrade, hello) => {}
        // Dropping the socket mid-session is the point: clients must see a dead server.
        _ = stop.changed() => {}
    }
}

async fn greet_and_echo(on_upgrade: OnUpgrade, hello: Utf8Bytes) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let mut socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    if socket.send(Message::Text(hello)).await.is_err() {
        return;
    }
    // tungstenite answers pings and close frames itself while we keep reading.
    while let Some(Ok(message)) = socket.next().await {
        if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
            return;
        }
    }
}
