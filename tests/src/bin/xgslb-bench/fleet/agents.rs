//! The simulated agents: each reports its one virtual server's health, signed with its
//! site's key, from its own UDP socket to its site's EDNS only, as xgslb-agent would.
use std::{
    net::UdpSocket,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use xgslb::{
    daemon::ingest::now_ms,
    metrics::wire::{self, Header, Key, Kind, Record},
};

use super::shape::{AGENT_PORT, AGENT_SECRET, Shape, site_name};

/// How often each agent reports (xgslb-agent's default interval).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// One simulated agent.
pub struct Agent {
    pub name: String,
    site: String,
    vs: String,
    key: Key,
    socket: UdpSocket,
    /// Its virtual server's health; held while a report is made and sent, so that reports
    /// leave in sequence order with the state as of their sequence.
    up: Mutex<bool>,
}

/// Sequence numbers for every agent's reports: one increasing counter serves all (each
/// agent's own sequence then increases too), from the clock so that a rerun starts above.
pub struct Sequence(AtomicU64);

impl Sequence {
    pub fn new() -> Self {
        Self(AtomicU64::new(now_ms() * 1000))
    }
}

impl Agent {
    /// Reports now, first setting the health to `up` if given; when the datagram left.
    pub fn report(&self, seq: &Sequence, up: Option<bool>) -> Result<Instant> {
        let mut state = self.up.lock().map_err(|_| anyhow!("agent lock poisoned"))?;
        if let Some(up) = up {
            *state = up;
        }
        let header = Header {
            kind: Kind::Report,
            key_id: self.key.id,
            sequence: seq.0.fetch_add(1, Ordering::Relaxed),
            timestamp_ms: now_ms(),
            agent: self.name.clone(),
            site: self.site.clone(),
        };
        let records = [Record::Health {
            vs: self.vs.clone(),
            up: *state,
        }];
        let datagram = wire::encode(&header, &records, &self.key)
            .pop()
            .context("encode a report")?;
        let sent = Instant::now();
        self.socket.send(&datagram).context("send a report")?;
        Ok(sent)
    }
}

/// An agent per virtual server, all up, each connected to its site's EDNS.
pub fn agents(shape: &Shape) -> Result<Vec<Agent>> {
    (0..shape.vss())
        .map(|j| {
            let s = j / shape.agents_per_site;
            let socket = UdpSocket::bind("127.0.0.1:0").context("agent socket")?;
            let edns = shape.edns_of_site(s);
            socket
                .connect(("127.0.0.1", AGENT_PORT + edns as u16))
                .context("connect an agent")?;
            Ok(Agent {
                name: format!("agent-{:02}-{:02}", s, j % shape.agents_per_site),
                site: site_name(s),
                vs: shape.vs_name(j),
                key: Key {
                    id: s as u32 + 1,
                    secret: format!("{AGENT_SECRET}-{s}").into_bytes(),
                },
                socket,
                up: Mutex::new(true),
            })
        })
        .collect()
}

/// Every agent reports once per [`REPORT_EVERY`], spread evenly over it (agents are not in
/// step), until `stop`. Returns the reports sent.
pub fn heartbeats(
    agents: Arc<Vec<Agent>>,
    seq: Arc<Sequence>,
    stop: Arc<AtomicBool>,
) -> Result<u64> {
    let step = REPORT_EVERY / agents.len().max(1) as u32;
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        agents[sent as usize % agents.len()].report(&seq, None)?;
        sent += 1;
        // Pacing (the agents' schedule), not a wait for anything to happen.
        let next = start + step * sent as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(sent)
}
