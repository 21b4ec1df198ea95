//! From decisions to what is published: for every wide IP and client class the balancer's
//! outcome becomes an A and an AAAA answer set, and the static `[[answer]]` sets join them.
//! Pure, so that it is tested without a kernel; the balancer thread applies the result.
use std::{collections::HashMap, net::IpAddr};

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use xgslb_common::{
    Action, AnswerSet, ClassId, DEFAULT_CLASS, MAX_ADDRS, PickMode, SelectionKey, SlowAnswer,
};

use crate::{
    balance::{self, Decision, Outcome, classes::Classes, damping::Damper},
    maps::{
        key::selection_key,
        slots::{persist_slot_table, slot_table, stable_key},
        snapshot::SetEntry,
    },
    model::{Metrics, Model, VsId},
};

/// Client class ids that stay the same for the same class across publications, so that a
/// query meeting a new trie and an old table (or the reverse) still finds its class or falls
/// back to the default one.
#[derive(Debug, Default)]
pub struct ClassIds {
    by_key: HashMap<String, ClassId>,
    next: ClassId,
}

impl ClassIds {
    /// The id of the class with `key`; the default class is always `DEFAULT_CLASS`.
    pub fn id(&mut self, key: &str) -> ClassId {
        if key == balance::classes::DEFAULT_KEY {
            return DEFAULT_CLASS as ClassId;
        }
        if let Some(id) = self.by_key.get(key) {
            return *id;
        }
        if self.next >= u16::MAX as ClassId {
            // Ids are never reused while they may be in service; once 65,534 have been handed
            // out, start over (the next publication then swaps in everything anew).
            self.by_key.clear();
            self.next = 0;
        }
        self.next += 1;
        self.by_key.insert(key.to_owned(), self.next);
        self.next
    }
}

/// Everything one publication holds.
#[derive(Debug, Default)]
pub struct Publication {
    /// Every answer set, for the slow path.
    pub sets: Vec<SetEntry>,
    /// The ones whose name fits the XDP key, for the selection table.
    pub selections: Vec<(SelectionKey, AnswerSet)>,
    /// Region trie prefixes and their class ids.
    pub prefixes: Vec<(IpNet, ClassId)>,
    /// Each wide IP's decision per class id, for `explain`.
    pub decisions: Vec<(usize, ClassId, Decision)>,
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
    let class_ids: Vec<ClassId> = classes.classes.iter().map(|c| ids.id(&c.key)).collect();
    let mut out = Publication {
        prefixes: classes
            .prefixes
            .iter()
            .filter_map(|&(p, i)| class_ids.get(i).map(|&id| (p, id)))
            .filter(|&(_, id)| id != DEFAULT_CLASS as ClassId)
            .collect(),
        ..Publication::default()
    };
    for (name, rtype, set) in statics {
        out.sets
            .push((name.clone(), *rtype, DEFAULT_CLASS as ClassId, *set));
    }
    for (w, wideip) in model.wideips.iter().enumerate() {
        let mut default_sets: Option<[AnswerSet; 2]> = None;
        for (class, &id) in classes.classes.iter().zip(&class_ids) {
            let decision = balance::decide(model, w, metrics, &class.context);
            let outcome = damper.apply(
                (w, class.key_hash()),
                decision.outcome.clone(),
                decision.dynamic,
                &model.damping,
            );
            let sets = [false, true].map(|v6| answer_set(model, wideip, &outcome, v6));
            out.decisions.push((
                w,
                id,
                Decision {
                    outcome,
                    ..decision
                },
            ));
            // A class is published only where it differs from the default class: that keeps
            // the table to (wide IPs + differing classes), and the XDP lookup falls back.
            match &default_sets {
                None => default_sets = Some(sets),
                Some(d) if *d == sets => continue,
                Some(_) => {}
            }
            for (rtype, set) in [RecordType::A, RecordType::AAAA].into_iter().zip(sets) {
                out.sets.push((wideip.name.clone(), rtype, id, set));
            }
        }
    }
    out.selections = out
        .sets
        .iter()
        .filter_map(|(name, rtype, class, set)| {
            let key = selection_key(name, u16::from(*rtype), *class as u16)?;
            Some((key, *set))
        })
        .collect();
    out
}

/// The answer set of one address family for an outcome.
fn answer_set(
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
