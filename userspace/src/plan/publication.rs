//! From decisions to what is published: for every wide IP and client class the balancer's
//! outcome becomes an A and an AAAA answer set, and the static `[[answer]]` sets join them.
//! Pure, so that it is tested without a kernel; the balancer thread applies the result.
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use bytemuck::Zeroable;
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use xgslb_common::{
    Action, AnswerSet, ClassId, DEFAULT_CLASS, MAX_ADDRS, NO_STAT, PickMode, SlowAnswer,
};

use super::part::StatLabel;
use crate::{
    balance::{
        self, Decision, Outcome, Unavailable,
        classes::Classes,
        damping::Damper,
        trace::{Step, TierStep, Why},
    },
    metrics::wire::peer::ClassKeys,
    model::{Metrics, Model, VsId},
    plan::{
        deferred::{Deferred, DeferredWideIps},
        part::{WideIpOutcomes, WideIpPart},
        reuse::Reuse,
        slots::{persist_slot_table, slot_table, stable_key},
        snapshot::SetEntry,
    },
};

/// Client class ids that stay the same for the same class across publications, so that a
/// query meeting a new trie and an old table (or the reverse) still finds its class or falls
/// back to the default one.
#[derive(Debug, Default)]
pub struct ClassIds {
    by_key: HashMap<String, ClassId>,
    next: ClassId,
}

/// Largest class id.
const MAX_CLASS_ID: ClassId = ClassId::MAX;

impl ClassIds {
    /// Ids for `keys` (one publication's classes, the default class's key among them).
    /// Ids are never reused while they may be in service; when they run out, the classes in
    /// use are renumbered all at once (the publication then swaps everything in anew).
    pub fn assign(&mut self, keys: &[&str]) -> Vec<ClassId> {
        let new = keys
            .iter()
            .filter(|k| **k != balance::classes::DEFAULT_KEY && !self.by_key.contains_key(**k))
            .count();
        if usize::from(self.next) + new > usize::from(MAX_CLASS_ID) {
            self.by_key.clear();
            self.next = 0;
        }
        keys.iter().map(|k| self.id(k)).collect()
    }

    fn id(&mut self, key: &str) -> ClassId {
        if key == balance::classes::DEFAULT_KEY {
            return DEFAULT_CLASS;
        }
        if let Some(id) = self.by_key.get(key) {
            return *id;
        }
        self.next += 1;
        self.by_key.insert(key.to_owned(), self.next);
        self.next
    }
}

/// Answer-counter slots that stay with the same (wide IP, client class) across
/// publications, so that a counter keeps counting the same thing.
#[derive(Debug, Default)]
pub struct StatIds {
    by_key: HashMap<(String, String), u32>,
}

impl StatIds {
    /// The slot of (`wideip`, `class`), or `NO_STAT` when every slot is taken.
    fn slot(&mut self, wideip: &str, class: &str) -> u32 {
        let key = (wideip.to_owned(), class.to_owned());
        if let Some(s) = self.by_key.get(&key) {
            return *s;
        }
        let next = self.by_key.len() as u32;
        if next >= xgslb_common::MAX_ANSWER_STATS {
            return xgslb_common::NO_STAT;
        }
        self.by_key.insert(key, next);
        next
    }
}

/// Everything one publication holds.
#[derive(Debug, Default)]
pub struct Publication {
    /// Every answer set, for the slow path and the plan.
    pub sets: Vec<SetEntry>,
    /// Client-class prefixes (of the class table and tries) and their class ids.
    pub prefixes: Vec<(IpNet, ClassId)>,
    /// By wide IP index: its answer sets, decisions per class id (for `explain`), the
    /// answer-counter slots it uses, its outcomes.
    pub parts: Vec<Arc<WideIpPart>>,
}

impl Publication {
    /// Every (wide IP, class id, decision), in wide IP order.
    pub fn decisions(&self) -> impl Iterator<Item = (usize, ClassId, &Decision)> {
        self.parts
            .iter()
            .enumerate()
            .flat_map(|(w, p)| p.decisions.iter().map(move |(id, d)| (w, *id, d)))
    }

    /// What each answer-counter slot in use counts.
    pub fn stats(&self) -> impl Iterator<Item = &StatLabel> {
        self.parts.iter().flat_map(|p| p.stats.iter())
    }

    /// Every wide IP's outcomes ([A, AAAA]) per client class, by wide IP index: what peers
    /// are told and fingerprinted.
    pub fn outcomes(&self) -> Vec<&WideIpOutcomes> {
        self.parts.iter().map(|p| &p.outcomes).collect()
    }
}

