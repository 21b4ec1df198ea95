//! Where the balancer's metrics come from: the metrics file (agents arrive in issue 5).
//!
//! - [`file`]: the TOML metrics file xgslbd watches (`balancer.metrics_file`), its parser and
//!   [`MetricsWatcher`].
pub mod file;

pub use file::{MetricsError, MetricsWatcher, load_metrics, parse_metrics};
