//! The HTTP side of the metrics endpoint (`server.metrics_listen`): hyper answers one
//! request per connection, `GET /metrics` with [`prometheus::render`] and anything else
//! with 404. At most [`MAX_CONNECTIONS`] at once, each bounded in time; a failed accept
//! pauses the loop (crate::backoff); shutdown stops accepting.
use std::{convert::Infallible, io, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::prometheus::{self, Sources};
use crate::backoff::{LogLimiter, accept_failed};

/// A client that has not sent its request head by then is cut off.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole exchange takes at most this long: a client that does not read its response
/// does not keep the connection (and its descriptor).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; one over it is closed at once. Scrapers open one at a time.
pub const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    sources: Arc<Sources>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut accept_log = LogLimiter::new();
    let mut limit_log = LogLimiter::new();
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    accept_failed("metrics endpoint", &e, &mut accept_log).await;
                    continue;
                }
            },
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            limit_log.warn(|suppressed| {
                tracing::warn!(%peer, suppressed, "metrics endpoint: {MAX_CONNECTIONS} connections open, closing a new one");
            });
            drop(stream);
            continue;
        };
        let sources = sources.clone();
        let service = service_fn(move |request| respond(request, sources.clone()));
        tokio::spawn(async move {
            // One request per connection: a scraper opens one per scrape, and nothing
            // stays open to wait out at shutdown.
            let exchange = http1::Builder::new()
                .keep_alive(false)
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await;
            drop(place);
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    sources: Arc<Sources>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = if request.method() == Method::GET && request.uri().path() == "/metrics" {
        // Reading the pinned maps blocks: off the I/O threads.
        match tokio::task::spawn_blocking(move || prometheus::render(sources)).await {
            Ok(body) => (StatusCode::OK, body),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
        }
    } else {
        (StatusCode::NOT_FOUND, "only /metrics here\n".to_owned())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus::CONTENT_TYPE),
    );
    Ok(response)
}
