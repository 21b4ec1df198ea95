//! The answer table: one hash map from a 64-bit key to an [`Entry`], which says how to answer
//! one (name, query type, client class) or, for the two fallback kinds, any other type of a
//! name that exists and any name below an existing one that does not.
//!
//! # Keys
//! The key is a seeded hash of the lowercased wire name, mixed with the query type, class and
//! kind ([`entry_key`]). The name hash is built label by label from the root up
//! ([`hash_label`]), so the XDP program gets the hash of every suffix of the question name
//! from one pass: the suffixes are what it looks up to find the closest encloser of a name
//! that does not exist. The seed is chosen by user space when it builds a table, so that
//! nobody outside can aim two names at one key. A key says nothing for sure: the entry
//! holds the name, type, class and kind it answers, and the program compares them, so a
//! collision is a miss, never another name's answer.
use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

use crate::{AnswerSet, ClassId, NAME_KEY_LEN, mix64};

/// Most labels of a question name the XDP program hashes (root label excluded); a name with
/// more goes to the slow path.
pub const MAX_NAME_LABELS: usize = 16;
/// Bytes of a precomputed response after the question (answer, authority and additional
/// records, without the OPT); longer responses are left to the slow path.
pub const TAIL_LEN: usize = 320;
/// `ResponseTail::fix_at` of a tail with no pointer for the program to write.
pub const NO_FIX: u16 = u16::MAX;
/// Class of the entries that serve every client (and of the lookups that fall back to it).
pub const ANY_CLASS: ClassId = 0;

/// What an entry is looked up for.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// The name and this query type.
    Exact = 0,
    /// The name exists; any type without an `Exact` entry (NODATA, or pass).
    OtherType = 1,
    /// A name that does not exist and whose closest existing ancestor is this name
    /// (NXDOMAIN, or pass when a wildcard or a zone cut covers it).
    Child = 2,
}

impl EntryKind {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Exact),
            1 => Some(Self::OtherType),
            2 => Some(Self::Child),
            _ => None,
        }
    }
}

/// How an entry answers.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A or AAAA records from the `AnswerSet` in the body (by the query type).
    Answer = 0,
    /// The precomputed `ResponseTail` in the body.
    Response = 1,
    /// Pass to the slow path (return to DNS, SERVFAIL, CNAME chains, referrals, wildcards,
    /// responses too large to precompute).
    Pass = 2,
    /// Send nothing (Drop Packet).
    Drop = 3,
}

impl Body {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Answer),
            1 => Some(Self::Response),
            2 => Some(Self::Pass),
            3 => Some(Self::Drop),
            _ => None,
        }
    }
}

/// What an entry answers: compared by the program with the question it looked up for.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct EntryHead {
    /// The name in wire form, lowercased, zero padded.
    pub name: [u8; NAME_KEY_LEN],
    /// Query type (0 for the fallback kinds).
    pub qtype: u16,
    /// Client class (`ANY_CLASS` for every client).
    pub class: ClassId,
    /// An `EntryKind`.
    pub kind: u8,
    /// A `Body`.
    pub body: u8,
    /// `entry_flags` bits. `CLASSED` on an `ANY_CLASS` entry: some client classes have an
    /// entry of their own for the same question, and only then does the program work out
    /// the client's class. `ECS_IGNORE`: the client's class comes from the query's source
    /// address even when the query carries a client subnet.
    pub flags: u8,
    /// The stamp of the table holding the entry (the publisher's, changed at each swap): a
    /// lookup whose probes met two tables, one before a swap and one after, sees two stamps
    /// and passes the query rather than answer from a mix of both.
    pub table: u8,
}
layout!(EntryHead, NAME_KEY_LEN + 8, {
    name: 0,
    qtype: NAME_KEY_LEN,
    class: NAME_KEY_LEN + 2,
    kind: NAME_KEY_LEN + 4,
    body: NAME_KEY_LEN + 5,
    flags: NAME_KEY_LEN + 6,
    table: NAME_KEY_LEN + 7,
});

/// Bits of `EntryHead::flags`.
pub mod entry_flags {
    /// Client classes have entries of their own for this question (on `ANY_CLASS` entries).
    pub const CLASSED: u8 = 1;
    /// The name ignores EDNS Client Subnet (`EcsUse::Ignore`).
    pub const ECS_IGNORE: u8 = 2;
}

/// A response precomputed as wire bytes that follow the echoed question.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ResponseTail {
    /// Header bits of the response besides QR, RD and CD: AA and RCODE.
    pub flags: u16,
    /// Answer, authority and additional counts of the tail (the OPT not included).
    pub an: u16,
    pub ns: u16,
    pub ar: u16,
    /// Bytes of `bytes` in use (1..=TAIL_LEN).
    pub len: u16,
    /// Ones' complement sum of `bytes[..len]` as 16-bit big-endian words from an even
    /// offset, folded, with zero in place of the pointer at `fix_at`.
    pub sum: u16,
    /// Offset in `bytes` of a compression pointer to a suffix of the question name that the
    /// program writes (its place depends on the question's length), or `NO_FIX`.
    pub fix_at: u16,
    /// Wire length of that suffix.
    pub fix_suffix: u16,
    pub bytes: [u8; TAIL_LEN],
}
layout!(ResponseTail, 16 + TAIL_LEN, {
    flags: 0, an: 2, ns: 4, ar: 6, len: 8, sum: 10, fix_at: 12, fix_suffix: 14, bytes: 16,
});

