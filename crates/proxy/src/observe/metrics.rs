//! The metrics listener (`metrics_listen`): HTTP/1.1 via hyper, serving `GET /metrics`
//! (Prometheus text format, see [`crate::stats::prometheus`]), `GET /stats;csv` (the same
//! CSV as the runtime API's `show stat`) and `GET /stats` (the same data as a page for a
//! browser, [`crate::stats::page`], refreshed every 5 s or `?refresh=N`; `refresh=0` for
//! never).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::observe::source::StatsSource;
use crate::stats::csv::{self, Filter};
use crate::stats::page::StatsPage;
use crate::stats::prometheus;

/// Seconds between a stats page's refreshes unless `?refresh=N` says otherwise.
const DEFAULT_REFRESH: u32 = 5;

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until `stop`; each connection is served until it closes or `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    source: Arc<StatsSource>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, source.clone(), stop.clone()));
            }
            Err(e) => {
                tracing::warn!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    source: Arc<StatsSource>,
    stop: CancellationToken,
) {
    let service = service_fn(move |req| {
        let source = source.clone();
        async move { Ok::<_, Infallible>(respond(&req, &source).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("metrics connection: {e}");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

async fn respond(req: &Request<Incoming>, source: &StatsSource) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let path = req.uri().path();
    let page = if path == "/metrics" {
        Page::Metrics
    } else if path == "/stats;csv" || path.starts_with("/stats;csv;") {
        Page::Csv
    } else if path == "/stats" || path == "/stats/" {
        match refresh(req.uri().query()) {
            Ok(seconds) => Page::Html(seconds),
            Err(why) => return text(StatusCode::BAD_REQUEST, "text/plain", why),
        }
    } else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /stats or /stats;csv\n".into(),
        );
    };
    let Some(report) = source.report().await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the proxy is shutting down\n".into(),
        );
    };
    match page {
        Page::Metrics => {
            let info = source.process_info(&report);
            let body =
                prometheus::render(&report.frontends, &report.snapshot, &info, report.now_unix);
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        Page::Csv => {
            let mut body = csv::render(
                &report.frontends,
                &report.snapshot,
                report.now_unix,
                &Filter::default(),
            );
            // The runtime API's closing empty line is not part of the HTTP page.
            body.pop();
            text(StatusCode::OK, "text/plain; charset=utf-8", body)
        }
        Page::Html(seconds) => {
            let rows = csv::cells(
                &report.frontends,
                &report.snapshot,
                report.now_unix,
                &Filter::default(),
            );
            let page = StatsPage::new(source.process_info(&report), &rows, seconds);
            match askama::Template::render(&page) {
                Ok(html) => text(StatusCode::OK, "text/html; charset=utf-8", html),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("the stats page failed to render: {e}\n"),
                ),
            }
        }
    }
}

enum Page {
    Metrics,
    Csv,
    /// The stats page, refreshed every so many seconds, or never.
    Html(Option<u32>),
}

/// `?refresh=N` (seconds, 0 for never; at most an hour) or the default.
fn refresh(query: Option<&str>) -> Result<Option<u32>, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("refresh="))
    else {
        return Ok(Some(DEFAULT_REFRESH));
    };
    match value.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= 3600 => Ok(Some(n)),
        _ => Err(format!(
            "refresh must be a number of seconds from 0 (never) to 3600, not {value:?}\n"
        )),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}
