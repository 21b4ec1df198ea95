//! Hand-worked tables for every method, the tiers, the pool methods and all-down behaviours.
use std::collections::HashMap;

use super::{
    Decision, Outcome, Unavailable, available, decide,
    fixtures::*,
    tiers::{PoolDecision, pool_outcome},
    topology,
    trace::{Names, Step, TierStep, Why, lines},
};
use crate::model::{
    AllDown, ClientContext, LdnsMatch, Method, Metrics, Model, PathMetrics, PoolMethod,
    QosCoefficients, TargetMatch, TopologyRecord, VsId, VsMetrics,
};

const NONE: Method = Method::None;

fn japan() -> ClientContext {
    ClientContext {
        ldns_regions: vec![JAPAN, ASIA],
        paths: None,
    }
}

fn anywhere() -> ClientContext {
    ClientContext::default()
}

fn with_paths(paths: &[(usize, PathMetrics)]) -> ClientContext {
    ClientContext {
        ldns_regions: vec![],
        paths: Some(paths.iter().copied().collect::<HashMap<_, _>>()),
    }
}

fn metrics(list: &[(VsId, VsMetrics)]) -> Metrics {
    Metrics {
        vs: list.iter().copied().collect(),
        paths: HashMap::new(),
    }
}

fn conns(c: u64) -> VsMetrics {
    VsMetrics {
        connections: Some(c),
        ..Default::default()
    }
}

fn down() -> VsMetrics {
    VsMetrics {
        up: Some(false),
        ..Default::default()
    }
}

fn tiered(tiers: [Method; 3]) -> Model {
    let mut m = fixture();
    m.pools[0].tiers = tiers;
    m
}

/// Pool 0 of `model`, with its trace as `explain` shows it.
fn run(
    model: &Model,
    metrics: &Metrics,
    client: &ClientContext,
) -> (Option<PoolDecision>, Vec<String>) {
    let mut trace = Vec::new();
    let d = pool_outcome(model, 0, metrics, client, &mut trace);
    (d, lines(&trace, &Names::of(model)))
}

/// A decision's trace as `explain` shows it.
fn shown(model: &Model, d: &Decision) -> Vec<String> {
    lines(&d.trace, &Names::of(model))
}

/// Pool 0 with `method` as its only tier: the members and weights it answers.
fn weights(method: Method, metrics: &Metrics, client: &ClientContext) -> Option<Vec<(VsId, u32)>> {
    weights_in(&tiered([method, NONE, NONE]), metrics, client)
}

fn weights_in(
    model: &Model,
    metrics: &Metrics,
    client: &ClientContext,
) -> Option<Vec<(VsId, u32)>> {
    match run(model, metrics, client).0?.outcome {
        Outcome::Answer { members, .. } => Some(members),
        other => panic!("not an answer: {other:?}"),
    }
}

fn answer(members: &[(VsId, u32)], ttl: u32, records: u8, persist: bool) -> Outcome {
    Outcome::Answer {
        members: members.to_vec(),
        ttl,
        records,
        persist,
    }
}

// ---- availability -------------------------------------------------------------------------

#[test]
fn availability_and_every_limit_kind() {
    let mut model = fixture();
    let l = &mut model.vss[0].limits;
    l.connections = Some(100);
    l.bits_per_second = Some(1_000_000);
    l.packets_per_second = Some(5000);
    l.cpu_percent = Some(90.0);
    let check = |vm: VsMetrics| available(&model, 0, &metrics(&[(0, vm)]));
    let table: [(VsMetrics, Result<(), &str>); 12] = [
        (VsMetrics::default(), Ok(())),
        (
            VsMetrics {
                up: Some(true),
                ..Default::default()
            },
            Ok(()),
        ),
        (down(), Err("down")),
        (conns(100), Ok(())),
        (conns(101), Err("connections 101 over limit 100")),
        (
            VsMetrics {
                kilobits_per_second: Some(1000),
                ..Default::default()
            },
            Ok(()),
        ),
        (
            VsMetrics {
                kilobits_per_second: Some(1001),
                ..Default::default()
            },
            Err("bits/s 1001000 over limit 1000000"),
        ),
        (
            VsMetrics {
                packets_per_second: Some(5000),
                ..Default::default()
            },
            Ok(()),
        ),
        (
            VsMetrics {
                packets_per_second: Some(5001),
                ..Default::default()
            },
            Err("packets/s 5001 over limit 5000"),
        ),
        (
            VsMetrics {
                cpu_percent: Some(90.0),
                ..Default::default()
            },
            Ok(()),
        ),
        (
            VsMetrics {
                cpu_percent: Some(90.5),
                ..Default::default()
            },
            Err("cpu 90.5% over limit 90%"),
        ),
        // Reported up but over a limit: out.
        (
            VsMetrics {
                connections: Some(1_000_000),
                up: Some(true),
                ..Default::default()
            },
            Err("connections 1000000 over limit 100"),
        ),
    ];
    for (vm, want) in table {
        assert_eq!(
            check(vm).map_err(|why| why.to_string()),
            want.map_err(str::to_owned),
            "{vm:?}"
        );
    }
    assert_eq!(
        available(&model, 1, &metrics(&[(1, conns(1_000_000))])),
        Ok(())
    );
    model.vss[1].enabled = false;
    assert_eq!(
        available(&model, 1, &Metrics::default()),
        Err(Unavailable::Disabled)
    );
    assert_eq!(
        available(&model, 9, &Metrics::default()).map_err(|e| e.to_string()),
        Err("no virtual server #9".into())
    );
}

