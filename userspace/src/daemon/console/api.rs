//! The console's JSON API, version 1 (`/api/v1/...`), read-only, from the published view
//! and the daemon's counters: the same sources as `xgslbctl` (status, peers, explain) and
//! `/metrics`. Field names are stable within a version; new fields may be added.
use std::{collections::BTreeMap, net::SocketAddr};

use serde::Serialize;

use super::history::{History, INTERVAL, KEEP, Sample};
use crate::{
    control::{
        dispatch::Daemon as _,
        explain::{ExplainError, explain},
        protocol::{AgentLine, Explain, Peers},
        recent::Event,
    },
    daemon::{ingest::now_ms, prometheus::Sources},
};

/// An API answer: the status and the JSON body.
pub type Answer = (hyper::StatusCode, String);

/// `GET /api/v1/sites`.
#[derive(Debug, Serialize)]
pub struct Sites {
    /// Publications that changed what is served, as of this answer.
    pub generation: u64,
    pub sites: Vec<Site>,
}

/// A site and its virtual servers.
#[derive(Debug, Serialize)]
pub struct Site {
    pub name: String,
    pub virtual_servers: Vec<Vs>,
}

/// A virtual server and whether it is in rotation.
#[derive(Debug, Serialize)]
pub struct Vs {
    pub name: String,
    pub server: String,
    pub address: SocketAddr,
    pub ratio: u32,
    /// Administratively enabled (config or `xgslbctl enable`/`disable`/`drain`).
    pub enabled: bool,
    /// In rotation: enabled, not down, within its limits.
    pub available: bool,
    /// When out: `down`, `disabled`, `drained` (disabled by `xgslbctl drain`),
    /// `over_connections`, `over_bits_per_second`, `over_packets_per_second`, `over_cpu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// When out, the reason in words (with the limit and the value over it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Connections last reported, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}

/// `GET /api/v1/sites`: sites with their virtual servers, as last published.
pub fn sites(s: &Sources) -> Sites {
    let view = s.handle.view();
    let m = &view.config.model;
    let recent = s.handle.recent_events();
    let sites = m
        .sites
        .iter()
        .enumerate()
        .map(|(si, site)| Site {
            name: site.name.clone(),
            virtual_servers: m
                .vss
                .iter()
                .enumerate()
                .filter(|(_, v)| v.site == si)
                .map(|(i, v)| {
                    let why = view.availability.get(i).and_then(|a| a.err());
                    let reason = why.map(|w| match w {
                        crate::balance::Unavailable::Disabled
                            if recent.last_change_to(&[&v.name, &site.name]) == Some("drain") =>
                        {
                            "drained"
                        }
                        w => w.reason(),
                    });
                    Vs {
                        name: v.name.clone(),
                        server: m
                            .servers
                            .get(v.server)
                            .map_or_else(|| "?".to_owned(), |x| x.name.clone()),
                        address: SocketAddr::new(v.addr, v.port),
                        ratio: v.ratio,
                        enabled: v.enabled,
                        available: view.availability.get(i).is_some_and(Result::is_ok),
                        reason,
                        detail: why.map(|w| w.to_string()),
                        connections: view.metrics.vs.get(&i).and_then(|x| x.connections),
                    }
                })
                .collect(),
        })
        .collect();
    Sites {
        generation: view.facts.generation,
        sites,
    }
}

/// `GET /api/v1/wideips`.
#[derive(Debug, Serialize)]
pub struct WideIps {
    /// Seconds between two history samples, and how far the history goes back.
    pub interval_s: u64,
    pub keep_s: u64,
    /// Whether the XDP answer counters are readable (no history without them).
    pub xdp_counters: bool,
    pub wideips: Vec<WideIp>,
}

/// A wide IP: its pools, methods, and the answers XDP gave by leading virtual server.
#[derive(Debug, Serialize)]
pub struct WideIp {
    pub name: String,
    /// How a pool is chosen (`Global`, `RoundRobin`, `Ratio`, ...).
    pub pool_method: String,
    /// What is answered when every pool is down.
    pub all_down: String,
    pub pools: Vec<Pool>,
    /// Sample times (Unix ms), oldest first; each sample counts the interval before it.
    pub at_ms: Vec<u64>,
    /// Answers per leading VS (or fallback address) per sample, aligned with `at_ms`.
    pub answers: BTreeMap<String, Vec<u64>>,
}

/// A pool of a wide IP.
#[derive(Debug, Serialize)]
pub struct Pool {
    pub name: String,
    /// Preferred, alternate, fallback methods.
    pub tiers: Vec<&'static str>,
    pub members: Vec<Member>,
}

/// A pool member.
#[derive(Debug, Serialize)]
pub struct Member {
    pub vs: String,
    pub site: String,
    pub ratio: u32,
}

/// `GET /api/v1/wideips`.
pub fn wideips(s: &Sources, history: &History, xdp_counters: bool) -> WideIps {
    let view = s.handle.view();
    let m = &view.config.model;
    let samples = history.samples();
    let wideips = m
        .wideips
        .iter()
        .map(|w| {
            let name = w.name.to_string();
            let pools = w
                .pools
                .iter()
                .filter_map(|p| m.pools.get(*p))
                .map(|p| Pool {
                    name: p.name.clone(),
                    tiers: p.tiers.iter().map(|t| t.name()).collect(),
                    members: p
                        .members
                        .iter()
                        .filter_map(|mb| {
                            let v = m.vss.get(mb.vs)?;
                            Some(Member {
                                vs: v.name.clone(),
                                site: m.sites.get(v.site).map_or("?", |x| &x.name).to_owned(),
                                ratio: mb.ratio,
                            })
                        })
                        .collect(),
                })
                .collect();
            let (at_ms, answers) = series(&samples, &name);
            WideIp {
                name,
                pool_method: format!("{:?}", w.pool_method),
                all_down: format!("{:?}", w.all_down),
                pools,
                at_ms,
                answers,
            }
        })
        .collect();
    WideIps {
        interval_s: INTERVAL.as_secs(),
        keep_s: KEEP.as_secs(),
        xdp_counters,
        wideips,
    }
}

/// One wide IP's answers over `samples`, one series per leading VS.
fn series(samples: &[Sample], wideip: &str) -> (Vec<u64>, BTreeMap<String, Vec<u64>>) {
    let at_ms: Vec<u64> = samples.iter().map(|x| x.at_ms).collect();
    let mut answers: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, sample) in samples.iter().enumerate() {
        for (vs, n) in sample.answers.get(wideip).into_iter().flatten() {
            answers
                .entry(vs.clone())
                .or_insert_with(|| vec![0; samples.len()])[i] = *n;
        }
    }
    (at_ms, answers)
}