/// What the live balancer adds to a publication: answer-counter slots, and the wide IPs a
/// peer decides.
#[derive(Default)]
pub struct Live<'a> {
    pub stats: Option<&'a mut StatIds>,
    pub deferred: Option<&'a DeferredWideIps>,
    /// The last publication's parts, reused where nothing they were made from moved (and
    /// replaced by this publication's).
    pub reuse: Option<&'a mut Reuse>,
}

/// Computes the publication: `statics` are the `[[answer]]` sets (default class only).
pub fn publication(
    model: &Model,
    metrics: &Metrics,
    classes: &Classes,
    ids: &mut ClassIds,
    damper: &mut Damper,
    statics: &[(Name, RecordType, AnswerSet)],
) -> Publication {
    publication_counted(
        model,
        metrics,
        classes,
        ids,
        damper,
        statics,
        Live::default(),
    )
}

/// `publication`, with A answer sets given answer-counter slots from `live.stats`, and the
/// wide IPs of `live.deferred` published as a peer decided them.
pub fn publication_counted(
    model: &Model,
    metrics: &Metrics,
    classes: &Classes,
    ids: &mut ClassIds,
    damper: &mut Damper,
    statics: &[(Name, RecordType, AnswerSet)],
    live: Live,
) -> Publication {
    let Live {
        mut stats,
        deferred,
        mut reuse,
    } = live;
    let keys: Vec<&str> = classes.classes.iter().map(|c| c.key.as_str()).collect();
    let class_ids = ids.assign(&keys);
    let mut out = Publication {
        // Prefixes of the default class stay in the tries: one inside a prefix of another
        // class (put back to the default by the class bound) must not match the outer one.
        prefixes: classes
            .prefixes
            .iter()
            .filter_map(|&(p, i)| class_ids.get(i).map(|&id| (p, id)))
            .collect(),
        ..Publication::default()
    };
    // Each address family is decided on its own: the other family's virtual servers count
    // as down, so that a tier picking the "best" VS (global availability, topology) falls
    // to the next best of the family asked for instead of leaving it with no answer.
    let family_metrics = [false, true].map(|v6| only_family(model, metrics, v6));
    // Damping state of wide IPs and classes that are gone goes with them (usually there is
    // none: the set of every key would cost more than all the reused parts).
    if !damper.is_empty() {
        let classes: std::collections::HashSet<u64> = classes
            .classes
            .iter()
            .flat_map(|c| [false, true].map(|v6| damp_key(c.key_hash(), v6)))
            .collect();
        damper.retain(|(w, key)| *w < model.wideips.len() && classes.contains(key));
    }
    for (name, rtype, set) in statics {
        out.sets.push((name.clone(), *rtype, DEFAULT_CLASS, *set));
    }
    let counted = stats.is_some();
    let reusable = reuse
        .as_deref_mut()
        .map(|r| r.take(model, &classes.classes, &class_ids, counted, metrics));
    let mut made = Vec::new();
    for w in 0..model.wideips.len() {
        let deferred = deferred.and_then(|d| d.get(&w));
        let kept = match (&reusable, deferred) {
            (Some(r), None) => r.part(w),
            _ => None,
        };
        let part = kept.unwrap_or_else(|| {
            made.push(w);
            Arc::new(wideip_part(
                WideIpInputs {
                    model,
                    w,
                    classes,
                    class_ids: &class_ids,
                    family_metrics: &family_metrics,
                    deferred,
                },
                damper,
                stats.as_deref_mut(),
            ))
        });
        out.sets.extend(part.sets.iter().cloned());
        out.parts.push(part);
    }
    if let Some(r) = reuse {
        r.keep(
            &classes.classes,
            &class_ids,
            counted,
            metrics,
            out.parts.clone(),
            made,
        );
    }
    out
}

/// What one wide IP's part of a publication is made from.
struct WideIpInputs<'a> {
    model: &'a Model,
    w: usize,
    classes: &'a Classes,
    class_ids: &'a [ClassId],
    /// The metrics each family is decided from ([A, AAAA]).
    family_metrics: &'a [Metrics; 2],
    deferred: Option<&'a Deferred>,
}

