//! Finding the entry that answers a parsed question in the answer table: the exact question
//! (the client's class only where the entry says classes differ), else the name's entry for
//! any other type, else the closest existing ancestor's entry for names below it that do not
//! exist. Every candidate's name, type, class and kind are compared with the question, so a
//! hash collision is a miss, never another name's answer. The fallback's probes run in their
//! own function, which takes the table in service again: the stamp of the entry it found must
//! be that of the entry used, or a swap came between and the query is passed (an answer from
//! two tables could be neither config's).
//!
//! A query's client subnet (RFC 7871), when honoured and the name does not ignore it, stands
//! for the client: the class of a classed question then comes from the ECS trie, with the
//! scope the answer depends on.
use xgslb_common::{
    ANY_CLASS, ClassId, Counter, DEFAULT_CLASS, Entry, EntryKind, MAX_NAME_LABELS, NAME_KEY_LEN,
    Scratch, entry_flags, entry_key,
};

use crate::{
    client::{Source, ecs_region},
    maps::ENTRIES,
    verifier::opaque,
};

/// `Found::class` when the lookup did not need the client's class.
pub const CLASS_UNKNOWN: u64 = u64::MAX;

/// The entry found.
pub struct Found<'a> {
    pub entry: &'a Entry,
    /// The client's class when the lookup worked it out, else `CLASS_UNKNOWN`. (One u64,
    /// not a class and a flag: LLVM merges adjacent small fields into misaligned stack loads,
    /// which the verifier refuses.)
    pub class: u64,
    /// What the client subnet did (`ECS_USED`, `ECS_BY_CLASS` with the partition prefix
    /// length in the low byte), 0 when the query's source stood for the client.
    pub ecs: u64,
}

/// `Found::ecs`: the client subnet stood for the client.
pub const ECS_USED: u64 = 1 << 8;
/// `Found::ecs`: the class came from the ECS trie; the low byte is the scope of the client's
/// partition prefix.
pub const ECS_BY_CLASS: u64 = 1 << 9;

/// A query's client subnet as the lookup uses it, packed in one word: the source prefix
/// length honoured (bits 0 to 7; at most the cap of its family; 0 when the query has no
/// client subnet or honours none of it: its source stands for the client), then 1 for
/// IPv6 (bit 8). Its address, masked to that length, is `Scratch::ecs_addr`. (One word: LLVM
/// merges adjacent small fields into misaligned stack loads, which the verifier refuses.)
pub struct Subnet(pub u64);

impl Subnet {
    /// The source prefix length honoured.
    #[inline(always)]
    pub fn honoured(&self) -> u32 {
        (self.0 & 0xff) as u32
    }

    /// The subnet is IPv6.
    #[inline(always)]
    pub fn v6(&self) -> bool {
        self.0 >> 8 & 1 != 0
    }
}

/// Whether `scratch.name` from `off` (a label start) to the name's end is the name in
/// `entry`. A wire name is never a prefix of another, so its own bytes decide: the words
/// that hold them, the last masked (the entry's name is zero past its end; the scratch may
/// hold anything past the question's).
#[inline(always)]
fn same_name(scratch: &Scratch, off: usize, entry: &Entry) -> bool {
    let len = scratch.query.name_len as usize;
    if off >= len || len > NAME_KEY_LEN {
        return false;
    }
    let name = scratch.name.as_ptr();
    let theirs = entry.head.name.as_ptr();
    let rest = len - off;
    for k in 0..NAME_KEY_LEN / 8 {
        let at = 8 * k;
        if at >= rest {
            break;
        }
        // SAFETY: off + at + 8 <= 2 * NAME_KEY_LEN (the scratch name); at + 8 <= NAME_KEY_LEN.
        let (mut a, b) = unsafe {
            (
                name.add(off + at).cast::<u64>().read_unaligned(),
                theirs.add(at).cast::<u64>().read_unaligned(),
            )
        };
        if rest - at < 8 {
            a &= (1u64 << (8 * (rest - at))) - 1;
        }
        if a != b {
            return false;
        }
    }
    true
}

/// The entry of key `key` if it answers (`qtype`, `class`, `kind`) for the name at `off`.
#[inline(always)]
fn get<'a>(
    table: &'a crate::maps::EntryTable,
    scratch: &Scratch,
    key: u64,
    off: usize,
    qtype: u16,
    class: ClassId,
    kind: EntryKind,
) -> Option<&'a Entry> {
    // SAFETY: the element stays valid for this program run (RCU, no-prealloc table).
    let e = unsafe { &*table.get_ptr(key)? };
    let h = &e.head;
    (h.qtype == qtype && h.class == class && h.kind == kind as u8 && same_name(scratch, off, e))
        .then_some(e)
}

