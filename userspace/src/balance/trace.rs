//! The trace of a decision as data: each step the balancer took, holding indices (wide IP,
//! pool, virtual server) and numbers. Nothing is formatted while deciding; a step becomes the
//! line operators read (`xgslbctl explain`) only when shown with the [`Names`] of the model
//! that decided.
use std::{fmt, net::IpAddr};

use xgslb_common::MAX_ADDRS;

use super::{Outcome, Unavailable};
use crate::model::{Method, Model, PoolId, PoolMethod, VsId, WhenPeerSilent};

/// A peer decision's generation is the sender's start time (Unix ms) times this, plus its
/// publication counter: newer within a process and across restarts, so that a receiver can
/// drop a reordered older decision and still take a restarted peer's first one.
pub const GENERATIONS: u64 = 1_000_000;

/// Names of a pool's three tiers, in order (a tier step holds the index).
pub const TIER_NAMES: [&str; 3] = ["preferred", "alternate", "fallback"];

/// The steps of one decision, in the order it was made.
pub type Trace = Vec<Step>;

/// One step of a wide IP's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The model has no wide IP with this index: SERVFAIL.
    NoWideIp(usize),
    /// The model has no pool with this index: the pool yields nothing.
    NoPool(PoolId),
    /// A step of tier `tier` (an index into [`TIER_NAMES`]) of pool `pool`, running `method`.
    Tier {
        pool: PoolId,
        tier: usize,
        method: Method,
        step: TierStep,
    },
    /// No tier of the pool yielded anything.
    NoTierAnswers(PoolId),
    /// A step of the wide IP's pool method.
    Pools {
        wideip: usize,
        method: PoolMethod,
        step: PoolStep,
    },
    /// No pool yielded anything: the wide IP's all-down behaviour gives `outcome`.
    AllDown { wideip: usize, outcome: Outcome },
    /// More than `MAX_ADDRS` members of one family: the heaviest kept, `left_out` not.
    Capped {
        wideip: usize,
        v6: bool,
        left_out: Vec<VsId>,
    },
    /// The wide IP is decided by peer EDNS `peer`: this is its decision of its publication
    /// `generation`, which arrived `age_ms` before this publication.
    DecidedByPeer {
        wideip: usize,
        peer: String,
        generation: u64,
        age_ms: u64,
    },
    /// The deciding peer is silent (nothing for `silent_ms`): `when` applies.
    PeerSilent {
        wideip: usize,
        peer: String,
        silent_ms: Option<u64>,
        when: WhenPeerSilent,
    },
}

/// What happened in one tier of a pool.
#[derive(Clone, Debug, PartialEq)]
pub enum TierStep {
    /// A member takes no part in the tier's method.
    Out { vs: VsId, why: Why },
    /// Topology: a member's score for the client.
    TopologyScore { vs: VsId, score: u32 },
    /// A dynamic method: a member's metric and the weight it gave.
    Weight {
        vs: VsId,
        metric: Metric,
        value: f64,
        weight: u32,
    },
    /// Quality of Service: no member has this term's metric (the term counts for nothing).
    QosMissing(QosTerm),
    /// Quality of Service: a member's summed score.
    QosScore { vs: VsId, score: f64 },
    /// The tier yielded nothing: the next tier is tried.
    Next(Next),
    /// The tier answers from these members with these weights.
    Answer {
        members: Vec<(VsId, u32)>,
        persist: bool,
    },
    /// The tier answers the pool's fallback address.
    FallbackIp(IpAddr),
    /// The tier drops the query.
    Drop,
    /// The tier answers from the zone's static records.
    ReturnToDns,
}

/// Why a member takes no part in a tier's method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Why {
    /// It is unavailable (disabled, down, over a limit).
    Unavailable(Unavailable),
    /// It is of the other address family than the decision (`v6`: the AAAA decision).
    OtherFamily { v6: bool },
    /// A dynamic method's metric is unknown for it.
    NoMetric(Metric),
    /// A higher-is-better metric is 0 for it.
    Zero(Metric),
    /// Its Quality of Service score is 0.
    QosZero,
}

