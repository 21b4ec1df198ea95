//! What the balancer thread is told: the events other threads send it (the operator's
//! changes among them, typed in `control::dispatch`). Apart from the balancer so that the senders (the ingest task, the
//! daemon handle) depend on these types and not on the balancer.
use std::net::SocketAddr;

use super::DaemonError;
pub use crate::control::dispatch::{Admin, AdminError};
use crate::{config::Config, dns::Zone, maps::AttachMode, metrics::wire::Datagram, model::Metrics};

/// How the balancer answers a request, once, with its outcome: the one reply channel of
/// every event that has one. A sync caller waits with `blocking_recv` (control commands and
/// SIGHUP run on blocking threads), an async one awaits.
pub type Reply<T> = tokio::sync::oneshot::Sender<Result<T, DaemonError>>;

/// A reply channel: the sender for the event, the receiver to wait on.
pub fn reply<T>() -> (
    Reply<T>,
    tokio::sync::oneshot::Receiver<Result<T, DaemonError>>,
) {
    tokio::sync::oneshot::channel()
}

/// What the balancer is told.
pub enum Event {
    /// A validated config to serve from now on (model, static answers) with its zones, parsed
    /// once by the caller's validation; `done` gets the outcome once it is published (or
    /// refused, the old config serving on).
    Reload {
        validated: Box<(Config, Vec<Zone>)>,
        done: Reply<()>,
    },
    /// New metrics in place of the metrics file's (tests, and overrides).
    Metrics(Metrics),
    /// A report the ingest verified, from `from`, received at `at_ms` (Unix ms).
    Report {
        datagram: Datagram,
        from: SocketAddr,
        at_ms: u64,
    },
    /// A verified datagram from peer EDNS `peer`, received at `at_ms`.
    Peer {
        peer: String,
        datagram: Datagram,
        at_ms: u64,
    },
    /// An operator's change to the running model; `done` gets the outcome.
    Admin { command: Admin, done: Reply<()> },
    /// Attach the XDP program (after the first publication): the balancer holds the program.
    Attach {
        iface: String,
        mode: AttachMode,
        done: Reply<aya::programs::XdpMode>,
    },
    /// Stop publishing: a successor (`--replace`) writes the maps from now on. The state is
    /// saved first; `done` once paused. Reloads and operator changes are refused, reports
    /// dropped, until `Resume`.
    Pause { done: Reply<()> },
    /// Publish again: the successor went away before it served.
    Resume,
    /// Stop; the thread returns the data plane.
    Shutdown,
}
