//! The peers' UDP socket in xgslbd (`[peering] listen`): peer datagrams, verified (the
//! pair's key, tag, replay window, and the sender's name bound to its key) before they
//! reach the balancer, and agent reports relayed by peers, verified by the agent ingest as
//! if they came straight from the agent (its key, tag, replay window, site binding). A
//! relayed report is never relayed again (relays are one hop, so nothing loops), and one
//! already taken (the agent also reports here, or two peers relay it) is counted as a
//! duplicate, not applied twice and not as a refusal.
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use super::peer_link::{PeerCounterMap, PeerShared, PeerWireCounters, SharedIngest};
use super::{
    events::Event,
    ingest::{IngestShared, now_ms},
};
use crate::{
    config::PeeringConfig,
    metrics::{
        replay::ReplayGuard,
        wire::{self, Kind, MAGIC, MAX_DATAGRAM, Reject},
    },
};

/// Peers the replay guard tracks beyond the configured ones (a renamed peer's old entry).
const GUARD_SLACK: usize = 16;

/// Receives peer datagrams and relayed reports until `shutdown`.
pub async fn serve_peers(
    shared: Arc<PeerShared>,
    ingest: Option<(SharedIngest, Arc<IngestShared>)>,
    events: crossbeam_channel::Sender<Event>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let socket = shared.socket.clone();
    let mut guard = ReplayGuard::new(0, 1);
    let mut guard_limits = (0, 0);
    loop {
        let (n, from) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("peer socket: receive failed: {e}");
                    continue;
                }
            },
        };
        let bytes = &buf[..n];
        let now = now_ms();
        let config = shared.config.load();
        let limits = (config.max_skew_ms, config.peers.len() + GUARD_SLACK);
        if limits != guard_limits {
            guard = ReplayGuard::new(limits.0, limits.1);
            guard_limits = limits;
        }
        // The peer a datagram comes from, by its source address (only for counting relays:
        // what a relay applies rests on the agent's own signature).
        let by_address = config
            .peers
            .iter()
            .find(|p| p.address == from)
            .map_or("", |p| p.name.as_str());
        let is_report = bytes.len() > 5 && bytes[..4] == MAGIC && bytes[5] == Kind::Report as u8;
        let event = if is_report {
            let Some((ingest, ingest_shared)) = &ingest else {
                shared.count(by_address, |c| c.relay_refused += 1);
                continue;
            };
            let result = match ingest.lock() {
                Ok(mut i) => {
                    let r = i.accept_relayed(bytes, now, &ingest_shared.index.load());
                    if let Ok(mut c) = ingest_shared.counters.lock() {
                        c.clone_from(i.counters());
                    }
                    r
                }
                Err(_) => return Ok(()),
            };
            match result {
                Ok(datagram) => {
                    shared.count(by_address, |c| c.relayed_in += 1);
                    Event::Report {
                        datagram,
                        from,
                        at_ms: now,
                    }
                }
                Err(Reject::Replayed) => {
                    shared.count(by_address, |c| c.relay_duplicates += 1);
                    continue;
                }
                Err(reason) => {
                    tracing::debug!("peer socket: relayed report from {from} refused: {reason:?}");
                    shared.count(by_address, |c| c.relay_refused += 1);
                    continue;
                }
            }
        } else {
            match verify(bytes, &config, &mut guard, now) {
                Ok((peer, datagram)) => {
                    shared.count(&config.peers[peer].name, |c| c.accepted += 1);
                    Event::Peer {
                        peer: config.peers[peer].name.clone(),
                        datagram,
                        at_ms: now,
                    }
                }
                Err((peer, reason)) => {
                    tracing::debug!("peer socket: refused a datagram from {from}: {reason:?}");
                    let name = peer.map_or(by_address, |i| config.peers[i].name.as_str());
                    shared.count(name, |c| c.rejected[reason.index()] += 1);
                    continue;
                }
            }
        };
        if events.send(event).is_err() {
            return Ok(()); // the balancer is gone: shutting down
        }
    }
}

