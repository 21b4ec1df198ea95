//! The published selections as the slow path reads them, so that both paths answer a question
//! from the same data with the same arithmetic: the client's class by longest prefix match
//! over the same prefixes as the XDP class table and tries, the class's set else the default class's,
//! the same action, and the same pick (`AnswerSet::answer_index`, `AnswerSet::persist_pick`).
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

use hickory_proto::rr::{
    LowerName, Name, RData, Record, RecordType,
    rdata::{A, AAAA},
};
use ipnet::IpNet;
use xgslb_common::{
    Action, AnswerSet, ClassId, DEFAULT_CLASS, EcsUse, PickMode, SlowAnswer, ecs_scope,
};

use super::ecs::{EcsPolicy, EcsTable, honoured, partition};
use super::prefix_table::PrefixTable;
use crate::dns::{Client, Dynamic, Scoped};

/// One published answer set: owner, type, client class, set.
pub type SetEntry = (Name, RecordType, ClassId, AnswerSet);

/// Longest prefix match of addresses to client classes.
#[derive(Debug, Default)]
pub struct ClassTable(PrefixTable<ClassId>);

impl ClassTable {
    pub fn new(prefixes: &[(IpNet, ClassId)]) -> Self {
        Self(PrefixTable::new(prefixes))
    }

    /// The class of `addr`: that of the longest prefix containing it, else the default.
    pub fn class_of(&self, addr: IpAddr) -> ClassId {
        self.0.get(addr).unwrap_or(DEFAULT_CLASS)
    }
}

/// How a publication's clients are classified: by source address (the class table) and by
/// client subnet (the ECS partition), from one set of prefixes.
#[derive(Debug, Default)]
struct Classify {
    prefixes: Vec<(IpNet, ClassId)>,
    table: ClassTable,
    regions: EcsTable,
}

impl Classify {
    fn new(prefixes: &[(IpNet, ClassId)]) -> Self {
        Self {
            prefixes: prefixes.to_vec(),
            table: ClassTable::new(prefixes),
            regions: EcsTable::new(&partition(prefixes)),
        }
    }
}

/// Who a client is to one question (`Snapshot::seen_as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenAs {
    /// The address that stands for the client: its subnet's honoured part, or the source.
    pub address: IpAddr,
    /// The honoured length of its subnet, when one stands for it.
    pub honoured: Option<u8>,
    pub class: ClassId,
    /// The client's ECS partition prefix length, when the class came from its subnet.
    pub by_class: Option<u8>,
}

/// Answer sets by (owner, type, class).
#[derive(Default)]
pub struct Snapshot {
    sets: HashMap<(LowerName, RecordType, ClassId), (Name, AnswerSet)>,
    /// The questions some class other than the default has a set for: only their answers
    /// depend on the client's class (the answer table's `CLASSED` entries).
    classed: HashSet<(LowerName, RecordType)>,
    /// The class table and ECS partition, shared with the snapshot before while the
    /// prefixes stand (a partition of 100,000 prefixes takes about 170 ms to build).
    classes: Arc<Classify>,
    ecs: EcsPolicy,
    pick: AtomicU32,
}

impl Snapshot {
    /// A snapshot of `entries`, classifying clients by `prefixes`, honouring client subnets
    /// as `EcsPolicy::default()` says (see `with_ecs`).
    pub fn new(entries: impl IntoIterator<Item = SetEntry>, prefixes: &[(IpNet, ClassId)]) -> Self {
        Self::classified(entries, Arc::new(Classify::new(prefixes)))
    }

    /// A snapshot of `entries` like `new`, sharing `before`'s class table and ECS partition
    /// when they were made from the same `prefixes`.
    pub fn after(
        before: &Snapshot,
        entries: impl IntoIterator<Item = SetEntry>,
        prefixes: &[(IpNet, ClassId)],
    ) -> Self {
        let classes = if before.classes.prefixes == prefixes {
            before.classes.clone()
        } else {
            Arc::new(Classify::new(prefixes))
        };
        Self::classified(entries, classes)
    }

    fn classified(entries: impl IntoIterator<Item = SetEntry>, classes: Arc<Classify>) -> Self {
        let sets: HashMap<_, _> = entries
            .into_iter()
            .map(|(name, rtype, class, set)| ((LowerName::new(&name), rtype, class), (name, set)))
            .collect();
        let classed = sets
            .keys()
            .filter(|(_, _, class)| *class != DEFAULT_CLASS)
            .map(|(name, rtype, _)| (name.clone(), *rtype))
            .collect();
        Self {
            sets,
            classed,
            classes,
            ecs: EcsPolicy::default(),
            pick: AtomicU32::new(0),
        }
    }

    /// This snapshot honouring client subnets as `policy` says.
    pub fn with_ecs(mut self, policy: EcsPolicy) -> Self {
        self.ecs = policy;
        self
    }

