//! xgslbd put together: the config loaded and validated, the XDP program loaded with its
//! listeners, the balancer thread started (it publishes the first selections before anything
//! serves), the program attached, the UDP and TCP servers started; reloads and metrics go to
//! the balancer; then a clean shutdown (detach) or leaving the pinned program serving.
//!
//! - `balancer`: the thread that owns the model and metrics, decides and publishes (maps,
//!   the slow path's snapshot, the view); nothing else writes them.
//! - `events`: what other threads send the balancer, and its one reply channel.
//! - `ingest`: the agents' UDP socket, verifying reports before they reach the balancer.
//! - `peer_socket`: the peers' UDP socket: peer datagrams and relayed agent reports;
//!   `peer_link`: what it shares with the ingest (which relays) and the balancer.
//! - `probe_targets`: the LDNSs agents are asked to probe.
//! - `prometheus` (what `/metrics` says), `console` (the web console's page and JSON API)
//!   and `metrics_http` (serving both).
//! - `cell`: the swap cell readers take snapshots from.
//! - `sockets`: the listening sockets, bound or taken over from a replaced xgslbd;
//!   `handover`: `--replace`, the sockets and the pin-directory lock passed from the
//!   running xgslbd to its successor over the control socket.
pub mod balancer;
pub mod cell;
pub mod console;
pub mod events;
pub mod handover;
pub mod ingest;
pub mod metrics_http;
pub mod peer_link;
pub mod peer_socket;
pub mod probe_targets;
pub mod prometheus;
pub mod sockets;

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use std::os::fd::AsFd as _;

use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use xgslb_common::ListenerKey;

use crate::control::dispatch::Daemon as _;
use crate::view::{Published, View, ViewCell};
use crate::{
    balance::{classes::client_classes, damping::Damper},
    config::{Config, ConfigError, XdpModeSetting},
    dns::{Catalog, CatalogError, Messages, Responder, Transport, ZoneError, serve_tcp_until},
    maps::{AttachMode, DataPlane, DataPlaneError, publish::publish_listeners},
    model::Metrics,
    plan::snapshot::Snapshot,
};
use balancer::{Balancer, ServedCell};
use events::{Admin, AdminError, Event};
use handover::Role;
use ingest::{IngestShared, serve_ingest};

use crate::metrics::ingest::{AgentStatus, IngestCounters};
use crate::plan::{
    answer_sets,
    publication::{ClassIds, publication},
};

