//! Client classes: the bounded set of client contexts the balancer decides for, and which
//! LDNS prefixes belong to each (the XDP region map).
//!
//! The prefixes are every configured region prefix and every LDNS prefix with path metrics.
//! For each prefix `p`:
//! - its configured region is the region owning the longest configured prefix containing `p`
//!   (`p` included; the lowest region index on equal prefixes), and its `ldns_regions` are
//!   that region followed by every region containing it, transitively;
//! - its path metrics are those of the longest path prefix containing it, if any.
//!
//! Prefixes of one configured region whose sites rank in the same order by round trip time,
//! by hops and by completion rate share one class, whose path metrics are the per-site means
//! of its prefixes' (hops rounded). Prefixes without path metrics share their region's class.
//! Clients matching no prefix get class 0, `default` (no region, no paths).
//!
//! Bound: at most `max_classes` classes (default included, at least 1). Region classes come
//! first (topology depends on them), by key. Then path classes, largest (most prefixes)
//! first, as many as fit while leaving room for a region class for every path class left
//! out. The prefixes of a class past the bound get their region's class without paths
//! (created if there is room, else `default`) and are counted in `over_bound`.
//!
//! Output is deterministic: classes after `default` sorted by key, prefixes sorted.
use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;

use super::topology::ancestors;
use crate::model::{ClientContext, Metrics, Model, PathMetrics, RegionId, SiteId};

/// Key of the class of clients matching no prefix.
pub const DEFAULT_KEY: &str = "default";

/// One class of clients: what the balancer knows of them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientClass {
    /// Stable signature, e.g. `region=japan,asia;paths=rtt:tokyo<newyork;hops:tokyo<newyork;
    /// cr:tokyo>newyork` (best first in each ranking; `=` between equal values).
    pub key: String,
    pub context: ClientContext,
}

impl ClientClass {
    /// A stable hash of the key (for damping state and the like).
    pub fn key_hash(&self) -> u64 {
        crate::model::stable_key(&self.key)
    }

    /// A stable hash of the key's region part (`region=japan,asia`, or the whole key when it
    /// has no paths): what another EDNS's class of the same region but other paths shares.
    pub fn region_key_hash(&self) -> u64 {
        let region = self.key.split(";paths=").next().unwrap_or(&self.key);
        crate::model::stable_key(region)
    }
}

/// The classes and the prefixes mapped to them.
#[derive(Clone, Debug, PartialEq)]
pub struct Classes {
    /// `classes[0]` is the default class.
    pub classes: Vec<ClientClass>,
    /// Each prefix with the index of its class in `classes`.
    pub prefixes: Vec<(IpNet, usize)>,
    /// Prefixes that got a coarser class than their own because of the bound.
    pub over_bound: usize,
}

type Paths = HashMap<SiteId, PathMetrics>;

/// Prefixes that would share a class.
struct Group<'a> {
    ldns: Vec<RegionId>,
    region_key: String,
    prefixes: Vec<IpNet>,
    /// One per prefix when the group has path metrics, else empty.
    paths: Vec<&'a Paths>,
}

