//! Where the balancer's metrics come from: agents over the metric protocol, and the metrics
//! file (for tests and overrides).
//!
//! - [`file`]: the TOML metrics file xgslbd watches (`balancer.metrics_file`), its parser and
//!   [`MetricsWatcher`].
//! - [`wire`]: the agent protocol's datagrams: encode, verify, decode.
//! - [`replay`]: the replay guard (sequence window and timestamp skew per agent).
//! - [`state`]: the state file, the agents' last reports saved across restarts.
//! - [`ingest`]: datagrams checked and counted ([`Ingest`]), and what the balancer keeps of
//!   the accepted reports ([`AgentMetrics`]), restored from the state file at start.
pub mod file;
pub mod ingest;
pub mod replay;
pub mod state;
pub mod wire;

pub use file::{MetricsError, MetricsWatcher, load_metrics, parse_metrics};
pub use ingest::{AgentMetrics, AgentStatus, Ingest, IngestCounters, VsIndex, overlay};
pub use replay::ReplayGuard;

/// The model the metrics tests share.
#[cfg(test)]
mod test_model {
    use crate::{model::Model, test_model::TestModel};

    /// A model with sites tokyo (0), newyork (1) and virtual servers tokyo-www (0), newyork-www
    /// (1), newyork-api (2).
    pub(super) fn model() -> Model {
        TestModel::new(&["198.18.0.2:53"])
            .site("tokyo", "tokyo-lb", &[("tokyo-www", "198.18.1.10")])
            .site("newyork", "newyork-lb", &[("newyork-www", "198.18.3.10")])
            .vs("newyork-api", "newyork-lb", "198.18.3.30", 443)
            .parse()
            .model
    }
}
