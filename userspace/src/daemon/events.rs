//! What the balancer thread is told: the events other threads send it, and the operator's
//! changes among them. Apart from the balancer so that the senders (the ingest task, the
//! daemon handle) depend on these types and not on the balancer.
use std::net::SocketAddr;

use super::DaemonError;
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
    /// A table of the live model (for `xgslbctl show`).
    Show {
        what: crate::control::protocol::ShowWhat,
        done: crossbeam_channel::Sender<Vec<Vec<String>>>,
    },
    /// What a config would decide, against what is served: one line per wide IP whose
    /// default-class answer would differ (the config is validated by the caller).
    DiffDecisions {
        config: Box<Config>,
        done: crossbeam_channel::Sender<Vec<String>>,
    },
    /// Each virtual server's (name, site, available) now.
    Availability {
        done: crossbeam_channel::Sender<Vec<(String, String, bool)>>,
    },
    /// Stop; the thread returns the data plane.
    Shutdown,
}

/// Operator changes to the running model. They last until the next reload, which serves the
/// config file as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Admin {
    /// Take a virtual server out of rotation (false) or put it back (true).
    SetEnabled { vs: String, enabled: bool },
    /// The same for every virtual server of a site.
    SetSiteEnabled { site: String, enabled: bool },
    /// Change a virtual server's ratio (>= 1).
    SetRatio { vs: String, ratio: u32 },
}
