//! The balancing methods: pure functions from (pool, metrics, client) to a weighted answer set
//! with the trace of the decision.
//!
//! # How a wide IP is answered
//! 1. Every virtual server is checked for availability ([`available`]): enabled, not reported
//!    down, and within every configured limit whose metric is known. An unavailable virtual
//!    server takes part in no method.
//! 2. Each pool tries its three tiers (preferred, alternate, fallback) in order; the first tier
//!    that yields something decides the pool ([`tiers`]). What a method sees and yields is in
//!    [`method`]; the methods are in [`methods`]
//!    (static) and [`dynamic`] (from metrics).
//! 3. The wide IP's pool method chooses among, or merges, the pools' outcomes ([`pools`]).
//! 4. When no pool yields anything, the wide IP's all-down behaviour answers.
//! 5. At most `MAX_ADDRS` addresses of each family go into an answer: the heaviest are kept.
//!
//! Weights: static methods give small integers (1 each, or ratios); dynamic methods and merged
//! pools give integers summing to about [`WEIGHT_SCALE`], each at least 1. A member's share of
//! answers is its weight over the sum of weights.
//!
//! Each decision keeps its trace as data ([`trace`]): steps holding indices and numbers,
//! shown as text only when `explain` asks, so deciding formats nothing.
//!
//! Dynamic weights are then damped between balancer intervals ([`damping`]), and LDNS prefixes
//! are grouped into a bounded set of client classes that the decisions are made for
//! ([`classes`]).
use std::net::IpAddr;

use xgslb_common::MAX_ADDRS;

use self::trace::{Step, Trace};
use crate::model::{AllDown, ClientContext, Metrics, Model, VsId};

pub mod classes;
pub mod damping;
pub mod dynamic;
pub mod method;
pub mod methods;
pub mod pools;
pub mod tiers;
pub mod topology;
pub mod trace;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

/// Sum of the weights a dynamic method (or a merge of pools) hands out.
pub const WEIGHT_SCALE: u32 = 10_000;

/// TTL of an all-down Fallback IP answer when the wide IP has no pool to take a TTL from.
pub const DEFAULT_FALLBACK_TTL: u32 = 30;

/// What to answer for one wide IP and one client class, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The steps, in the order the decision was made (shown by `xgslbctl explain`).
    pub trace: Trace,
    /// The answer's weights came (at least in part) from a dynamic method, so they are damped
    /// between intervals (see [`damping::Damper`]).
    pub dynamic: bool,
}

/// The answer for a wide IP. Members are virtual servers by model index; the peer protocol
/// carries them by name (`Outcome<String>`, see [`Outcome::map_members`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<V = VsId> {
    /// Answer from these virtual servers, with these weights (each >= 1; share of answers =
    /// weight/sum). `records` addresses per response; `persist`: pick by a hash of the masked
    /// LDNS address instead of in turn. Only Static Persist sets `persist` (in a merge of
    /// pools, any persisting pool does); the wide IP's `persist_v4`/`persist_v6` are only the
    /// masks.
    Answer {
        members: Vec<(V, u32)>,
        ttl: u32,
        records: u8,
        persist: bool,
    },
    /// Answer this address (not health checked).
    FallbackIp { addr: IpAddr, ttl: u32 },
    /// Answer from the zone's static records of the name.
    ReturnToDns,
    /// SERVFAIL.
    ServFail,
    /// NOERROR, no records.
    NoData,
    /// No response.
    Drop,
}

impl<V> Outcome<V> {
    /// The same outcome with each member mapped by `f`; `None` if `f` gives `None` for any
    /// (a name the model does not know).
    pub fn map_members<W>(&self, mut f: impl FnMut(&V) -> Option<W>) -> Option<Outcome<W>> {
        Some(match self {
            Outcome::Answer {
                members,
                ttl,
                records,
                persist,
            } => Outcome::Answer {
                members: members
                    .iter()
                    .map(|(v, w)| f(v).map(|x| (x, *w)))
                    .collect::<Option<_>>()?,
                ttl: *ttl,
                records: *records,
                persist: *persist,
            },
            Outcome::FallbackIp { addr, ttl } => Outcome::FallbackIp {
                addr: *addr,
                ttl: *ttl,
            },
            Outcome::ReturnToDns => Outcome::ReturnToDns,
            Outcome::ServFail => Outcome::ServFail,
            Outcome::NoData => Outcome::NoData,
            Outcome::Drop => Outcome::Drop,
        })
    }
}