/// Bytes of an entry's body: an `AnswerSet` or a `ResponseTail`, by `EntryHead::body`.
pub const BODY_LEN: usize = size_of::<ResponseTail>();
const _: () = assert!(size_of::<AnswerSet>() <= BODY_LEN);

/// Value of the answer table.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Entry {
    pub head: EntryHead,
    /// An `AnswerSet` (`Body::Answer`) or a `ResponseTail` (`Body::Response`) at offset 0.
    pub body: [u8; BODY_LEN],
}
// The body starts on a word so that the program reads an `AnswerSet` or `ResponseTail` in
// place.
layout!(Entry, NAME_KEY_LEN + 8 + BODY_LEN, { head: 0, body: NAME_KEY_LEN + 8 });
const _: () = assert!((NAME_KEY_LEN + 8).is_multiple_of(8));

impl Entry {
    /// An entry with `head` and a body copied from `body` (zero padded).
    pub fn new(head: EntryHead, body: &[u8]) -> Self {
        let mut e = Entry {
            head,
            body: [0; BODY_LEN],
        };
        let n = body.len().min(BODY_LEN);
        e.body[..n].copy_from_slice(&body[..n]);
        e
    }

    /// The body as an answer set.
    pub fn answer_set(&self) -> AnswerSet {
        bytemuck::pod_read_unaligned(&self.body[..size_of::<AnswerSet>()])
    }

    /// The body as a response tail.
    pub fn response(&self) -> ResponseTail {
        bytemuck::pod_read_unaligned(&self.body[..size_of::<ResponseTail>()])
    }
}

/// Multiplier of the word step (the golden ratio's 64-bit constant: odd, well spread).
const WORD_K: u64 = 0x9e37_79b9_7f4a_7c15;

/// One 8-byte word of a label into the running hash.
#[inline(always)]
pub const fn hash_word(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(WORD_K).rotate_left(29)
}

/// The hash of `label.parent` from the hash of `parent`: the label's wire bytes (its length
/// byte, then the label) as little-endian words, zero padded, then a full mix. `seg` is the
/// label's wire bytes, lowercased.
pub fn hash_label(parent: u64, seg: &[u8]) -> u64 {
    let mut h = parent;
    for chunk in seg.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = hash_word(h, u64::from_le_bytes(w));
    }
    mix64(h)
}

/// The hash of a whole wire name (lowercased, root label included) under `seed`; `None` for
/// a name that is malformed or has more than `MAX_NAME_LABELS` labels.
pub fn name_hash(seed: u64, wire: &[u8]) -> Option<u64> {
    let mut offsets = [0usize; MAX_NAME_LABELS];
    let mut n = 0;
    let mut at = 0;
    loop {
        let len = *wire.get(at)? as usize;
        if len == 0 {
            break;
        }
        if n == MAX_NAME_LABELS || len > 63 {
            return None;
        }
        offsets[n] = at;
        n += 1;
        at += 1 + len;
    }
    let mut h = seed;
    for &off in offsets[..n].iter().rev() {
        let len = wire[off] as usize;
        h = hash_label(h, wire.get(off..off + 1 + len)?);
    }
    Some(h)
}

/// The table key of (`name_hash`, `qtype`, `class`, `kind`). Distinct (type, class, kind)
/// of one name never share a key: the mix is a bijection.
#[inline(always)]
pub const fn entry_key(name_hash: u64, qtype: u16, class: ClassId, kind: EntryKind) -> u64 {
    mix64(name_hash ^ ((qtype as u64) | (class as u64) << 16 | (kind as u64) << 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_hashes_chain_and_names_differ() {
        let a = name_hash(7, b"\x03www\x07example\x04test\x00").unwrap();
        let parent = name_hash(7, b"\x07example\x04test\x00").unwrap();
        assert_eq!(a, hash_label(parent, b"\x03www"));
        assert_ne!(a, name_hash(8, b"\x03www\x07example\x04test\x00").unwrap());
        assert_ne!(a, name_hash(7, b"\x03wwx\x07example\x04test\x00").unwrap());
        assert_eq!(name_hash(7, b"\x00"), Some(7));
        let seventeen = b"\x01a".repeat(17);
        assert_eq!(name_hash(7, &[&seventeen[..], b"\x00"].concat()), None);
    }

    #[test]
    fn keys_of_one_name_are_distinct() {
        let h = 12345;
        let k = |t, c, kind| entry_key(h, t, c, kind);
        assert_ne!(k(1, 0, EntryKind::Exact), k(28, 0, EntryKind::Exact));
        assert_ne!(k(1, 0, EntryKind::Exact), k(1, 1, EntryKind::Exact));
        assert_ne!(k(0, 0, EntryKind::OtherType), k(0, 0, EntryKind::Child));
    }
}