    /// The (name, type) pairs this snapshot answers: they replace the zones' static records.
    pub fn dynamic_names(&self) -> Vec<(Name, RecordType)> {
        let mut v: Vec<_> = self
            .sets
            .iter()
            .map(|((_, t, _), (name, _))| (name.clone(), *t))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The client class of `client`.
    pub fn class_of(&self, client: IpAddr) -> ClassId {
        self.classes.table.class_of(client)
    }

    /// The set serving `name`/`rtype` to clients of `class`: the class's, else the default's.
    pub fn set_for(
        &self,
        name: &LowerName,
        rtype: RecordType,
        class: ClassId,
    ) -> Option<&(Name, AnswerSet)> {
        self.sets
            .get(&(name.clone(), rtype, class))
            .or_else(|| self.sets.get(&(name.clone(), rtype, DEFAULT_CLASS)))
    }

    /// The answer for `client`, a round-robin pick taken from this snapshot's counter.
    pub fn answer(&self, name: &LowerName, rtype: RecordType, client: &Client) -> Scoped {
        let pick = self.pick.fetch_add(1, Ordering::Relaxed);
        self.answer_with_pick(name, rtype, client, pick)
    }

    /// The answer for `client` when the round-robin counter holds `pick`: what the XDP program
    /// answers when its counter holds `pick` (persist sets ignore it), with its ECS scope
    /// (who the client is: `seen_as`; the scope: `scope`).
    pub fn answer_with_pick(
        &self,
        name: &LowerName,
        rtype: RecordType,
        client: &Client,
        pick: u32,
    ) -> Scoped {
        let seen = self.seen_as(name, rtype, client);
        let Some((owner, set)) = self.set_for(name, rtype, seen.class) else {
            return Dynamic::Records(Vec::new()).into();
        };
        Scoped {
            answer: self.records(owner, rtype, set, seen.address, pick),
            scope: self.scope(&seen, set),
        }
    }

    /// Who `client` is to `name`/`rtype`: the address that stands for it and its class.
    ///
    /// The address is the honoured part of the client's subnet when the query carried one
    /// the name honours (`EcsUse::Honor`, `ecs::honoured`), else the query's source. The
    /// class comes from that address only when the question is classed (from the ECS
    /// partition for a subnet, whose prefix length bounds the scope).
    pub fn seen_as(&self, name: &LowerName, rtype: RecordType, client: &Client) -> SeenAs {
        let ignore = self
            .sets
            .get(&(name.clone(), rtype, DEFAULT_CLASS))
            .is_some_and(|(_, set)| set.ecs == EcsUse::Ignore as u8);
        let subnet = if ignore {
            None
        } else {
            honoured(&self.ecs, client.source, client.subnet.as_ref())
        };
        let address = subnet.map_or(client.source, |(a, _)| a);
        let (class, by_class) = if !self.classed.contains(&(name.clone(), rtype)) {
            (DEFAULT_CLASS, None)
        } else if subnet.is_some() {
            let region = self.classes.regions.region_of(address);
            (region.class, Some(region.scope))
        } else {
            (self.class_of(address), None)
        };
        SeenAs {
            address,
            honoured: subnet.map(|(_, len)| len),
            class,
            by_class,
        }
    }

    /// The ECS scope of `set`'s answer to the client `seen`: the partition prefix length when
    /// the class came from the subnet, widened to the persist mask of a persist set, never
    /// longer than the honoured length (0 without an honoured subnet).
    pub fn scope(&self, seen: &SeenAs, set: &AnswerSet) -> u8 {
        let persist = (PickMode::from_u8(set.pick) == Some(PickMode::Persist)).then_some(
            if seen.address.is_ipv6() {
                set.persist_v6
            } else {
                set.persist_v4
            },
        );
        seen.honoured
            .map_or(0, |len| ecs_scope(seen.by_class, persist, len))
    }

    /// What `set` answers to a client at `address` with round-robin pick `pick`.
    fn records(
        &self,
        owner: &Name,
        rtype: RecordType,
        set: &AnswerSet,
        client: IpAddr,
        pick: u32,
    ) -> Dynamic {
        match Action::from_u8(set.action) {
            Some(Action::Answer) => {}
            Some(Action::Drop) => return Dynamic::Drop,
            Some(Action::SlowPath) => {
                return match SlowAnswer::from_u8(set.slow) {
                    Some(SlowAnswer::ReturnToDns) => Dynamic::ReturnToDns,
                    Some(SlowAnswer::NoData) => Dynamic::Records(Vec::new()),
                    Some(SlowAnswer::ServFail) | None => Dynamic::ServFail,
                };
            }
            None => return Dynamic::ServFail,
        }
        let pick = match PickMode::from_u8(set.pick) {
            Some(PickMode::Persist) => {
                let (hi, lo, v6) = address_words(client);
                set.persist_pick(hi, lo, v6)
            }
            _ => pick,
        };
        let records = (0..set.records as u32)
            .filter_map(|i| set.answer_index(pick, i))
            .filter_map(|idx| set.addrs.get(idx as usize))
            .map(|a| {
                let rdata = match rtype {
                    RecordType::AAAA => RData::AAAA(AAAA(Ipv6Addr::from(*a))),
                    _ => RData::A(A(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
                };
                Record::from_rdata(owner.clone(), set.ttl, rdata)
            })
            .collect();
        Dynamic::Records(records)
    }
}

/// An address as the XDP program reads it for a persist pick: two big-endian words, IPv4 in
/// the top of the first.
pub fn address_words(addr: IpAddr) -> (u64, u64, bool) {
    match addr {
        IpAddr::V4(a) => ((u32::from(a) as u64) << 32, 0, false),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            ((v >> 64) as u64, v as u64, true)
        }
    }
}

impl crate::dns::DynamicAnswers for Snapshot {
    fn answer(&self, name: &LowerName, rtype: RecordType, client: &Client) -> Scoped {
        Snapshot::answer(self, name, rtype, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_families_stay_apart() {
        let p = |s: &str| s.parse::<IpNet>().unwrap();
        let t = ClassTable::new(&[
            (p("198.18.0.0/15"), 1),
            (p("198.18.64.0/24"), 2),
            (p("2001:db8::/32"), 3),
            (p("::/0"), 4),
        ]);
        let c = |s: &str| t.class_of(s.parse().unwrap());
        assert_eq!(c("198.18.64.9"), 2);
        assert_eq!(c("198.19.1.1"), 1);
        assert_eq!(c("192.0.2.1"), 0);
        assert_eq!(c("2001:db8::1"), 3);
        assert_eq!(c("2001:db9::1"), 4);
    }
}
