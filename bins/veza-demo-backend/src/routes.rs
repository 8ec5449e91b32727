//! One HTTP/1.1 connection and the answers to its requests.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::{self, BoxFuture, Either, Ready};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, SEC_WEBSOCKET_VERSION,
};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::stream::{StreamPath, playlist, segment_bytes};
use crate::{BackendConfig, Error, HealthSwitch, Kind, websocket};

/// Every answer's body: small and complete, so a single buffer does.
pub(crate) type Body = Full<Bytes>;

pub(crate) const X_SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
const HEALTH_PATHS: [&str; 2] = ["/health", "/api/v1/health"];

/// Everything a connection needs to answer, built once per backend.
pub(crate) struct Backend {
    pub(crate) served_by: HeaderValue,
    /// The first WebSocket message; kept as shared bytes so each session clones a pointer.
    pub(crate) hello: Utf8Bytes,
    name: String,
    kind: Kind,
    segment_size: usize,
    playlist: Bytes,
    health: HealthSwitch,
    http: http1::Builder,
}

impl Backend {
    pub(crate) fn new(config: BackendConfig) -> Result<Arc<Self>, Error> {
        config.validate()?;
        let served_by = HeaderValue::from_str(&config.name)
            .map_err(|_| Error::InvalidName(config.name.clone()))?;
        let mut http = http1::Builder::new();
        http.keep_alive(true)
            // Answer a pipelined batch with one write, as wrk and proxies' pools send them.
            .pipeline_flush(true)
            // Humans read these answers with curl; the cost is a few bytes per header.
            .title_case_headers(true)
            // Idle keep-alive connections belong to the client (the load balancer's pool);
            // closing them here would only add noise to the tests that use them.
            .header_read_timeout(None);
        Ok(Arc::new(Self {
            served_by,
            hello: Utf8Bytes::from(config.name.clone()),
            name: config.name,
            kind: config.kind,
            segment_size: config.segment_size,
            playlist: Bytes::from(playlist(config.playlist_segments)),
            health: config.health,
            http,
        }))
    }

    /// A response carrying only `X-Served-By`, for answers that are not plain text.
    /// `/ws`: answers the handshake and, when it succeeds, starts the session on its own
    /// task, which ends with the client or when `stop` fires.
    fn websocket(
        &self,
        request: &mut Request<Incoming>,
        stop: &watch::Receiver<()>,
    ) -> Response<Body> {
        match websocket::handshake(request) {
            websocket::Handshake::WrongVersion => {
                let mut refusal = self.bare(
                    StatusCode::UPGRADE_REQUIRED,
                    Bytes::from_static(b"WebSocket version 13 only\n"),
                );
                refusal
                    .headers_mut()
                    .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                refusal
            }
            websocket::Handshake::MissingKey => self.bare(
                StatusCode::BAD_REQUEST,
                Bytes::from_static(b"missing Sec-WebSocket-Key\n"),
            ),
            websocket::Handshake::Accept {
                accept_key,
                on_upgrade,
            } => {
                let mut switching = self.bare(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
                websocket::switching(&mut switching, accept_key);
                tokio::spawn(websocket::session(
                    on_upgrade,
                    self.hello.clone(),
                    stop.clone(),
                ));
                switching
            }
        }
    }

    fn bare(&self, status: StatusCode, body: Bytes) -> Response<Body> {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(X_SERVED_BY, self.served_by.clone());
        response
    }

    fn answer(&self, status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<Body> {
        let mut response = self.bare(status, body);
        response.headers_mut().insert(CONTENT_TYPE, content_type);
        response
    }

    fn text(&self, status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
        self.answer(status, TEXT_PLAIN, body.into())
    }

    fn health_check(&self) -> Response<Body> {
        let status = self.health.get();
        let body: &'static [u8] = if status.as_u16() < 400 {
            b"ok"
        } else {
            b"unhealthy"
        };
        self.text(status, Bytes::from_static(body))
    }

    fn health_report(&self) -> Response<Body> {
        self.text(
            StatusCode::OK,
            format!("health={}\n", self.health.get().as_u16()),
        )
    }

    fn switch_health(&self, uri: &Uri) -> Response<Body> {
        let switched = query_param(uri, "status")
            .and_then(|status| status.parse::<u16>().ok())
            .map(|status| self.health.try_set(status));
        match switched {
            Some(Ok(())) => self.health_report(),
            _ => self.text(
                StatusCode::BAD_REQUEST,
                "use POST /admin/health?status=N with N in 200..=599\n",
            ),
        }
    }

    fn stream(&self, path: &str) -> Response<Body> {
        let Some(file) = StreamPath::parse(path) else {
            return self.text(StatusCode::NOT_FOUND, "not a stream path\n");
        };
        let body = if file.is_playlist() {
            self.playlist.clone()
        } else {
            segment_bytes(path, self.segment_size)
        };
        self.answer(
            StatusCode::OK,
            HeaderValue::from_static(file.content_type()),
            body,
        )
    }

    /// The echo line: who served, what path, which cookies, and for uploads how many bytes.
    fn echo(
        &self,
        status: StatusCode,
        uri: &Uri,
        headers: &HeaderMap,
        body_bytes: Option<u64>,
    ) -> Response<Body> {
        if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
            return self.text(status, Bytes::new());
        }
        let path = uri.path();
        let mut line = BytesMut::with_capacity(64 + self.name.len() + path.len());
        line.put_slice(b"served-by=");
        line.put_slice(self.name.as_bytes());
        line.put_slice(b" path=");
        line.put_slice(path.as_bytes());
        line.put_slice(b" cookies=");
        // HTTP/1.1 clients send one Cookie header; join several the way HTTP/2 would.
        for (index, cookie) in headers.get_all(COOKIE).iter().enumerate() {
            if index > 0 {
                line.put_slice(b"; ");
            }
            line.put_slice(cookie.as_bytes());
        }
        if let Some(count) = body_bytes {
            // Writing to a BytesMut cannot fail.
            let _ = write!(line, " body-bytes={count}");
        }
        line.put_u8(b'\n');
        self.text(status, line.freeze())
    }
}