#[test]
fn unavailable_members_are_out_of_methods() {
    // VS 0 over its connection limit, VS 1 disabled, VS 2 fine: only 2 is left.
    let mut model = tiered([Method::LeastConnections, NONE, NONE]);
    model.vss[0].limits.connections = Some(10);
    model.vss[1].enabled = false;
    let m = metrics(&[(0, conns(11)), (1, conns(0)), (2, conns(5))]);
    assert_eq!(weights_in(&model, &m, &anywhere()), Some(vec![(2, 10_000)]));
    let (_, trace) = run(&model, &m, &anywhere());
    assert_eq!(
        trace[..2],
        [
            "pool www: tier preferred least_connections: tokyo-www out (connections 11 over limit 10)",
            "pool www: tier preferred least_connections: newyork-www out (disabled)",
        ]
    );
}

#[test]
fn a_decision_traces_steps_as_data() {
    // VS 1 disabled: the tier's trace holds the step with its reason, not a line of text.
    let mut model = tiered([Method::RoundRobin, NONE, NONE]);
    model.vss[1].enabled = false;
    let d = wide(&model, &Metrics::default(), &anywhere());
    let tier = |step| Step::Tier {
        pool: 0,
        tier: 0,
        method: Method::RoundRobin,
        step,
    };
    assert_eq!(
        d.trace[..2],
        [
            tier(TierStep::Out {
                vs: 1,
                why: Why::Unavailable(Unavailable::Disabled)
            }),
            tier(TierStep::Answer {
                members: vec![(0, 1), (2, 1)],
                persist: false
            }),
        ]
    );
    assert_eq!(
        shown(&model, &d)[..2],
        [
            "pool www: tier preferred round_robin: newyork-www out (disabled)",
            "pool www: tier preferred round_robin: answer tokyo-www 1, london-www 1",
        ]
    );
}

// ---- static methods ------------------------------------------------------------------------

#[test]
fn round_robin() {
    let none = Metrics::default();
    assert_eq!(
        weights(Method::RoundRobin, &none, &anywhere()),
        Some(vec![(0, 1), (1, 1), (2, 1)])
    );
    let m = metrics(&[(1, down())]);
    assert_eq!(
        weights(Method::RoundRobin, &m, &anywhere()),
        Some(vec![(0, 1), (2, 1)])
    );
}

#[test]
fn ratio() {
    assert_eq!(
        weights(Method::Ratio, &Metrics::default(), &anywhere()),
        Some(vec![(0, 3), (1, 1), (2, 2)])
    );
    let m = metrics(&[(0, down())]);
    assert_eq!(
        weights(Method::Ratio, &m, &anywhere()),
        Some(vec![(1, 1), (2, 2)])
    );
}

#[test]
fn global_availability() {
    assert_eq!(
        weights(Method::GlobalAvailability, &Metrics::default(), &anywhere()),
        Some(vec![(0, 1)])
    );
    let m = metrics(&[(0, down())]);
    assert_eq!(
        weights(Method::GlobalAvailability, &m, &anywhere()),
        Some(vec![(1, 1)])
    );
    let m = metrics(&[(0, down()), (1, down()), (2, down())]);
    assert_eq!(weights(Method::GlobalAvailability, &m, &anywhere()), None);
}