/// Wide IP `w`'s answer sets, decisions, counter labels and outcomes for every class.
fn wideip_part(
    inputs: WideIpInputs,
    damper: &mut Damper,
    mut stats: Option<&mut StatIds>,
) -> WideIpPart {
    let WideIpInputs {
        model,
        w,
        classes,
        class_ids,
        family_metrics,
        deferred,
    } = inputs;
    let mut out = WideIpPart {
        reusable: deferred.is_none(),
        ..WideIpPart::default()
    };
    let Some(wideip) = model.wideips.get(w) else {
        return out;
    };
    let mut default_sets: Option<[AnswerSet; 2]> = None;
    let default_hash = classes.classes.first().map(|c| c.key_hash());
    let has_family = [false, true].map(|v6| wideip_has_family(model, wideip, v6));
    for (class, &id) in classes.classes.iter().zip(class_ids) {
        let keys = ClassKeys {
            class: class.key_hash(),
            region: class.region_key_hash(),
        };
        let mut sets = [AnswerSet::zeroed(); 2];
        let mut outcomes = [Outcome::NoData, Outcome::NoData];
        for (f, v6) in [false, true].into_iter().enumerate() {
            if !has_family[f] {
                // No VS of this family in any pool: NODATA, not the all-down behaviour.
                sets[f] = answer_set(model, wideip, &Outcome::NoData, v6);
                continue;
            }
            let mut decision = match deferred {
                Some(d) => decide_deferred(model, w, d, keys, f, || {
                    balance::decide(model, w, &family_metrics[f], &class.context)
                }),
                None => balance::decide(model, w, &family_metrics[f], &class.context),
            };
            label_other_family(model, &mut decision.trace, v6);
            // Dynamic weights are stepped by the damper from one publication to the next.
            out.reusable &= !decision.dynamic;
            let key = (w, damp_key(class.key_hash(), v6));
            if let Some(from) = default_hash {
                damper.seed(key, (w, damp_key(from, v6)));
            }
            let outcome = damper.apply(
                key,
                decision.outcome.clone(),
                decision.dynamic,
                &model.damping,
            );
            sets[f] = answer_set(model, wideip, &outcome, v6);
            outcomes[f] = family_only(model, &outcome, v6);
            // `explain` shows the A decision (AAAA's for a wide IP without IPv4).
            if !v6 || !has_family[0] {
                out.decisions.push((
                    id,
                    Decision {
                        outcome,
                        ..decision
                    },
                ));
            }
        }
        out.outcomes.push((keys, outcomes));
        // A class is published only where it differs from the default class: that keeps
        // the table to (wide IPs + differing classes), and the XDP lookup falls back.
        match &default_sets {
            None => default_sets = Some(sets),
            Some(d) if *d == sets => continue,
            Some(_) => {}
        }
        // Counted: the A answers XDP gives, by (wide IP, class); the rest not.
        sets[1].stat = NO_STAT;
        sets[0].stat = NO_STAT;
        if sets[0].action == Action::Answer as u8
            && let Some(stats) = stats.as_deref_mut()
        {
            let slot = stats.slot(&wideip.name.to_string(), &class.key);
            sets[0].stat = slot;
            if slot != NO_STAT {
                out.stats.push(StatLabel {
                    slot,
                    wideip: wideip.name.to_string(),
                    class: class.key.clone(),
                    leads: sets[0].addrs[..sets[0].count as usize]
                        .iter()
                        .map(|a| lead_name(model, a))
                        .collect(),
                });
            }
        }
        for (rtype, set) in [RecordType::A, RecordType::AAAA].into_iter().zip(sets) {
            out.sets.push((wideip.name.clone(), rtype, id, set));
        }
    }
    out
}

/// The decision of deferred wide IP `w` for class `keys`, family `f`: the peer's, the
/// all-down behaviour, or `local()` (the peer is silent, or sent nothing for this class).
fn decide_deferred(
    model: &Model,
    w: usize,
    deferred: &Deferred,
    keys: ClassKeys,
    f: usize,
    local: impl FnOnce() -> Decision,
) -> Decision {
    let (step, outcome) = match deferred {
        Deferred::Peer(peer) => match peer.outcomes(keys) {
            Some(o) => (peer.step.clone(), o[f].clone()),
            None => return local(),
        },
        Deferred::AllDown(step) => match model.wideips.get(w) {
            Some(wideip) => (step.clone(), balance::all_down(model, wideip)),
            None => return local(),
        },
        Deferred::Local(step) => {
            let mut d = local();
            d.trace.insert(0, step.clone());
            return d;
        }
    };
    Decision {
        outcome,
        trace: vec![step],
        dynamic: false,
    }
}

