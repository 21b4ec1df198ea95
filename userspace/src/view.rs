//! The published, immutable view of the live model: what the balancer decided and from what
//! (config with the operator's changes, metrics, each virtual server's availability, the
//! agents' reports, the decisions with their traces), replaced whole after every
//! publication. Control commands and the metrics endpoint read it without asking the
//! balancer thread, so they never wait behind a map swap, and the balancer only decides
//! and publishes.
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::LowerName;

use crate::{
    balance::Unavailable,
    config::Config,
    dns::{Catalog, transfer::Transfers},
    metrics::ingest::{AgentMetrics, AgentStatus, overlay},
    model::Metrics,
    peers::table::PeerStatus,
    plan::snapshot::Snapshot,
};

/// The live model as of the balancer's last publication.
pub struct View {
    /// Publication facts.
    pub facts: Published,
    /// The config served, with the operator's changes (enable, disable, ratio).
    pub config: Arc<Config>,
    /// What both paths answer from, and the decisions behind it.
    pub served: Arc<Served>,
    /// The metrics the decisions were made from (the agents' with the file's over them).
    pub metrics: Metrics,
    /// Each virtual server's availability under `metrics`, by model index.
    pub availability: Vec<Result<(), Unavailable>>,
    /// The metrics file's (or the last `set_metrics`'), by the served model's indices.
    pub file_metrics: Metrics,
    /// What agents reported, by name: valid for any model.
    pub agent_metrics: Arc<AgentMetrics>,
    /// The peer EDNSs as of the publication (none without `[peering]`).
    pub peers: Vec<PeerStatus>,
    /// A restart's warm-up, while it lasts: the maps hold the adopted program's last
    /// publication, the slow path answers from the last known reports.
    pub warming: Option<Warming>,
}

/// A restart's warm-up as of a publication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Warming {
    /// Until the grace period ends, at most.
    pub ends_in_ms: u64,
    /// The virtual servers whose agents have not reported yet.
    pub waiting_for: Vec<String>,
}

impl View {
    /// The agents and their states as of `now_ms` (none without `[agents]`).
    pub fn agents(&self, now_ms: u64) -> Vec<AgentStatus> {
        match &self.config.agents {
            Some(a) => self.agent_metrics.agents(now_ms, a.report_timeout_ms),
            None => Vec::new(),
        }
    }

    /// The metrics `config` would decide from now: the agents' reports read against its
    /// model, the metrics file's over them.
    pub fn metrics_for(&self, config: &Config, now_ms: u64) -> Metrics {
        match &config.agents {
            Some(a) => overlay(
                self.agent_metrics
                    .metrics(&config.model, now_ms, a.report_timeout_ms),
                &self.file_metrics,
            ),
            None => self.file_metrics.clone(),
        }
    }
}

/// Readers' handle on the view: a load never blocks, not even on the balancer's store.
pub type ViewCell = Arc<ArcSwap<View>>;

/// What the slow path answers from: the zones and the published selections.
pub struct Served {
    /// Rebuilt on reload only: the dynamic names (every wide IP's A and AAAA, every
    /// `[[answer]]` set's) do not depend on metrics.
    pub catalog: Arc<Catalog>,
    /// Zone transfers: rebuilt on reload, with the catalog (the same zones and serials).
    pub transfers: Arc<Transfers>,
    pub snapshot: Snapshot,
    /// The answer table the XDP program was given, for the UDP workers to answer from.
    pub plan: crate::udp::PlanAnswers,
    /// The decisions behind the snapshot, for `explain`.
    pub decisions: Decisions,
    /// The UDP workers' response rate limit (`[rrl]`): rebuilt on reload.
    pub rrl: Arc<crate::udp::RrlRules>,
}

impl Served {
    /// Nothing served yet: what readers see before the first publication.
    pub fn empty() -> Result<Self, crate::dns::CatalogError> {
        Ok(Self {
            catalog: Arc::new(Catalog::new(Vec::new(), &[])?),
            transfers: Arc::default(),
            snapshot: Snapshot::default(),
            plan: crate::udp::PlanAnswers::default(),
            decisions: Decisions::default(),
            rrl: Arc::default(),
        })
    }
}

impl crate::udp::Publication for Served {
    fn plan(&self) -> &crate::udp::PlanAnswers {
        &self.plan
    }

    fn rrl(&self) -> &crate::udp::RrlRules {
        &self.rrl
    }

    fn respond(&self, query: &[u8], client: std::net::IpAddr) -> Option<Vec<u8>> {
        use crate::dns::Transport::Udp;
        if let Some(ixfr) = self.transfers.respond_udp(query, client) {
            return Some(ixfr);
        }
        let answer = || self.catalog.respond(query, Udp, client, &self.snapshot);
        match self.transfers.respond_signed(query, Udp, client, answer) {
            Some(signed) => signed,
            None => answer(),
        }
    }
}

/// Every wide IP's decision per client class, as the last publication made them.
#[derive(Default)]
pub struct Decisions {
    /// Wide IP names (lowercase), by index.
    pub wideips: Vec<LowerName>,
    /// The names the decisions' traces and answers refer to by index.
    pub names: crate::balance::trace::Names,
    /// By wide IP index: its decisions per class id and the answer-counter slots it uses
    /// (shared with the publication that made them).
    pub parts: Vec<std::sync::Arc<crate::plan::part::WideIpPart>>,
}

impl Decisions {
    /// Wide IP `w`'s decision for class `class`, or its default class's.
    pub fn decision(
        &self,
        w: usize,
        class: xgslb_common::ClassId,
    ) -> Option<&crate::balance::Decision> {
        let part = self.parts.get(w)?;
        let of = |c| {
            part.decisions
                .iter()
                .find(|(id, _)| *id == c)
                .map(|(_, d)| d)
        };
        of(class).or_else(|| of(xgslb_common::DEFAULT_CLASS))
    }

    /// What each answer-counter slot in use counts.
    pub fn stats(&self) -> Vec<crate::plan::part::StatLabel> {
        self.parts
            .iter()
            .flat_map(|p| p.stats.iter().cloned())
            .collect()
    }
}

/// Publication facts the daemon's users can wait on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// +1 per publication that changed what is served.
    pub generation: u64,
    /// Config reloads applied.
    pub reloads: u64,
    /// Metric sets applied (from the file or sent).
    pub metric_updates: u64,
    /// Metrics files refused (the last good metrics stayed).
    pub metric_errors: u64,
    /// Agent reports applied.
    pub reports: u64,
    /// Balancer intervals run (every one announces, whether or not anything changed).
    pub intervals: u64,
    /// How long the last publication took, microseconds (decisions, maps, snapshot).
    pub last_publication_us: u64,
    /// Publications that failed (a map write, a config the catalog refused): the one
    /// before serves on.
    pub publication_failures: u64,
}