/// Why xgslbd could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A zone file is invalid.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// Zones and answer sets do not fit together.
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    /// The XDP program could not be loaded, published or attached.
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
    /// The interface runs an XDP program that is not ours to replace.
    #[error("{0}")]
    InterfaceTaken(String),
    /// A map write failed.
    #[error("publishing to the XDP maps: {0}")]
    Publish(#[from] aya::maps::MapError),
    /// No DNS cookie secret could be had.
    #[error(transparent)]
    CookieSecret(#[from] crate::secret::CookieSecretError),
    /// An operator's change was refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The control socket could not be made.
    #[error("cannot listen on the control socket {path}: {source}")]
    Control {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The daemon has stopped; the request cannot be handled.
    #[error("xgslbd has stopped")]
    Stopped,
    /// The balancer thread could not be started.
    #[error("cannot start the balancer thread: {0}")]
    Thread(std::io::Error),
    /// A reload changes `[server]` keys, which take a restart; nothing was reloaded.
    #[error("{0} changed: [server] changes take a restart; nothing reloaded")]
    NeedsRestart(String),
    /// A validated config could not be published; the old one serves on.
    #[error("reload not applied, the old config keeps serving: {0}")]
    NotApplied(Box<DaemonError>),
    /// `--replace`: the running xgslbd did not hand over.
    #[error("--replace: {0}")]
    Handover(String),
    /// The balancer is paused: the daemon is handing over to a successor.
    #[error("xgslbd is handing over to a new xgslbd")]
    HandingOver,
    /// The UDP worker threads could not be started.
    #[error("cannot start the UDP workers: {0}")]
    Workers(std::io::Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {proto} {addr}: {source}{hint}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
        /// "; xgslbd lacks CAP_NET_BIND_SERVICE (...)" when that is why, else empty.
        hint: String,
    },
}

impl DaemonError {
    /// Binding `addr` failed: names CAP_NET_BIND_SERVICE when this process lacks it and the
    /// kernel refused a port below 1024.
    fn bind(proto: &'static str, addr: SocketAddr, source: std::io::Error) -> Self {
        let hint = (addr.port() < 1024)
            .then(|| crate::privileges::hint(&source, &crate::privileges::LOW_PORT))
            .flatten()
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        Self::Bind {
            proto,
            addr,
            source,
            hint,
        }
    }
}

/// What the command line adds to or overrides in the config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Attach to this interface (else the config's, else none).
    pub iface: Option<String>,
    /// XDP attach mode (else the config's).
    pub xdp_mode: Option<XdpModeSetting>,
    /// bpffs directory (else the config's).
    pub pin_dir: Option<PathBuf>,
    /// On shutdown leave the pinned program attached and answering.
    pub leave_serving: bool,
    /// The control socket (else the config's `server.control_socket`).
    pub control_socket: Option<PathBuf>,
    /// Take over from the xgslbd answering on the control socket, if one does: its
    /// sockets and pin-directory lock, while it serves on (see `handover`).
    pub replace: bool,
}

/// What both paths serve for a config with no metrics yet, computed the way the balancer
/// computes it: the catalog, the slow path's snapshot, and the XDP selections and prefixes.
pub struct Built {
    pub catalog: Catalog,
    /// DNS cookies as the config says (a random secret without `secret_file`): the
    /// catalog's; tests publish them to the XDP program too.
    pub cookies: Arc<crate::dns::Cookies>,
    pub snapshot: Arc<Snapshot>,
    /// The answer table's entries.
    pub entries: Vec<xgslb_common::Entry>,
    pub prefixes: Vec<(ipnet::IpNet, xgslb_common::ClassId)>,
}

/// Loads the zones of `cfg` and builds what both paths serve before any metric arrives.
pub fn build(cfg: &Config) -> Result<Built, DaemonError> {
    build_with(cfg, &Metrics::default())
}

/// Loads the zones of `cfg` and builds what both paths serve for `metrics` (undamped: the
/// weights a first publication would hold).
pub fn build_with(cfg: &Config, metrics: &Metrics) -> Result<Built, DaemonError> {
    let zones = balancer::load_zones(cfg)?;
    let classes = client_classes(&cfg.model, metrics, cfg.balancer.max_classes);
    let p = publication(
        &cfg.model,
        metrics,
        &classes,
        &mut ClassIds::default(),
        &mut Damper::new(),
        &answer_sets::answer_sets(&cfg.answers),
    );
    let cookies = Arc::new(crate::dns::Cookies::of_config(
        &cfg.cookies,
        None,
        Arc::default(),
    )?);
    let catalog =
        Catalog::new(zones, &crate::plan::dynamic_names(cfg))?.with_cookies(cookies.clone());
    let entries = crate::plan::plan(&crate::plan::static_entries(&catalog.precompute()), &p.sets);
    let snapshot = Arc::new(Snapshot::new(p.sets, &p.prefixes).with_ecs(cfg.ecs.clone()));
    Ok(Built {
        catalog,
        cookies,
        snapshot,
        entries,
        prefixes: p.prefixes,
    })
}

/// How a running daemon is driven: reloads, metrics, and what it has published.
#[derive(Clone)]
pub struct DaemonHandle {
    config_path: PathBuf,
    /// The config xgslbd started with: its `[server]` part stays in force until a restart.
    started: Arc<Config>,
    events: crossbeam_channel::Sender<Event>,
    published: watch::Receiver<Published>,
    ingest: Option<Arc<IngestShared>>,
    /// The peers' socket and its counters, with `[peering]`.
    peers: Option<Arc<peer_socket::PeerShared>>,
    served: ServedCell,
    /// The live model, as last published.
    view: ViewCell,
    /// What start-up did with an earlier xgslbd's pins, for `status`.
    startup: Arc<Vec<String>>,
    /// Operators' changes, reloads, rotation changes and publications, for the console.
    recent: Arc<crate::control::recent::RecentEvents>,
    /// The UDP workers' counters, once they run.
    udp: Arc<std::sync::OnceLock<Vec<Arc<crate::udp::WorkerCounters>>>>,
}

/// The agents as xgslbd sees them.
#[derive(Clone, Debug, Default)]
pub struct AgentsView {
    /// Datagrams accepted, and refused by reason.
    pub counters: IngestCounters,
    /// Each agent's last report, address and state.
    pub agents: Vec<AgentStatus>,
}

impl DaemonHandle {
    /// What the peers' socket counted, by peer name ("" for datagrams from no peer).
    pub fn peer_counters(&self) -> peer_socket::PeerCounterMap {
        self.peers
            .as_ref()
            .and_then(|p| p.counters.lock().ok().map(|c| c.clone()))
            .unwrap_or_default()
    }

    /// Reads and validates the config file again (zones and the catalog included), hands it
    /// to the balancer and waits until it is published. A config that fails, there or in the
    /// publication, is refused with the reason, and the old one keeps serving. Changes under
    /// `[server]` (listeners, interface, pins) take a restart. Blocks for a publication.
    pub fn reload(&self) -> Result<(), DaemonError> {
        // The zones, parsed once here: the balancer plans and publishes from these.
        let (cfg, zones) = self.read_config()?;
        let (done, outcome) = events::reply();
        self.events
            .send(Event::Reload {
                validated: Box::new((cfg, zones)),
                done,
            })
            .map_err(|_| DaemonError::Stopped)?;
        outcome.blocking_recv().map_err(|_| DaemonError::Stopped)?
    }

    /// The config file read and validated as a reload would take it: zones and the catalog
    /// checked, and refused when it changes `[server]` keys (they take a restart).
    fn read_config(&self) -> Result<(Config, Vec<crate::dns::Zone>), DaemonError> {
        let cfg = Config::load(&self.config_path)?;
        let server = self.started.server_differences(&cfg);
        if !server.is_empty() {
            return Err(DaemonError::NeedsRestart(server.join(", ")));
        }
        let zones = checked_zones(&cfg)?;
        Ok((cfg, zones))
    }

    /// Replaces the metrics the balancer weighs (until the metrics file changes again).
    pub fn set_metrics(&self, metrics: Metrics) -> Result<(), DaemonError> {
        self.events
            .send(Event::Metrics(metrics))
            .map_err(|_| DaemonError::Stopped)
    }

    /// Applies an operator's change (enable, disable, ratio) and waits until it is
    /// published; an unknown virtual server or a bad value is refused with the reason.
    pub fn admin(&self, command: Admin) -> Result<(), DaemonError> {
        let (done, outcome) = events::reply();
        self.events
            .send(Event::Admin { command, done })
            .map_err(|_| DaemonError::Stopped)?;
        outcome.blocking_recv().map_err(|_| DaemonError::Stopped)?
    }

    /// The agents' counters and states (`None` without `[agents]`).
    pub fn agents(&self) -> Option<AgentsView> {
        let counters = self.ingest_counters()?;
        Some(AgentsView {
            counters,
            agents: self.view().agents(ingest::now_ms()),
        })
    }

    /// What the published selections answer to an A query for `name` from `client` when the
    /// round-robin counter holds `pick` (what XDP answers then), or `None` for a name that
    /// does not parse. For comparing what two daemons publish.
    pub fn answer(&self, name: &str, client: IpAddr, pick: u32) -> Option<crate::dns::Dynamic> {
        let name = hickory_proto::rr::Name::from_ascii(name).ok()?;
        let served = self.served.load();
        Some(
            served
                .snapshot
                .answer_with_pick(
                    &hickory_proto::rr::LowerName::new(&name),
                    hickory_proto::rr::RecordType::A,
                    &crate::dns::Client::at(client),
                    pick,
                )
                .answer,
        )
    }

    /// Answers a control command (read-only ones from the published view).
    pub fn command(
        &self,
        command: crate::control::protocol::Command,
    ) -> crate::control::protocol::Response {
        crate::control::dispatch::dispatch(self, command, ingest::now_ms())
    }

    /// What `xgslbctl status` shows.
    pub fn status(&self) -> crate::control::protocol::Status {
        crate::control::dispatch::Daemon::status(self, ingest::now_ms())
    }

    /// What `xgslbctl peers` shows.
    pub fn peers(&self) -> crate::control::protocol::Peers {
        crate::control::dispatch::Daemon::peers(self, ingest::now_ms())
    }

    /// What each answer-counter slot counts, as last published.
    pub fn answer_stats(&self) -> Vec<crate::plan::part::StatLabel> {
        self.served.load().decisions.stats()
    }

    /// Each virtual server's (name, site, in rotation or why not) as last published.
    pub fn vs_availability(
        &self,
    ) -> Vec<(String, String, Result<(), crate::balance::Unavailable>)> {
        let view = self.view();
        let m = &view.config.model;
        m.vss
            .iter()
            .zip(&view.availability)
            .map(|(v, a)| {
                let site = m.sites.get(v.site).map_or("?", |x| x.name.as_str());
                (v.name.clone(), site.to_owned(), *a)
            })
            .collect()
    }

    /// What zone transfers and NOTIFYs did.
    pub fn transfer_counters(&self) -> Arc<crate::dns::transfer::counters::TransferCounters> {
        self.served.load().transfers.counters().clone()
    }

    /// The slow path's responses to client subnets, by `xgslb_common::ecs_stat_index`.
    pub fn ecs_counts(&self) -> Vec<u64> {
        self.served.load().catalog.ecs_counters().read()
    }

    /// The slow paths' responses to queries with a cookie, by `xgslb_common::CookieSeen`.
    pub fn cookie_counts(&self) -> [u64; xgslb_common::COOKIE_STATS_LEN as usize] {
        self.served.load().catalog.cookies().counters().read()
    }

    /// The UDP workers' counters, summed (all zero before they start).
    pub fn udp_totals(&self) -> crate::udp::Totals {
        crate::udp::totals(self.udp_counters())
    }

    /// Each UDP worker's counters (none before they start).
    pub fn udp_counters(&self) -> &[Arc<crate::udp::WorkerCounters>] {
        self.udp.get().map_or(&[], Vec::as_slice)
    }

    /// Publication facts as of now.
    pub fn published(&self) -> Published {
        *self.published.borrow()
    }

    /// The recent events the web console lists.
    pub fn recent_events(&self) -> &crate::control::recent::RecentEvents {
        &self.recent
    }

    /// A receiver that sees every new publication.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.clone()
    }
}