#[test]
fn topology_method() {
    let none = Metrics::default();
    let t = |client: &ClientContext| weights(Method::Topology, &none, client);
    // japan (and asia): tokyo 100, london 50, newyork 10.
    assert_eq!(t(&japan()), Some(vec![(0, 1)]));
    // asia only: london 50, newyork 10.
    let asia = ClientContext {
        ldns_regions: vec![ASIA],
        paths: None,
    };
    assert_eq!(t(&asia), Some(vec![(2, 1)]));
    // Anyone: newyork 10.
    assert_eq!(t(&anywhere()), Some(vec![(1, 1)]));
    // tokyo down, japan client: london 50 (japan is in asia).
    let m = metrics(&[(0, down())]);
    assert_eq!(weights(Method::Topology, &m, &japan()), Some(vec![(2, 1)]));

    // Ties share: any -> london 10 too.
    let mut model = tiered([Method::Topology, NONE, NONE]);
    model.topology.push(TopologyRecord {
        ldns: LdnsMatch::Any,
        target: TargetMatch::Site(LONDON),
        score: 10,
    });
    assert_eq!(
        weights_in(&model, &none, &anywhere()),
        Some(vec![(1, 1), (2, 1)])
    );

    // Target region through a group: usa -> apac-dcs (contains jp-dc, holding 192.0.2.1).
    model.topology.push(TopologyRecord {
        ldns: LdnsMatch::Region(USA),
        target: TargetMatch::Region(APAC_DCS),
        score: 200,
    });
    let usa = ClientContext {
        ldns_regions: vec![USA],
        paths: None,
    };
    assert_eq!(weights_in(&model, &none, &usa), Some(vec![(0, 1)]));

    // No score above 0: next tier (none here, so the pool yields nothing).
    model.topology.clear();
    assert_eq!(weights_in(&model, &none, &japan()), None);
}

#[test]
fn topology_scores_and_regions() {
    let model = fixture();
    let score = |c: &ClientContext| {
        (0..3)
            .map(|vs| topology::score(&model, c, vs))
            .collect::<Vec<_>>()
    };
    assert_eq!(score(&japan()), vec![100, 10, 50]);
    assert_eq!(score(&anywhere()), vec![0, 10, 0]);
    assert_eq!(topology::descendants(&model, APAC_DCS), vec![APAC_DCS, 4]);
    assert_eq!(topology::ancestors(&model, JAPAN), vec![JAPAN, ASIA]);
    assert_eq!(topology::ancestors(&model, 4), vec![4, APAC_DCS]);
    assert!(topology::region_holds(&model, APAC_DCS, ip("192.0.2.1")));
    assert!(!topology::region_holds(
        &model,
        APAC_DCS,
        ip("198.51.100.1")
    ));
    assert!(!topology::region_holds(&model, JAPAN, ip("192.0.2.1")));
}

#[test]
fn static_persist() {
    let model = tiered([Method::StaticPersist, NONE, NONE]);
    let m = metrics(&[(2, down())]);
    assert_eq!(
        run(&model, &m, &anywhere()).0,
        Some(PoolDecision {
            outcome: answer(&[(0, 1), (1, 1)], 30, 1, true),
            dynamic: false
        })
    );
}

#[test]
fn fallback_ip_drop_return_to_dns_and_none() {
    let all_down = metrics(&[(0, down()), (1, down()), (2, down())]);
    let outcome = |model: &Model| run(model, &all_down, &anywhere()).0.map(|d| d.outcome);

    // Fallback IP answers even with every member down; without an address, next tier.
    let mut model = tiered([Method::FallbackIp, Method::RoundRobin, NONE]);
    assert_eq!(outcome(&model), None);
    assert_eq!(
        weights_in(&model, &Metrics::default(), &anywhere()),
        Some(vec![(0, 1), (1, 1), (2, 1)])
    );
    model.pools[0].fallback_ip = Some(ip("198.18.0.1"));
    model.pools[0].ttl = 45;
    assert_eq!(
        outcome(&model),
        Some(Outcome::FallbackIp {
            addr: ip("198.18.0.1"),
            ttl: 45
        })
    );

    let model = tiered([Method::DropPacket, Method::RoundRobin, NONE]);
    assert_eq!(outcome(&model), Some(Outcome::Drop));
    let model = tiered([Method::ReturnToDns, Method::RoundRobin, NONE]);
    assert_eq!(outcome(&model), Some(Outcome::ReturnToDns));

    // None is the next tier.
    let model = tiered([NONE, NONE, NONE]);
    assert_eq!(run(&model, &Metrics::default(), &anywhere()).0, None);
    let model = tiered([NONE, Method::Ratio, NONE]);
    assert_eq!(
        weights_in(&model, &Metrics::default(), &anywhere()),
        Some(vec![(0, 3), (1, 1), (2, 2)])
    );
}