/// Checks a peer datagram: decodes it under the key of its key id, which must be a peer's;
/// it must be of the peer kind, from the peer's name, fresh and new. The peer's index, or
/// the peer (if the key named one) and why not.
fn verify(
    bytes: &[u8],
    config: &PeeringConfig,
    guard: &mut ReplayGuard,
    now: u64,
) -> Result<(usize, wire::Datagram), (Option<usize>, Reject)> {
    let peer = std::cell::Cell::new(None);
    let d = wire::decode(bytes, |id| {
        let i = config.peers.iter().position(|p| p.key.id == id)?;
        peer.set(Some(i));
        Some(config.peers[i].key.clone())
    })
    .map_err(|r| (peer.get(), r))?;
    let peer = peer.get();
    let i = peer.ok_or((None, Reject::UnknownKey))?;
    if d.header.kind != Kind::Peer {
        return Err((Some(i), Reject::Malformed));
    }
    // A key is the pair's: a datagram under it from another name or site is not the peer's.
    if d.header.agent != config.peers[i].name || d.header.site != config.peers[i].site {
        return Err((Some(i), Reject::WrongSite));
    }
    guard.check(&d.header, now).map_err(|r| (Some(i), r))?;
    Ok((i, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::PeerConfig,
        metrics::wire::{Header, Key, PeerRecord, Record, peer::Inputs},
    };

    fn key(id: u32) -> Key {
        Key {
            id,
            secret: format!("peer-secret-{id}-0123456789abcdef").into_bytes(),
        }
    }

    fn config() -> PeeringConfig {
        PeeringConfig {
            name: "edns-a".into(),
            site: "a".into(),
            listen: "198.18.0.2:5301".parse().unwrap(),
            heartbeat_ms: 1000,
            silent_after_ms: 3000,
            max_skew_ms: 30_000,
            peers: vec![PeerConfig {
                name: "edns-b".into(),
                site: "b".into(),
                address: "198.18.0.3:5301".parse().unwrap(),
                key: key(7),
                secret_file: "b.key".into(),
                relay: true,
            }],
        }
    }

    fn datagram(kind: Kind, name: &str, key: &Key, sequence: u64, now: u64) -> Vec<u8> {
        let header = Header {
            kind,
            key_id: key.id,
            sequence,
            timestamp_ms: now,
            agent: name.into(),
            site: "b".into(),
        };
        let hello = Record::Peer(PeerRecord::Hello {
            inputs: Inputs::default(),
            digest: 0,
            wideips: 0,
            held: 0,
        });
        wire::encode(&header, &[hello], key).remove(0)
    }

    #[test]
    fn a_peer_datagram_is_taken_once_and_forged_replayed_or_misnamed_ones_are_refused() {
        let c = config();
        let mut guard = ReplayGuard::new(c.max_skew_ms, 4);
        let now = 1_700_000_000_000;
        let good = datagram(Kind::Peer, "edns-b", &key(7), 1, now);
        assert_eq!(verify(&good, &c, &mut guard, now).map(|r| r.0), Ok(0));
        let refused = |d: &[u8], guard: &mut ReplayGuard| verify(d, &c, guard, now).err();
        assert_eq!(
            refused(&good, &mut guard),
            Some((Some(0), Reject::Replayed))
        );
        let mut forged = datagram(Kind::Peer, "edns-b", &key(7), 2, now);
        let at = forged.len() - 40;
        forged[at] ^= 1;
        assert_eq!(
            refused(&forged, &mut guard),
            Some((Some(0), Reject::BadTag))
        );
        let wrong_secret = datagram(
            Kind::Peer,
            "edns-b",
            &Key {
                id: 7,
                secret: b"not-the-pairs-secret-at-all".to_vec(),
            },
            3,
            now,
        );
        assert_eq!(
            refused(&wrong_secret, &mut guard),
            Some((Some(0), Reject::BadTag))
        );
        let unknown = datagram(Kind::Peer, "edns-b", &key(8), 4, now);
        assert_eq!(
            refused(&unknown, &mut guard),
            Some((None, Reject::UnknownKey))
        );
        let misnamed = datagram(Kind::Peer, "edns-c", &key(7), 5, now);
        assert_eq!(
            refused(&misnamed, &mut guard),
            Some((Some(0), Reject::WrongSite))
        );
        let stale = datagram(Kind::Peer, "edns-b", &key(7), 6, now - 60_000);
        assert_eq!(refused(&stale, &mut guard), Some((Some(0), Reject::Stale)));
        let reply = datagram(Kind::Reply, "edns-b", &key(7), 7, now);
        assert_eq!(
            refused(&reply, &mut guard),
            Some((Some(0), Reject::Malformed))
        );
        // None of them moved the window: the next sequence is still taken.
        let next = datagram(Kind::Peer, "edns-b", &key(7), 2, now);
        assert!(verify(&next, &c, &mut guard, now).is_ok());
    }
}
