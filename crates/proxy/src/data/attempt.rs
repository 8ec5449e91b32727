//! One try of a request on one server, on a connection the request owns: a pooled one (or a
//! fresh one when a pooled one turned out stale), the head written with the `h1` codec, the
//! body streamed with its framing, and the response head read and parsed in place, within
//! `timeout_server`, unless the server's sessions are shut meanwhile (which shuts the socket
//! down under the try).

use std::sync::Arc;

use bytes::Bytes;
use h1::{Framing, HeadError, Limits, Parse, ResponseHead, encode};
use http::header;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::config::Timeouts;
use crate::data::accesslog::AccessLog;
use crate::data::deadline::{Deadline, Elapsed};
use crate::data::framed;
use crate::data::headers::Forwarding;
use crate::data::passed::PassedFields;
use crate::data::timeout::BodyError;
use crate::data::upstream::{ConnectError, ServerConn, Upstream, UpstreamBody};

/// Limits on a server's response head: larger than a client's (servers set big cookies),
/// still bounded.
const RESPONSE_LIMITS: Limits = Limits {
    max_head: 64 * 1024,
    max_uri: 0,
    max_fields: 100,
};

/// Fields the proxy may add to a server's answer.
const ADDED_FIELDS: usize = 3;

/// Why an attempt on a server failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// Connection could not be made: always retryable.
    Connect(ConnectError),
    /// A pooled connection failed before anything of the request was written: retry for
    /// free, on a fresh connection.
    StaleReused,
    /// The request was (maybe) received, no valid response came: retryable if idempotent.
    NoResponse(NoResponse),
    /// The server's sessions were shut down while waiting for the response.
    Killed,
    /// `timeout_server` elapsed before the response headers.
    Timeout,
}

/// What went wrong between sending and the response head.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NoResponse {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server's head is malformed or ambiguous.
    #[error("invalid response: {}", .0.reason())]
    Invalid(HeadError),
    /// The client's body failed while it was being sent.
    #[error(transparent)]
    ClientBody(BodyError),
}

/// A response head received on a connection, with the connection (its read buffer holds
/// whatever body bytes came with the head).
pub(crate) struct Answer {
    /// The status, and the fields the proxy may edit (the others wait in the connection:
    /// [`ServerConn::passed`]).
    pub(crate) response: Response<()>,
    pub(crate) conn: Box<ServerConn>,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
}

/// A request's head as servers get it.
#[derive(Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// Method, target, and the fields the proxy read or rewrote.
    pub(crate) parts: &'a Parts,
    /// An HTTP/1 request's other fields, as received.
    pub(crate) passed: Option<&'a PassedFields>,
    /// What the proxy tells servers about the client.
    pub(crate) forwarding: &'a Forwarding,
}

/// One try on one server: a connection (pooled unless `fresh_only`), the request, the
/// response head. `body` is taken only once its first byte is about to be sent, so a try
/// that fails before leaves it for the next.
pub(crate) async fn attempt(
    upstream: &Arc<Upstream>,
    request: Outgoing<'_>,
    body: &mut Option<UpstreamBody<'_>>,
    timeouts: &Timeouts,
    fresh_only: bool,
    log: &mut AccessLog,
) -> Result<Answer, AttemptError> {
    let pooled = if fresh_only {
        None
    } else {
        upstream.checkout()
    };
    let reused = pooled.is_some();
    let mut conn = match pooled {
        Some(conn) => conn,
        None => {
            let t = Instant::now();
            let conn = upstream
                .connect(timeouts.connect)
                .await
                .map_err(AttemptError::Connect)?;
            upstream.counters.connect_time.add(t.elapsed());
            log.connect_ms = Some(t.elapsed().as_millis() as u64);
            conn
        }
    };
    if log.connect_ms.is_none() {
        log.connect_ms = Some(0);
    }
    let head_request = request.parts.method == Method::HEAD;
    // The connection's timer, lent to this exchange (which borrows the connection).
    let mut deadline = conn.deadline.take().unwrap_or_else(Deadline::new);
    let exchange = async {
        let streams_body = body.as_ref().is_some_and(|b| !b.is_end_stream());
        write_head(&mut conn, request, streams_body)
            .await
            .map_err(|e| {
                if reused {
                    AttemptError::StaleReused
                } else {
                    AttemptError::Connect(ConnectError::Io(e))
                }
            })?;
        if let Some(body) = body.take() {
            send_body(&mut conn, body, sends_chunked(request))
                .await
                .map_err(AttemptError::NoResponse)?;
        }
        read_head(&mut conn, head_request)
            .await
            .map_err(AttemptError::NoResponse)
    };
    let answered = deadline
        .now_or_by(|| Instant::now() + timeouts.server, exchange)
        .await;
    conn.deadline = Some(deadline);
    let mut head = match answered {
        Err(Elapsed) => return Err(AttemptError::Timeout),
        Ok(Ok(head)) => head,
        // `shutdown-sessions` shuts the socket down, which is how the wait above ended:
        // name the real cause.
        Ok(Err(_)) if conn.is_killed() => return Err(AttemptError::Killed),
        Ok(Err(e)) => return Err(e),
    };
    let parsed = answer(&mut conn, &mut head);
    conn.head = head;
    Ok(Answer {
        response: parsed.response,
        conn,
        framing: parsed.framing,
        keep_alive: parsed.keep_alive,
    })
}