/// `outcome` as a family's answer: only its members of that family, the heaviest
/// `MAX_ADDRS` (what `answer_set` serves, and what a peer needs to serve the same).
fn family_only(model: &Model, outcome: &Outcome, v6: bool) -> Outcome {
    match outcome {
        Outcome::Answer {
            members,
            ttl,
            records,
            persist,
        } => {
            let mut family: Vec<(VsId, u32)> = members
                .iter()
                .copied()
                .filter(|(vs, _)| model.vss.get(*vs).is_some_and(|v| v.addr.is_ipv6() == v6))
                .collect();
            family.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            family.truncate(MAX_ADDRS);
            family.sort_by_key(|m| m.0);
            Outcome::Answer {
                members: family,
                ttl: *ttl,
                records: *records,
                persist: *persist,
            }
        }
        other => other.clone(),
    }
}

/// The VS whose address leads an answer, or the address itself (a fallback IP).
fn lead_name(model: &Model, addr: &[u8; 16]) -> String {
    let ip = IpAddr::from([addr[0], addr[1], addr[2], addr[3]]);
    model
        .vss
        .iter()
        .find(|v| v.addr == ip)
        .map_or_else(|| ip.to_string(), |v| v.name.clone())
}

/// The damping key of a class's answers of one family.
fn damp_key(class_hash: u64, v6: bool) -> u64 {
    if v6 { !class_hash } else { class_hash }
}

/// Says why the other family's virtual servers were out of a family's decision (they are
/// marked down for it), instead of the plain "down" of a health report.
fn label_other_family(model: &Model, trace: &mut [Step], v6: bool) {
    for step in trace {
        if let Step::Tier {
            step: TierStep::Out { vs, why },
            ..
        } = step
            && *why == Why::Unavailable(Unavailable::Down)
            && model.vss.get(*vs).is_some_and(|v| v.addr.is_ipv6() != v6)
        {
            *why = Why::OtherFamily { v6 };
        }
    }
}

/// `metrics` with every virtual server of the other family reported down.
pub(crate) fn only_family(model: &Model, metrics: &Metrics, v6: bool) -> Metrics {
    let mut m = metrics.clone();
    for (i, vs) in model.vss.iter().enumerate() {
        if vs.addr.is_ipv6() != v6 {
            m.vs.entry(i).or_default().up = Some(false);
        }
    }
    m
}

/// Whether any pool of the wide IP has a virtual server of the family.
fn wideip_has_family(model: &Model, wideip: &crate::model::WideIp, v6: bool) -> bool {
    wideip.pools.iter().any(|&p| {
        model.pools.get(p).is_some_and(|pool| {
            pool.members.iter().any(|m| {
                model
                    .vss
                    .get(m.vs)
                    .is_some_and(|vs| vs.addr.is_ipv6() == v6)
            })
        })
    })
}

/// The answer set of one address family for an outcome, with the wide IP's ECS use.
fn answer_set(
    model: &Model,
    wideip: &crate::model::WideIp,
    outcome: &Outcome,
    v6: bool,
) -> AnswerSet {
    let mut set = outcome_set(model, wideip, outcome, v6);
    set.ecs = match wideip.ecs {
        crate::model::EcsMode::Honor => xgslb_common::EcsUse::Honor,
        crate::model::EcsMode::Ignore => xgslb_common::EcsUse::Ignore,
    } as u8;
    set
}