// ---- dynamic methods -----------------------------------------------------------------------

#[test]
fn least_connections() {
    // 1/(0+1), 1/(1+1), 1/(3+1) = 1, .5, .25 over 1.75.
    let m = metrics(&[(0, conns(0)), (1, conns(1)), (2, conns(3))]);
    assert_eq!(
        weights(Method::LeastConnections, &m, &anywhere()),
        Some(vec![(0, 5714), (1, 2857), (2, 1429)])
    );
    // Ties.
    let m = metrics(&[(0, conns(4)), (1, conns(4))]);
    assert_eq!(
        weights(Method::LeastConnections, &m, &anywhere()),
        Some(vec![(0, 5000), (1, 5000)])
    );
    // Nobody reports connections: next tier.
    assert_eq!(
        weights(Method::LeastConnections, &Metrics::default(), &anywhere()),
        None
    );
    let model = tiered([Method::LeastConnections, Method::GlobalAvailability, NONE]);
    assert_eq!(
        run(&model, &Metrics::default(), &anywhere()).0,
        Some(PoolDecision {
            outcome: answer(&[(0, 1)], 30, 1, false),
            dynamic: false
        })
    );
}

#[test]
fn packet_rate() {
    // 1/100, 1/200 -> 2/3, 1/3; london has no packet rate.
    let pps = |p| VsMetrics {
        packets_per_second: Some(p),
        ..Default::default()
    };
    let m = metrics(&[(0, pps(99)), (1, pps(199))]);
    assert_eq!(
        weights(Method::PacketRate, &m, &anywhere()),
        Some(vec![(0, 6667), (1, 3333)])
    );
    let (_, trace) = run(&tiered([Method::PacketRate, NONE, NONE]), &m, &anywhere());
    assert!(
        trace.contains(
            &"pool www: tier preferred packet_rate: london-www out (no packets/s)".into()
        )
    );
}

#[test]
fn kilobytes_per_second() {
    // All idle: all equal.
    let k = |x| VsMetrics {
        kilobits_per_second: Some(x),
        ..Default::default()
    };
    let m = metrics(&[(0, k(0)), (1, k(0)), (2, k(0))]);
    assert_eq!(
        weights(Method::KilobytesPerSecond, &m, &anywhere()),
        Some(vec![(0, 3333), (1, 3333), (2, 3333)])
    );
    // 1/1, 1/4: .8, .2.
    let m = metrics(&[(0, k(0)), (2, k(3))]);
    assert_eq!(
        weights(Method::KilobytesPerSecond, &m, &anywhere()),
        Some(vec![(0, 8000), (2, 2000)])
    );
}

#[test]
fn vs_capacity() {
    // tokyo reports 300 (over its configured 100), newyork configured 100, london reports 0
    // (out): 300/400, 100/400.
    let mut model = tiered([Method::VsCapacity, NONE, NONE]);
    model.vss[0].capacity = Some(100);
    model.vss[1].capacity = Some(100);
    model.vss[2].capacity = Some(100);
    let cap = |c| VsMetrics {
        capacity: Some(c),
        ..Default::default()
    };
    let m = metrics(&[(0, cap(300)), (2, cap(0))]);
    assert_eq!(
        weights_in(&model, &m, &anywhere()),
        Some(vec![(0, 7500), (1, 2500)])
    );
    // No capacity anywhere: next tier.
    assert_eq!(
        weights(Method::VsCapacity, &Metrics::default(), &anywhere()),
        None
    );
}

#[test]
fn vs_score() {
    let score = |s| VsMetrics {
        score: Some(s),
        ..Default::default()
    };
    let m = metrics(&[(0, score(1)), (1, score(3))]);
    assert_eq!(
        weights(Method::VsScore, &m, &anywhere()),
        Some(vec![(0, 2500), (1, 7500)])
    );
    let m = metrics(&[(0, score(0)), (1, score(0))]);
    assert_eq!(weights(Method::VsScore, &m, &anywhere()), None);
}