/// Whether the request's body goes chunked: it has no Content-Length to frame it (the
/// client's own `Transfer-Encoding` was removed with the other hop-by-hop fields).
fn sends_chunked(request: Outgoing<'_>) -> bool {
    !(request.passed.is_some_and(PassedFields::has_content_length)
        || request.parts.headers.contains_key(header::CONTENT_LENGTH))
}

/// Writes the request head: request line, the fields passed on as received, the (already
/// rewritten) fields of the map, the forwarding fields, and the framing field the body
/// needs.
async fn write_head(
    conn: &mut ServerConn,
    request: Outgoing<'_>,
    streams_body: bool,
) -> std::io::Result<()> {
    let Outgoing {
        parts,
        passed,
        forwarding,
    } = request;
    let out = &mut conn.write;
    out.clear();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    encode::request_line(out, parts.method.as_str().as_bytes(), target.as_bytes());
    if let Some(passed) = passed {
        passed.encode(out);
    }
    for (name, value) in &parts.headers {
        encode::field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    forwarding.encode(&parts.headers, out);
    if streams_body && sends_chunked(request) {
        encode::field(out, b"transfer-encoding", b"chunked");
    }
    encode::end_head(out);
    conn.stream.write_all(&conn.write).await
}

/// Streams the client's body to the server, chunk-framed when it has no length.
async fn send_body(
    conn: &mut ServerConn,
    mut body: UpstreamBody<'_>,
    chunked: bool,
) -> Result<(), NoResponse> {
    let mut line = [0_u8; 18];
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(NoResponse::ClientBody)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            // One write per chunk: its size line, data and CRLF together.
            let out = &mut conn.write;
            out.clear();
            out.extend_from_slice(encode::chunk_size_line(data.len() as u64, &mut line));
            out.extend_from_slice(&data);
            out.extend_from_slice(encode::CRLF);
            conn.stream.write_all(&conn.write).await?;
        } else {
            conn.stream.write_all(&data).await?;
        }
    }
    if chunked {
        conn.stream.write_all(encode::LAST_CHUNK).await?;
    }
    Ok(())
}

/// Reads until a final response head is complete (interim 1xx answers are skipped).
async fn read_head(conn: &mut ServerConn, head_request: bool) -> Result<ResponseHead, NoResponse> {
    let mut head = std::mem::take(&mut conn.head);
    loop {
        if !conn.read.is_empty() {
            match head.parse(&conn.read, head_request, &RESPONSE_LIMITS) {
                Ok(Parse::Complete) if head.is_interim() => {
                    let _ = conn.read.split_to(head.len);
                    continue;
                }
                Ok(Parse::Complete) => return Ok(head),
                Ok(Parse::Partial) => {}
                Err(e) => return Err(NoResponse::Invalid(e)),
            }
        }
        framed::make_room(&mut conn.read);
        if conn.stream.read_buf(&mut conn.read).await? == 0 {
            return Err(NoResponse::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// The parsed head as an `http::Response` with the fields the proxy may edit; the others, as
/// they came, wait in the connection (`passed`, which owns `head`'s field list until the
/// answer is written). Values share the head's bytes, no copy.
fn answer(conn: &mut ServerConn, head: &mut ResponseHead) -> Parsed {
    let bytes: Bytes = conn.read.split_to(head.len).freeze();
    // Room for what the proxy adds (`Set-Cookie`, `Cache-Control`, HSTS): a map that grew
    // would cost two more allocations.
    let mut headers = std::mem::take(&mut conn.fields);
    headers.clear();
    headers.reserve(ADDED_FIELDS);
    conn.passed = Some(PassedFields::of_response(head, bytes, &mut headers));
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = headers;
    Parsed {
        response,
        framing: head.framing,
        keep_alive: head.connection.keep_alive,
    }
}

/// What [`answer`] makes of a head, before the connection joins it.
struct Parsed {
    response: Response<()>,
    framing: Framing,
    keep_alive: bool,
}