impl crate::control::dispatch::Daemon for DaemonHandle {
    fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    fn ingest_counters(&self) -> Option<IngestCounters> {
        let shared = self.ingest.as_ref()?;
        Some(
            shared
                .counters
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
        )
    }

    fn udp_counters(&self) -> crate::control::protocol::UdpCounters {
        self.udp_totals().into()
    }

    fn peer_socket_counters(
        &self,
    ) -> std::collections::BTreeMap<String, crate::control::protocol::PeerWire> {
        self.peer_counters()
            .iter()
            .map(|(peer, c)| (peer.clone(), peer_wire(c)))
            .collect()
    }

    fn startup(&self) -> &[String] {
        &self.startup
    }

    fn recent(&self) -> Option<&crate::control::recent::RecentEvents> {
        Some(&self.recent)
    }

    type Error = DaemonError;

    fn admin(&self, change: Admin) -> Result<(), DaemonError> {
        DaemonHandle::admin(self, change)
    }

    fn reload(&self) -> Result<(), DaemonError> {
        DaemonHandle::reload(self)
    }

    fn load_checked(&self) -> Result<Config, DaemonError> {
        // What `reload` would refuse, `--check` refuses with the same words.
        self.read_config().map(|(cfg, _)| cfg)
    }

    fn config_path(&self) -> &Path {
        &self.config_path
    }
}