/// Why a tier yielded nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The method picks among members and none is available.
    NoAvailableMember,
    /// The tier's method is None.
    MethodNone,
    /// Topology: no member scores above 0 for the client.
    NoTopologyScore,
    /// Fallback IP without an address configured.
    NoFallbackIp,
    /// A dynamic method: no available member has its metric.
    NoMetric(Metric),
    /// A path method, for a client without path metrics.
    NoPathMetrics,
    /// Quality of Service: no member has any term's metric.
    NoQosMetric,
    /// Quality of Service: every member scores 0.
    QosAllZero,
}

/// What the wide IP's pool method did.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolStep {
    /// This pool's outcome answers.
    Picked(PoolId),
    /// No pool has an answer set: this pool's terminal outcome answers.
    Decides(PoolId),
    /// Topology: the best score of a pool's available members.
    BestScore { pool: PoolId, score: u32 },
    /// Round Robin / Ratio: only this pool answers, so it is used as it is.
    Only(PoolId),
    /// Round Robin / Ratio: this pool's share of the merge.
    Share { pool: PoolId, share: f64 },
    /// Round Robin / Ratio: the merged members and weights.
    Merged(Vec<(VsId, u32)>),
}

/// The metric a single-metric dynamic method weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Connections,
    PacketsPerSecond,
    KilobitsPerSecond,
    Cpu,
    Capacity,
    Score,
    RoundTripTime,
    Hops,
    Completion,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Connections => "connections",
            Metric::PacketsPerSecond => "packets/s",
            Metric::KilobitsPerSecond => "kbit/s",
            Metric::Cpu => "cpu %",
            Metric::Capacity => "capacity",
            Metric::Score => "score",
            Metric::RoundTripTime => "rtt ms",
            Metric::Hops => "hops",
            Metric::Completion => "completion",
        })
    }
}

/// A term of Quality of Service (its `Display` is the coefficient's config name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosTerm {
    RoundTripTime,
    Completion,
    PacketRate,
    KilobytesPerSecond,
    Hops,
    VsCapacity,
    Topology,
    Connections,
}

impl fmt::Display for QosTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QosTerm::RoundTripTime => "rtt",
            QosTerm::Completion => "completion",
            QosTerm::PacketRate => "packet_rate",
            QosTerm::KilobytesPerSecond => "kilobytes_per_second",
            QosTerm::Hops => "hops",
            QosTerm::VsCapacity => "vs_capacity",
            QosTerm::Topology => "topology",
            QosTerm::Connections => "connections",
        })
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Unavailable(u) => write!(f, "{u}"),
            Why::OtherFamily { v6: true } => f.write_str("IPv4: this is the AAAA decision"),
            Why::OtherFamily { v6: false } => f.write_str("IPv6: this is the A decision"),
            Why::NoMetric(m) => write!(f, "no {m}"),
            Why::Zero(m) => write!(f, "{m} 0"),
            Why::QosZero => f.write_str("qos score 0"),
        }
    }
}

impl fmt::Display for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Next::NoAvailableMember => f.write_str("no available member"),
            Next::MethodNone => f.write_str("method none"),
            Next::NoTopologyScore => f.write_str("no member has a topology score above 0"),
            Next::NoFallbackIp => f.write_str("no fallback_ip configured"),
            Next::NoMetric(m) => write!(f, "no available member has {m}"),
            Next::NoPathMetrics => f.write_str("no path metrics for this client"),
            Next::NoQosMetric => f.write_str("no member has any quality of service metric"),
            Next::QosAllZero => f.write_str("every member has qos score 0"),
        }
    }
}

/// The names a trace's indices stand for, from the model that made the decisions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Names {
    wideips: Vec<String>,
    pools: Vec<String>,
    vss: Vec<String>,
}

impl Names {
    pub fn of(model: &Model) -> Self {
        Self {
            wideips: model.wideips.iter().map(|w| w.name.to_string()).collect(),
            pools: model.pools.iter().map(|p| p.name.clone()).collect(),
            vss: model.vss.iter().map(|v| v.name.clone()).collect(),
        }
    }

    /// The name of virtual server `vs`, if the model has it.
    pub fn vs(&self, vs: VsId) -> Option<&str> {
        self.vss.get(vs).map(String::as_str)
    }

