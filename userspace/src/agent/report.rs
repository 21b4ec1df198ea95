//! Reports: every interval the latest health, load and path state becomes `wire::Record`s,
//! encoded and sent to every EDNS (fan-out), each EDNS with its own key and sequence; the
//! EDNSs' replies, read on the same sockets, bring the LDNS prefixes to probe. A down EDNS or
//! a failed send never stops the agent: errors are logged, at most once per
//! [`LOG_EVERY`] per EDNS.
use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{
    config::EdnsConfig,
    error::Error,
    health::unspecified,
    load,
    probe::{PathResult, Requests, path_record},
};
use crate::metrics::wire::{self, Header, Kind, Load, Record};

/// The least time between two error logs about one EDNS.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// The latest state of everything the agent measures.
#[derive(Clone, Debug, Default)]
pub struct Latest {
    /// In config order.
    pub vs: Vec<VsLatest>,
    /// In target order.
    pub paths: Vec<(IpAddr, PathResult)>,
}

/// One VS's latest health and load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VsLatest {
    pub name: String,
    /// None: not checked, or no result yet.
    pub up: Option<bool>,
    /// None: no load source, or no sample yet.
    pub load: Option<Load>,
}

impl Latest {
    /// The records of one report: health of every decided VS, load of every VS with any,
    /// then every path.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for v in &self.vs {
            if let Some(up) = v.up {
                out.push(Record::Health {
                    vs: v.name.clone(),
                    up,
                });
            }
        }
        for v in &self.vs {
            if let Some(l) = v.load
                && !load::is_empty(&l)
            {
                out.push(Record::Load {
                    vs: v.name.clone(),
                    load: l,
                });
            }
        }
        for (ip, r) in &self.paths {
            out.push(path_record(*ip, r));
        }
        out
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Lets a log line through at most once per `LOG_EVERY`, counting the ones held back.
#[derive(Debug, Default)]
pub struct LogLimit {
    last: Option<Instant>,
    held: u64,
}

impl LogLimit {
    /// `Some(held back since the last)` if a line may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < LOG_EVERY => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

/// One EDNS: its socket (connected to it), key and next sequence number.
pub struct Peer {
    pub index: usize,
    pub address: SocketAddr,
    pub key: wire::Key,
    pub socket: Arc<UdpSocket>,
    /// Starts at the current time in ms, so a restarted agent goes on above its last.
    pub sequence: u64,
    errors: LogLimit,
}

impl Peer {
    /// Binds a socket of the EDNS's family and connects it to the EDNS.
    pub async fn connect(index: usize, edns: &EdnsConfig) -> std::io::Result<Peer> {
        let socket = UdpSocket::bind(unspecified(edns.address)).await?;
        socket.connect(edns.address).await?;
        Ok(Peer {
            index,
            address: edns.address,
            key: edns.key.clone(),
            socket: Arc::new(socket),
            sequence: now_ms(),
            errors: LogLimit::default(),
        })
    }

    /// Encodes `records` for this EDNS and sends every datagram; the sequence advances by
    /// the datagrams made, sent or not. Returns how many were sent.
    pub async fn send(&mut self, agent: &str, site: &str, records: &[Record]) -> usize {
        let header = Header {
            kind: Kind::Report,
            key_id: self.key.id,
            sequence: self.sequence,
            timestamp_ms: now_ms(),
            agent: agent.to_owned(),
            site: site.to_owned(),
        };
        let datagrams = wire::encode(&header, records, &self.key);
        self.sequence = self.sequence.wrapping_add(datagrams.len() as u64);
        let mut sent = 0;
        for d in &datagrams {
            match self.socket.send(d).await {
                Ok(_) => sent += 1,
                Err(e) => {
                    if let Some(held) = self.errors.allow(Instant::now()) {
                        tracing::warn!(
                            edns = %self.address,
                            "report not sent: {e} ({held} more errors since the last line)"
                        );
                    }
                }
            }
        }
        sent
    }
}

/// Takes one reply datagram from EDNS number `edns` with `key`: verified, a reply, its probe
/// requests into `requests`. Returns how many prefixes it asked for.
pub fn take_reply(
    bytes: &[u8],
    edns: usize,
    key: &wire::Key,
    requests: &Mutex<Requests>,
    now: Instant,
) -> Result<usize, Error> {
    let d = wire::decode(bytes, |id| (id == key.id).then(|| key.clone()))
        .map_err(|r| Error::ReplyRefused(r.name()))?;
    if d.header.kind != Kind::Reply {
        return Err(Error::NotAReply);
    }
    let prefixes: Vec<_> = d
        .records
        .iter()
        .filter_map(|r| match r {
            Record::ProbeRequest { ldns } => Some(*ldns),
            _ => None,
        })
        .collect();
    let mut r = requests.lock().map_err(|_| Error::Poisoned("requests"))?;
    r.take(edns, d.header.timestamp_ms, now, &prefixes);
    Ok(prefixes.len())
}

/// Reads replies from one EDNS until shutdown.
pub async fn read_replies(
    edns: usize,
    address: SocketAddr,
    socket: Arc<UdpSocket>,
    key: wire::Key,
    requests: Arc<Mutex<Requests>>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
    let mut errors = LogLimit::default();
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv(&mut buf) => r,
        };
        let result = match n {
            Ok(n) => take_reply(&buf[..n], edns, &key, &requests, Instant::now()).map(drop),
            // ICMP errors for our reports (the EDNS is down): nothing to read.
            Err(source) => Err(Error::Io {
                what: "receive".into(),
                source,
            }),
        };
        if let Err(e) = result
            && let Some(held) = errors.allow(Instant::now())
        {
            tracing::warn!(edns = %address, "{e} ({held} more since the last line)");
        }
    }
}

/// Every interval, sends the latest state to every peer, until shutdown.
pub async fn send_reports(
    agent: String,
    site: String,
    interval: Duration,
    mut peers: Vec<Peer>,
    latest: Arc<Mutex<Latest>>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let records = match latest.lock() {
            Ok(l) => l.records(),
            Err(_) => {
                tracing::error!("state lock poisoned: no more reports");
                return;
            }
        };
        for peer in &mut peers {
            peer.send(&agent, &site, &records).await;
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
