//! The HTTP endpoint (`server.metrics_listen`): hyper answers one request per connection,
//! `GET /metrics` with [`prometheus::render`], the web console's page and API
//! ([`console`]), and anything else with 404. With `server.http_token_file`, every request,
//! the console's page included, must carry the token ([`HttpToken::check`]: `Bearer` for
//! API clients and Prometheus, or `Basic` with the token as the password for browsers),
//! else 401 with a `Basic` challenge, so that a browser asks for it and then sends it with
//! the page's fetches too. At most [`MAX_CONNECTIONS`] at once, each bounded in time; a
//! failed accept pauses the loop (crate::backoff); shutdown stops accepting.
use std::{convert::Infallible, io, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    console::{self, History},
    prometheus::{self, Sources},
};
use crate::{
    backoff::{LogLimiter, accept_failed},
    secret::HttpToken,
};

/// A client that has not sent its request head by then is cut off.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole exchange takes at most this long: a client that does not read its response
/// does not keep the connection (and its descriptor).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// The challenges of a 401: a browser prompts for the `Basic` one.
const BASIC_CHALLENGE: &str = r#"Basic realm="xgslb", charset="UTF-8""#;
const BEARER_CHALLENGE: &str = r#"Bearer realm="xgslb""#;
/// Connections served at once; one over it is closed at once. Scrapers open one at a time.
pub const MAX_CONNECTIONS: usize = 16;

/// What the endpoint serves from, and the token it asks for.
pub struct Endpoint {
    pub sources: Arc<Sources>,
    /// The console's answer history.
    pub history: Arc<History>,
    /// Required on every request, when set.
    pub token: Option<HttpToken>,
}

/// Serves `/metrics` and the console on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
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
        let endpoint = endpoint.clone();
        let service = service_fn(move |request| respond(request, endpoint.clone()));
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
    endpoint: Arc<Endpoint>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let refused = endpoint.token.as_ref().and_then(|token| {
        let authorization = request.headers().get(AUTHORIZATION);
        token.check(authorization.map(HeaderValue::as_bytes)).err()
    });
    let reply = if let Some(why) = refused {
        console::error(StatusCode::UNAUTHORIZED, &why.to_string())
    } else if request.method() != Method::GET {
        console::error(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET only")
    } else if path == "/metrics" {
        let sources = endpoint.sources.clone();
        // Reading the pinned maps blocks: off the I/O threads.
        match tokio::task::spawn_blocking(move || prometheus::render(sources)).await {
            Ok(body) => console::Reply {
                status: StatusCode::OK,
                content_type: prometheus::CONTENT_TYPE,
                body,
            },
            Err(_) => console::error(StatusCode::INTERNAL_SERVER_ERROR, "scrape failed"),
        }
    } else if console::serves(&path) {
        let e = endpoint.clone();
        let answer = tokio::task::spawn_blocking(move || {
            console::respond(&path, query.as_deref(), &e.sources, &e.history)
        });
        match answer.await {
            Ok(reply) => reply,
            Err(_) => console::error(StatusCode::INTERNAL_SERVER_ERROR, "console failed"),
        }
    } else {
        console::Reply {
            status: StatusCode::NOT_FOUND,
            content_type: "text/plain; charset=utf-8",
            body: "only /metrics, / (the console) and /api/v1/ here\n".to_owned(),
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.status == StatusCode::UNAUTHORIZED {
        // Basic makes a browser ask for the token (as the password); Bearer names what
        // API clients send.
        let headers = response.headers_mut();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(BEARER_CHALLENGE));
    }
    Ok(response)
}
