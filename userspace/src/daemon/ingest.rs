//! The agents' UDP port in xgslbd: every datagram is verified (tag, replay window, site
//! binding, virtual servers) and counted by outcome; an accepted report goes to the balancer
//! over its channel and is answered with the LDNS addresses the agents should probe.
use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{
    cell::SwapCell,
    events::Event,
    peer_link::{PeerShared, SharedIngest},
};
use crate::{
    config::AgentsConfig,
    metrics::{
        ingest::{IngestCounters, VsIndex},
        wire::{self, Header, Kind, MAX_DATAGRAM, Record},
    },
};

/// What the ingest task and the balancer share.
#[derive(Default)]
pub struct IngestShared {
    /// The virtual servers reports may name (replaced on reload).
    pub index: SwapCell<VsIndex>,
    /// The LDNS addresses to ask agents to probe (refreshed by the balancer).
    pub probe_targets: SwapCell<Vec<IpAddr>>,
    /// A new `[agents]` config for the ingest to take (keys, limits), after a reload.
    pub reconfigure: Mutex<Option<AgentsConfig>>,
    /// The ingest's counters, as of its last datagram.
    pub counters: Mutex<IngestCounters>,
}

/// Milliseconds since the Unix epoch (the protocol's clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Receives agent datagrams on `socket` until `shutdown`; each one accepted is relayed to
/// the peers that take relays (`peers`), and only then handed to the balancer.
pub async fn serve_ingest(
    socket: UdpSocket,
    ingest: SharedIngest,
    shared: Arc<IngestShared>,
    peers: Option<Arc<PeerShared>>,
    events: crossbeam_channel::Sender<Event>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // One byte more than the largest valid datagram, so that an oversized one is seen whole
    // enough to be refused as such.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut reply_sequence = now_ms();
    loop {
        let (n, from) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // Per-datagram errors (an ICMP error reported on the socket): go on.
                Err(e) => {
                    tracing::debug!("agent ingest: receive failed: {e}");
                    continue;
                }
            },
        };
        let now = now_ms();
        let pending = shared.reconfigure.lock().ok().and_then(|mut c| c.take());
        // The guard is not held across an await: the block ends it.
        let (result, key) = {
            let Ok(mut ingest) = ingest.lock() else {
                return Ok(()); // a panic elsewhere poisoned it: stop rather than guess
            };
            if let Some(c) = pending {
                ingest.reconfigure(&c);
            }
            let result = ingest.accept(&buf[..n], now, &shared.index.load());
            if let Ok(mut c) = shared.counters.lock() {
                c.clone_from(ingest.counters());
            }
            let key = result
                .as_ref()
                .ok()
                .and_then(|d| ingest.key(d.header.key_id).cloned());
            (result, key)
        };
        let datagram = match result {
            Ok(d) => d,
            Err(reason) => {
                tracing::debug!("agent ingest: refused a datagram from {from}: {reason:?}");
                continue;
            }
        };
        if let Some(peers) = &peers {
            peers.relay(&buf[..n]);
        }
        if let Some(key) = &key {
            let header = Header {
                kind: Kind::Reply,
                key_id: key.id,
                sequence: reply_sequence,
                timestamp_ms: now,
                agent: "xgslbd".into(),
                site: String::new(),
            };
            let records: Vec<Record> = shared
                .probe_targets
                .load()
                .iter()
                .map(|&a| Record::ProbeRequest {
                    ldns: IpNet::from(a),
                })
                .collect();
            for reply in wire::encode(&header, &records, key) {
                reply_sequence += 1;
                if let Err(e) = socket.send_to(&reply, from).await {
                    tracing::debug!("agent ingest: reply to {from} failed: {e}");
                }
            }
        }
        if events
            .send(Event::Report {
                datagram,
                from,
                at_ms: now,
            })
            .is_err()
        {
            return Ok(()); // the balancer is gone: shutting down
        }
    }
}
