//! LDNS path probes: which LDNSs to probe (static targets first, then those the EDNSs ask
//! for, bounded), and one round per target: RTT and completion from `count` DNS queries,
//! hop count from [`super::hops`]. Results are reported per host prefix (/32, /128); the
//! EDNS groups prefixes.
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};
use ipnet::IpNet;
use tokio::net::UdpSocket;

use super::{error::Error, health::unspecified, hops};
use crate::metrics::wire::Record;

/// Gap between the queries of one target's round.
const QUERY_GAP: Duration = Duration::from_millis(10);
/// Targets probed at once (each holds a blocking thread for its hop count).
pub const MAX_CONCURRENT_TARGETS: usize = 64;
/// Requests older than this many report intervals are dropped (their EDNS went quiet).
pub const REQUEST_MAX_AGE_INTERVALS: u32 = 10;

/// LDNS path probes.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    /// Static targets, probed first.
    pub ldns: Vec<IpAddr>,
    /// Most targets per round, static and EDNS-requested together (0: no probing).
    pub max_targets: usize,
    pub interval: Duration,
    /// DNS queries per target per round.
    pub count: u32,
    pub timeout: Duration,
    /// The LDNSs' DNS port.
    pub port: u16,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            ldns: Vec::new(),
            max_targets: 64,
            interval: Duration::from_millis(5000),
            count: 5,
            timeout: Duration::from_millis(1000),
            port: 53,
        }
    }
}

/// Whether an address may be probed at all.
pub fn probeable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast(),
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast(),
    }
}

/// The targets of a round: `fixed` first, then `requested` in order, duplicates and
/// unprobeable addresses left out, at most `max`.
pub fn targets(fixed: &[IpAddr], requested: &[IpAddr], max: usize) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in fixed.iter().chain(requested) {
        if out.len() >= max {
            break;
        }
        if probeable(*ip) && !out.contains(ip) {
            out.push(*ip);
        }
    }
    out
}

/// The LDNSs each EDNS asked for in its latest reply (a reply split over several datagrams
/// shares one timestamp, so those add up; a newer timestamp replaces).
#[derive(Debug, Default)]
pub struct Requests {
    by_edns: HashMap<usize, Batch>,
}

#[derive(Debug)]
struct Batch {
    timestamp_ms: u64,
    received: Instant,
    ldns: Vec<IpAddr>,
}

impl Requests {
    /// Takes the probe requests of one reply from EDNS number `edns`.
    pub fn take(&mut self, edns: usize, timestamp_ms: u64, now: Instant, prefixes: &[IpNet]) {
        let ips = prefixes.iter().map(|p| p.addr());
        match self.by_edns.get_mut(&edns) {
            Some(b) if b.timestamp_ms > timestamp_ms => {}
            Some(b) if b.timestamp_ms == timestamp_ms => {
                b.received = now;
                for ip in ips {
                    if !b.ldns.contains(&ip) {
                        b.ldns.push(ip);
                    }
                }
            }
            _ => {
                let mut ldns = Vec::new();
                for ip in ips {
                    if !ldns.contains(&ip) {
                        ldns.push(ip);
                    }
                }
                self.by_edns.insert(
                    edns,
                    Batch {
                        timestamp_ms,
                        received: now,
                        ldns,
                    },
                );
            }
        }
    }

    /// Every requested LDNS, the most recently received batch first, none older than
    /// `max_age`.
    pub fn current(&self, now: Instant, max_age: Duration) -> Vec<IpAddr> {
        let mut batches: Vec<&Batch> = self
            .by_edns
            .values()
            .filter(|b| now.saturating_duration_since(b.received) <= max_age)
            .collect();
        batches.sort_by_key(|b| std::cmp::Reverse(b.received));
        batches
            .into_iter()
            .flat_map(|b| b.ldns.iter().copied())
            .collect()
    }
}

/// One target's latest round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathResult {
    /// Median RTT of the answered queries.
    pub rtt: Option<Duration>,
    pub hops: Option<u8>,
    /// Answered / sent.
    pub completion: f64,
}

