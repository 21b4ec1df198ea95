//! xgslbd put together: the config loaded and validated, the slow path's catalog and
//! snapshot built, the XDP program loaded, published and attached, the UDP and TCP servers
//! started; then a clean shutdown (detach) or leaving the pinned program serving.
pub mod selections;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use xgslb_common::ListenerKey;

use crate::{
    config::{Config, ConfigError, XdpModeSetting},
    dns::{
        Catalog, CatalogError, CatalogResponder, Responder, Zone, ZoneError, serve_tcp, serve_udp,
    },
    maps::{AttachMode, DataPlane, DataPlaneError, publish::publish_listeners, snapshot::Snapshot},
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
    /// A map write failed.
    #[error("publishing to the XDP maps: {0}")]
    Publish(#[from] aya::maps::MapError),
    /// A listen address could not be bound.
    #[error("cannot listen on {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
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
}

/// The slow path's view of a config: the catalog (zones with the answer sets' names) and the
/// snapshot of answer sets, plus the selection map entries for XDP.
pub struct Built {
    pub catalog: Catalog,
    pub snapshot: Arc<Snapshot>,
    pub selections: Vec<(xgslb_common::SelectionKey, xgslb_common::AnswerSet)>,
}

/// Loads the zones of `cfg` and builds what both paths serve.
pub fn build(cfg: &Config) -> Result<Built, DaemonError> {
    let zones = cfg
        .zones
        .iter()
        .map(|z| Zone::load(&z.origin, &z.file))
        .collect::<Result<Vec<_>, _>>()?;
    let sets = selections::answer_sets(&cfg.answers);
    let selections = selections::selection_entries(&sets);
    let snapshot = Arc::new(Snapshot::new(
        sets.iter()
            .map(|(n, t, s)| (n.clone(), *t, xgslb_common::DEFAULT_CLASS as u32, *s)),
        &[],
    ));
    let catalog = Catalog::new(zones, &snapshot.dynamic_names())?;
    Ok(Built {
        catalog,
        snapshot,
        selections,
    })
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

/// Runs xgslbd until `shutdown` is cancelled; `ready` is called once everything serves.
pub async fn run(
    config_path: &Path,
    opts: Options,
    ready: impl FnOnce(),
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let cfg = Config::load(config_path)?;
    let built = build(&cfg)?;

    // Bind before touching the data plane: a port in use fails fast and changes nothing.
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for &addr in &cfg.listen {
        let bind_err = |proto| {
            move |source| DaemonError::Bind {
                proto,
                addr,
                source,
            }
        };
        udp.push(UdpSocket::bind(addr).await.map_err(bind_err("UDP"))?);
        tcp.push(TcpListener::bind(addr).await.map_err(bind_err("TCP"))?);
    }

    let mode = opts.xdp_mode.unwrap_or(cfg.xdp_mode);
    let mut dataplane = None;
    if mode != XdpModeSetting::Off {
        let pin_dir = opts.pin_dir.clone().unwrap_or_else(|| cfg.pin_dir.clone());
        let mut dp = DataPlane::load(&pin_dir)?;
        publish_listeners(&mut dp.listeners, &listener_keys(&cfg.listen))?;
        let report = dp.tables.swap(&built.selections, &[])?;
        tracing::info!(
            "published {} selections ({} map writes)",
            built.selections.len(),
            report.writes
        );
        match opts.iface.as_ref().or(cfg.interface.as_ref()) {
            Some(iface) => {
                let attach = match mode {
                    XdpModeSetting::Native => AttachMode::Native,
                    XdpModeSetting::Generic => AttachMode::Generic,
                    _ => AttachMode::Auto,
                };
                let used = dp.attach(iface, attach)?;
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
        dataplane = Some(dp);
    }

    let responder: Arc<dyn Responder> =
        Arc::new(CatalogResponder::new(built.catalog, built.snapshot.clone()));
    let tasks = TaskTracker::new();
    for s in udp {
        tasks.spawn(log_exit(
            "UDP",
            serve_udp(s, responder.clone(), shutdown.clone()),
        ));
    }
    for l in tcp {
        tasks.spawn(log_exit(
            "TCP",
            serve_tcp(l, responder.clone(), shutdown.clone()),
        ));
    }
    tasks.close();
    tracing::info!("serving {} zones on {:?}", cfg.zones.len(), cfg.listen);
    ready();

    shutdown.cancelled().await;
    tasks.wait().await;
    if let Some(mut dp) = dataplane {
        if opts.leave_serving {
            tracing::info!("leaving the pinned XDP program serving");
        } else {
            dp.unpin_all();
            tracing::info!("XDP detached");
        }
    }
    Ok(())
}

async fn log_exit(what: &'static str, f: impl Future<Output = std::io::Result<()>>) {
    if let Err(e) = f.await {
        tracing::error!("{what} server stopped: {e}");
    }
}