#[test]
fn cpu() {
    // 1/1, 1/51, 1/101 over 1.0295088: .97134, .01905, .00962.
    let c = |x| VsMetrics {
        cpu_percent: Some(x),
        ..Default::default()
    };
    let m = metrics(&[(0, c(0.0)), (1, c(50.0)), (2, c(100.0))]);
    assert_eq!(
        weights(Method::Cpu, &m, &anywhere()),
        Some(vec![(0, 9713), (1, 190), (2, 96)])
    );
}

#[test]
fn round_trip_time() {
    // 1/10, 1/20: 2/3, 1/3; no path from london.
    let client = with_paths(&[(TOKYO, path(9.0, 5, 1.0)), (NEWYORK, path(19.0, 9, 1.0))]);
    let none = Metrics::default();
    assert_eq!(
        weights(Method::RoundTripTime, &none, &client),
        Some(vec![(0, 6667), (1, 3333)])
    );
    // Without path metrics: next tier.
    assert_eq!(weights(Method::RoundTripTime, &none, &anywhere()), None);
    let (_, trace) = run(
        &tiered([Method::RoundTripTime, NONE, NONE]),
        &none,
        &anywhere(),
    );
    assert_eq!(
        trace[0],
        "pool www: tier preferred round_trip_time: no path metrics for this client, next tier"
    );
}

#[test]
fn hops() {
    // 1/4, 1/4, 1/8: .4, .4, .2.
    let client = with_paths(&[
        (TOKYO, path(9.0, 3, 1.0)),
        (NEWYORK, path(19.0, 3, 1.0)),
        (LONDON, path(19.0, 7, 1.0)),
    ]);
    assert_eq!(
        weights(Method::Hops, &Metrics::default(), &client),
        Some(vec![(0, 4000), (1, 4000), (2, 2000)])
    );
}

#[test]
fn completion_rate() {
    // 1.0, .5 -> 2/3, 1/3; london 0 is out.
    let client = with_paths(&[
        (TOKYO, path(9.0, 3, 1.0)),
        (NEWYORK, path(19.0, 3, 0.5)),
        (LONDON, path(19.0, 7, 0.0)),
    ]);
    assert_eq!(
        weights(Method::CompletionRate, &Metrics::default(), &client),
        Some(vec![(0, 6667), (1, 3333)])
    );
}

#[test]
fn quality_of_service() {
    // Default coefficients: rtt 50, completion 5, packet rate 1, kbit/s 3.
    //            rtt  cr   pps  kbps | rtt  cr  pps  kbps | score
    // tokyo       10  1.0  100  1000 |  1   1    1    0   | 56
    // newyork     30  .5   300   500 |  0   0    0    1   | 3
    // london      20  1.0  200     - | .5   1   .5    -   | 30.5
    // 56, 3, 30.5 over 89.5.
    let client = with_paths(&[
        (TOKYO, path(10.0, 3, 1.0)),
        (NEWYORK, path(30.0, 3, 0.5)),
        (LONDON, path(20.0, 7, 1.0)),
    ]);
    let load = |pps, kbps| VsMetrics {
        packets_per_second: Some(pps),
        kilobits_per_second: kbps,
        ..Default::default()
    };
    let m = metrics(&[
        (0, load(100, Some(1000))),
        (1, load(300, Some(500))),
        (2, load(200, None)),
    ]);
    assert_eq!(
        weights(Method::QualityOfService, &m, &client),
        Some(vec![(0, 6257), (1, 335), (2, 3408)])
    );
    // Without paths, the load terms still count: pps 1, 0, .5; kbps 0, 1, - -> 1, 3, .5.
    assert_eq!(
        weights(Method::QualityOfService, &m, &anywhere()),
        Some(vec![(0, 2222), (1, 6667), (2, 1111)])
    );
    // No metric at all: next tier.
    assert_eq!(
        weights(Method::QualityOfService, &Metrics::default(), &anywhere()),
        None
    );

    // Topology only, normalised by the best score: 100, 10, 50 -> 1, .1, .5 over 1.6.
    let mut model = tiered([Method::QualityOfService, NONE, NONE]);
    model.pools[0].qos = QosCoefficients {
        round_trip_time: 0.0,
        completion_rate: 0.0,
        packet_rate: 0.0,
        kilobytes_per_second: 0.0,
        hops: 0.0,
        vs_capacity: 0.0,
        topology: 1.0,
        connections: 0.0,
    };
    assert_eq!(
        weights_in(&model, &Metrics::default(), &japan()),
        Some(vec![(0, 6250), (1, 625), (2, 3125)])
    );
    // All equal: 1 each.
    model.pools[0].qos.topology = 0.0;
    model.pools[0].qos.connections = 2.0;
    let m = metrics(&[(0, conns(5)), (1, conns(5)), (2, conns(5))]);
    assert_eq!(
        weights_in(&model, &m, &anywhere()),
        Some(vec![(0, 3333), (1, 3333), (2, 3333)])
    );
    // The worst on every term scores 0 and is out: connections 1, 3, 5 -> 1, .5, 0.
    let m = metrics(&[(0, conns(1)), (1, conns(3)), (2, conns(5))]);
    assert_eq!(
        weights_in(&model, &m, &anywhere()),
        Some(vec![(0, 6667), (1, 3333)])
    );
}