/// The entry answering the question in `scratch`, else why the query is passed (the name is
/// in no zone the table holds, no table is in service, or a swap came between the lookups);
/// the client's class is worked out only when an entry says it matters: from the client
/// subnet `subnet` when it is honoured and the name does not ignore it, else from `src`.
#[inline(always)]
pub fn find<'a>(
    scratch: &Scratch,
    src: &Source,
    v6: bool,
    subnet: &Subnet,
) -> Result<Found<'a>, Counter> {
    let table = ENTRIES.get(0).ok_or(Counter::PassNoSelection)?;
    // SAFETY: the table reference lives as long as this program run (RCU).
    let table: &'a crate::maps::EntryTable = unsafe { &*(table as *const _) };
    let q = &scratch.query;
    let qtype = q.qtype;
    let h0 = scratch.hashes[0];
    let exact = entry_key(h0, qtype, ANY_CLASS, EntryKind::Exact);
    if let Some(e) = get(table, scratch, exact, 0, qtype, ANY_CLASS, EntryKind::Exact) {
        let used = subnet.honoured() != 0 && e.head.flags & entry_flags::ECS_IGNORE == 0;
        if e.head.flags & entry_flags::CLASSED == 0 {
            return Ok(Found {
                entry: e,
                class: CLASS_UNKNOWN,
                ecs: if used { ECS_USED } else { 0 },
            });
        }
        let (class, ecs) = if used {
            let [hi, lo] = scratch.ecs_addr;
            let region = ecs_region(&Source { hi, lo }, subnet.v6()).ok_or(Counter::PassEdns)?;
            (region.class, ECS_USED | ECS_BY_CLASS | region.scope as u64)
        } else {
            (crate::client::class_of(src, v6), 0)
        };
        if class != DEFAULT_CLASS {
            let key = entry_key(h0, qtype, class, EntryKind::Exact);
            if let Some(own) = get(table, scratch, key, 0, qtype, class, EntryKind::Exact) {
                return Ok(Found {
                    entry: own,
                    class: class as u64,
                    ecs,
                });
            }
        }
        return Ok(Found {
            entry: e,
            class: class as u64,
            ecs,
        });
    }
    // The fallbacks: found by their own stage function (see `fallback`), then looked up
    // again here, where the entry is used.
    let found = crate::xgslb_fallback(q.labels as u64);
    if found == FALLBACK_MISS {
        return Err(Counter::PassNoSelection);
    }
    let (i, stamp) = ((found & 0xff) as usize, (found >> 8) as u8);
    let kind = if i == 0 {
        EntryKind::OtherType
    } else {
        EntryKind::Child
    };
    let i = opaque(i) & (MAX_NAME_LABELS - 1);
    // Label 0 starts at offset 0: the name itself, for `OtherType`.
    let off = scratch.labels[i] as usize;
    let key = entry_key(scratch.hashes[i], 0, ANY_CLASS, kind);
    match get(table, scratch, key, off, 0, ANY_CLASS, kind) {
        // No answer set: the answer depends on no client address (scope 0).
        Some(entry) if entry.head.table == stamp => Ok(Found {
            entry,
            class: CLASS_UNKNOWN,
            ecs: 0,
        }),
        _ => Err(Counter::PassTableSwapped),
    }
}

/// `fallback`'s answer when neither the name nor any ancestor has an entry.
pub const FALLBACK_MISS: u32 = u32::MAX;

/// For a question with no `Exact` entry: 0 when the name has an `OtherType` entry (it
/// exists), else the index of the label where its closest existing ancestor starts (that
/// ancestor's `Child` entry), with the entry's table stamp in bits 8..16; else
/// `FALLBACK_MISS`.
#[inline(always)]
pub fn fallback(scratch: &Scratch, labels: usize) -> u32 {
    let Some(table) = ENTRIES.get(0) else {
        return FALLBACK_MISS;
    };
    let other = entry_key(scratch.hashes[0], 0, ANY_CLASS, EntryKind::OtherType);
    if let Some(e) = get(table, scratch, other, 0, 0, ANY_CLASS, EntryKind::OtherType) {
        return (e.head.table as u32) << 8;
    }
    for i in 1..MAX_NAME_LABELS {
        if i >= labels {
            break;
        }
        let i = opaque(i) & (MAX_NAME_LABELS - 1);
        let off = scratch.labels[i] as usize;
        let key = entry_key(scratch.hashes[i], 0, ANY_CLASS, EntryKind::Child);
        if let Some(e) = get(table, scratch, key, off, 0, ANY_CLASS, EntryKind::Child) {
            return (e.head.table as u32) << 8 | i as u32;
        }
    }
    FALLBACK_MISS
}