fn outcome_set(
    model: &Model,
    wideip: &crate::model::WideIp,
    outcome: &Outcome,
    v6: bool,
) -> AnswerSet {
    let slow = |answer: SlowAnswer| AnswerSet {
        action: Action::SlowPath as u8,
        slow: answer as u8,
        ..bytemuck::Zeroable::zeroed()
    };
    match outcome {
        Outcome::Answer {
            members,
            ttl,
            records,
            persist,
        } => {
            let mut family: Vec<(VsId, u32, IpAddr)> = members
                .iter()
                .filter_map(|&(vs, w)| model.vss.get(vs).map(|v| (vs, w, v.addr)))
                .filter(|(_, _, a)| a.is_ipv6() == v6)
                .collect();
            if family.is_empty() {
                return slow(SlowAnswer::NoData);
            }
            // The balancer keeps at most MAX_ADDRS per family; stay safe if it did not.
            family.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            family.truncate(MAX_ADDRS);
            family.sort_by_key(|m| m.0);
            let weights: Vec<u32> = family.iter().map(|m| m.1.max(1)).collect();
            let slots = if *persist {
                let keyed: Vec<(u64, u32)> = family
                    .iter()
                    .zip(&weights)
                    .map(|(m, &w)| (stable_key(&model.vss[m.0].name), w))
                    .collect();
                persist_slot_table(&keyed)
            } else {
                slot_table(&weights)
            };
            let mut set = AnswerSet {
                ttl: *ttl,
                count: family.len() as u8,
                records: (*records).clamp(1, family.len() as u8),
                pick: if *persist {
                    PickMode::Persist
                } else {
                    PickMode::Counter
                } as u8,
                action: Action::Answer as u8,
                persist_v4: wideip.persist_v4,
                persist_v6: wideip.persist_v6,
                slots,
                ..bytemuck::Zeroable::zeroed()
            };
            for (dst, m) in set.addrs.iter_mut().zip(&family) {
                *dst = address_bytes(m.2);
            }
            set
        }
        Outcome::FallbackIp { addr, ttl } if addr.is_ipv6() == v6 => {
            let mut set = AnswerSet {
                ttl: *ttl,
                count: 1,
                records: 1,
                pick: PickMode::Counter as u8,
                action: Action::Answer as u8,
                ..bytemuck::Zeroable::zeroed()
            };
            set.addrs[0] = address_bytes(*addr);
            set
        }
        Outcome::FallbackIp { .. } | Outcome::NoData => slow(SlowAnswer::NoData),
        Outcome::ReturnToDns => slow(SlowAnswer::ReturnToDns),
        Outcome::ServFail => slow(SlowAnswer::ServFail),
        Outcome::Drop => AnswerSet {
            action: Action::Drop as u8,
            ..bytemuck::Zeroable::zeroed()
        },
    }
}

