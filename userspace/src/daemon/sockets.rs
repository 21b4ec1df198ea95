//! xgslbd's listening sockets: bound at start, or taken over from the xgslbd it replaces
//! (`--replace`, see `handover`), and the duplicates it keeps to hand them over in turn.
use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::net::{TcpListener, UdpSocket};

use super::{
    DaemonError,
    handover::{Inherited, Role},
    ingest::IngestShared,
    peer_socket::{self, SharedIngest},
};
use crate::{config::Config, metrics::ingest::Ingest};

/// Every listening socket of one xgslbd, before the servers take them.
pub struct Sockets {
    /// A reuseport group per UDP listen address, a socket per worker.
    pub udp: Vec<Vec<std::net::UdpSocket>>,
    pub tcp: Vec<TcpListener>,
    /// The agents' socket, its ingest and what the ingest shares with the balancer.
    pub agents: Option<(SharedIngest, Arc<IngestShared>)>,
    /// The peers' socket and what it shares, with `[peering]`.
    pub peers: Option<Arc<peer_socket::PeerShared>>,
    /// The control socket's path.
    pub control_path: PathBuf,
    /// A duplicate of every socket above (and of the pin-directory lock), by role: what a
    /// handover sends, and what the control, agents' and metrics servers are made from
    /// (again, when a handover is called off).
    pub handoff: Vec<(Role, OwnedFd)>,
}

impl Sockets {
    /// The duplicate of `role`'s socket.
    pub fn dup(&self, role: Role) -> Option<std::io::Result<OwnedFd>> {
        self.handoff
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, fd)| fd.try_clone())
    }

    /// The socket of `role` as the control server's listener.
    pub fn control(&self) -> std::io::Result<tokio::net::UnixListener> {
        let fd = self
            .dup(Role::Control)
            .ok_or_else(|| std::io::Error::other("no control socket"))??;
        tokio::net::UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))
    }

    /// The socket of `role` (a TCP listener), if there is one.
    pub fn tcp_listener(&self, role: Role) -> Option<std::io::Result<TcpListener>> {
        self.dup(role)
            .map(|fd| fd.and_then(|fd| TcpListener::from_std(std::net::TcpListener::from(fd))))
    }

    /// The socket of `role` (UDP), if there is one.
    pub fn udp_socket(&self, role: Role) -> Option<std::io::Result<UdpSocket>> {
        self.dup(role)
            .map(|fd| fd.and_then(|fd| UdpSocket::from_std(std::net::UdpSocket::from(fd))))
    }

    /// What a handover sends.
    pub fn handoff(&self) -> Vec<(Role, BorrowedFd<'_>)> {
        self.handoff
            .iter()
            .map(|(r, fd)| (*r, fd.as_fd()))
            .collect()
    }
}

