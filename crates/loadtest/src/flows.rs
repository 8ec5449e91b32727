//! One iteration of each flow, as a virtual user runs it: every request (or WebSocket
//! exchange) becomes a [`Sample`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::client::Client;
use crate::draw::{Rng, Weighted};
use crate::record::{ErrorKind, Sample};
use crate::scenario::{ApiStep, Flow, FlowKind};

/// A virtual user: its connection, cookies and random stream.
pub struct Vu {
    /// Its HTTP client (keep-alive connection and cookie jar).
    pub client: Client,
    /// Its own random stream.
    pub rng: Rng,
}

/// Where samples go: the recorder's channel, with the run's start for timestamps.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Sample>,
    start: Instant,
}

impl Sink {
    /// A sink sending to `tx`, times relative to `start`.
    pub fn new(tx: mpsc::UnboundedSender<Sample>, start: Instant) -> Sink {
        Sink { tx, start }
    }

    /// Records one exchange of `flow` that began at `began`, an idempotent one (a GET, a
    /// WebSocket message): a client may send it again.
    pub fn record(&self, flow: usize, began: Instant, error: Option<ErrorKind>) {
        self.record_request(flow, began, error, true);
    }

    /// Records one request of `flow` that began at `began`; `idempotent` as its method is
    /// (RFC 9110, 9.2.2: not POST or PATCH).
    pub fn record_request(
        &self,
        flow: usize,
        began: Instant,
        error: Option<ErrorKind>,
        idempotent: bool,
    ) {
        let now = Instant::now();
        // The recorder outlives every iteration; a send after it stopped is dropped.
        let _ = self.tx.send(Sample {
            flow,
            at: now.duration_since(self.start),
            latency: now.duration_since(began),
            error,
            idempotent,
        });
    }
}

/// A flow ready to run: the scenario's flow and what is precomputed for it.
pub struct Runnable {
    /// Index in the scenario, for samples.
    pub index: usize,
    /// The flow.
    pub flow: Flow,
    /// Track popularity, for HLS flows.
    tracks: Option<Weighted>,
    /// Request bodies of API steps, allocated once.
    bodies: Vec<Bytes>,
}

impl Runnable {
    /// Prepares flow `index`.
    pub fn new(index: usize, flow: Flow) -> Runnable {
        let tracks = match &flow.kind {
            FlowKind::Hls {
                tracks,
                zipf_exponent,
                ..
            } => Some(Weighted::zipf(*tracks, *zipf_exponent)),
            _ => None,
        };
        let bodies = match &flow.kind {
            FlowKind::Api { steps } => steps
                .iter()
                .map(|s| Bytes::from(vec![b'x'; s.body_bytes]))
                .collect(),
            _ => Vec::new(),
        };
        Runnable {
            index,
            flow,
            tracks,
            bodies,
        }
    }

    /// Runs one iteration for `vu`.
    pub async fn iterate(&self, vu: &mut Vu, sink: &Sink, timeout: Duration) {
        match &self.flow.kind {
            FlowKind::Api { steps } => self.api(steps, vu, sink).await,
            FlowKind::Hls { path, segments, .. } => self.hls(path, *segments, vu, sink).await,
            FlowKind::WebSocket {
                path,
                session,
                message_interval,
            } => {
                let session = Session {
                    flow: self.index,
                    path,
                    length: *session,
                    interval: *message_interval,
                    timeout,
                };
                session.run(vu, sink).await;
            }
        }
    }

    async fn api(&self, steps: &[ApiStep], vu: &mut Vu, sink: &Sink) {
        for (step, body) in steps.iter().zip(&self.bodies) {
            let began = Instant::now();
            let error = match vu.client.send(&step.method, &step.path, body.clone()).await {
                Ok(response) => ErrorKind::of_status(response.status),
                Err(kind) => Some(kind),
            };
            let idempotent = !matches!(step.method.as_str(), "POST" | "PATCH");
            sink.record_request(self.index, began, error, idempotent);
            if error.is_some() {
                // Later steps depend on this one, as a user's would.
                return;
            }
        }
    }

