//! Where the balancer's metrics come from: agents over the metric protocol, and the metrics
//! file (for tests and overrides).
//!
//! - [`file`]: the TOML metrics file xgslbd watches (`balancer.metrics_file`), its parser and
//!   [`MetricsWatcher`].
//! - [`wire`]: the agent protocol's datagrams: encode, verify, decode.
//! - [`replay`]: the replay guard (sequence window and timestamp skew per agent).
//! - [`ingest`]: datagrams checked and counted ([`Ingest`]), and what the balancer keeps of
//!   the accepted reports ([`AgentMetrics`]).
pub mod file;
pub mod ingest;
pub mod replay;
pub mod wire;

pub use file::{MetricsError, MetricsWatcher, load_metrics, parse_metrics};
pub use ingest::{AgentMetrics, AgentStatus, Ingest, IngestCounters, VsIndex, overlay};
pub use replay::ReplayGuard;

/// The model the metrics tests share.
#[cfg(test)]
mod test_model {
    use std::path::Path;

    use crate::{config::Config, model::Model};

    /// A model with sites tokyo (0), newyork (1) and virtual servers tokyo-www (0), newyork-www
    /// (1), newyork-api (2).
    pub(super) fn model() -> Model {
        let text = r#"
[server]
listen = ["198.18.0.2:53"]

[[site]]
name = "tokyo"
[[site]]
name = "newyork"

[[site_server]]
name = "tokyo-lb"
site = "tokyo"
[[site_server]]
name = "newyork-lb"
site = "newyork"

[[virtual_server]]
name = "tokyo-www"
server = "tokyo-lb"
address = "198.18.1.10"
port = 80
[[virtual_server]]
name = "newyork-www"
server = "newyork-lb"
address = "198.18.3.10"
port = 80
[[virtual_server]]
name = "newyork-api"
server = "newyork-lb"
address = "198.18.3.30"
port = 443
"#;
        Config::parse(Path::new("/etc/xgslb/xgslb.toml"), text)
            .unwrap()
            .model
    }
}