    fn wideip(&self, w: usize) -> Named<'_> {
        Named(self.wideips.get(w).map(String::as_str), w)
    }

    fn pool(&self, p: PoolId) -> Named<'_> {
        Named(self.pools.get(p).map(String::as_str), p)
    }

    fn vs_named(&self, vs: VsId) -> Named<'_> {
        Named(self.vs(vs), vs)
    }

    /// "name weight, name weight, ..."
    fn weights(&self, f: &mut fmt::Formatter<'_>, members: &[(VsId, u32)]) -> fmt::Result {
        for (i, &(vs, w)) in members.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} {w}", self.vs_named(vs))?;
        }
        Ok(())
    }
}

/// A name, or `#index` when the model has none at that index.
struct Named<'a>(Option<&'a str>, usize);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => f.write_str(name),
            None => write!(f, "#{}", self.1),
        }
    }
}

impl Step {
    /// The step as the line `explain` shows, naming what it refers to by `names`.
    pub fn show<'a>(&'a self, names: &'a Names) -> Shown<'a> {
        Shown { step: self, names }
    }
}

/// A [`Step`] with the names to show it by.
pub struct Shown<'a> {
    step: &'a Step,
    names: &'a Names,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.names;
        match self.step {
            Step::NoWideIp(w) => write!(f, "no wide IP #{w}: servfail"),
            Step::NoPool(p) => write!(f, "no pool #{p}"),
            Step::Tier {
                pool,
                tier,
                method,
                step,
            } => {
                let tier = TIER_NAMES.get(*tier).copied().unwrap_or("?");
                write!(f, "pool {}: tier {tier} {}: ", n.pool(*pool), method.name())?;
                tier_step(f, n, step)
            }
            Step::NoTierAnswers(p) => write!(f, "pool {}: no tier answers", n.pool(*p)),
            Step::Pools {
                wideip,
                method,
                step,
            } => {
                write!(
                    f,
                    "wide IP {}: pool method {}: ",
                    n.wideip(*wideip),
                    <&str>::from(*method)
                )?;
                pool_step(f, n, step)
            }
            Step::DecidedByPeer {
                wideip,
                peer,
                generation,
                age_ms,
            } => write!(
                f,
                "wide IP {}: decided by peer {peer} (its publication {}, arrived {age_ms} ms \
                 before this one)",
                n.wideip(*wideip),
                generation % GENERATIONS
            ),
            Step::PeerSilent {
                wideip,
                peer,
                silent_ms,
                when,
            } => {
                write!(f, "wide IP {}: peer {peer} is silent (", n.wideip(*wideip))?;
                match silent_ms {
                    Some(ms) => write!(f, "nothing for {ms} ms")?,
                    None => write!(f, "never heard")?,
                }
                f.write_str(match when {
                    WhenPeerSilent::DecideLocally => "): decided locally",
                    WhenPeerSilent::KeepLast => "): its last decision kept",
                    WhenPeerSilent::AllDown => "): the all-down behaviour",
                })
            }
            Step::AllDown { wideip, outcome } => write!(
                f,
                "wide IP {}: no pool answers, all down: {outcome:?}",
                n.wideip(*wideip)
            ),
            Step::Capped {
                wideip,
                v6,
                left_out,
            } => {
                write!(
                    f,
                    "wide IP {}: {} IPv{} members, kept the {MAX_ADDRS} heaviest, left out ",
                    n.wideip(*wideip),
                    MAX_ADDRS + left_out.len(),
                    if *v6 { 6 } else { 4 },
                )?;
                for (i, &vs) in left_out.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", n.vs_named(vs))?;
                }
                Ok(())
            }
        }
    }
}