#[test]
fn every_method_is_covered() {
    // Each method, preferred tier, on the fixture with no metrics, anywhere: what it yields.
    let none = Metrics::default();
    for &method in <Method as strum::VariantArray>::VARIANTS {
        let d = run(&tiered([method, NONE, NONE]), &none, &anywhere()).0;
        let want = match method {
            Method::RoundRobin => Some(answer(&[(0, 1), (1, 1), (2, 1)], 30, 1, false)),
            Method::Ratio => Some(answer(&[(0, 3), (1, 1), (2, 2)], 30, 1, false)),
            Method::GlobalAvailability => Some(answer(&[(0, 1)], 30, 1, false)),
            Method::Topology => Some(answer(&[(1, 1)], 30, 1, false)),
            Method::StaticPersist => Some(answer(&[(0, 1), (1, 1), (2, 1)], 30, 1, true)),
            Method::DropPacket => Some(Outcome::Drop),
            Method::ReturnToDns => Some(Outcome::ReturnToDns),
            // No address; no metric.
            _ => None,
        };
        assert_eq!(d.as_ref().map(|d| d.outcome.clone()), want, "{method:?}");
        if let Some(d) = d {
            assert_eq!(d.dynamic, method.is_dynamic());
        }
    }
}

// ---- tiers ---------------------------------------------------------------------------------

#[test]
fn tiers_fall_through_in_order() {
    let model = tiered([
        Method::LeastConnections,
        Method::RoundTripTime,
        Method::Ratio,
    ]);
    let m = metrics(&[(2, down())]);
    let (d, trace) = run(&model, &m, &anywhere());
    assert_eq!(
        d,
        Some(PoolDecision {
            outcome: answer(&[(0, 3), (1, 1)], 30, 1, false),
            dynamic: false
        })
    );
    assert_eq!(
        trace,
        vec![
            "pool www: tier preferred least_connections: london-www out (down)",
            "pool www: tier preferred least_connections: tokyo-www out (no connections)",
            "pool www: tier preferred least_connections: newyork-www out (no connections)",
            "pool www: tier preferred least_connections: no available member has connections, next tier",
            "pool www: tier alternate round_trip_time: london-www out (down)",
            "pool www: tier alternate round_trip_time: no path metrics for this client, next tier",
            "pool www: tier fallback ratio: london-www out (down)",
            "pool www: tier fallback ratio: answer tokyo-www 3, newyork-www 1",
        ]
    );

    // Every member down: round robin and global availability yield nothing, fallback IP
    // answers.
    let mut model = tiered([
        Method::RoundRobin,
        Method::GlobalAvailability,
        Method::FallbackIp,
    ]);
    model.pools[0].fallback_ip = Some(ip("198.18.0.1"));
    let all_down = metrics(&[(0, down()), (1, down()), (2, down())]);
    assert_eq!(
        run(&model, &all_down, &anywhere()).0,
        Some(PoolDecision {
            outcome: Outcome::FallbackIp {
                addr: ip("198.18.0.1"),
                ttl: 30
            },
            dynamic: false
        })
    );
    // Without the address the pool yields nothing.
    model.pools[0].fallback_ip = None;
    let (d, trace) = run(&model, &all_down, &anywhere());
    assert_eq!(d, None);
    assert_eq!(trace.last().unwrap(), "pool www: no tier answers");
}

// ---- wide IP pool methods ------------------------------------------------------------------