/// Binds (or takes from `inherited`) every socket `cfg` listens on: a UDP group of
/// `workers` sockets and a TCP listener per listen address, the control socket at
/// `control_path`, the metrics endpoint, the agents' and peers' sockets. `lock` joins the
/// handoff list.
pub async fn acquire(
    cfg: &Config,
    (workers, by_cpu): (usize, bool),
    control_path: &Path,
    lock: Option<&std::fs::File>,
    inherited: &mut Option<Inherited>,
) -> Result<Sockets, DaemonError> {
    let mut handoff: Vec<(Role, OwnedFd)> = Vec::new();
    let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map_err(DaemonError::Workers);
    if let Some(lock) = lock {
        handoff.push((Role::Lock, dup(lock.as_fd())?));
    }
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for &addr in &cfg.listen {
        let bind_err = |proto| move |source| DaemonError::bind(proto, addr, source);
        let taken = inherited.as_mut().and_then(|i| i.take(Role::Tcp(addr)));
        // TCP first: it has no SO_REUSEPORT, so a second xgslbd on these addresses fails
        // here, before its UDP sockets could join the running one's group and take a share
        // of its queries.
        let listener = match taken {
            Some(fd) => {
                TcpListener::from_std(std::net::TcpListener::from(fd)).map_err(bind_err("TCP"))?
            }
            None => TcpListener::bind(addr).await.map_err(bind_err("TCP"))?,
        };
        handoff.push((Role::Tcp(addr), dup(listener.as_fd())?));
        tcp.push(listener);
        let taken = inherited
            .as_mut()
            .map(|i| i.take_all(Role::Udp(addr)))
            .unwrap_or_default();
        let group = if taken.is_empty() {
            crate::udp::socket::bind_group(addr, workers, by_cpu).map_err(bind_err("UDP"))?
        } else {
            let group = taken.into_iter().map(std::net::UdpSocket::from).collect();
            crate::udp::socket::extend_group(group, workers, by_cpu).map_err(bind_err("UDP"))?
        };
        for s in &group {
            handoff.push((Role::Udp(addr), dup(s.as_fd())?));
        }
        udp.push(group);
    }
    let control_err = |source| DaemonError::Control {
        path: control_path.to_owned(),
        source,
    };
    let control = match inherited.as_mut().and_then(|i| i.take(Role::Control)) {
        Some(fd) => fd,
        None => {
            let l = crate::control::server::bind(control_path).map_err(control_err)?;
            l.into_std().map_err(control_err)?.into()
        }
    };
    handoff.push((Role::Control, control));
    if let Some(addr) = cfg.metrics_listen {
        let fd = take_or_bind(inherited, Role::Metrics(addr), || async {
            let l = TcpListener::bind(addr).await?;
            Ok(l.into_std()?.into())
        })
        .await
        .map_err(|source| DaemonError::bind("TCP (metrics)", addr, source))?;
        handoff.push((Role::Metrics(addr), fd));
    }
    let agents = match &cfg.agents {
        Some(a) => {
            let addr = a.listen;
            let fd = take_or_bind(inherited, Role::Agents(addr), || async {
                Ok(UdpSocket::bind(addr).await?.into_std()?.into())
            })
            .await
            .map_err(|source| DaemonError::bind("UDP (agents)", addr, source))?;
            handoff.push((Role::Agents(addr), fd));
            Some((
                Arc::new(std::sync::Mutex::new(Ingest::from_config(a))),
                Arc::new(IngestShared::default()),
            ))
        }
        None => None,
    };
    let peers = match &cfg.peering {
        Some(p) => {
            let addr = p.listen;
            let fd = take_or_bind(inherited, Role::Peers(addr), || async {
                Ok(UdpSocket::bind(addr).await?.into_std()?.into())
            })
            .await
            .map_err(|source| DaemonError::bind("UDP (peers)", addr, source))?;
            let socket = fd
                .try_clone()
                .and_then(|c| UdpSocket::from_std(std::net::UdpSocket::from(c)))
                .map_err(DaemonError::Workers)?;
            handoff.push((Role::Peers(addr), fd));
            Some(Arc::new(peer_socket::PeerShared::new(socket, p)))
        }
        None => None,
    };
    if let Some(i) = inherited.as_ref() {
        let left = i.left();
        if !left.is_empty() {
            tracing::info!(
                "sockets of the replaced xgslbd this config does not use, closed: {left:?}"
            );
        }
    }
    Ok(Sockets {
        udp,
        tcp,
        agents,
        peers,
        control_path: control_path.to_owned(),
        handoff,
    })
}

/// The inherited socket of `role`, else a new one from `bind`.
async fn take_or_bind<F: Future<Output = std::io::Result<OwnedFd>>>(
    inherited: &mut Option<Inherited>,
    role: Role,
    bind: impl FnOnce() -> F,
) -> std::io::Result<OwnedFd> {
    // A socket the predecessor made nonblocking is so for us too: one open file.
    match inherited.as_mut().and_then(|i| i.take(role)) {
        Some(fd) => Ok(fd),
        None => bind().await,
    }
}
