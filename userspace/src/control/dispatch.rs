//! A control command answered. Read-only commands (`status`, `show`, `explain`, `peers`,
//! `reload --check`) are rendered from the published view and never wait for the balancer;
//! changes (`enable`, `disable`, `drain`, `set-ratio`, `reload`) go to the daemon, which
//! replies once they are published or refused. Anything that gives a view and applies
//! changes is a [`Daemon`], so dispatch is tested without a kernel.
use std::{collections::BTreeMap, path::Path, sync::Arc};

use super::{
    check, explain, peers,
    protocol::{Command, PeerWire, Peers, Response, Status, Target, UdpCounters},
    show, status,
};
use crate::{config::Config, metrics::ingest::IngestCounters, view::View};

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

/// Why an operator's change was refused; the model is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("no virtual server {0:?}")]
    NoVs(String),
    #[error("no site {0:?}")]
    NoSite(String),
    #[error("ratio: must be at least 1")]
    ZeroRatio,
}

/// What commands act on.
pub trait Daemon {
    /// Why a change or a config was refused (its text is the response's error).
    type Error: std::fmt::Display;
    /// The live model as last published.
    fn view(&self) -> Arc<View>;
    /// Where operators' changes and reloads are recorded for the web console, if anywhere.
    fn recent(&self) -> Option<&super::recent::RecentEvents> {
        None
    }
    /// The agent ingest's counters (`None` without `[agents]`).
    fn ingest_counters(&self) -> Option<IngestCounters>;
    /// The UDP workers' counters, summed.
    fn udp_counters(&self) -> UdpCounters;
    /// The peer socket's counters by peer name, "" for datagrams from no configured peer
    /// (empty without `[peering]`).
    fn peer_socket_counters(&self) -> BTreeMap<String, PeerWire>;
    /// What start-up did with an earlier xgslbd's pins.
    fn startup(&self) -> &[String];
    /// Applies a change; returns once it is published, or why it was refused.
    fn admin(&self, change: Admin) -> Result<(), Self::Error>;
    /// Re-reads the config file and serves it; returns once it is published, or why not
    /// (the old config serving on).
    fn reload(&self) -> Result<(), Self::Error>;
    /// The config file read and validated (zones and all), not applied.
    fn load_checked(&self) -> Result<Config, Self::Error>;
    /// The config file's path, for messages.
    fn config_path(&self) -> &Path;

    /// What `status` answers, as of `now_ms`.
    fn status(&self, now_ms: u64) -> Status {
        status::status(
            &self.view(),
            self.ingest_counters(),
            self.udp_counters(),
            self.startup(),
            now_ms,
        )
    }

    /// What `peers` answers, as of `now_ms`.
    fn peers(&self, now_ms: u64) -> Peers {
        peers::peers(&self.view(), &self.peer_socket_counters(), now_ms)
    }
}

/// The answer to `command`.
pub fn dispatch(daemon: &impl Daemon, command: Command, now_ms: u64) -> Response {
    match command {
        Command::Status => Response::status(daemon.status(now_ms)),
        Command::Explain {
            wideip,
            client,
            ecs,
        } => match explain::explain(&daemon.view(), &wideip, &client, ecs.as_deref(), now_ms) {
            Ok(e) => Response::explain(e),
            Err(e) => Response::error(e.to_string()),
        },
        Command::Peers => Response::peers(daemon.peers(now_ms)),
        // The control server hands such a connection to the daemon before dispatch.
        Command::Handover => Response::error("this control socket does not hand over"),
        Command::Show { what } => Response::table(show::table(&daemon.view(), what, now_ms)),
        Command::Enable { target } => change(daemon, target, true, "enable", "enabled", now_ms),
        Command::Disable { target } => change(daemon, target, false, "disable", "disabled", now_ms),
        Command::Drain { target } => change(
            daemon,
            target,
            false,
            "drain",
            "draining (no new answers)",
            now_ms,
        ),
        Command::SetRatio { vs, ratio } => {
            match daemon.admin(Admin::SetRatio {
                vs: vs.clone(),
                ratio,
            }) {
                Ok(()) => {
                    let text = format!("ratio of {vs} set to {ratio}");
                    record(daemon, now_ms, "ratio", Some(vs.clone()), text.clone());
                    Response::done(format!("{text}; published"))
                }
                Err(e) => Response::error(e.to_string()),
            }
        }
        Command::Reload { check: true } => match daemon.load_checked() {
            Ok(config) => {
                let lines = check::changes(&daemon.view(), &config, now_ms);
                let mut text = format!(
                    "{} is valid; nothing applied. Answers (every class, A and AAAA) that would change:",
                    daemon.config_path().display()
                );
                if lines.is_empty() {
                    text.push_str(" none");
                }
                for l in lines {
                    text.push_str("\n  ");
                    text.push_str(&l);
                }
                Response::done(text)
            }
            Err(e) => Response::error(e.to_string()),
        },
        Command::Reload { check: false } => match daemon.reload() {
            Ok(()) => {
                let text = format!("{} reloaded", daemon.config_path().display());
                record(daemon, now_ms, "reload", None, text.clone());
                Response::done(format!("{text}: published and serving"))
            }
            Err(e) => {
                record(daemon, now_ms, "reload_refused", None, e.to_string());
                Response::error(e.to_string())
            }
        },
    }
}

/// Records an event in the daemon's recent events, if it keeps them.
fn record(
    daemon: &impl Daemon,
    now_ms: u64,
    kind: &'static str,
    target: Option<String>,
    text: String,
) {
    if let Some(recent) = daemon.recent() {
        recent.record(now_ms, kind, target, text);
    }
}

/// Enables or disables a virtual server or a whole site (`kind` names the command in the
/// recent events: enable, disable, drain).
fn change(
    daemon: &impl Daemon,
    target: Target,
    enabled: bool,
    kind: &'static str,
    verb: &str,
    now_ms: u64,
) -> Response {
    let (change, what, name) = match target {
        Target::Vs(vs) => (
            Admin::SetEnabled {
                vs: vs.clone(),
                enabled,
            },
            format!("virtual server {vs}"),
            vs,
        ),
        Target::Site(site) => (
            Admin::SetSiteEnabled {
                site: site.clone(),
                enabled,
            },
            format!("site {site}"),
            site,
        ),
    };
    match daemon.admin(change) {
        Ok(()) => {
            record(daemon, now_ms, kind, Some(name), format!("{verb} {what}"));
            Response::done(format!("{verb} {what}; published"))
        }
        Err(e) => Response::error(e.to_string()),
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
