//! Where the balancer's metrics come from: agents over the metric protocol, and the metrics
//! file (for tests and overrides).
//!
//! - [`file`]: the TOML metrics file xgslbd watches (`balancer.metrics_file`), its parser and
//!   [`MetricsWatcher`].
//! - [`wire`]: the agent protocol's datagrams: encode, verify, decode.
pub mod file;
pub mod wire;

pub use file::{MetricsError, MetricsWatcher, load_metrics, parse_metrics};