/// A path record for `ldns` (as a host prefix). Unmeasured values are the worst the wire
/// carries: RTT u32::MAX microseconds, hops 255.
pub fn path_record(ldns: IpAddr, r: &PathResult) -> Record {
    let rtt_us = r
        .rtt
        .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
        .unwrap_or(u32::MAX);
    Record::Path {
        ldns: IpNet::from(ldns),
        rtt_us,
        hops: r.hops.unwrap_or(u8::MAX),
        completion: r.completion.clamp(0.0, 1.0),
    }
}

/// The median of some durations (the lower middle of an even count).
pub fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    if v.is_empty() {
        return None;
    }
    Some(v[(v.len() - 1) / 2])
}

/// Sends `count` queries for ". NS" to `server`, `QUERY_GAP` apart, and waits until
/// `timeout` after the last: any response with a query's id counts as answered, whatever
/// its rcode. Returns the RTT of each answered query.
pub async fn dns_rtts(
    server: SocketAddr,
    count: u32,
    timeout: Duration,
) -> Result<Vec<Duration>, Error> {
    let socket = UdpSocket::bind(unspecified(server))
        .await
        .map_err(Error::io("bind"))?;
    socket
        .connect(server)
        .await
        .map_err(Error::io(format!("connect {server}")))?;
    let first = Message::query().metadata.id;
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    let mut rtts = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next_send = Instant::now();
    let mut i = 0u32;
    let mut deadline = None;
    loop {
        if i < count && Instant::now() >= next_send {
            let id = first.wrapping_add(i as u16);
            let mut q = Message::new(id, MessageType::Query, OpCode::Query);
            q.add_query(Query::query(Name::root(), RecordType::NS));
            let bytes = q.to_vec().map_err(Error::DnsEncode)?;
            // A send refused by an ICMP error for an earlier query is a lost query.
            if socket.send(&bytes).await.is_ok() {
                sent.insert(id, Instant::now());
            }
            i += 1;
            next_send += QUERY_GAP;
            if i == count {
                deadline = Some(Instant::now() + timeout);
            }
            continue;
        }
        if sent.is_empty() && i == count {
            break;
        }
        let wake = deadline.unwrap_or(next_send);
        let received =
            tokio::time::timeout_at(tokio::time::Instant::from_std(wake), socket.recv(&mut buf))
                .await;
        match received {
            Err(_) if deadline.is_some() => break,
            Err(_) => continue,
            // Refused (an ICMP port unreachable) and the like: not an answer.
            Ok(Err(_)) => continue,
            Ok(Ok(n)) => {
                let at = Instant::now();
                let Ok(r) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if r.metadata.message_type != MessageType::Response {
                    continue;
                }
                if let Some(t) = sent.remove(&r.metadata.id) {
                    rtts.push(at.duration_since(t));
                }
                if sent.is_empty() && i == count {
                    break;
                }
            }
        }
    }
    Ok(rtts)
}

/// One round for one target: RTT and completion, and the hop count, concurrently.
pub async fn probe_target(ip: IpAddr, config: &ProbeConfig) -> PathResult {
    let server = SocketAddr::new(ip, config.port);
    let timeout = config.timeout;
    let hops = tokio::task::spawn_blocking(move || hops::measure(ip, hops::MAX_HOPS, timeout));
    let rtts = match dns_rtts(server, config.count, config.timeout).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%ip, "DNS probe: {e}");
            Vec::new()
        }
    };
    let hops = match hops.await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::debug!(%ip, "hop count: {e}");
            None
        }
        Err(e) => {
            tracing::debug!(%ip, "hop count task: {e}");
            None
        }
    };
    let completion = rtts.len() as f64 / f64::from(config.count.max(1));
    PathResult {
        rtt: median(rtts),
        hops,
        completion,
    }
}

/// One round over every target, at most `MAX_CONCURRENT_TARGETS` at a time.
pub async fn probe_round(targets: &[IpAddr], config: &ProbeConfig) -> Vec<(IpAddr, PathResult)> {
    let mut set = tokio::task::JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_TARGETS));
    for (i, ip) in targets.iter().copied().enumerate() {
        let config = config.clone();
        let slots = slots.clone();
        set.spawn(async move {
            // Never closed, so a permit always comes.
            let _permit = slots.acquire_owned().await;
            (i, ip, probe_target(ip, &config).await)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!("probe task: {e}"),
        }
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, ip, r)| (ip, r)).collect()
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
