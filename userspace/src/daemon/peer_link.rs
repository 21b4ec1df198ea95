//! What the peers' socket, the agent ingest and the balancer share: the socket peers send
//! to and we send from, the `[peering]` config, and the per-peer counters. Apart from both
//! tasks so that the ingest (which relays) and the peer socket (which takes relays through
//! the ingest) depend on it and not on each other.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::net::UdpSocket;

use super::cell::SwapCell;
use crate::{
    config::PeeringConfig,
    metrics::{ingest::Ingest, wire::Reject},
};

/// What is counted of one peer's datagrams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerWireCounters {
    /// Peer datagrams accepted.
    pub accepted: u64,
    /// Peer datagrams refused, by [`Reject::index`].
    pub rejected: [u64; Reject::ALL.len()],
    /// Agent reports it relayed that were applied here.
    pub relayed_in: u64,
    /// Agent reports it relayed that were already taken.
    pub relay_duplicates: u64,
    /// Agent reports it relayed that the ingest refused (counted there by reason too).
    pub relay_refused: u64,
    /// Agent reports we relayed to it.
    pub relayed_out: u64,
    /// Datagrams to it that could not be sent.
    pub send_errors: u64,
}

impl PeerWireCounters {
    pub fn total_rejected(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// Counters by peer name; datagrams from no configured peer under "".
pub type PeerCounterMap = HashMap<String, PeerWireCounters>;

/// What the peer task, the agent ingest and the balancer share.
pub struct PeerShared {
    /// Bound to `[peering] listen`: peers send to it, and we send from it.
    pub socket: Arc<UdpSocket>,
    /// The peers and keys (replaced on reload).
    pub config: SwapCell<PeeringConfig>,
    pub counters: Mutex<PeerCounterMap>,
}

impl PeerShared {
    pub fn new(socket: UdpSocket, config: &PeeringConfig) -> Self {
        Self {
            socket: Arc::new(socket),
            config: SwapCell::new(config.clone()),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts on `peer`'s counters.
    pub fn count(&self, peer: &str, f: impl FnOnce(&mut PeerWireCounters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(c.entry(peer.to_owned()).or_default());
        }
    }

    /// Sends `datagram` to `peer` now, without waiting (a full socket buffer drops it and
    /// counts it: heartbeats and full resends make good what is lost).
    pub fn send(&self, peer: &str, to: SocketAddr, datagram: &[u8]) -> bool {
        match self.socket.try_send_to(datagram, to) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!("peer {peer}: send to {to} failed: {e}");
                self.count(peer, |c| c.send_errors += 1);
                false
            }
        }
    }

    /// Forwards an agent report we accepted from the agent itself to every peer with
    /// `relay` (claims 45, 46).
    pub fn relay(&self, datagram: &[u8]) {
        let config = self.config.load();
        for p in config.peers.iter().filter(|p| p.relay) {
            if self.send(&p.name, p.address, datagram) {
                self.count(&p.name, |c| c.relayed_out += 1);
            }
        }
    }
}

/// The agent ingest, shared by the agents' socket and this one (relayed reports go through
/// the same keys and replay window as direct ones).
pub type SharedIngest = Arc<Mutex<Ingest>>;
