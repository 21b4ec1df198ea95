//! The answer table's entries: the zones' precomputed responses (static, computed once per
//! config) and the published answer sets of every wide IP and `[[answer]]` name per client
//! class (computed every publication). Pure: no kernel, no seed; the publisher keys them.
use std::collections::{HashMap, HashSet};

use bytemuck::Zeroable;
use hickory_proto::rr::{LowerName, RecordType};
use xgslb_common::{
    ANY_CLASS, Action, AnswerSet, Body, ClassId, DEFAULT_CLASS, EcsUse, Entry, EntryHead,
    EntryKind, NAME_KEY_LEN, NO_FIX, ResponseTail, SlowAnswer, TAIL_LEN, entry_flags,
};

use super::key::wire_name;
use super::snapshot::SetEntry;
use crate::dns::precompute::{Precompute, Precomputed, Prepared, WireTail};

/// The entries of the zones' precomputed responses. Names the XDP path cannot key are left
/// out (it passes their queries).
pub fn static_entries(prepared: &[Prepared]) -> Vec<Entry> {
    prepared
        .iter()
        .filter_map(|p| {
            let name = wire_name(&p.name)?;
            let (kind, qtype) = match p.what {
                Precompute::Type(t) => (EntryKind::Exact, t),
                Precompute::OtherType => (EntryKind::OtherType, 0),
                Precompute::Child => (EntryKind::Child, 0),
            };
            Some(match &p.answer {
                Precomputed::Wire(w) => match response_tail(w) {
                    Some(tail) => entry(name, qtype, ANY_CLASS, kind, Body::Response, tail),
                    None => pass(name, qtype, kind),
                },
                Precomputed::SlowPath => pass(name, qtype, kind),
            })
        })
        .collect()
}

/// Every entry: `statics` (from `static_entries`) and the answer sets. A set that answers
/// NODATA takes the name's precomputed NODATA; the other slow-path answers (return to DNS,
/// SERVFAIL) pass. The `ANY_CLASS` entry of a question says whether classes have their own.
pub fn plan(statics: &[Entry], sets: &[SetEntry]) -> Vec<Entry> {
    let nodata: HashMap<[u8; NAME_KEY_LEN], &Entry> = statics
        .iter()
        .filter(|e| {
            e.head.kind == EntryKind::OtherType as u8 && e.head.body == Body::Response as u8
        })
        .map(|e| (e.head.name, e))
        .collect();
    let classed: HashSet<(LowerName, RecordType)> = sets
        .iter()
        .filter(|(_, _, class, _)| *class != DEFAULT_CLASS)
        .map(|(name, rtype, _, _)| (LowerName::new(name), *rtype))
        .collect();
    let mut out = statics.to_vec();
    for (name, rtype, class, set) in sets {
        let Some(wire) = wire_name(name) else {
            continue;
        };
        let (qtype, class) = (u16::from(*rtype), *class);
        let mut e = match Action::from_u8(set.action) {
            Some(Action::Answer) => entry(wire, qtype, class, EntryKind::Exact, Body::Answer, *set),
            Some(Action::SlowPath) if set.slow == SlowAnswer::NoData as u8 => {
                match nodata.get(&wire) {
                    Some(n) => Entry {
                        head: head(wire, qtype, class, EntryKind::Exact, Body::Response),
                        body: n.body,
                    },
                    None => Entry::new(head(wire, qtype, class, EntryKind::Exact, Body::Pass), &[]),
                }
            }
            Some(Action::Drop) => entry(
                wire,
                qtype,
                class,
                EntryKind::Exact,
                Body::Drop,
                AnswerSet::zeroed(),
            ),
            Some(Action::SlowPath) | None => {
                Entry::new(head(wire, qtype, class, EntryKind::Exact, Body::Pass), &[])
            }
        };
        if class == ANY_CLASS && classed.contains(&(LowerName::new(name), *rtype)) {
            e.head.flags |= entry_flags::CLASSED;
        }
        if set.ecs == EcsUse::Ignore as u8 {
            e.head.flags |= entry_flags::ECS_IGNORE;
        }
        out.push(e);
    }
    out
}