/// Decides what wide IP `wideip` answers to a client of class `client`.
///
/// The wide IP's pool method picks among its pools' outcomes; if no pool yields anything, the
/// wide IP's all-down behaviour answers: Fallback IP (with the first pool's TTL, or
/// [`DEFAULT_FALLBACK_TTL`] without pools), Return to DNS, SERVFAIL, NODATA or Drop.
pub fn decide(model: &Model, wideip: usize, metrics: &Metrics, client: &ClientContext) -> Decision {
    let mut trace = Vec::new();
    let Some(w) = model.wideips.get(wideip) else {
        trace.push(Step::NoWideIp(wideip));
        return Decision {
            outcome: Outcome::ServFail,
            trace,
            dynamic: false,
        };
    };
    match pools::pick(model, wideip, w, metrics, client, &mut trace) {
        Some(d) => {
            let outcome = match d.outcome {
                Outcome::Answer {
                    members,
                    ttl,
                    records,
                    persist,
                } => Outcome::Answer {
                    members: cap_addrs(model, wideip, members, &mut trace),
                    ttl,
                    records,
                    persist,
                },
                other => other,
            };
            Decision {
                outcome,
                trace,
                dynamic: d.dynamic,
            }
        }
        None => {
            let outcome = all_down(model, w);
            trace.push(Step::AllDown {
                wideip,
                outcome: outcome.clone(),
            });
            Decision {
                outcome,
                trace,
                dynamic: false,
            }
        }
    }
}

/// What wide IP `w` answers when no pool yields anything: its all-down behaviour (a
/// Fallback IP with the first pool's TTL, or [`DEFAULT_FALLBACK_TTL`] without pools).
pub fn all_down(model: &Model, w: &crate::model::WideIp) -> Outcome {
    match w.all_down {
        AllDown::FallbackIp(addr) => Outcome::FallbackIp {
            addr,
            ttl: w
                .pools
                .first()
                .and_then(|&p| model.pools.get(p))
                .map_or(DEFAULT_FALLBACK_TTL, |p| p.ttl),
        },
        AllDown::ReturnToDns => Outcome::ReturnToDns,
        AllDown::ServFail => Outcome::ServFail,
        AllDown::NoData => Outcome::NoData,
        AllDown::Drop => Outcome::Drop,
    }
}

/// Why a virtual server takes part in no method: what `explain`, `show vs` and the
/// `xgslb_vs_available` metric's `reason` say. Its `Display` is the text operators read.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum Unavailable {
    /// The model has no virtual server with this index.
    #[error("no virtual server #{0}")]
    Unknown(VsId),
    /// An operator disabled or drained it (or the config did).
    #[error("disabled")]
    Disabled,
    /// Its health check reported it down.
    #[error("down")]
    Down,
    /// A reported metric is over its configured limit.
    #[error("{limit} {value} over limit {max}")]
    OverLimit { limit: Limit, value: u64, max: u64 },
    /// The reported CPU load is over its configured limit (percent).
    #[error("cpu {value}% over limit {max}%")]
    OverCpu { value: f64, max: f64 },
}

impl Unavailable {
    /// A short label for metrics: disabled, down, over_connections, ...
    pub const fn reason(&self) -> &'static str {
        match self {
            Unavailable::Unknown(_) => "unknown",
            Unavailable::Disabled => "disabled",
            Unavailable::Down => "down",
            Unavailable::OverLimit { limit, .. } => limit.reason(),
            Unavailable::OverCpu { .. } => "over_cpu",
        }
    }
}

