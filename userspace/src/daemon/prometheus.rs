//! The Prometheus text endpoint (`server.metrics_listen`, path `/metrics`): XDP counters by
//! outcome, slow-path responses by rcode, publication facts, agent reports and ingest
//! refusals by reason, and each virtual server's availability. Read-only, local by intent.
use std::{fmt::Write as _, path::PathBuf, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;
use xgslb_common::Counter;

use super::DaemonHandle;
use crate::dns::RcodeCounters;

/// What the endpoint reads from.
pub struct Sources {
    pub handle: DaemonHandle,
    /// The pinned maps' directory, when XDP is loaded.
    pub pin_dir: Option<PathBuf>,
    /// The pinned counter maps, opened at the first scrape that finds them and kept.
    pub counters: std::sync::Mutex<Option<crate::maps::dataplane::PinnedCounters>>,
    /// The TCP server's responses by rcode (the UDP workers' come through `handle`).
    pub tcp_rcodes: Arc<RcodeCounters>,
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    sources: Arc<Sources>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut accept_log = crate::backoff::LogLimiter::new();
    loop {
        let (mut stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    crate::backoff::accept_failed("metrics endpoint", &e, &mut accept_log).await;
                    continue;
                }
            },
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            // The request line is all that matters; a client that sends nothing is cut off.
            let mut buf = [0u8; 2048];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                    .await;
            let Ok(Ok(n)) = read else {
                return;
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                let s = sources.clone();
                match tokio::task::spawn_blocking(move || render(&s)).await {
                    Ok(body) => ("200 OK", body),
                    Err(_) => ("500 Internal Server Error", String::new()),
                }
            } else {
                ("404 Not Found", "only /metrics here\n".to_owned())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics in the text exposition format.
pub fn render(s: &Sources) -> String {
    let mut out = String::new();
    let mut counters = match s.counters.lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    if counters.is_none()
        && let Some(dir) = &s.pin_dir
    {
        *counters = crate::maps::dataplane::PinnedCounters::open(dir).ok();
    }
    let counters = counters.as_ref();
    if let Some(stats) = counters.and_then(|c| c.stats().ok()) {
        family(
            &mut out,
            "xgslb_xdp_packets_total",
            "counter",
            "Frames the XDP program saw, by what it did (answered, dropped, pass_<reason>).",
        );
        for c in Counter::ALL.into_iter().filter(|c| !c.is_answer_kind()) {
            let _ = writeln!(
                out,
                "xgslb_xdp_packets_total{{outcome=\"{}\"}} {}",
                c.name(),
                stats[c as usize]
            );
        }
        family(
            &mut out,
            "xgslb_xdp_answers_by_kind_total",
            "counter",
            "Frames the XDP program answered, by kind (addresses, records, nodata, nxdomain).",
        );
        for c in Counter::ALL.into_iter().filter(|c| c.is_answer_kind()) {
            let _ = writeln!(
                out,
                "xgslb_xdp_answers_by_kind_total{{kind=\"{}\"}} {}",
                c.name().trim_start_matches("answered_"),
                stats[c as usize]
            );
        }
    }
    if let Some(counters) = counters {
        family(
            &mut out,
            "xgslb_answers_total",
            "counter",
            "A answers XDP gave per wide IP, by client class (region) and leading virtual server.",
        );
        for label in s.handle.answer_stats() {
            // Only the slots that have labels: a few reads, not every slot of the map.
            for (i, lead) in label.leads.iter().enumerate() {
                let at = label.slot * xgslb_common::MAX_ADDRS as u32 + i as u32;
                let n = counters.answer_count(at).unwrap_or(0);
                let _ = writeln!(
                    out,
                    "xgslb_answers_total{{wideip=\"{}\",region=\"{}\",vs=\"{}\"}} {n}",
                    escape(&label.wideip),
                    escape(&label.class),
                    escape(lead)
                );
            }
        }
    }
    family(
        &mut out,
        "xgslb_slow_path_responses_total",
        "counter",
        "Slow-path responses by rcode (none: queries answered with nothing).",
    );
    let workers = s.handle.udp_counters();
    let rcodes = std::iter::once(&*s.tcp_rcodes).chain(workers.iter().map(|w| &w.rcodes));
    for (rcode, n) in RcodeCounters::sum(rcodes) {
        let _ = writeln!(
            out,
            "xgslb_slow_path_responses_total{{rcode=\"{rcode}\"}} {n}"
        );
    }
    let udp = crate::udp::totals(workers);
    family(
        &mut out,
        "xgslb_slow_path_udp_total",
        "counter",
        "UDP queries the slow path's workers read, by what became of them.",
    );
    for (what, n) in [
        ("received", udp.received),
        ("answered_from_plan", udp.planned),
        ("answered_by_handler", udp.handled),
        ("unanswered", udp.unanswered),
        ("send_failed", udp.send_failed),
    ] {
        let _ = writeln!(out, "xgslb_slow_path_udp_total{{outcome=\"{what}\"}} {n}");
    }
    family(
        &mut out,
        "xgslb_slow_path_udp_workers",
        "gauge",
        "UDP worker threads (one per core).",
    );
    let _ = writeln!(out, "xgslb_slow_path_udp_workers {}", udp.workers);
    family(
        &mut out,
        "xgslb_slow_path_udp_worker_received_total",
        "counter",
        "UDP queries each worker read (the kernel hands each the datagrams of its CPU).",
    );
    for (i, w) in workers.iter().enumerate() {
        let n = w.received.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            out,
            "xgslb_slow_path_udp_worker_received_total{{worker=\"{i}\"}} {n}"
        );
    }
    let st = s.handle.status();
    let p = s.handle.published();
    family(
        &mut out,
        "xgslb_publication_duration_seconds",
        "gauge",
        "How long the last publication took (decisions, maps, snapshot).",
    );
    let _ = writeln!(
        out,
        "xgslb_publication_duration_seconds {}",
        p.last_publication_us as f64 / 1e6
    );
    for (name, kind, help, v) in [
        (
            "xgslb_publication_generation",
            "gauge",
            "Publications that changed what is served.",
            st.generation,
        ),
        (
            "xgslb_reloads_total",
            "counter",
            "Config reloads applied.",
            st.reloads,
        ),
        (
            "xgslb_metric_updates_total",
            "counter",
            "Metric sets applied from the metrics file.",
            st.metric_updates,
        ),
        (
            "xgslb_agent_reports_total",
            "counter",
            "Agent reports applied.",
            st.reports,
        ),
        (
            "xgslb_ingest_accepted_total",
            "counter",
            "Agent datagrams accepted.",
            st.ingest_accepted,
        ),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
    family(
        &mut out,
        "xgslb_ingest_rejected_total",
        "counter",
        "Agent datagrams refused, by reason.",
    );
    for (reason, n) in &st.ingest_rejected {
        let _ = writeln!(
            out,
            "xgslb_ingest_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "xgslb_vs_available",
        "gauge",
        "1 when the virtual server is in rotation (enabled, not down, within its limits).",
    );
    for (vs, site, up) in s.handle.vs_availability() {
        let _ = writeln!(
            out,
            "xgslb_vs_available{{vs=\"{}\",site=\"{}\"}} {}",
            escape(&vs),
            escape(&site),
            u8::from(up)
        );
    }
    out
}

/// A label value escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