/// `GET /api/v1/agents`.
#[derive(Debug, Serialize)]
pub struct Agents {
    /// Whether `[agents]` is configured.
    pub configured: bool,
    pub accepted: u64,
    /// Datagrams refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Each agent: site, address, key, age of its last report, state (`up`, `stale`).
    pub agents: Vec<AgentLine>,
}

/// `GET /api/v1/agents`: what `xgslbctl status` says of the agents.
pub fn agents(s: &Sources) -> Agents {
    let st = s.handle.status();
    Agents {
        configured: st.agents_configured,
        accepted: st.ingest_accepted,
        rejected: st.ingest_rejected.into_iter().collect(),
        agents: st.agents,
    }
}

/// `GET /api/v1/peers`: what `xgslbctl peers --json` says.
pub fn peers(s: &Sources) -> Peers {
    s.handle.peers()
}

/// `GET /api/v1/counters`: counters since start; the page computes rates from two reads.
#[derive(Debug, Serialize)]
pub struct Counters {
    pub at_ms: u64,
    /// Frames the XDP program saw by what it did (`answered`, `pass_<reason>`, ...);
    /// empty when XDP is not loaded.
    pub xdp: BTreeMap<&'static str, u64>,
    /// The slow path's UDP workers (`received`, `answered_from_plan`, ...).
    pub slow_path_udp: BTreeMap<&'static str, u64>,
    /// Slow-path responses by rcode (UDP and TCP).
    pub slow_path_rcodes: BTreeMap<&'static str, u64>,
    /// Publications and their inputs.
    pub publication: Publication,
}