/// Groups the configured and probed prefixes into at most `max_classes` client classes.
pub fn client_classes(model: &Model, metrics: &Metrics, max_classes: usize) -> Classes {
    let max_classes = max_classes.max(1);
    let mut configured: Vec<(IpNet, RegionId)> = model
        .regions
        .iter()
        .enumerate()
        .flat_map(|(r, g)| g.prefixes.iter().map(move |p| (p.trunc(), r)))
        .collect();
    configured.sort();
    let mut probed: Vec<(IpNet, IpNet, &Paths)> = metrics
        .paths
        .iter()
        .map(|(p, m)| (p.trunc(), *p, m))
        .collect();
    // HashMap order is arbitrary: sort, and keep one entry per masked prefix.
    probed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    probed.dedup_by(|a, b| a.0 == b.0);

    let mut all: Vec<IpNet> = configured
        .iter()
        .map(|c| c.0)
        .chain(probed.iter().map(|p| p.0))
        .collect();
    all.sort();
    all.dedup();

    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut prefixes: Vec<(IpNet, String)> = Vec::new();
    for p in all {
        let region = configured
            .iter()
            .filter(|(q, _)| q.contains(&p))
            // Longest prefix; the first (lowest region) on equal prefixes.
            .min_by_key(|(q, r)| (std::cmp::Reverse(q.prefix_len()), *r))
            .map(|c| c.1);
        let path = probed
            .iter()
            .filter(|(q, _, m)| q.contains(&p) && !m.is_empty())
            .max_by_key(|(q, _, _)| q.prefix_len())
            .map(|x| x.2);
        if region.is_none() && path.is_none() {
            // Nothing known: the same as matching no prefix.
            prefixes.push((p, DEFAULT_KEY.into()));
            continue;
        }
        let ldns = region.map_or_else(Vec::new, |r| ancestors(model, r));
        let region_key = format!(
            "region={}",
            if ldns.is_empty() {
                "-".to_string()
            } else {
                ldns.iter()
                    .map(|&r| model.regions.get(r).map_or("?", |g| g.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        );
        let key = match path {
            Some(m) => format!("{region_key};paths={}", signature(model, m)),
            None => region_key.clone(),
        };
        let g = groups.entry(key.clone()).or_insert_with(|| Group {
            ldns,
            region_key,
            prefixes: Vec::new(),
            paths: Vec::new(),
        });
        g.prefixes.push(p);
        g.paths.extend(path);
        prefixes.push((p, key));
    }

    // Region classes first, by key: topology depends on them.
    let (region_only, mut with_paths): (Vec<&String>, Vec<&String>) =
        groups.keys().partition(|k| groups[*k].paths.is_empty());
    let mut admitted: BTreeMap<String, ClientContext> = BTreeMap::new();
    let mut redirect: HashMap<String, String> = HashMap::new();
    let mut over_bound = 0;
    for k in region_only {
        let g = &groups[k];
        if admitted.len() + 1 < max_classes {
            admitted.insert(k.clone(), context(g));
        } else {
            over_bound += g.prefixes.len();
            redirect.insert(k.clone(), DEFAULT_KEY.into());
        }
    }
    // Then path classes, most prefixes first: as many as fit while every path class left out
    // can still fall back to a class of its region (created if needed).
    with_paths.sort_by_key(|k| (std::cmp::Reverse(groups[*k].prefixes.len()), *k));
    let room = max_classes - 1 - admitted.len();
    let mut missing: Vec<&String> = Vec::new();
    let mut fallbacks_after = vec![0; with_paths.len() + 1];
    for (i, k) in with_paths.iter().enumerate().rev() {
        let g = &groups[*k];
        if !g.ldns.is_empty()
            && !admitted.contains_key(&g.region_key)
            && !missing.contains(&&g.region_key)
        {
            missing.push(&g.region_key);
        }
        fallbacks_after[i] = missing.len();
    }
    let fit = (0..=with_paths.len())
        .rev()
        .find(|&k| k + fallbacks_after[k] <= room)
        .unwrap_or(0);
    for (i, k) in with_paths.iter().enumerate() {
        let g = &groups[*k];
        if i < fit {
            admitted.insert((*k).clone(), context(g));
            continue;
        }
        over_bound += g.prefixes.len();
        let to = if admitted.contains_key(&g.region_key) {
            g.region_key.clone()
        } else if !g.ldns.is_empty() && admitted.len() + 1 < max_classes {
            let ctx = ClientContext {
                ldns_regions: g.ldns.clone(),
                paths: None,
            };
            admitted.insert(g.region_key.clone(), ctx);
            g.region_key.clone()
        } else {
            DEFAULT_KEY.into()
        };
        redirect.insert((*k).clone(), to);
    }

    let mut classes = vec![ClientClass {
        key: DEFAULT_KEY.into(),
        context: ClientContext::default(),
    }];
    classes.extend(
        admitted
            .into_iter()
            .map(|(key, context)| ClientClass { key, context }),
    );
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.as_str(), i))
        .collect();
    let prefixes = prefixes
        .iter()
        .map(|(p, k)| {
            let k = redirect.get(k).unwrap_or(k);
            (*p, index.get(k.as_str()).copied().unwrap_or(0))
        })
        .collect();
    Classes {
        classes,
        prefixes,
        over_bound,
    }
}

/// The context of a group: its regions and the per-site mean of its prefixes' paths.
fn context(g: &Group) -> ClientContext {
    let paths = (!g.paths.is_empty()).then(|| {
        let mut sum: HashMap<SiteId, (f64, f64, f64, u32)> = HashMap::new();
        for m in &g.paths {
            for (&site, p) in m.iter() {
                let e = sum.entry(site).or_default();
                e.0 += p.rtt_ms;
                e.1 += p.hops as f64;
                e.2 += p.completion;
                e.3 += 1;
            }
        }
        sum.into_iter()
            .map(|(site, (rtt, hops, cr, n))| {
                let n = n as f64;
                let p = PathMetrics {
                    rtt_ms: rtt / n,
                    hops: (hops / n).round() as u32,
                    completion: cr / n,
                };
                (site, p)
            })
            .collect()
    });
    ClientContext {
        ldns_regions: g.ldns.clone(),
        paths,
    }
}

/// Site rankings by rtt (lowest first), hops (lowest first), completion (highest first).
fn signature(model: &Model, m: &Paths) -> String {
    let name = |s: SiteId| {
        model
            .sites
            .get(s)
            .map_or_else(|| format!("#{s}"), |x| x.name.clone())
    };
    let rank = |better: &str, value: &dyn Fn(&PathMetrics) -> f64| {
        let mut v: Vec<(f64, SiteId)> = m.iter().map(|(&s, p)| (value(p), s)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out = String::new();
        for (i, (x, s)) in v.iter().enumerate() {
            if i > 0 {
                out.push_str(if *x == v[i - 1].0 { "=" } else { better });
            }
            out.push_str(&name(*s));
        }
        out
    };
    format!(
        "rtt:{};hops:{};cr:{}",
        rank("<", &|p| p.rtt_ms),
        rank("<", &|p| p.hops as f64),
        rank(">", &|p| -p.completion)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::balance::fixtures::{fixture, net, path};

    /// Path metrics of fixture sites 0 (tokyo), 1 (newyork): (rtt, hops, completion).
    fn probe(t: (f64, u32, f64), n: (f64, u32, f64)) -> Paths {
        HashMap::from([(0, path(t.0, t.1, t.2)), (1, path(n.0, n.1, n.2))])
    }

    fn metrics() -> Metrics {
        let mut m = Metrics::default();
        m.paths
            .insert(net("10.1.1.0/24"), probe((5.0, 3, 1.0), (150.0, 12, 0.9)));
        m.paths
            .insert(net("10.1.2.0/24"), probe((7.0, 4, 1.0), (160.0, 14, 0.95)));
        m.paths
            .insert(net("10.1.3.0/24"), probe((200.0, 3, 1.0), (100.0, 12, 0.9)));
        m.paths
            .insert(net("172.16.0.0/12"), probe((50.0, 5, 0.5), (50.0, 6, 0.8)));
        m
    }

    const SAME: &str =
        "region=japan,asia;paths=rtt:tokyo<newyork;hops:tokyo<newyork;cr:tokyo>newyork";
    const REVERSED: &str =
        "region=japan,asia;paths=rtt:newyork<tokyo;hops:tokyo<newyork;cr:tokyo>newyork";
    const NOREGION: &str = "region=-;paths=rtt:tokyo=newyork;hops:tokyo<newyork;cr:newyork>tokyo";

    fn keys(c: &Classes) -> Vec<&str> {
        c.classes.iter().map(|c| c.key.as_str()).collect()
    }

    fn class_of(c: &Classes, p: &str) -> usize {
        c.prefixes.iter().find(|x| x.0 == net(p)).unwrap().1
    }

    #[test]
    fn prefixes_that_rank_alike_share_a_class() {
        let model = fixture();
        let c = client_classes(&model, &metrics(), 64);
        // Regions: japan 10.1/16 (0), usa 10.2/16 (1), asia 10.3/16 + japan (2),
        // apac-dcs (3, no prefixes, contains jp-dc), jp-dc 192.0.2.0/24 (4).
        assert_eq!(
            keys(&c),
            vec![
                "default",
                NOREGION,
                "region=asia",
                "region=japan,asia",
                REVERSED,
                SAME,
                "region=jp-dc,apac-dcs",
                "region=usa",
            ]
        );
        assert_eq!(c.over_bound, 0);
        assert_eq!(
            c.prefixes,
            vec![
                (net("10.1.0.0/16"), 3),
                (net("10.1.1.0/24"), 5),
                (net("10.1.2.0/24"), 5),
                (net("10.1.3.0/24"), 4),
                (net("10.2.0.0/16"), 7),
                (net("10.3.0.0/16"), 2),
                (net("172.16.0.0/12"), 1),
                (net("192.0.2.0/24"), 6),
            ]
        );
        // japan is 0, asia (containing japan) 2.
        let same = &c.classes[5].context;
        assert_eq!(same.ldns_regions, vec![0, 2]);
        // Means of 10.1.1/24 and 10.1.2/24: tokyo rtt 6, hops 3.5 -> 4, cr 1;
        // newyork rtt 155, hops 13, cr .925.
        let paths = same.paths.as_ref().unwrap();
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[&0], path(6.0, 4, 1.0));
        assert_eq!(paths[&1].rtt_ms, 155.0);
        assert_eq!(paths[&1].hops, 13);
        assert!((paths[&1].completion - 0.925).abs() < 1e-12);
        // 10.1.3/24 alone: its own metrics.
        assert_eq!(
            c.classes[4].context.paths.as_ref().unwrap()[&0],
            path(200.0, 3, 1.0)
        );
        assert_eq!(c.classes[3].context.paths, None);
        assert_eq!(c.classes[3].context.ldns_regions, vec![0, 2]);
        assert_eq!(c.classes[2].context.ldns_regions, vec![2]);
        assert_eq!(c.classes[6].context.ldns_regions, vec![4, 3]);
        assert_eq!(c.classes[7].context.ldns_regions, vec![1]);
        assert_eq!(c.classes[1].context.ldns_regions, Vec::<RegionId>::new());
        assert_eq!(c.classes[0].context, ClientContext::default());
    }

    #[test]
    fn the_bound_folds_path_classes_into_their_region() {
        let model = fixture();
        // 1 default + 4 region classes = 5: no path class fits. Path prefixes fall back to
        // their region class (japan,asia) or, without a region, to default.
        let c = client_classes(&model, &metrics(), 5);
        assert_eq!(
            keys(&c),
            vec![
                "default",
                "region=asia",
                "region=japan,asia",
                "region=jp-dc,apac-dcs",
                "region=usa"
            ]
        );
        assert_eq!(c.over_bound, 4);
        assert_eq!(class_of(&c, "10.1.1.0/24"), 2);
        assert_eq!(class_of(&c, "10.1.2.0/24"), 2);
        assert_eq!(class_of(&c, "10.1.3.0/24"), 2);
        assert_eq!(class_of(&c, "172.16.0.0/12"), 0);
        assert_eq!(class_of(&c, "10.2.0.0/16"), 4);

        // One more: the largest path class (two prefixes) gets in.
        let c = client_classes(&model, &metrics(), 6);
        assert_eq!(c.classes.len(), 6);
        assert_eq!(c.classes[3].key, SAME);
        assert_eq!(c.over_bound, 2);
        assert_eq!(class_of(&c, "10.1.1.0/24"), 3);
        assert_eq!(class_of(&c, "10.1.2.0/24"), 3);
        assert_eq!(class_of(&c, "10.1.3.0/24"), 2);
        assert_eq!(class_of(&c, "172.16.0.0/12"), 0);

        // Only default.
        let c = client_classes(&model, &metrics(), 1);
        assert_eq!(keys(&c), vec!["default"]);
        assert_eq!(c.over_bound, 8);
        assert!(c.prefixes.iter().all(|p| p.1 == 0));
    }

    #[test]
    fn room_is_kept_for_a_region_class_to_fall_back_to() {
        let mut model = fixture();
        // Only japan has prefixes, each with its own path metrics: japan has no class of its
        // own unless a path class is left out.
        model.regions[0].prefixes = vec![net("10.1.1.0/24"), net("10.1.3.0/24")];
        for r in 1..model.regions.len() {
            model.regions[r].prefixes.clear();
        }
        let mut m = metrics();
        m.paths.remove(&net("10.1.2.0/24"));
        m.paths.remove(&net("172.16.0.0/12"));
        // Bound 2: one path class could fit, but the other would then lose its region (and
        // so topology) entirely; both fall back to a new japan,asia class instead.
        let c = client_classes(&model, &m, 2);
        assert_eq!(keys(&c), vec!["default", "region=japan,asia"]);
        assert_eq!(c.classes[1].context.ldns_regions, vec![0, 2]);
        assert_eq!(c.classes[1].context.paths, None);
        assert_eq!(c.over_bound, 2);
        assert_eq!(
            c.prefixes,
            vec![(net("10.1.1.0/24"), 1), (net("10.1.3.0/24"), 1)]
        );
        // Bound 3: both path classes fit.
        let c = client_classes(&model, &m, 3);
        assert_eq!(keys(&c), vec!["default", REVERSED, SAME]);
        assert_eq!(c.over_bound, 0);
    }

    #[test]
    fn deterministic() {
        let model = fixture();
        let a = client_classes(&model, &metrics(), 64);
        for _ in 0..5 {
            assert_eq!(client_classes(&model, &metrics(), 64), a);
        }
        assert_eq!(a.classes[0].key_hash(), crate::model::stable_key("default"));
    }
}