fn tier_step(f: &mut fmt::Formatter<'_>, n: &Names, step: &TierStep) -> fmt::Result {
    match step {
        TierStep::Out { vs, why } => write!(f, "{} out ({why})", n.vs_named(*vs)),
        TierStep::TopologyScore { vs, score } => {
            write!(f, "{} topology score {score}", n.vs_named(*vs))
        }
        TierStep::Weight {
            vs,
            metric,
            value,
            weight,
        } => write!(f, "{} {metric} {value}: weight {weight}", n.vs_named(*vs)),
        TierStep::QosMissing(term) => write!(f, "qos: no member has {term}"),
        TierStep::QosScore { vs, score } => write!(f, "{} qos score {score:.3}", n.vs_named(*vs)),
        TierStep::Next(why) => write!(f, "{why}, next tier"),
        TierStep::Answer { members, persist } => {
            f.write_str("answer ")?;
            n.weights(f, members)?;
            f.write_str(if *persist { " (persist)" } else { "" })
        }
        TierStep::FallbackIp(addr) => write!(f, "fallback address {addr}"),
        TierStep::Drop => f.write_str("drop"),
        TierStep::ReturnToDns => f.write_str("return to DNS"),
    }
}

fn pool_step(f: &mut fmt::Formatter<'_>, n: &Names, step: &PoolStep) -> fmt::Result {
    match step {
        PoolStep::Picked(p) => write!(f, "pool {}", n.pool(*p)),
        PoolStep::Decides(p) => write!(f, "no pool has an answer set, pool {} decides", n.pool(*p)),
        PoolStep::BestScore { pool, score } => {
            write!(f, "pool {} best score {score}", n.pool(*pool))
        }
        PoolStep::Only(p) => write!(f, "only pool {} answers", n.pool(*p)),
        PoolStep::Share { pool, share } => write!(f, "pool {} share {share:.3}", n.pool(*pool)),
        PoolStep::Merged(members) => {
            f.write_str("merged ")?;
            n.weights(f, members)
        }
    }
}