/// An address as the selection map holds it: IPv4 in the first 4 bytes.
fn address_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        model::{Metrics, VsMetrics},
        test_model::TestModel,
    };

    /// Pool "p" of "one" (198.18.1.1) and "two" (198.18.1.2) by least connections behind
    /// lc.example.test, damped.
    fn model() -> TestModel {
        TestModel::new(&["198.18.0.2:53"])
            .set(
                "balancer",
                "damping = { max_step = 0.10, hysteresis = 0.02 }",
            )
            .demo_zone()
            .site("a", "lb", &[("one", "198.18.1.1"), ("two", "198.18.1.2")])
            .pool("p", &["one", "two"], "least_connections")
            .wideip("lc.example.test.", &["p"])
    }

    fn connections(cfg: &Config, one: u64, two: u64) -> Metrics {
        let mut m = Metrics::default();
        for (name, c) in [("one", one), ("two", two)] {
            let vs = cfg.model.vss.iter().position(|v| v.name == name).unwrap();
            m.vs.insert(
                vs,
                VsMetrics {
                    connections: Some(c),
                    ..VsMetrics::default()
                },
            );
        }
        m
    }

    /// Share of answers "one" gets in the default class's decision.
    fn share_of_one(p: &Publication) -> f64 {
        let (_, _, d) = p.decisions().next().unwrap();
        let Outcome::Answer { members, .. } = &d.outcome else {
            panic!("not an answer: {d:?}");
        };
        let total: u32 = members.iter().map(|m| m.1).sum();
        members
            .iter()
            .find(|m| m.0 == 0)
            .map_or(0.0, |m| m.1 as f64)
            / total as f64
    }

    #[test]
    fn each_family_falls_to_its_own_next_best_virtual_server() {
        // Topology prefers tokyo (score 200) over newyork (10); tokyo has only an IPv6 VS.
        // Decided across families, A would get nothing; decided per family, A goes to
        // newyork's IPv4 VS and AAAA to tokyo's IPv6 one.
        let cfg = TestModel::new(&["198.18.0.2:53"])
            .demo_zone()
            .site("tokyo", "t", &[("tokyo-6", "2001:db8:1::1")])
            .site("newyork", "n", &[("newyork-4", "198.18.3.1")])
            .topology("any", "tokyo", 200)
            .topology("any", "newyork", 10)
            .pool("geo", &["tokyo-6", "newyork-4"], "topology")
            .wideip("geo.example.test.", &["geo"])
            .with("when_all_down = \"servfail\"")
            .parse();
        let metrics = Metrics::default();
        let classes = crate::balance::classes::client_classes(&cfg.model, &metrics, 16);
        let p = publication(
            &cfg.model,
            &metrics,
            &classes,
            &mut ClassIds::default(),
            &mut Damper::new(),
            &[],
        );
        let set = |t: RecordType| {
            p.sets
                .iter()
                .find(|(_, rt, _, _)| *rt == t)
                .map(|(_, _, _, s)| *s)
                .unwrap()
        };
        let a = set(RecordType::A);
        assert_eq!((a.action, a.count), (Action::Answer as u8, 1));
        assert_eq!(&a.addrs[0][..4], &[198, 18, 3, 1]);
        let aaaa = set(RecordType::AAAA);
        assert_eq!((aaaa.action, aaaa.count), (Action::Answer as u8, 1));
        assert_eq!(aaaa.addrs[0][..2], [0x20, 0x01]);
        // The A decision (the one `explain` shows) says why the IPv6 VS is out of it.
        let (_, _, d) = p.decisions().next().unwrap();
        let other = Why::OtherFamily { v6: false };
        assert!(
            d.trace.iter().any(|s| matches!(
                s,
                Step::Tier { step: TierStep::Out { vs: 0, why }, .. } if *why == other
            )),
            "{:?}",
            d.trace
        );
        let names = crate::balance::trace::Names::of(&cfg.model);
        assert!(
            crate::balance::trace::lines(&d.trace, &names).contains(
                &"pool geo: tier preferred topology: tokyo-6 out (IPv6: this is the A decision)"
                    .to_string()
            ),
            "{:?}",
            d.trace
        );
    }

    #[test]
    fn the_names_known_before_deciding_are_the_names_published() {
        let cfg = model()
            .answer("www.example.test.", 30, &[("2001:db8::1", 1)])
            .parse();
        let metrics = Metrics::default();
        let classes = crate::balance::classes::client_classes(&cfg.model, &metrics, 16);
        let statics = crate::plan::answer_sets::answer_sets(&cfg.answers);
        let p = publication(
            &cfg.model,
            &metrics,
            &classes,
            &mut ClassIds::default(),
            &mut Damper::new(),
            &statics,
        );
        let published = crate::plan::snapshot::Snapshot::new(p.sets, &p.prefixes).dynamic_names();
        assert_eq!(crate::plan::dynamic_names(&cfg), published);
        assert_eq!(published.len(), 3, "{published:?}");
    }

    #[test]
    fn class_ids_are_stable_distinct_and_renumbered_at_once_when_they_run_out() {
        let mut ids = ClassIds::default();
        let first = ids.assign(&["default", "a", "b"]);
        assert_eq!(first, vec![0, 1, 2]);
        assert_eq!(ids.assign(&["b", "default", "c"]), vec![2, 0, 3]);
        // Near the end of the id space, a publication needing more renumbers all its classes.
        ids.next = MAX_CLASS_ID - 1;
        let got = ids.assign(&["default", "a", "x", "y"]);
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(
            ids.assign(&["y", "x", "a"]),
            vec![3, 2, 1],
            "stable after renumbering"
        );
    }

    #[test]
    fn a_step_in_metrics_moves_shares_at_most_max_step_per_interval() {
        let cfg = model().parse();
        let (mut ids, mut damper) = (ClassIds::default(), Damper::new());
        let mut publish = |m: &Metrics| {
            let classes = crate::balance::classes::client_classes(&cfg.model, m, 16);
            publication(&cfg.model, m, &classes, &mut ids, &mut damper, &[])
        };
        // Equal load: half each.
        let even = connections(&cfg, 100, 100);
        assert!((share_of_one(&publish(&even)) - 0.5).abs() < 1e-3);
        // "two" becomes far busier: the target for "one" is 1 / (1 + 1/1001) = 99.9%.
        let step = connections(&cfg, 0, 1000);
        let mut last = 0.5;
        let mut intervals = 0;
        loop {
            let now = share_of_one(&publish(&step));
            assert!(
                now - last <= 0.10 + 1e-3,
                "moved {:.3} in one interval (from {last:.3} to {now:.3})",
                now - last
            );
            intervals += 1;
            if (now - last).abs() < 1e-9 {
                break;
            }
            last = now;
            assert!(intervals < 20, "did not settle");
        }
        assert!(
            (last - 1001.0 / 1002.0).abs() < 0.02 + 1e-3,
            "settled at {last:.3}"
        );
        assert!(intervals >= 4, "a 0.4 move took {intervals} intervals");
        // A small wobble inside the hysteresis changes nothing.
        let wobble = connections(&cfg, 0, 990);
        assert_eq!(share_of_one(&publish(&wobble)), last);
    }
}

#[cfg(test)]
#[path = "publication_reuse_tests.rs"]
mod reuse_tests;