/// What a request asks for, decided from its head alone.
enum Route {
    Health,
    HealthReport,
    SwitchHealth,
    WebSocket,
    Stream,
    Echo {
        status: StatusCode,
        delay: Option<Duration>,
    },
    BadRequest(&'static str),
}

impl Route {
    fn of(backend: &Backend, request: &Request<Incoming>) -> Self {
        let path = request.uri().path();
        let method = request.method();
        if HEALTH_PATHS.contains(&path) {
            return Self::Health;
        }
        match path {
            "/admin/health" if method == Method::POST => Self::SwitchHealth,
            "/admin/health" => Self::HealthReport,
            "/ws" if method == Method::GET && websocket::is_upgrade(request.headers()) => {
                Self::WebSocket
            }
            "/slow" => match query_param(request.uri(), "ms").and_then(|ms| ms.parse().ok()) {
                Some(ms) => Self::Echo {
                    status: StatusCode::OK,
                    delay: Some(Duration::from_millis(ms)),
                },
                None => Self::BadRequest("use GET /slow?ms=N\n"),
            },
            _ => {
                if let Some(code) = path.strip_prefix("/status/") {
                    return match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
                        Some(code) => Self::Echo {
                            // The filter keeps `code` in the range `from_u16` accepts.
                            status: StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
                            delay: None,
                        },
                        None => Self::BadRequest("use GET /status/NNN with NNN in 200..=599\n"),
                    };
                }
                let is_stream = backend.kind == Kind::Stream
                    && matches!(*method, Method::GET | Method::HEAD)
                    && StreamPath::parse(path).is_some();
                if is_stream {
                    Self::Stream
                } else {
                    Self::Echo {
                        status: StatusCode::OK,
                        delay: None,
                    }
                }
            }
        }
    }
}

/// The hyper service for one connection.
struct Exchange {
    backend: Arc<Backend>,
    stop: watch::Receiver<()>,
}

type Answer = Result<Response<Body>, Infallible>;

impl hyper::service::Service<Request<Incoming>> for Exchange {
    type Response = Response<Body>;
    type Error = Infallible;
    // Most requests are answered from their head alone; only those that must wait for a
    // body or a delay pay for a boxed future.
    type Future = Either<Ready<Answer>, BoxFuture<'static, Answer>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let backend = &self.backend;
        let now = |response| Either::Left(future::ready(Ok(response)));
        match Route::of(backend, &request) {
            Route::Health => now(backend.health_check()),
            Route::HealthReport => now(backend.health_report()),
            Route::SwitchHealth => now(backend.switch_health(request.uri())),
            Route::WebSocket => now(backend.websocket(&mut request, &self.stop)),
            Route::Stream => now(backend.stream(request.uri().path())),
            Route::BadRequest(hint) => now(backend.text(StatusCode::BAD_REQUEST, hint)),
            Route::Echo { status, delay } => {
                let counts_body = matches!(*request.method(), Method::POST | Method::PUT);
                if delay.is_none() && request.body().is_end_stream() {
                    let body_bytes = counts_body.then_some(0);
                    return now(backend.echo(status, request.uri(), request.headers(), body_bytes));
                }
                let backend = Arc::clone(backend);
                Either::Right(Box::pin(async move {
                    let (head, body) = request.into_parts();
                    let Ok(count) = count_body(body).await else {
                        return Ok(backend.text(StatusCode::BAD_REQUEST, "unreadable body\n"));
                    };
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    let body_bytes = counts_body.then_some(count);
                    Ok(backend.echo(status, &head.uri, &head.headers, body_bytes))
                }))
            }
        }
    }
}

/// Serves one accepted connection until the client leaves or `stop` fires.
pub(crate) async fn serve_connection(
    tcp: TcpStream,
    backend: Arc<Backend>,
    mut stop: watch::Receiver<()>,
) {
    let exchange = Exchange {
        backend: Arc::clone(&backend),
        stop: stop.clone(),
    };
    let connection = backend
        .http
        .serve_connection(TokioIo::new(tcp), exchange)
        .with_upgrades();
    // Connection errors are the client's business (resets, garbage); nothing to report.
    tokio::select! {
        _ = connection => {}
        _ = stop.changed() => {}
    }
}

async fn count_body(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut count = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            count += data.len() as u64;
        }
    }
    Ok(count)
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_query_parameters() {
        let uri: Uri = "/admin/health?x=1&status=503&status=200".parse().unwrap();
        assert_eq!(query_param(&uri, "status"), Some("503"));
        assert_eq!(query_param(&uri, "x"), Some("1"));
        assert_eq!(query_param(&uri, "missing"), None);
        let bare: Uri = "/slow".parse().unwrap();
        assert_eq!(query_param(&bare, "ms"), None);
    }
}
