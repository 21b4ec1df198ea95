//! The published answer sets as the slow path reads them, so that both paths answer a
//! question from the same data with the same pick arithmetic (`AnswerSet::answer_index`).
use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicU32, Ordering},
};

use hickory_proto::rr::{
    LowerName, Name, RData, Record, RecordType,
    rdata::{A, AAAA},
};
use xgslb_common::AnswerSet;

/// Answer sets by (owner, type); A sets hold IPv4 addresses, AAAA sets IPv6.
#[derive(Default)]
pub struct Snapshot {
    sets: HashMap<(LowerName, RecordType), (Name, AnswerSet)>,
    pick: AtomicU32,
}

impl Snapshot {
    /// A snapshot of `entries`: (owner, A or AAAA, set).
    pub fn new(entries: impl IntoIterator<Item = (Name, RecordType, AnswerSet)>) -> Self {
        let sets = entries
            .into_iter()
            .map(|(name, rtype, set)| ((LowerName::new(&name), rtype), (name, set)))
            .collect();
        Self {
            sets,
            pick: AtomicU32::new(0),
        }
    }

    /// The (name, type) pairs this snapshot answers: they replace the zones' static records.
    pub fn dynamic_names(&self) -> Vec<(Name, RecordType)> {
        let mut v: Vec<_> = self
            .sets
            .iter()
            .map(|((_, t), (name, _))| (name.clone(), *t))
            .collect();
        v.sort();
        v
    }

    /// The records of one answer, the pick taken from this snapshot's round-robin counter.
    pub fn records(&self, name: &LowerName, rtype: RecordType) -> Vec<Record> {
        let pick = self.pick.fetch_add(1, Ordering::Relaxed);
        self.records_with_pick(name, rtype, pick)
    }

    /// The records of one answer for pick counter value `pick`: the same records the XDP
    /// program writes when its counter holds `pick`.
    pub fn records_with_pick(&self, name: &LowerName, rtype: RecordType, pick: u32) -> Vec<Record> {
        let Some((owner, set)) = self.sets.get(&(name.clone(), rtype)) else {
            return Vec::new();
        };
        (0..set.records as u32)
            .filter_map(|i| set.answer_index(pick, i))
            .filter_map(|idx| set.addrs.get(idx as usize))
            .map(|a| {
                let rdata = match rtype {
                    RecordType::AAAA => RData::AAAA(AAAA(Ipv6Addr::from(*a))),
                    _ => RData::A(A(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
                };
                Record::from_rdata(owner.clone(), set.ttl, rdata)
            })
            .collect()
    }
}

impl crate::dns::DynamicAnswers for Snapshot {
    fn records(&self, name: &LowerName, rtype: RecordType) -> Vec<Record> {
        Snapshot::records(self, name, rtype)
    }
}