/// Publication facts.
#[derive(Debug, Serialize)]
pub struct Publication {
    pub generation: u64,
    pub reloads: u64,
    pub metric_updates: u64,
    pub metric_errors: u64,
    pub agent_reports: u64,
    pub last_publication_us: u64,
}

/// `GET /api/v1/counters`; `xdp` is the XDP program's counters, if it is loaded.
pub fn counters(s: &Sources, xdp: Option<[u64; xgslb_common::Counter::COUNT]>) -> Counters {
    let xdp = xdp
        .map(|stats| {
            xgslb_common::Counter::ALL
                .into_iter()
                .map(|c| (c.name(), stats[c as usize]))
                .collect()
        })
        .unwrap_or_default();
    let udp = crate::control::protocol::UdpCounters::from(s.handle.udp_totals());
    let slow_path_udp = udp
        .fields()
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("udp_"), v))
        .collect();
    let workers = s.handle.udp_counters();
    let rcodes = std::iter::once(&*s.tcp_rcodes).chain(workers.iter().map(|w| &w.rcodes));
    let p = s.handle.published();
    Counters {
        at_ms: now_ms(),
        xdp,
        slow_path_udp,
        slow_path_rcodes: crate::dns::RcodeCounters::sum(rcodes).into_iter().collect(),
        publication: Publication {
            generation: p.generation,
            reloads: p.reloads,
            metric_updates: p.metric_updates,
            metric_errors: p.metric_errors,
            agent_reports: p.reports,
            last_publication_us: p.last_publication_us,
        },
    }
}

/// `GET /api/v1/events`.
#[derive(Debug, Serialize)]
pub struct Events {
    /// Oldest first; only those after `?after=<seq>` when given.
    pub events: Vec<Event>,
}

/// `GET /api/v1/events[?after=seq]`.
pub fn events(s: &Sources, after: Option<u64>) -> Events {
    let after = after.unwrap_or(0);
    Events {
        events: s
            .handle
            .recent_events()
            .list()
            .into_iter()
            .filter(|e| e.seq > after)
            .collect(),
    }
}

/// `GET /api/v1/explain?wideip=..&client=..[&ecs=..]`: 400 for a malformed question, 404
/// for a name that is not a wide IP (or not decided yet).
pub fn explained(
    s: &Sources,
    wideip: &str,
    client: &str,
    ecs: Option<&str>,
) -> Result<Explain, (hyper::StatusCode, String)> {
    explain(
        &s.handle.view(),
        wideip,
        client,
        ecs,
        crate::daemon::ingest::now_ms(),
    )
    .map_err(|e| {
        let status = match e {
            ExplainError::NotAWideIp(_) | ExplainError::NoDecision(_) => {
                hyper::StatusCode::NOT_FOUND
            }
            ExplainError::NotAnAddress(_)
            | ExplainError::NotAName(..)
            | ExplainError::NotASubnet(_) => hyper::StatusCode::BAD_REQUEST,
        };
        (status, e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_align_every_vs_with_the_sample_times() {
        let sample = |at_ms, list: &[(&str, &str, u64)]| {
            let mut answers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for (w, v, n) in list {
                answers
                    .entry((*w).to_owned())
                    .or_default()
                    .insert((*v).to_owned(), *n);
            }
            Sample { at_ms, answers }
        };
        let samples = [
            sample(1000, &[("w.", "a", 3)]),
            sample(3000, &[("w.", "a", 1), ("w.", "b", 2), ("x.", "c", 9)]),
            sample(5000, &[]),
        ];
        let (at, answers) = series(&samples, "w.");
        assert_eq!(at, [1000, 3000, 5000]);
        assert_eq!(answers["a"], [3, 1, 0]);
        assert_eq!(answers["b"], [0, 2, 0]);
        assert!(!answers.contains_key("c"));
        let (_, none) = series(&samples, "y.");
        assert!(none.is_empty());
    }
}