/// A peer's socket counters as the control protocol names them.
fn peer_wire(c: &peer_socket::PeerWireCounters) -> crate::control::protocol::PeerWire {
    use crate::metrics::wire::Reject;
    crate::control::protocol::PeerWire {
        accepted: c.accepted,
        rejected: Reject::ALL
            .iter()
            .map(|r| (r.name().to_owned(), c.rejected[r.index()]))
            .collect(),
        relayed_in: c.relayed_in,
        relay_duplicates: c.relay_duplicates,
        relay_refused: c.relay_refused,
        relayed_out: c.relayed_out,
        send_errors: c.send_errors,
    }
}

/// Answers from whatever the balancer published last, counting responses by rcode.
struct LiveResponder {
    served: ServedCell,
    rcodes: Arc<crate::dns::RcodeCounters>,
}

impl Responder for LiveResponder {
    fn respond(&self, query: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>> {
        let served = self.served.load();
        let answer = || {
            served
                .catalog
                .respond(query, transport, client, &served.snapshot)
        };
        let response = match served
            .transfers
            .respond_signed(query, transport, client, answer)
        {
            Some(signed) => signed,
            None => answer(),
        };
        self.rcodes.count(response.as_deref());
        response
    }

    /// Zone transfers first, from the transfers published with the catalog; a transfer
    /// counts once, by its first message's rcode.
    fn respond_tcp(&self, query: &[u8], client: IpAddr) -> Messages {
        let served = self.served.load();
        match served.transfers.respond_tcp(query, client) {
            Some(mut messages) => {
                let first = messages.next();
                self.rcodes.count(first.as_deref());
                Box::new(first.into_iter().chain(messages))
            }
            None => Box::new(self.respond(query, Transport::Tcp, client).into_iter()),
        }
    }
}

/// The listener map keys for the listen addresses.
pub fn listener_keys(listen: &[SocketAddr]) -> Vec<ListenerKey> {
    listen
        .iter()
        .map(|a| {
            let mut addr = [0u8; 16];
            let family = match a {
                SocketAddr::V4(v4) => {
                    addr[..4].copy_from_slice(&v4.ip().octets());
                    4
                }
                SocketAddr::V6(v6) => {
                    addr = v6.ip().octets();
                    6
                }
            };
            ListenerKey {
                addr,
                port: a.port(),
                family,
                _pad: 0,
            }
        })
        .collect()
}

/// What an earlier xgslbd left in `pin_dir` and this one will not take over, removed and
/// logged: link pins of other interfaces (and with XDP off, everything). Pins of a running
/// xgslbd (its lock held) are left alone; `locked`: this xgslbd holds the lock already. The
/// lines say what was done, for `status`.
fn take_over_pins(
    pin_dir: &Path,
    mode: XdpModeSetting,
    iface: Option<&str>,
    locked: bool,
) -> Vec<String> {
    let done = if mode == XdpModeSetting::Off {
        if !pin_dir.exists() {
            return Vec::new();
        }
        let lock = if locked {
            Ok(None)
        } else {
            crate::maps::dataplane::lock_pin_dir(pin_dir).map(Some)
        };
        match lock {
            Ok(_lock) => crate::maps::dataplane::remove_leftovers(pin_dir, None, true),
            Err(DataPlaneError::PinDirInUse { .. }) => {
                tracing::info!(
                    "XDP off; {} belongs to a running xgslbd, left alone",
                    pin_dir.display()
                );
                return Vec::new();
            }
            Err(e) => vec![format!(
                "cannot check {} for an earlier xgslbd's pins: {e}",
                pin_dir.display()
            )],
        }
    } else {
        crate::maps::dataplane::remove_leftovers(pin_dir, iface, false)
    };
    for line in &done {
        tracing::warn!("{line}");
    }
    done
}

/// What runs on `iface` that our pin directory does not know (`maps::foreign`): a program
/// a crashed xgslbd with another pin directory left (frozen) is detached, whatever the mode;
/// a running xgslbd's, or another program, is left alone, and with XDP on refuses the start
/// (our attach could only fail, or take the interface from a live server). The lines say
/// what was found and done, for `status`.
fn take_over_interface(
    pin_dir: &Path,
    mode: XdpModeSetting,
    iface: &str,
) -> Result<Vec<String>, DaemonError> {
    use crate::maps::foreign::{Foreign, detach_link, inspect};
    let ours = crate::maps::dataplane::pinned_link_program(pin_dir, iface);
    let xdp_on = mode != XdpModeSetting::Off;
    let line = match inspect(iface, ours) {
        Err(e) => format!("cannot tell which XDP program {iface} runs: {e}"),
        Ok(Foreign::None) => return Ok(Vec::new()),
        Ok(Foreign::Frozen {
            prog_id,
            link_id: Some(link),
        }) => match detach_link(link) {
            Ok(()) => format!(
                "detached the frozen XDP program (id {prog_id}) an earlier xgslbd with \
                 another pin directory left on {iface}: nothing updated its answers"
            ),
            Err(e) => format!(
                "cannot detach the frozen XDP program (id {prog_id}, link {link}) an earlier \
                 xgslbd left on {iface}: {e}"
            ),
        },
        Ok(Foreign::Frozen {
            prog_id,
            link_id: None,
        }) => format!(
            "{iface} runs an xgslb XDP program (id {prog_id}) that nobody updates, attached \
             without a link: detach it with `ip link set dev {iface} xdp off`"
        ),
        Ok(Foreign::Live { prog_id, pid }) if xdp_on => {
            return Err(DaemonError::InterfaceTaken(format!(
                "{iface} is served by the XDP program (id {prog_id}) of a running xgslbd \
                 (pid {pid}, another pin directory): stop it, or share its pin_dir"
            )));
        }
        Ok(Foreign::Live { prog_id, pid }) => format!(
            "{iface} runs the XDP program (id {prog_id}) of a running xgslbd (pid {pid}, \
             another pin directory): left alone"
        ),
        Ok(Foreign::Other { prog_id, name }) if xdp_on => {
            return Err(DaemonError::InterfaceTaken(format!(
                "{iface} already runs the XDP program {name:?} (id {prog_id}), not xgslb's: \
                 detach it first"
            )));
        }
        Ok(Foreign::Other { prog_id, name }) => {
            format!("{iface} runs the XDP program {name:?} (id {prog_id}): left alone")
        }
        Ok(Foreign::Unknown { prog_id, why }) => format!(
            "{iface} runs an XDP program (id {prog_id}) this xgslbd did not attach and cannot \
             look into ({why}): if a crashed xgslbd left it, it answers from a frozen config"
        ),
    };
    tracing::warn!("{line}");
    Ok(vec![line])
}

/// The zones of `cfg`, loaded, and checked against its GSLB names (a wide IP at a CNAME or
/// below a cut is refused) by building the catalog both paths will serve.
fn checked_zones(cfg: &Config) -> Result<Vec<crate::dns::Zone>, DaemonError> {
    let zones = balancer::load_zones(cfg)?;
    Catalog::new(zones.clone(), &crate::plan::dynamic_names(cfg))?;
    Ok(zones)
}

/// Runs xgslbd until `shutdown` is cancelled; `ready` is called once everything serves,
/// with the handle that drives the daemon.
pub async fn run(
    config_path: &Path,
    opts: Options,
    ready: impl FnOnce(DaemonHandle),
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let cfg = Config::load(config_path)?;
    // Before anything is bound or pinned: a config that cannot serve changes nothing (not
    // the pins of a program left serving).
    let zones = checked_zones(&cfg)?;
    let mode = opts.xdp_mode.unwrap_or(cfg.xdp_mode);
    let pin_dir = opts.pin_dir.clone().unwrap_or_else(|| cfg.pin_dir.clone());
    let control_path = opts
        .control_socket
        .clone()
        .unwrap_or_else(|| cfg.control_socket.clone());
    let iface = opts.iface.clone().or_else(|| cfg.interface.clone());

    // --replace: the program is loaded (the verifier's time is not the running xgslbd's
    // pause) and the maps opened, nothing written; then the running xgslbd hands over its
    // sockets and its lock (see `handover`).
    let mut dataplane = None;
    let mut inherited = None;
    let mut successor = None;
    if opts.replace {
        if mode != XdpModeSetting::Off {
            dataplane = Some(DataPlane::load(&pin_dir)?);
        }
        let path = control_path.clone();
        match tokio::task::spawn_blocking(move || handover::request(&path))
            .await
            .map_err(|e| DaemonError::Handover(e.to_string()))?
            .map_err(|e| DaemonError::Handover(e.to_string()))?
        {
            Some((s, i)) => {
                tracing::info!(
                    "replacing xgslbd pid {}: its sockets and pin-directory lock are ours",
                    i.pid
                );
                successor = Some(s);
                inherited = Some(i);
            }
            None => tracing::info!(
                "--replace: no xgslbd answers on {}; starting as usual",
                control_path.display()
            ),
        }
    }
    // Held until xgslbd exits (or hands it over), taken before anything is bound: no
    // second xgslbd writes these pins (its listener map would make this one's program pass
    // every query). Taken over from a replaced xgslbd, it was never free.
    let pin_lock = match inherited.as_mut().and_then(|i| i.take(Role::Lock)) {
        Some(fd) => Some(inherited_lock(fd, &pin_dir)?),
        None if mode != XdpModeSetting::Off => {
            Some(crate::maps::dataplane::lock_pin_dir(&pin_dir)?)
        }
        None => None,
    };
    let mut startup = take_over_pins(&pin_dir, mode, iface.as_deref(), pin_lock.is_some());
    if let Some(iface) = iface.as_deref().filter(|_| inherited.is_none()) {
        startup.extend(take_over_interface(&pin_dir, mode, iface)?);
    }

    // Bind (or take over) before touching the data plane: a port in use fails fast and
    // changes nothing. UDP: a reuseport group per address, a socket per worker (one worker
    // per core).
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    let iface_named = opts.iface.as_deref().or(cfg.interface.as_deref());
    let by_cpu = crate::udp::socket::steer_by_cpu_for(cfg.udp_steering, iface_named, cores.len());
    tracing::info!(
        "{} UDP workers, queries spread {}",
        cores.len().max(1),
        if by_cpu {
            "by receiving CPU"
        } else {
            "by address hash"
        }
    );
    let sockets = sockets::acquire(
        &cfg,
        (cores.len().max(1), by_cpu),
        &control_path,
        pin_lock.as_ref(),
        &mut inherited,
    )
    .await?;
    drop(inherited);

    if mode != XdpModeSetting::Off {
        let mut dp = match dataplane.take() {
            Some(dp) => dp,
            None => DataPlane::load(&pin_dir)?,
        };
        publish_listeners(&mut dp.listeners, &listener_keys(&cfg.listen))?;
        dataplane = Some(dp);
    }

    // The balancer publishes the first selections before the program is attached (an
    // adopted program keeps serving the old ones until then).
    let shared = sockets.agents.as_ref().map(|(_, shared)| shared.clone());
    let adopted = dataplane
        .as_ref()
        .is_some_and(|dp| dp.tables.meta().generation > 0);
    let warm = balancer::WarmStart {
        state_file: match &cfg.balancer.state_file {
            crate::config::StateFile::BesidePins => {
                Some(crate::metrics::state::default_path(&pin_dir))
            }
            crate::config::StateFile::Off => None,
            crate::config::StateFile::At(p) => Some(p.clone()),
        },
        adopted,
    };
    let (mut balancer, outputs) = Balancer::start(
        cfg.clone(),
        zones,
        dataplane,
        (shared.clone(), sockets.peers.clone()),
        warm,
    )?;
    // Queued now, sent once the notifier runs (with the servers).
    let (notifier, notify) = tokio::sync::mpsc::unbounded_channel();
    balancer.notify_to(notifier);
    let balancer::Outputs {
        served,
        published,
        view,
    } = outputs;
    let (events, inbox) = crossbeam_channel::unbounded();
    let balancer_thread = std::thread::Builder::new()
        .name("xgslb-balancer".into())
        .spawn(move || balancer.run(inbox))
        .map_err(DaemonError::Thread)?;
    let handle = DaemonHandle {
        config_path: config_path.to_owned(),
        started: Arc::new(cfg.clone()),
        events: events.clone(),
        published,
        ingest: shared,
        peers: sockets.peers.clone(),
        served: served.clone(),
        view,
        startup: Arc::new(startup),
        recent: Arc::default(),
        udp: Arc::default(),
    };
    // From here on, stop the balancer on every way out.
    let result = serve(
        &cfg,
        (mode, iface.as_deref(), &pin_dir),
        served,
        Serving {
            sockets,
            cores,
            notify,
            successor,
        },
        ready,
        handle,
        &shutdown,
    )
    .await;
    let _ = events.send(Event::Shutdown);
    let dataplane = balancer_thread.join().unwrap_or_else(|_| {
        tracing::error!("the balancer thread panicked");
        None
    });
    let handed_over = matches!(result, Ok(Ended::HandedOver));
    if !handed_over {
        // A successor serves on the same socket file after a handover; else nobody does.
        let _ = std::fs::remove_file(&control_path);
    }
    if let Some(mut dp) = dataplane {
        if handed_over {
            tracing::info!("handed over: the XDP program stays attached, the successor's");
        } else if opts.leave_serving && result.is_ok() {
            tracing::info!("leaving the pinned XDP program serving");
        } else {
            dp.unpin_all();
            tracing::info!("XDP detached");
        }
    }
    result.map(|_| ())
}

/// The pin-directory lock a replaced xgslbd handed over: the same open file as its own,
/// so the flock it holds is ours; refused when it locks another directory than `pin_dir`.
fn inherited_lock(fd: std::os::fd::OwnedFd, pin_dir: &Path) -> Result<std::fs::File, DaemonError> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::from(fd);
    let same = match (file.metadata(), std::fs::metadata(pin_dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if !same {
        return Err(DaemonError::Handover(format!(
            "the running xgslbd's pin directory is not {} (give both the same pin_dir)",
            pin_dir.display()
        )));
    }
    Ok(file)
}

/// How serving ended.
enum Ended {
    /// Shut down (SIGTERM, SIGINT, the token).
    Shutdown,
    /// Handed over to a successor (`--replace`), which serves now.
    HandedOver,
}

/// What `serve` starts the servers with.
struct Serving {
    sockets: sockets::Sockets,
    /// The cores the UDP workers are pinned to, by worker.
    cores: Vec<usize>,
    /// The NOTIFYs the balancer queues, for the notifier.
    notify: tokio::sync::mpsc::UnboundedReceiver<crate::dns::transfer::notify::NotifyJob>,
    /// The xgslbd this one replaces, waiting to be told that this one serves.
    successor: Option<handover::Successor>,
}

/// Attaches XDP (through the balancer's data plane: attach needs the program, which the
/// balancer holds), starts the servers, and waits for shutdown or a handover.
async fn serve(
    cfg: &Config,
    (mode, iface, pin_dir): (XdpModeSetting, Option<&str>, &Path),
    served: ServedCell,
    serving: Serving,
    ready: impl FnOnce(DaemonHandle),
    handle: DaemonHandle,
    shutdown: &CancellationToken,
) -> Result<Ended, DaemonError> {
    if mode != XdpModeSetting::Off {
        match iface {
            Some(iface) => {
                let attach = match mode {
                    XdpModeSetting::Native => AttachMode::Native,
                    XdpModeSetting::Generic => AttachMode::Generic,
                    _ => AttachMode::Auto,
                };
                let (tx, rx) = events::reply();
                handle
                    .events
                    .send(Event::Attach {
                        iface: iface.to_owned(),
                        mode: attach,
                        done: tx,
                    })
                    .map_err(|_| DaemonError::Stopped)?;
                let used = rx.await.map_err(|_| DaemonError::Stopped)??;
                tracing::info!(
                    "XDP attached to {iface} ({used:?}), maps in {}",
                    pin_dir.display()
                );
            }
            None => tracing::warn!(
                "no interface named (--iface or server.interface): XDP is loaded but not \
                 attached, the slow path answers everything"
            ),
        }
    }

    let Serving {
        mut sockets,
        cores,
        notify,
        successor,
    } = serving;
    let tcp_rcodes = Arc::new(crate::dns::RcodeCounters::default());
    let responder: Arc<dyn Responder> = Arc::new(LiveResponder {
        served: served.clone(),
        rcodes: tcp_rcodes.clone(),
    });
    let udp = std::mem::take(&mut sockets.udp);
    let limiter = Arc::new(crate::udp::ResponseLimiter::default());
    let workers =
        crate::udp::Workers::start(udp, &cores, served, limiter).map_err(DaemonError::Workers)?;
    let _ = handle.udp.set(workers.counters());
    // DNS over TCP: accepting stops first in a handover, the open connections finish.
    let dns = TaskTracker::new();
    let accepting = shutdown.child_token();
    for l in std::mem::take(&mut sockets.tcp) {
        dns.spawn(log_exit(
            "TCP",
            serve_tcp_until(l, responder.clone(), accepting.clone(), shutdown.clone()),
        ));
    }
    dns.close();
    let notifier = TaskTracker::new();
    notifier.spawn(log_exit(
        "NOTIFY",
        crate::dns::transfer::notify::run_notifier(
            notify,
            cfg.listen.clone(),
            handle.transfer_counters(),
            shutdown.clone(),
        ),
    ));
    notifier.close();
    let sources = Arc::new(prometheus::Sources {
        handle: handle.clone(),
        pin_dir: (mode != XdpModeSetting::Off).then(|| pin_dir.to_owned()),
        iface: iface
            .filter(|_| mode != XdpModeSetting::Off)
            .map(str::to_owned),
        counters: std::sync::Mutex::new(None),
        tcp_rcodes,
    });
    // Created once: the console's history outlives a handover that fails and resumes.
    let endpoint = Arc::new(metrics_http::Endpoint {
        sources,
        history: Arc::new(console::History::default()),
        token: cfg.http_token.clone(),
    });
    let (handovers, mut handover_requests) = tokio::sync::mpsc::unbounded_channel();
    let aux = Aux {
        sockets: &sockets,
        handle: &handle,
        endpoint,
        handovers,
    };
    let mut running = aux.spawn(shutdown)?;
    tracing::info!("serving {} zones on {:?}", cfg.zones.len(), cfg.listen);
    if let Some(s) = successor {
        tell_predecessor(s);
    }
    ready(handle.clone());

    let ended = loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break Ended::Shutdown,
            Some(stream) = handover_requests.recv() => stream,
        };
        // The control, agents', peers' and metrics servers stop reading: their sockets are
        // the successor's to read. DNS goes on until the successor serves.
        running.stop().await;
        if let Err(e) = pause_balancer(&handle).await {
            tracing::error!("handover refused: cannot pause the balancer: {e}");
            running = aux.spawn(shutdown)?;
            continue;
        }
        let stream = match stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("handover: the connection broke: {e}");
                resume_balancer(&handle);
                running = aux.spawn(shutdown)?;
                continue;
            }
        };
        let fds: Vec<(handover::Role, std::os::fd::OwnedFd)> = sockets
            .handoff
            .iter()
            .filter_map(|(r, fd)| Some((*r, fd.try_clone().ok()?)))
            .collect();
        let talk = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<_> = fds.iter().map(|(r, fd)| (*r, fd.as_fd())).collect();
            let go = handover::hand_over(&stream, &borrowed);
            (stream, go)
        })
        .await;
        match talk {
            Ok((stream, Ok(true))) => {
                tracing::info!("handing over: the successor serves; stopping");
                accepting.cancel();
                if tokio::time::timeout(crate::dns::TCP_IDLE_TIMEOUT, dns.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "handover: TCP connections still open after the idle timeout, closed"
                    );
                }
                stop_workers(workers).await;
                if let Err(e) = handover::stopped(&stream) {
                    tracing::warn!("handover: cannot tell the successor we stopped: {e}");
                }
                // Not `shutdown`: the NOTIFYs queued go out first.
                return Ok(Ended::HandedOver);
            }
            Ok((_, Ok(false))) => {
                tracing::error!(
                    "handover called off: the successor went away before serving; resuming"
                );
            }
            Ok((_, Err(e))) => {
                tracing::error!("handover failed ({e}); resuming");
            }
            Err(e) => tracing::error!("handover failed ({e}); resuming"),
        }
        resume_balancer(&handle);
        running = aux.spawn(shutdown)?;
    };
    running.stop().await;
    dns.wait().await;
    notifier.wait().await;
    stop_workers(workers).await;
    Ok(ended)
}

