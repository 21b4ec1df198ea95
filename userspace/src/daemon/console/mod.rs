//! The web console on the HTTP endpoint: one page (`/`, embedded: HTML, CSS and plain JS
//! in one file, no external resources) that polls the read-only JSON API under `/api/v1/`.
//!
//! - `api`: the API's answers, built from the published view and the daemon's counters.
//! - `history`: the answers' history the charts draw, sampled in the background, and the
//!   rotation changes and publications it records as events.
use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;

use super::prometheus::Sources;

pub mod api;
pub mod history;

pub use history::{History, run_sampler};

/// The page, as served.
pub const PAGE: &str = include_str!("page.html");

/// A response of the console: status, content type, body.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

const JSON: &str = "application/json";

/// The API's error body: `{"error": "why"}`.
#[derive(Serialize)]
struct ApiError<'a> {
    error: &'a str,
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_string(value) {
        Ok(body) => Reply {
            status,
            content_type: JSON,
            body,
        },
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// An API error as JSON.
pub fn error(status: StatusCode, why: &str) -> Reply {
    Reply {
        status,
        content_type: JSON,
        body: serde_json::to_string(&ApiError { error: why }).unwrap_or_else(|_| "{}".to_owned()),
    }
}

/// Whether `path` is the console's (the page or the API).
pub fn serves(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/api/")
}

/// The console's answer to `GET path?query` (blocks: it may read the pinned maps).
pub fn respond(
    path: &str,
    query: Option<&str>,
    sources: &Arc<Sources>,
    history: &History,
) -> Reply {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let s = sources.as_ref();
    match path {
        "/" | "/index.html" => Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: PAGE.to_owned(),
        },
        "/api/v1/sites" => json(StatusCode::OK, &api::sites(s)),
        "/api/v1/wideips" => {
            let readable = xdp_stats(s).is_some();
            json(StatusCode::OK, &api::wideips(s, history, readable))
        }
        "/api/v1/agents" => json(StatusCode::OK, &api::agents(s)),
        "/api/v1/peers" => json(StatusCode::OK, &api::peers(s)),
        "/api/v1/counters" => json(StatusCode::OK, &api::counters(s, xdp_stats(s))),
        "/api/v1/events" => match param("after").map(str::parse::<u64>).transpose() {
            Ok(after) => json(StatusCode::OK, &api::events(s, after)),
            Err(_) => error(StatusCode::BAD_REQUEST, "after: not a sequence number"),
        },
        "/api/v1/explain" => {
            let (Some(wideip), Some(client)) = (param("wideip"), param("client")) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "explain needs wideip=<name>&client=<address>[&ecs=<prefix>]",
                );
            };
            let ecs = param("ecs").filter(|e| !e.is_empty());
            match api::explained(s, wideip, client, ecs) {
                Ok(e) => json(StatusCode::OK, &e),
                Err((status, why)) => error(status, &why),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such API: /api/v1/ has sites, wideips, agents, peers, counters, events, explain",
        ),
    }
}

/// The XDP program's counters, if its maps are pinned and readable.
fn xdp_stats(s: &Sources) -> Option<[u64; xgslb_common::Counter::COUNT]> {
    let mut guard = s.counters.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none()
        && let Some(dir) = &s.pin_dir
    {
        *guard = crate::maps::dataplane::PinnedCounters::open(dir).ok();
    }
    guard.as_ref().and_then(|c| c.stats().ok())
}