/// The lines of a trace, as `explain` shows them.
pub fn lines(trace: &[Step], names: &Names) -> Vec<String> {
    trace.iter().map(|s| s.show(names).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// Every step's line, as `explain` has always shown it.
    #[test]
    fn each_step_shows_the_line_operators_read() {
        let names = Names {
            wideips: vec!["www.example.com.".into()],
            pools: vec!["asia".into(), "us".into()],
            vss: vec!["tokyo".into(), "newyork".into()],
        };
        let tier = |tier, method, step| Step::Tier {
            pool: 0,
            tier,
            method,
            step,
        };
        let pools = |step| Step::Pools {
            wideip: 0,
            method: PoolMethod::Ratio,
            step,
        };
        let out = |why| TierStep::Out { vs: 1, why };
        let lc = Method::LeastConnections;
        let table: Vec<(Step, &str)> = vec![
            (Step::NoWideIp(3), "no wide IP #3: servfail"),
            (Step::NoPool(7), "no pool #7"),
            (
                Step::DecidedByPeer {
                    wideip: 0,
                    peer: "edns-b".into(),
                    generation: 1_764_000_000_000_000_012,
                    age_ms: 340,
                },
                "wide IP www.example.com.: decided by peer edns-b (its publication 12, arrived \
                 340 ms before this one)",
            ),
            (
                Step::PeerSilent {
                    wideip: 0,
                    peer: "edns-b".into(),
                    silent_ms: Some(4000),
                    when: WhenPeerSilent::KeepLast,
                },
                "wide IP www.example.com.: peer edns-b is silent (nothing for 4000 ms): its \
                 last decision kept",
            ),
            (
                Step::PeerSilent {
                    wideip: 0,
                    peer: "edns-b".into(),
                    silent_ms: None,
                    when: WhenPeerSilent::DecideLocally,
                },
                "wide IP www.example.com.: peer edns-b is silent (never heard): decided locally",
            ),
            (
                tier(0, lc, out(Why::Unavailable(Unavailable::Disabled))),
                "pool asia: tier preferred least_connections: newyork out (disabled)",
            ),
            (
                tier(0, lc, out(Why::OtherFamily { v6: true })),
                "pool asia: tier preferred least_connections: newyork out (IPv4: this is the \
                 AAAA decision)",
            ),
            (
                tier(1, lc, out(Why::NoMetric(Metric::Connections))),
                "pool asia: tier alternate least_connections: newyork out (no connections)",
            ),
            (
                tier(2, Method::VsCapacity, out(Why::Zero(Metric::Capacity))),
                "pool asia: tier fallback vs_capacity: newyork out (capacity 0)",
            ),
            (
                tier(0, Method::QualityOfService, out(Why::QosZero)),
                "pool asia: tier preferred quality_of_service: newyork out (qos score 0)",
            ),
            (
                tier(
                    0,
                    Method::Topology,
                    TierStep::TopologyScore { vs: 0, score: 200 },
                ),
                "pool asia: tier preferred topology: tokyo topology score 200",
            ),
            (
                tier(
                    0,
                    Method::Cpu,
                    TierStep::Weight {
                        vs: 0,
                        metric: Metric::Cpu,
                        value: 12.5,
                        weight: 6667,
                    },
                ),
                "pool asia: tier preferred cpu: tokyo cpu % 12.5: weight 6667",
            ),
            (
                tier(
                    0,
                    Method::QualityOfService,
                    TierStep::QosMissing(QosTerm::KilobytesPerSecond),
                ),
                "pool asia: tier preferred quality_of_service: qos: no member has \
                 kilobytes_per_second",
            ),
            (
                tier(
                    0,
                    Method::QualityOfService,
                    TierStep::QosScore { vs: 0, score: 0.5 },
                ),
                "pool asia: tier preferred quality_of_service: tokyo qos score 0.500",
            ),
            (
                tier(0, lc, TierStep::Next(Next::NoMetric(Metric::Connections))),
                "pool asia: tier preferred least_connections: no available member has \
                 connections, next tier",
            ),
            (
                tier(0, Method::None, TierStep::Next(Next::MethodNone)),
                "pool asia: tier preferred none: method none, next tier",
            ),
            (
                tier(
                    0,
                    Method::StaticPersist,
                    TierStep::Answer {
                        members: vec![(0, 1), (9, 2)],
                        persist: true,
                    },
                ),
                "pool asia: tier preferred static_persist: answer tokyo 1, #9 2 (persist)",
            ),
            (
                tier(
                    2,
                    Method::FallbackIp,
                    TierStep::FallbackIp(Ipv4Addr::new(192, 0, 2, 1).into()),
                ),
                "pool asia: tier fallback fallback_ip: fallback address 192.0.2.1",
            ),
            (
                tier(0, Method::DropPacket, TierStep::Drop),
                "pool asia: tier preferred drop_packet: drop",
            ),
            (
                tier(0, Method::ReturnToDns, TierStep::ReturnToDns),
                "pool asia: tier preferred return_to_dns: return to DNS",
            ),
            (Step::NoTierAnswers(1), "pool us: no tier answers"),
            (
                pools(PoolStep::Picked(1)),
                "wide IP www.example.com.: pool method ratio: pool us",
            ),
            (
                pools(PoolStep::Decides(0)),
                "wide IP www.example.com.: pool method ratio: no pool has an answer set, pool \
                 asia decides",
            ),
            (
                pools(PoolStep::BestScore { pool: 0, score: 10 }),
                "wide IP www.example.com.: pool method ratio: pool asia best score 10",
            ),
            (
                pools(PoolStep::Only(1)),
                "wide IP www.example.com.: pool method ratio: only pool us answers",
            ),
            (
                pools(PoolStep::Share {
                    pool: 1,
                    share: 2.0 / 3.0,
                }),
                "wide IP www.example.com.: pool method ratio: pool us share 0.667",
            ),
            (
                pools(PoolStep::Merged(vec![(0, 5000), (1, 5000)])),
                "wide IP www.example.com.: pool method ratio: merged tokyo 5000, newyork 5000",
            ),
            (
                Step::AllDown {
                    wideip: 0,
                    outcome: Outcome::ServFail,
                },
                "wide IP www.example.com.: no pool answers, all down: ServFail",
            ),
            (
                Step::Capped {
                    wideip: 0,
                    v6: true,
                    left_out: vec![0, 1],
                },
                "wide IP www.example.com.: 10 IPv6 members, kept the 8 heaviest, left out \
                 tokyo, newyork",
            ),
        ];
        for (step, line) in &table {
            assert_eq!(step.show(&names).to_string(), *line, "{step:?}");
        }
    }
}