/// Stops the UDP workers (each within its read timeout, after the batch it read).
async fn stop_workers(workers: crate::udp::Workers) {
    if let Err(e) = tokio::task::spawn_blocking(move || workers.stop()).await {
        tracing::error!("waiting for the UDP workers: {e}");
    }
}

/// Tells the replaced xgslbd that this one serves, then logs when it has stopped.
fn tell_predecessor(successor: handover::Successor) {
    tokio::task::spawn_blocking(move || match successor.serving() {
        Ok(p) => match p.wait_stopped() {
            Ok(()) => tracing::info!("the replaced xgslbd has stopped"),
            Err(e) => tracing::warn!("the replaced xgslbd: {e}"),
        },
        Err(e) => tracing::error!("cannot tell the replaced xgslbd to stop: {e}"),
    });
}

/// Pauses the balancer for a handover (its state saved, no map written from then on).
async fn pause_balancer(handle: &DaemonHandle) -> Result<(), DaemonError> {
    let (done, paused) = events::reply();
    handle
        .events
        .send(Event::Pause { done })
        .map_err(|_| DaemonError::Stopped)?;
    paused.await.map_err(|_| DaemonError::Stopped)?
}

fn resume_balancer(handle: &DaemonHandle) {
    let _ = handle.events.send(Event::Resume);
}

