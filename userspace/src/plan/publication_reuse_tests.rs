//! A publication that reuses the last one's parts equals one made from scratch, through a
//! sequence of metric changes over static, topology and damped dynamic methods; and only
//! the wide IPs whose pools hold a moved virtual server are made again.
use super::*;
use crate::{
    balance::classes::client_classes, config::Config, model::VsMetrics, plan::reuse::Reuse,
    test_model::TestModel,
};

/// Three sites, a region each, and wide IPs over every kind of method: w-ga (global
/// availability over a and b), w-rr (round robin over c), w-geo (topology over all three),
/// w-lc (least connections over a and c, damped), w-v6 (an IPv6 VS only).
fn config() -> Config {
    TestModel::new(&["198.18.0.2:53"])
        .set(
            "balancer",
            "damping = { max_step = 0.10, hysteresis = 0.02 }",
        )
        .demo_zone()
        .site("sa", "la", &[("a", "198.18.1.1")])
        .site("sb", "lb", &[("b", "198.18.2.1")])
        .site("sc", "lc", &[("c", "198.18.3.1"), ("c6", "2001:db8:3::1")])
        .region("ra", &["198.18.64.0/20"])
        .region("rb", &["198.18.80.0/20"])
        .topology("ra", "sa", 200)
        .topology("rb", "sb", 200)
        .topology("any", "sc", 10)
        .pool("p-ga", &["a", "b"], "global_availability")
        .pool("p-rr", &["c", "c6"], "round_robin")
        .pool("p-geo", &["a", "b", "c"], "topology")
        .pool("p-lc", &["a", "c"], "least_connections")
        .pool("p-v6", &["c6"], "global_availability")
        .wideip("w-ga.example.test.", &["p-ga"])
        .wideip("w-rr.example.test.", &["p-rr"])
        .wideip("w-geo.example.test.", &["p-geo"])
        .wideip("w-lc.example.test.", &["p-lc"])
        .wideip("w-v6.example.test.", &["p-v6"])
        .parse()
}

/// One publication pipeline: its own class ids, damper and counter slots.
#[derive(Default)]
struct Pipeline {
    ids: ClassIds,
    damper: Damper,
    stats: StatIds,
}

impl Pipeline {
    fn publish(&mut self, cfg: &Config, m: &Metrics, reuse: Option<&mut Reuse>) -> Publication {
        let classes = client_classes(&cfg.model, m, 16);
        publication_counted(
            &cfg.model,
            m,
            &classes,
            &mut self.ids,
            &mut self.damper,
            &[],
            Live {
                stats: Some(&mut self.stats),
                deferred: None,
                reuse,
            },
        )
    }
}

/// Metrics set (VS name, metrics), then the wide IPs expected made again.
type Step = (Vec<(&'static str, VsMetrics)>, Vec<&'static str>);

fn vs(cfg: &Config, name: &str) -> VsId {
    cfg.model.vss.iter().position(|v| v.name == name).unwrap()
}

#[test]
fn a_publication_with_reuse_equals_one_made_from_scratch_and_remakes_only_what_moved() {
    let cfg = config();
    let mut fresh = Pipeline::default();
    let mut kept = Pipeline::default();
    let mut reuse = Reuse::default();
    let mut m = Metrics::default();
    let up = |up: bool, connections: u64| VsMetrics {
        up: Some(up),
        connections: Some(connections),
        ..VsMetrics::default()
    };
    // (what changes, wide IPs expected made again: the damped one always, once it has
    // connection counts to weigh by)
    let steps: Vec<Step> = vec![
        (vec![], vec!["w-ga", "w-rr", "w-geo", "w-lc", "w-v6"]),
        (vec![], vec![]),
        (vec![("b", up(false, 0))], vec!["w-ga", "w-geo"]),
        (vec![("c6", up(false, 0))], vec!["w-rr", "w-v6"]),
        (
            vec![("a", up(true, 500)), ("c", up(true, 10))],
            vec!["w-ga", "w-rr", "w-geo", "w-lc"],
        ),
        (vec![("a", up(true, 500))], vec!["w-lc"]),
        (
            vec![("b", up(true, 0)), ("c6", up(true, 0))],
            vec!["w-ga", "w-rr", "w-geo", "w-lc", "w-v6"],
        ),
    ];
    for (i, (changes, remade)) in steps.into_iter().enumerate() {
        for (name, v) in changes {
            m.vs.insert(vs(&cfg, name), v);
        }
        let want = fresh.publish(&cfg, &m, None);
        let got = kept.publish(&cfg, &m, Some(&mut reuse));
        assert_eq!(got.sets, want.sets, "step {i}");
        assert_eq!(got.prefixes, want.prefixes, "step {i}");
        assert!(got.decisions().eq(want.decisions()), "step {i}");
        assert!(got.stats().eq(want.stats()), "step {i}");
        assert_eq!(got.parts, want.parts, "step {i}");
        assert_eq!(got.outcomes(), want.outcomes(), "step {i}");
        let made: Vec<&str> = reuse
            .made()
            .iter()
            .map(|&w| {
                let name = cfg.model.wideips[w].name.to_string();
                remade
                    .iter()
                    .copied()
                    .find(|r| name.starts_with(&format!("{r}.")))
                    .unwrap_or("(unexpected)")
            })
            .collect();
        assert_eq!(made, remade, "step {i}");
    }
    // The model changed: nothing is reused.
    reuse.clear();
    kept.publish(&cfg, &m, Some(&mut reuse));
    assert_eq!(reuse.made().len(), cfg.model.wideips.len());
}