fn head(
    name: [u8; NAME_KEY_LEN],
    qtype: u16,
    class: ClassId,
    kind: EntryKind,
    body: Body,
) -> EntryHead {
    EntryHead {
        name,
        qtype,
        class,
        kind: kind as u8,
        body: body as u8,
        flags: 0,
        table: 0,
    }
}

fn entry<T: bytemuck::Pod>(
    name: [u8; NAME_KEY_LEN],
    qtype: u16,
    class: ClassId,
    kind: EntryKind,
    body: Body,
    value: T,
) -> Entry {
    Entry::new(
        head(name, qtype, class, kind, body),
        bytemuck::bytes_of(&value),
    )
}

fn pass(name: [u8; NAME_KEY_LEN], qtype: u16, kind: EntryKind) -> Entry {
    Entry::new(head(name, qtype, ANY_CLASS, kind, Body::Pass), &[])
}

/// The tail as the XDP program reads it, with its checksum; `None` when it does not fit.
pub fn response_tail(w: &WireTail) -> Option<ResponseTail> {
    if w.bytes.is_empty() || w.bytes.len() > TAIL_LEN {
        return None;
    }
    let mut tail = ResponseTail {
        flags: w.flags,
        an: w.an,
        ns: w.ns,
        ar: w.ar,
        len: w.bytes.len() as u16,
        sum: 0,
        fix_at: NO_FIX,
        fix_suffix: 0,
        bytes: [0; TAIL_LEN],
    };
    tail.bytes[..w.bytes.len()].copy_from_slice(&w.bytes);
    if let Some((at, suffix)) = w.fix {
        if at + 2 > w.bytes.len() {
            return None;
        }
        tail.fix_at = u16::try_from(at).ok()?;
        tail.fix_suffix = u16::try_from(suffix).ok()?;
        // The writer fills the pointer in and adds it to the sum.
        tail.bytes[at..at + 2].copy_from_slice(&[0, 0]);
    }
    tail.sum = ones_complement_sum(&tail.bytes[..w.bytes.len()]);
    Some(tail)
}

/// RFC 1071 sum of `bytes` as big-endian 16-bit words (an odd last byte padded), folded.
fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    #[test]
    fn the_sum_pads_an_odd_byte_and_folds() {
        assert_eq!(ones_complement_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(ones_complement_sum(&[0xff, 0xff, 0x00, 0x02]), 0x0002);
    }

    #[test]
    fn classed_marks_the_shared_entry_and_nodata_sets_take_the_names_nodata() {
        let name = Name::from_ascii("w.example.test.").unwrap();
        let wire = wire_name(&name).unwrap();
        let nodata = entry(
            wire,
            0,
            ANY_CLASS,
            EntryKind::OtherType,
            Body::Response,
            response_tail(&WireTail {
                flags: 0x0400,
                an: 0,
                ns: 1,
                ar: 0,
                bytes: vec![1, 2, 3],
                fix: None,
            })
            .unwrap(),
        );
        let mut answer = AnswerSet::zeroed();
        answer.count = 1;
        answer.records = 1;
        let mut no = AnswerSet::zeroed();
        no.action = Action::SlowPath as u8;
        no.slow = SlowAnswer::NoData as u8;
        let sets = vec![
            (name.clone(), RecordType::A, 0, answer),
            (name.clone(), RecordType::A, 3, answer),
            (name.clone(), RecordType::AAAA, 0, no),
        ];
        let all = plan(&[nodata], &sets);
        assert_eq!(all.len(), 4);
        let a0 = all
            .iter()
            .find(|e| e.head.qtype == 1 && e.head.class == 0)
            .unwrap();
        assert_eq!(a0.head.flags, entry_flags::CLASSED);
        let a3 = all.iter().find(|e| e.head.class == 3).unwrap();
        assert_eq!(a3.head.flags, 0);
        let aaaa = all.iter().find(|e| e.head.qtype == 28).unwrap();
        assert_eq!(aaaa.head.body, Body::Response as u8);
        assert_eq!(aaaa.body, nodata.body);
        assert!(
            all.iter().all(|e| e.head.name == wire),
            "every entry is w's"
        );
    }
}