/// Pool 0 `asia` = {tokyo} (ttl 60), pool 1 `us` = {newyork, london} (ttl 30, 2 records),
/// both round robin; wide IP 0 over both.
fn two_pools(method: PoolMethod) -> Model {
    let mut m = fixture();
    let mut asia = pool("asia", &[(0, 1)], [Method::RoundRobin, NONE, NONE]);
    asia.ttl = 60;
    let mut us = pool("us", &[(1, 1), (2, 1)], [Method::RoundRobin, NONE, NONE]);
    us.records = 2;
    m.pools = vec![asia, us];
    m.wideips[0].pools = vec![0, 1];
    m.wideips[0].pool_method = method;
    m
}

fn wide(model: &Model, metrics: &Metrics, client: &ClientContext) -> Decision {
    decide(model, 0, metrics, client)
}

#[test]
fn pool_method_global_availability() {
    let model = two_pools(PoolMethod::GlobalAvailability);
    let d = wide(&model, &Metrics::default(), &anywhere());
    assert_eq!(d.outcome, answer(&[(0, 1)], 60, 1, false));
    assert_eq!(
        shown(&model, &d).last().unwrap(),
        "wide IP www.example.com.: pool method global_availability: pool asia"
    );
    let m = metrics(&[(0, down())]);
    assert_eq!(
        wide(&model, &m, &anywhere()).outcome,
        answer(&[(1, 1), (2, 1)], 30, 2, false)
    );
}

#[test]
fn pool_method_round_robin_and_ratio_merge() {
    let none = Metrics::default();
    // Equal shares: tokyo .5; newyork, london .25 each. TTL min 30, records of pool asia.
    let model = two_pools(PoolMethod::RoundRobin);
    assert_eq!(
        wide(&model, &none, &anywhere()).outcome,
        answer(&[(0, 5000), (1, 2500), (2, 2500)], 30, 1, false)
    );
    // Pool ratios 3:1.
    let mut model = two_pools(PoolMethod::Ratio);
    model.pools[0].ratio = 3;
    assert_eq!(
        wide(&model, &none, &anywhere()).outcome,
        answer(&[(0, 7500), (1, 1250), (2, 1250)], 30, 1, false)
    );
    // A dynamic pool inside: us by least connections (0, 1 -> 6667, 3333), times .25.
    model.pools[1].tiers[0] = Method::LeastConnections;
    let m = metrics(&[(1, conns(0)), (2, conns(1))]);
    let d = wide(&model, &m, &anywhere());
    assert_eq!(
        d.outcome,
        answer(&[(0, 7500), (1, 1667), (2, 833)], 30, 1, false)
    );
    assert!(d.dynamic);
    // Only one pool answers: as it is.
    let m = metrics(&[(0, down()), (1, conns(0)), (2, conns(1))]);
    let d = wide(&model, &m, &anywhere());
    assert_eq!(d.outcome, answer(&[(1, 6667), (2, 3333)], 30, 2, false));
    assert!(d.dynamic);
}

#[test]
fn pool_merge_adds_a_shared_vs_and_keeps_persist() {
    let mut model = two_pools(PoolMethod::RoundRobin);
    // us = {tokyo, newyork}: tokyo .5 + .25, newyork .25.
    model.pools[1].members[1].vs = 0;
    model.pools[0].tiers[0] = Method::StaticPersist;
    assert_eq!(
        wide(&model, &Metrics::default(), &anywhere()).outcome,
        answer(&[(0, 7500), (1, 2500)], 30, 1, true)
    );
}

#[test]
fn pool_method_topology() {
    let model = two_pools(PoolMethod::Topology);
    let none = Metrics::default();
    // japan: asia's tokyo 100 beats us's london 50.
    assert_eq!(
        wide(&model, &none, &japan()).outcome,
        answer(&[(0, 1)], 60, 1, false)
    );
    // Anyone: us's newyork 10 beats 0.
    assert_eq!(
        wide(&model, &none, &anywhere()).outcome,
        answer(&[(1, 1), (2, 1)], 30, 2, false)
    );
    // japan with tokyo down: asia does not answer, us does.
    let m = metrics(&[(0, down())]);
    assert_eq!(
        wide(&model, &m, &japan()).outcome,
        answer(&[(1, 1), (2, 1)], 30, 2, false)
    );
    // All scores 0: the first pool in order.
    let mut model = model;
    model.topology.clear();
    assert_eq!(
        wide(&model, &none, &anywhere()).outcome,
        answer(&[(0, 1)], 60, 1, false)
    );
}

