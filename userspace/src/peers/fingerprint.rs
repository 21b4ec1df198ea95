//! Fingerprints of what decisions are made from and of the decisions themselves, so that
//! EDNSs can tell, without sending their state, whether they agree: two EDNSs with equal
//! [`Inputs`] must publish equal decision fingerprints for every wide IP.
//!
//! Each is a stable hash (FNV-1a, [`stable_key`]) of a canonical text: everything by name,
//! sorted, never by model index or hash-map order, so that two processes agree.
use std::{collections::BTreeMap, fmt::Write};

use crate::{
    balance::Outcome,
    metrics::wire::peer::{ClassKeys, Inputs},
    model::{Metrics, Model, stable_key},
};

/// A wide IP's outcomes per class, by VS name: what peers are sent and fingerprint.
pub type NamedOutcomes = Vec<(ClassKeys, [Outcome<String>; 2])>;

/// The model decisions are made from: sites, servers, virtual servers (with the operator's
/// enable and ratio changes), pools, wide IPs, regions, topology, damping. Which peer
/// decides a wide IP is left out: a deferring EDNS and the one it defers to should agree.
pub fn config(model: &Model) -> u64 {
    let mut m = model.clone();
    for w in &mut m.wideips {
        w.deferral = None;
    }
    stable_key(&format!("{m:?}"))
}

/// The metrics decisions are made from, by VS name and (LDNS prefix, site name).
pub fn metrics(model: &Model, metrics: &Metrics) -> u64 {
    let vs: BTreeMap<&str, String> = metrics
        .vs
        .iter()
        .filter_map(|(i, m)| Some((model.vss.get(*i)?.name.as_str(), format!("{m:?}"))))
        .collect();
    let paths: BTreeMap<(String, &str), String> = metrics
        .paths
        .iter()
        .flat_map(|(p, sites)| {
            sites.iter().filter_map(move |(s, m)| {
                Some((
                    (p.to_string(), model.sites.get(*s)?.name.as_str()),
                    format!("{m:?}"),
                ))
            })
        })
        .collect();
    stable_key(&format!("{vs:?}{paths:?}"))
}

/// `outcomes` (by model index) by VS name; `None` members (a VS the model lacks) cannot
/// happen for a publication's own outcomes and are left out.
pub fn named(model: &Model, outcomes: &[(ClassKeys, [Outcome; 2])]) -> NamedOutcomes {
    let name = |vs: &usize| model.vss.get(*vs).map(|v| v.name.clone());
    outcomes
        .iter()
        .filter_map(|(k, [a, b])| Some((*k, [a.map_members(name)?, b.map_members(name)?])))
        .collect()
}

/// A wide IP's decision: its outcomes per class, in class-key order.
pub fn decision(outcomes: &NamedOutcomes) -> u64 {
    let mut sorted: Vec<&(ClassKeys, [Outcome<String>; 2])> = outcomes.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut text = String::new();
    for (k, o) in sorted {
        let _ = write!(text, "{}:{o:?};", k.class);
    }
    stable_key(&text)
}

/// Every wide IP's decision fingerprint at once (by wide IP name): the wrapping sum of
/// each entry's [`digest_entry`], so that a receiver keeps it up to date entry by entry
/// instead of hashing 10,000 names per datagram.
pub fn digest(fingerprints: &BTreeMap<String, u64>) -> u64 {
    fingerprints
        .iter()
        .fold(0u64, |d, (w, f)| d.wrapping_add(digest_entry(w, *f)))
}

/// One (wide IP, fingerprint)'s part of a [`digest`].
pub fn digest_entry(wideip: &str, fingerprint: u64) -> u64 {
    let x = stable_key(wideip).rotate_left(17) ^ fingerprint;
    // A bijective mix (splitmix64's finaliser): equal sums from different sets stay rare.
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// [`Inputs`] of a model and its agents' metrics.
pub fn inputs(model: &Model, agent_metrics: &Metrics) -> Inputs {
    Inputs {
        config: config(model),
        metrics: metrics(model, agent_metrics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::VsMetrics, test_model::TestModel};

    fn model() -> Model {
        TestModel::new(&["198.18.0.2:53"])
            .demo_zone()
            .site("a", "lb", &[("one", "198.18.1.1"), ("two", "198.18.1.2")])
            .pool("p", &["one", "two"], "round_robin")
            .wideip("www.example.test.", &["p"])
            .parse()
            .model
    }

    #[test]
    fn fingerprints_ignore_indices_and_map_order_but_not_content() {
        let m = model();
        let mut reordered = m.clone();
        reordered.vss.swap(0, 1);
        for p in &mut reordered.pools {
            for member in &mut p.members {
                member.vs = 1 - member.vs;
            }
        }
        let up = |vs: usize, c: u64| {
            (
                vs,
                VsMetrics {
                    up: Some(true),
                    connections: Some(c),
                    ..VsMetrics::default()
                },
            )
        };
        let a = Metrics {
            vs: [up(0, 5), up(1, 9)].into_iter().collect(),
            ..Metrics::default()
        };
        let b = Metrics {
            vs: [up(1, 5), up(0, 9)].into_iter().collect(),
            ..Metrics::default()
        };
        assert_eq!(metrics(&m, &a), metrics(&reordered, &b));
        assert_ne!(metrics(&m, &a), metrics(&m, &b));

        let mut deferred = m.clone();
        deferred.wideips[0].deferral = Some(crate::model::Deferral {
            peer: "x".into(),
            when_silent: Default::default(),
        });
        assert_eq!(config(&m), config(&deferred));
        let mut disabled = m.clone();
        disabled.vss[0].enabled = false;
        assert_ne!(config(&m), config(&disabled));
    }

    #[test]
    fn a_decision_fingerprint_is_of_its_outcomes_in_any_class_order() {
        let k = |c| ClassKeys {
            class: c,
            region: 0,
        };
        let answer = |vs: &str| Outcome::Answer {
            members: vec![(vs.to_owned(), 1)],
            ttl: 30,
            records: 1,
            persist: false,
        };
        let x: NamedOutcomes = vec![
            (k(1), [answer("one"), Outcome::NoData]),
            (k(2), [answer("two"), Outcome::NoData]),
        ];
        let mut y = x.clone();
        y.reverse();
        assert_eq!(decision(&x), decision(&y));
        y[0].1[0] = answer("one");
        assert_ne!(decision(&x), decision(&y));
    }
}
