//! `/ws`: handshake, greeting, echo, pings.

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{api, within};

#[tokio::test]
async fn greets_with_the_name_then_echoes() {
    let backend = api("backend-api-2").await;
    let url = format!("ws://{}/ws", backend.addr());
    let (mut socket, handshake) = within("ws handshake", connect_async(url)).await.unwrap();
    assert_eq!(handshake.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(handshake.headers()["x-served-by"], "backend-api-2");

    let hello = within("hello", socket.next()).await.unwrap().unwrap();
    assert_eq!(hello, Message::text("backend-api-2"));

    for message in [
        Message::text("ping me back"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text(""),
    ] {
        socket.send(message.clone()).await.unwrap();
        let echoed = within("echo", socket.next()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
    }

    socket
        .send(Message::Ping(b"are you there".as_slice().into()))
        .await
        .unwrap();
    let pong = within("pong", socket.next()).await.unwrap().unwrap();
    assert_eq!(pong, Message::Pong(b"are you there".as_slice().into()));

    socket.close(None).await.unwrap();
    let closing = within("close reply", socket.next()).await;
    assert!(
        matches!(closing, Some(Ok(Message::Close(_))) | None),
        "{closing:?}"
    );
}

#[tokio::test]
async fn refuses_other_websocket_versions_naming_13() {
    let backend = api("api").await;
    let mut tcp = TcpStream::connect(backend.addr()).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\
          Connection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    within("refusal", tcp.read_to_string(&mut raw))
        .await
        .unwrap();
    assert!(raw.starts_with("HTTP/1.1 426 "), "{raw}");
    // Header names are case-insensitive; compare them so.
    let lower = raw.to_ascii_lowercase();
    assert!(lower.contains("\r\nsec-websocket-version: 13\r\n"), "{raw}");
    assert!(lower.contains("\r\nx-served-by: api\r\n"), "{raw}");
}

#[tokio::test]
async fn handshake_answers_the_rfc_6455_sample_key() {
    let backend = api("api").await;
    let mut tcp = TcpStream::connect(backend.addr()).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = within("101 head", tcp.read_u8()).await.unwrap();
        head.push(byte);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let accept = head
        .lines()
        .find_map(|line| {
            line.split_once(": ")
                .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-accept"))
        })
        .map(|(_, value)| value);
    // The accept value RFC 6455 section 1.3 gives for this key.
    assert_eq!(accept, Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
}