/// The servers of the sockets a handover passes on (control, agents, peers, metrics):
/// started again, from duplicates, when a handover is called off.
struct Aux<'a> {
    sockets: &'a sockets::Sockets,
    handle: &'a DaemonHandle,
    /// What the metrics endpoint and the console serve.
    endpoint: Arc<metrics_http::Endpoint>,
    handovers: crate::control::server::HandoverRequests,
}

/// The running `Aux` servers.
struct AuxRunning {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl AuxRunning {
    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }
}

impl Aux<'_> {
    fn spawn(&self, shutdown: &CancellationToken) -> Result<AuxRunning, DaemonError> {
        use handover::Role;
        let stop = shutdown.child_token();
        let tasks = TaskTracker::new();
        let sockets = self.sockets;
        let handle = self.handle;
        let cfg = &handle.started;
        if let Some(addr) = cfg.metrics_listen
            && let Some(listener) = sockets.tcp_listener(Role::Metrics(addr))
        {
            let listener =
                listener.map_err(|source| DaemonError::bind("TCP (metrics)", addr, source))?;
            tasks.spawn(log_exit(
                "console sampler",
                console::run_sampler(
                    self.endpoint.history.clone(),
                    self.endpoint.sources.clone(),
                    stop.clone(),
                ),
            ));
            tasks.spawn(log_exit(
                "metrics endpoint",
                metrics_http::serve_metrics(listener, self.endpoint.clone(), stop.clone()),
            ));
        }
        let control = sockets.control().map_err(|source| DaemonError::Control {
            path: sockets.control_path.clone(),
            source,
        })?;
        let status_handle = handle.clone();
        tasks.spawn(log_exit(
            "control socket",
            crate::control::server::serve_control(
                control,
                Arc::new(move |c| status_handle.command(c)),
                Some(self.handovers.clone()),
                stop.clone(),
            ),
        ));
        if let Some(peers) = &sockets.peers {
            let ingest = sockets
                .agents
                .as_ref()
                .map(|(ingest, shared)| (ingest.clone(), shared.clone()));
            tasks.spawn(log_exit(
                "peer socket",
                peer_socket::serve_peers(
                    peers.clone(),
                    ingest,
                    handle.events.clone(),
                    stop.clone(),
                ),
            ));
        }
        if let (Some((ingest, shared)), Some(a)) = (&sockets.agents, &cfg.agents)
            && let Some(socket) = sockets.udp_socket(Role::Agents(a.listen))
        {
            let socket =
                socket.map_err(|source| DaemonError::bind("UDP (agents)", a.listen, source))?;
            tasks.spawn(log_exit(
                "agent ingest",
                serve_ingest(
                    socket,
                    ingest.clone(),
                    shared.clone(),
                    sockets.peers.clone(),
                    handle.events.clone(),
                    stop.clone(),
                ),
            ));
        }
        tasks.close();
        Ok(AuxRunning { tasks, stop })
    }
}

async fn log_exit(what: &'static str, f: impl Future<Output = std::io::Result<()>>) {
    if let Err(e) = f.await {
        tracing::error!("{what} server stopped: {e}");
    }
}