    async fn hls(&self, template: &str, segments: u32, vu: &mut Vu, sink: &Sink) {
        let track = self.tracks.as_ref().map_or(0, |t| t.pick(&mut vu.rng)) + 1;
        let playlist_path = template.replace("{track}", &track.to_string());
        let began = Instant::now();
        let playlist = match vu.client.send("GET", &playlist_path, Bytes::new()).await {
            Ok(response) => match ErrorKind::of_status(response.status) {
                None => response.body,
                error => return sink.record(self.index, began, error),
            },
            Err(kind) => return sink.record(self.index, began, Some(kind)),
        };
        let uris = media_uris(&playlist);
        if uris.is_empty() {
            return sink.record(self.index, began, Some(ErrorKind::Protocol));
        }
        sink.record(self.index, began, None);
        let base = playlist_path.rsplit_once('/').map_or("", |(dir, _)| dir);
        for uri in uris.into_iter().take(segments as usize) {
            let path = if uri.starts_with('/') {
                uri.to_owned()
            } else {
                format!("{base}/{uri}")
            };
            let began = Instant::now();
            let error = match vu.client.send("GET", &path, Bytes::new()).await {
                Ok(response) if response.status == 200 && response.body.is_empty() => {
                    Some(ErrorKind::Protocol)
                }
                Ok(response) => ErrorKind::of_status(response.status),
                Err(kind) => Some(kind),
            };
            sink.record(self.index, began, error);
            if error.is_some() {
                return;
            }
        }
    }
}

/// The media URIs of an HLS playlist: its lines that are neither empty nor tags.
pub fn media_uris(playlist: &[u8]) -> Vec<&str> {
    let Ok(text) = std::str::from_utf8(playlist) else {
        return Vec::new();
    };
    if !text.starts_with("#EXTM3U") {
        return Vec::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// One WebSocket session: handshake and greeting, then a message every `interval`, each
/// echo checked, until `length` has passed.
struct Session<'a> {
    flow: usize,
    path: &'a str,
    length: Duration,
    interval: Duration,
    timeout: Duration,
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

impl Session<'_> {
    async fn run(&self, vu: &mut Vu, sink: &Sink) {
        let began = Instant::now();
        let opened = tokio::time::timeout(self.timeout, self.open(vu)).await;
        let mut socket = match opened.unwrap_or(Err(ErrorKind::Timeout)) {
            Ok(socket) => socket,
            Err(kind) => return sink.record(self.flow, began, Some(kind)),
        };
        sink.record(self.flow, began, None);
        let end = began + self.length;
        let mut sent = 0u64;
        while Instant::now() + self.interval < end {
            tokio::time::sleep(self.interval).await;
            sent += 1;
            let began = Instant::now();
            let exchange = tokio::time::timeout(self.timeout, echo(&mut socket, sent)).await;
            let error = exchange.unwrap_or(Err(ErrorKind::Timeout)).err();
            sink.record(self.flow, began, error);
            if error.is_some() {
                return;
            }
        }
        let _ = tokio::time::timeout(self.timeout, socket.close(None)).await;
    }

    /// Connects with the user's cookies (so the sticky cookie pins the session), keeps the
    /// cookies the 101 sets, and reads the greeting.
    async fn open(&self, vu: &mut Vu) -> Result<Socket, ErrorKind> {
        let target = vu.client.target().clone();
        let mut request = target
            .ws_url(self.path)
            .into_client_request()
            .map_err(|_| ErrorKind::WsHandshake)?;
        if let Some(cookie) = vu.client.cookie_header() {
            request.headers_mut().insert("cookie", cookie);
        }
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (mut socket, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .map_err(|_| ErrorKind::WsHandshake)?;
        for value in response.headers().get_all("set-cookie") {
            if let Ok(text) = value.to_str() {
                vu.client.jar.store(text);
            }
        }
        match socket.next().await {
            Some(Ok(Message::Text(_))) => Ok(socket),
            Some(Ok(_)) => Err(ErrorKind::WsMismatch),
            Some(Err(_)) | None => Err(ErrorKind::WsClosed),
        }
    }
}

async fn echo(socket: &mut Socket, n: u64) -> Result<(), ErrorKind> {
    let text = format!("veza-load {n}");
    socket
        .send(Message::text(text.clone()))
        .await
        .map_err(|_| ErrorKind::WsClosed)?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(echoed))) if echoed.as_str() == text => return Ok(()),
            Some(Ok(Message::Text(_) | Message::Binary(_))) => return Err(ErrorKind::WsMismatch),
            // Control frames (tungstenite answers pings itself).
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(ErrorKind::WsClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlist_media_lines_are_found() {
        let playlist = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:4.000,\nseg-0.ts\n\n#EXTINF:4.000,\n/abs/seg-1.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(media_uris(playlist), ["seg-0.ts", "/abs/seg-1.ts"]);
        assert!(media_uris(b"seg-0.ts\n").is_empty(), "not a playlist");
        assert!(media_uris(&[0xff, 0xfe]).is_empty());
    }
}
