//! `status`: publication facts and the agents from the published view, with the ingest's
//! and the UDP workers' counters, which their own threads keep.
use super::protocol::{AgentLine, Status, UdpCounters};
use crate::{metrics::ingest::IngestCounters, view::View};

/// What `xgslbctl status` shows; `ingest` is `None` without `[agents]`.
pub fn status(
    view: &View,
    ingest: Option<IngestCounters>,
    udp: UdpCounters,
    startup: &[String],
    now_ms: u64,
) -> Status {
    let p = view.facts;
    let agents_configured = ingest.is_some();
    let counters = ingest.unwrap_or_default();
    Status {
        generation: p.generation,
        reloads: p.reloads,
        metric_updates: p.metric_updates,
        metric_errors: p.metric_errors,
        reports: p.reports,
        agents_configured,
        agents: view
            .agents(now_ms)
            .into_iter()
            .map(|a| AgentLine {
                agent: a.agent,
                site: a.state.site,
                address: a.state.address.to_string(),
                key_id: a.state.key_id,
                age_ms: a.age_ms,
                last_sequence: a.state.last_sequence,
                records: a.state.records,
                state: a.liveness.name().into(),
            })
            .collect(),
        ingest_accepted: counters.accepted,
        ingest_rejected: counters.by_name().map(|(n, c)| (n.to_owned(), c)).collect(),
        udp,
        transfers: view.served.transfers.counters().as_ref().into(),
        startup: startup.to_vec(),
    }
}