#[test]
fn a_real_answer_beats_a_pools_last_resort() {
    let mut model = two_pools(PoolMethod::RoundRobin);
    model.pools[0].tiers = [Method::DropPacket, NONE, NONE];
    assert_eq!(
        wide(&model, &Metrics::default(), &anywhere()).outcome,
        answer(&[(1, 1), (2, 1)], 30, 2, false)
    );
    // No answer set anywhere: the first pool's terminal outcome.
    model.pools[1].tiers = [Method::RoundRobin, Method::FallbackIp, NONE];
    model.pools[1].fallback_ip = Some(ip("198.18.0.1"));
    let m = metrics(&[(1, down()), (2, down())]);
    assert_eq!(wide(&model, &m, &anywhere()).outcome, Outcome::Drop);
    model.pools[0].tiers = [Method::RoundRobin, NONE, NONE];
    let m = metrics(&[(0, down()), (1, down()), (2, down())]);
    assert_eq!(
        wide(&model, &m, &anywhere()).outcome,
        Outcome::FallbackIp {
            addr: ip("198.18.0.1"),
            ttl: 30
        }
    );
}

#[test]
fn at_most_eight_addresses_per_family() {
    let mut model = fixture();
    model.vss.clear();
    for i in 0..10 {
        model
            .vss
            .push(vs(&format!("v4-{i}"), TOKYO, &format!("192.0.2.{}", i + 1)));
    }
    model.vss.push(vs("v6", TOKYO, "2001:db8::1"));
    let members: Vec<(usize, u32)> = (0..10)
        .map(|i| (i, i as u32 + 1))
        .chain([(10, 5)])
        .collect();
    model.pools = vec![pool("big", &members, [Method::Ratio, NONE, NONE])];
    let d = wide(&model, &Metrics::default(), &anywhere());
    let kept: Vec<(usize, u32)> = (2..10)
        .map(|i| (i, i as u32 + 1))
        .chain([(10, 5)])
        .collect();
    assert_eq!(d.outcome, answer(&kept, 30, 1, false));
    assert!(
        shown(&model, &d).contains(
            &"wide IP www.example.com.: 10 IPv4 members, kept the 8 heaviest, left out v4-0, v4-1"
                .to_string()
        )
    );
    // Equal weights: the first eight in order.
    model.pools[0].tiers[0] = Method::RoundRobin;
    let d = wide(&model, &Metrics::default(), &anywhere());
    let kept: Vec<(usize, u32)> = (0..8).map(|i| (i, 1)).chain([(10, 1)]).collect();
    assert_eq!(d.outcome, answer(&kept, 30, 1, false));
}

// ---- all down ------------------------------------------------------------------------------

#[test]
fn all_down_behaviours() {
    let mut model = fixture();
    model.pools[0].ttl = 45;
    let all_down = metrics(&[(0, down()), (1, down()), (2, down())]);
    let table = [
        (
            AllDown::FallbackIp(ip("198.18.0.9")),
            Outcome::FallbackIp {
                addr: ip("198.18.0.9"),
                ttl: 45,
            },
        ),
        (AllDown::ReturnToDns, Outcome::ReturnToDns),
        (AllDown::ServFail, Outcome::ServFail),
        (AllDown::NoData, Outcome::NoData),
        (AllDown::Drop, Outcome::Drop),
    ];
    for (all, want) in table {
        model.wideips[0].all_down = all;
        let d = wide(&model, &all_down, &japan());
        assert_eq!(d.outcome, want);
        assert!(!d.dynamic);
        assert!(
            shown(&model, &d)
                .last()
                .unwrap()
                .starts_with("wide IP www.example.com.: no pool answers")
        );
    }
    // No pools: fallback TTL 30.
    model.wideips[0].pools.clear();
    model.wideips[0].all_down = AllDown::FallbackIp(ip("198.18.0.9"));
    assert_eq!(
        wide(&model, &Metrics::default(), &japan()).outcome,
        Outcome::FallbackIp {
            addr: ip("198.18.0.9"),
            ttl: 30
        }
    );
    // No such wide IP.
    assert_eq!(
        decide(&model, 7, &Metrics::default(), &japan()).outcome,
        Outcome::ServFail
    );
}
