//! What the balancer thread is told: the events other threads send it (the operator's
//! changes among them, typed in `control::dispatch`). Apart from the balancer so that the senders (the ingest task, the
//! daemon handle) depend on these types and not on the balancer.
use std::net::SocketAddr;

use super::DaemonError;
pub use crate::control::dispatch::Admin;
use crate::{config::Config, dns::Zone, maps::AttachMode, metrics::wire::Datagram, model::Metrics};

/// What the balancer is told.
pub enum Event {
    /// A validated config to serve from now on (model, static answers) with its zones, parsed
    /// once by the caller's validation; `done` gets the outcome once it is published (or
    /// refused, the old config serving on).
    Reload {
        validated: Box<(Config, Vec<Zone>)>,
        done: crossbeam_channel::Sender<Result<(), String>>,
    },
    /// New metrics in place of the metrics file's (tests, and overrides).
    Metrics(Metrics),
    /// A report the ingest verified, from `from`, received at `at_ms` (Unix ms).
    Report {
        datagram: Datagram,
        from: SocketAddr,
        at_ms: u64,
    },
    /// An operator's change to the running model; `done` gets the outcome.
    Admin {
        command: Admin,
        done: crossbeam_channel::Sender<Result<(), String>>,
    },
    /// Attach the XDP program (after the first publication): the balancer holds the program.
    Attach {
        iface: String,
        mode: AttachMode,
        done: tokio::sync::oneshot::Sender<Result<aya::programs::XdpMode, DaemonError>>,
    },
    /// Stop; the thread returns the data plane.
    Shutdown,
}
