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