/// A limit on a counted metric of a virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Connections,
    BitsPerSecond,
    PacketsPerSecond,
}

impl Limit {
    const fn reason(self) -> &'static str {
        match self {
            Limit::Connections => "over_connections",
            Limit::BitsPerSecond => "over_bits_per_second",
            Limit::PacketsPerSecond => "over_packets_per_second",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Connections => "connections",
            Limit::BitsPerSecond => "bits/s",
            Limit::PacketsPerSecond => "packets/s",
        })
    }
}

/// Whether virtual server `vs` may be answered, and if not, why.
///
/// Available = enabled, its health is not reported down (`up: Some(false)`; unknown health
/// counts as up), and no known metric exceeds its configured limit: connections, bits/s
/// (reported kilobits/s × 1000), packets/s, CPU percent. A value equal to the limit is
/// within it; an unknown metric is never over a limit.
pub fn available(model: &Model, vs: VsId, metrics: &Metrics) -> Result<(), Unavailable> {
    let v = model.vss.get(vs).ok_or(Unavailable::Unknown(vs))?;
    if !v.enabled {
        return Err(Unavailable::Disabled);
    }
    let m = metrics.vs.get(&vs).copied().unwrap_or_default();
    if m.up == Some(false) {
        return Err(Unavailable::Down);
    }
    let l = &v.limits;
    over(Limit::Connections, m.connections, l.connections)?;
    over(
        Limit::BitsPerSecond,
        m.kilobits_per_second.map(|k| k.saturating_mul(1000)),
        l.bits_per_second,
    )?;
    over(
        Limit::PacketsPerSecond,
        m.packets_per_second,
        l.packets_per_second,
    )?;
    if let (Some(value), Some(max)) = (m.cpu_percent, l.cpu_percent)
        && value > max
    {
        return Err(Unavailable::OverCpu { value, max });
    }
    Ok(())
}

fn over(limit: Limit, value: Option<u64>, max: Option<u64>) -> Result<(), Unavailable> {
    match (value, max) {
        (Some(value), Some(max)) if value > max => {
            Err(Unavailable::OverLimit { limit, value, max })
        }
        _ => Ok(()),
    }
}

/// Raw positive scores to integer weights summing to about [`WEIGHT_SCALE`], each >= 1.
/// Callers pass only finite scores > 0.
pub(crate) fn scale(raw: &[(VsId, f64)]) -> Vec<(VsId, u32)> {
    let sum: f64 = raw.iter().map(|r| r.1).sum();
    raw.iter()
        .map(|&(vs, x)| {
            let w = if sum > 0.0 {
                (x / sum * WEIGHT_SCALE as f64).round() as u32
            } else {
                1
            };
            (vs, w.max(1))
        })
        .collect()
}

/// Keeps at most `MAX_ADDRS` members of each address family, the heaviest (earlier first on
/// equal weights): the XDP answer set holds no more.
fn cap_addrs(
    model: &Model,
    wideip: usize,
    members: Vec<(VsId, u32)>,
    trace: &mut Trace,
) -> Vec<(VsId, u32)> {
    let is_v4 = |vs: VsId| model.vss.get(vs).is_some_and(|v| v.addr.is_ipv4());
    let mut drop: Vec<VsId> = Vec::new();
    for v4 in [true, false] {
        let mut family: Vec<(usize, VsId, u32)> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| is_v4(m.0) == v4)
            .map(|(i, &(vs, w))| (i, vs, w))
            .collect();
        if family.len() <= MAX_ADDRS {
            continue;
        }
        family.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let mut left_out = family.split_off(MAX_ADDRS);
        left_out.sort_by_key(|f| f.0);
        let dropped: Vec<VsId> = left_out.iter().map(|f| f.1).collect();
        drop.extend(&dropped);
        trace.push(Step::Capped {
            wideip,
            v6: !v4,
            left_out: dropped,
        });
    }
    members
        .into_iter()
        .filter(|m| !drop.contains(&m.0))
        .collect()
}
