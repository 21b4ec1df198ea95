//! The ABI shared by the XDP program (`ebpf/`) and user space (`userspace/`).
//!
//! Every key, value, map name, size limit and counter that the kernel sees is defined here and
//! nowhere else. All types are `#[repr(C)]` with explicit padding so that they are
//! `bytemuck::Pod`; sizes are asserted at compile time because the verifier and the kernel
//! check them at load time against what user space passes.
//!
//! Each type kept in a map has its layout (size and every field's offset) asserted beside
//! it with `layout!`. Both sides compile the same struct, but a pinned map outlives the
//! process that wrote it: a layout change must be deliberate and bump the map's name
//! (`map_names`). The XDP program also writes some keys as whole words at these offsets.
#![no_std]

use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

/// Asserts at compile time that `$ty` is `$size` bytes with each field at its offset.
macro_rules! layout {
    ($ty:ty, $size:expr, { $($field:ident: $off:expr),* $(,)? }) => {
        const _: () = {
            assert!(
                core::mem::size_of::<$ty>() == $size,
                concat!("the size of ", stringify!($ty), " changed: bump its map's version")
            );
            $(assert!(
                core::mem::offset_of!($ty, $field) == $off,
                concat!(stringify!($ty), "::", stringify!($field), " moved: bump its map's version")
            );)*
        };
    };
}

mod class;
mod cookie;
mod ecs;
mod entry;
mod rrl;
pub use class::*;
pub use cookie::*;
pub use ecs::*;
pub use entry::*;
pub use rrl::*;

/// Longest question name (wire form, root label included) the XDP path answers. Longer names
/// go to the slow path. 96 bytes covers every name GSLB operators use in practice while keeping
/// the hashed key small (the kernel hashes the whole key on every lookup).
pub const NAME_KEY_LEN: usize = 96;
/// Most addresses one answer set holds.
pub const MAX_ADDRS: usize = 8;
/// Entries in an answer set's slot table. A power of two so that the pick is a mask; 128 so
/// that every weight's share of answers is within 1/128 (0.8 points) of its exact share.
pub const SLOTS: usize = 128;
/// Entries an answer table is created with at least (user space sizes each table to what it
/// holds, with room for single-entry updates).
pub const MIN_TABLE_ENTRIES: u32 = 65_536;
/// Most listener address:port pairs (the program compares a query's destination with each).
pub const MAX_LISTENERS: u32 = 16;
/// Most prefixes in each class trie (IPv4 and IPv6 alike) and in the class table. A trie maps
/// an LDNS address to its client class; the balancer bounds the number of classes, not of
/// prefixes.
pub const MAX_CLASS_PREFIXES: u32 = 262_144;
/// LDNS addresses the sampled query counts keep (least recently seen evicted first).
pub const MAX_LDNS_TRACKED: u32 = 65_536;
/// One query in 2^LDNS_SAMPLE_SHIFT is counted by LDNS address: enough to rank the busiest
/// resolvers, cheap enough for the hot path.
pub const LDNS_SAMPLE_SHIFT: u32 = 4;
/// BPF_F_NO_PREALLOC, the flag of every inner map (the answer table, the class table, the
/// class tries): an update frees the old element only after an RCU grace period, so a reader
/// that looked up the old value keeps reading it whole while user space replaces it. (A
/// preallocated hash map recycles elements at once, which could tear a concurrent read; an
/// LPM trie takes no other flag.) The kernel requires an inner map's flags to equal its
/// template's, so the templates in ebpf/src/maps.rs and the maps user space creates both use
/// this one.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// UDP payload size xgslb advertises in its OPT RR, on both paths (RFC 9715 / DNS flag day 2020).
pub const EDNS_UDP_SIZE: u16 = 1232;

/// Map names carry a layout version so that a new xgslbd never adopts a pinned map of an older
/// layout: a layout change bumps the suffix. (The layout asserts beside each key and value
/// type fail when a layout changes; userspace's `maps::object_tests` checks the object against
/// these names and sizes.)
pub mod map_names {
    /// Outer array (one slot) holding the current answer table, a hash map of u64 (see
    /// `entry_key`) -> `Entry`. A config change builds a new table and swaps it in with one
    /// update of the slot; metric changes update single entries of the current one.
    pub const ENTRIES: &str = "XGSLB_ENT_V5";
    /// One u64: the seed of the answer table's name hashes (`name_hash`), random, chosen by
    /// the first xgslbd that builds a table and kept by later tables and processes (0: none
    /// yet). Were it changed, a query meeting the new seed and the old table would miss and
    /// be passed, never answered from a wrong entry (entries hold their names).
    pub const SEED: &str = "XGSLB_SEED_V4";
    /// Outer array (one slot) holding the current IPv4 class trie: prefix -> `ClassId`.
    pub const CLASS_TRIE4: &str = "XGSLB_CTRIE4_V1";
    /// Outer array (one slot) holding the current IPv6 class trie: prefix -> `ClassId`.
    pub const CLASS_TRIE6: &str = "XGSLB_CTRIE6_V1";
    /// Outer array (one slot) holding the current class table: `ClassKey` -> `ClassId`.
    pub const CLASSES: &str = "XGSLB_CLS_V2";
    /// One `ClassLengths`: the prefix lengths the class table holds, per family.
    pub const CLASS_LENGTHS: &str = "XGSLB_CLSLEN_V1";
    /// One `ListenerSet`: the address:port pairs the program answers on.
    pub const LISTENERS: &str = "XGSLB_LSN_V3";
    /// Per-CPU `Stats`, one entry.
    pub const STATS: &str = "XGSLB_STAT_V5";
    /// Per-CPU `u32` round-robin pick counter, one entry.
    pub const PICK: &str = "XGSLB_PICK_V2";
    /// Per-CPU `Scratch`, one entry; the program's working memory.
    pub const SCRATCH: &str = "XGSLB_SCRATCH_V7";
    /// `Meta` written by xgslbd for `xgslbctl` (the program never reads it), one entry.
    pub const META: &str = "XGSLB_META_V2";
    /// Per-CPU u64 array: answers by (answer set's `stat`, leading address index), for
    /// "answers per wide IP by virtual server and region".
    pub const ANSWERS: &str = "XGSLB_ANS_V3";
    /// LRU per-CPU `LdnsKey` -> u64: sampled query counts by LDNS address and class, which
    /// xgslbd reads to tell agents which LDNSs to probe.
    pub const LDNS: &str = "XGSLB_LDNS_V2";
    /// Outer array (one slot) holding the current IPv4 client-subnet trie: every prefix of
    /// the ECS partition (`EcsRegion`) -> its class and scope.
    pub const ECS_TRIE4: &str = "XGSLB_ETRIE4_V1";
    /// Outer array (one slot) holding the current IPv6 client-subnet trie.
    pub const ECS_TRIE6: &str = "XGSLB_ETRIE6_V1";
    /// One `EcsConfig`: how the program treats a query's client subnet.
    pub const ECS_CONFIG: &str = "XGSLB_ECS_V1";
    /// Per-CPU u64 array of `ECS_STATS_LEN`: ECS queries answered by family and scope
    /// (`ecs_stat_index`).
    pub const ECS_STATS: &str = "XGSLB_ECSST_V1";
    /// One `RrlConfig`: how the program limits response rates; all zero (off) until xgslbd
    /// publishes.
    pub const RRL_CONFIG: &str = "XGSLB_RRLCFG_V1";
    /// LPM trie of IPv4 prefixes exempt from rate limiting (value unused).
    pub const RRL_EXEMPT4: &str = "XGSLB_RRLEX4_V1";
    /// LPM trie of IPv6 prefixes exempt from rate limiting.
    pub const RRL_EXEMPT6: &str = "XGSLB_RRLEX6_V1";
    /// Shared (not per-CPU) LRU `RrlKey` -> `RrlBucket`: the rate limit's buckets, written
    /// by the program alone.
    pub const RRL: &str = "XGSLB_RRL_V1";

    /// One `CookieConfig`: whether DNS cookies are on, the server secret and the clock.
    pub const COOKIE: &str = "XGSLB_COOKIE_V1";
    /// Per-CPU u64 array of `COOKIE_STATS_LEN`: answers to queries with a COOKIE option, by
    /// what it was found to be (`CookieSeen` as the index).
    pub const COOKIE_STATS: &str = "XGSLB_COOKIEST_V1";

    /// Every map of the object.
    pub const ALL: [&str; 23] = [
        ENTRIES,
        SEED,
        CLASS_TRIE4,
        CLASS_TRIE6,
        CLASSES,
        CLASS_LENGTHS,
        LISTENERS,
        STATS,
        PICK,
        SCRATCH,
        META,
        ANSWERS,
        LDNS,
        ECS_TRIE4,
        ECS_TRIE6,
        ECS_CONFIG,
        ECS_STATS,
        RRL_CONFIG,
        RRL_EXEMPT4,
        RRL_EXEMPT6,
        RRL,
        COOKIE,
        COOKIE_STATS,
    ];
}

/// XDP program names in the object.
pub mod prog_names {
    /// The DNS answering program.
    pub const XGSLB: &str = "xgslb";
    /// The bench-only minimal XDP_TX reflector (the ceiling a program can reach).
    pub const REFLECTOR: &str = "xgslb_reflector";
    /// XDP_PASS for everything: for the client end of veth test topologies.
    pub const PASS: &str = "xgslb_pass";
}

/// DNS header flag bits (RFC 1035 4.1.1, RFC 4035 for AD and CD), as both paths that
/// answer from the answer table read and write them.
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const OPCODE: u16 = 0x7800;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const Z: u16 = 0x0040;
    pub const CD: u16 = 0x0010;
    pub const RCODE: u16 = 0x000f;
}

/// EDNS option codes that decide whether a query is answered from the answer table.
pub mod edns_option {
    /// RFC 5001: answered with the server's id, by the slow path.
    pub const NSID: u16 = 3;
    /// RFC 7871 client subnet: validated and answered with a scope (the XDP program passes
    /// a malformed one, which the slow path answers with FORMERR).
    pub const ECS: u16 = 8;
    /// RFC 7873: checked and answered with a server cookie when well formed (8, or 16 to
    /// 40 bytes: `cookie_len_ok`); else FORMERR, from the slow path.
    pub const COOKIE: u16 = 10;
}

/// DNS record types the XDP path knows by number.
pub mod qtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const HTTPS: u16 = 65;

    /// Whether the XDP path may answer this query type from the answer table. Meta types
    /// (OPT, TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY: 128 to 255 and 41), type 0 and DS
    /// (answered from the parent side of a cut, RFC 4035 3.1.4.1) go to the slow path.
    #[inline(always)]
    pub const fn answerable(t: u16) -> bool {
        !(t == 0 || t == OPT || t == DS || (t >= 128 && t <= 255))
    }
}

/// How the XDP program picks the first address of an answer.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickMode {
    /// A per-CPU counter walks the slot table: round robin when every address has one share,
    /// ratio when the slot table holds addresses in proportion to their weights.
    Counter = 0,
    /// A hash of the LDNS address, masked to the set's persist prefix, picks the slot: the
    /// same LDNS prefix gets the same address for as long as the slot table keeps it
    /// (static persist).
    Persist = 1,
}

impl PickMode {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Counter),
            1 => Some(Self::Persist),
            _ => None,
        }
    }
}

/// What a selection tells the XDP program to do with a query it matches.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer from the set's addresses.
    Answer = 0,
    /// Pass to the slow path, which answers from its own copy of the selection: the zone's
    /// static records (return to DNS), SERVFAIL or NODATA, which need the zone's SOA.
    SlowPath = 1,
    /// Drop the query (the Drop Packet method and all-down behaviour).
    Drop = 2,
}

impl Action {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Answer),
            1 => Some(Self::SlowPath),
            2 => Some(Self::Drop),
            _ => None,
        }
    }
}

/// What the slow path answers for a selection whose action is `Action::SlowPath`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowAnswer {
    /// The zone file's static records of the name (Return to DNS).
    ReturnToDns = 0,
    /// SERVFAIL.
    ServFail = 1,
    /// NOERROR, no records, the zone's SOA (NODATA).
    NoData = 2,
}

impl SlowAnswer {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::ReturnToDns),
            1 => Some(Self::ServFail),
            2 => Some(Self::NoData),
            _ => None,
        }
    }
}

/// Value of the selection map: a weighted set of addresses to answer with, or another action.
///
/// An answer holds `records` records: the address the slot table picks, then the ones after it
/// in `addrs` order, wrapping. Both paths compute this with [`AnswerSet::answer_index`], and
/// for persist sets take the pick from [`AnswerSet::persist_pick`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AnswerSet {
    /// TTL of every record, seconds.
    pub ttl: u32,
    /// Addresses in use in `addrs`, 1..=MAX_ADDRS (0 for actions other than Answer).
    pub count: u8,
    /// Records per answer, 1..=count.
    pub records: u8,
    /// A `PickMode`; a value this program does not know makes it pass the query.
    pub pick: u8,
    /// An `Action`; a value this program does not know makes it pass the query.
    pub action: u8,
    /// Static persist: bits of an IPv4 LDNS address hashed (0..=32).
    pub persist_v4: u8,
    /// Static persist: bits of an IPv6 LDNS address hashed (0..=128).
    pub persist_v6: u8,
    /// For `Action::SlowPath`: a `SlowAnswer`, what the slow path answers (XDP ignores it).
    pub slow: u8,
    /// An `EcsUse`: whether a query's client subnet stands for the client (RFC 7871).
    pub ecs: u8,
    /// Where this set's answers are counted in the answer counters (`ANSWERS`): counter
    /// `stat * MAX_ADDRS + i` counts answers led by `addrs[i]`; `NO_STAT` counts nothing.
    pub stat: u32,
    /// Each slot holds an index into `addrs`; an address's share of slots is its weight.
    pub slots: [u8; SLOTS],
    /// Addresses: IPv4 in the first 4 bytes (rest zero), IPv6 in all 16.
    pub addrs: [[u8; 16]; MAX_ADDRS],
}
layout!(AnswerSet, 16 + SLOTS + 16 * MAX_ADDRS, {
    ttl: 0, count: 4, records: 5, pick: 6, action: 7, persist_v4: 8, persist_v6: 9, slow: 10,
    ecs: 11, stat: 12, slots: 16, addrs: 16 + SLOTS,
});

/// `AnswerSet::stat` of a set whose answers are not counted.
pub const NO_STAT: u32 = u32::MAX;
/// Answer sets with counters (each `MAX_ADDRS` of them, one per leading address).
pub const MAX_ANSWER_STATS: u32 = 16_384;

/// The 64-bit finaliser of SplitMix64: a cheap, well-mixed hash step with no loop, so the XDP
/// program and user space compute persist picks the same way.
#[inline(always)]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top `bits` bits of a 64-bit word set (`bits` 0..=64).
#[inline(always)]
pub(crate) const fn high_mask(bits: u32) -> u64 {
    if bits == 0 {
        0
    } else if bits >= 64 {
        u64::MAX
    } else {
        u64::MAX << (64 - bits)
    }
}

impl AnswerSet {
    /// Index into `addrs` of record `i` of an answer whose pick was `pick`, or `None`
    /// when the set is malformed (the XDP program then passes the query).
    #[inline(always)]
    pub fn answer_index(&self, pick: u32, i: u32) -> Option<u32> {
        let count = self.count as u32;
        if count == 0 || count > MAX_ADDRS as u32 {
            return None;
        }
        let first = self.slots[(pick as usize) & (SLOTS - 1)] as u32;
        if first >= count {
            return None;
        }
        Some((first + i) % count)
    }

    /// The pick of a persist set for an LDNS at `hi`:`lo` (the address as two big-endian
    /// words; IPv4 in the top 32 bits of `hi`, `lo` zero): the address masked to the set's
    /// persist prefix, hashed.
    #[inline(always)]
    pub fn persist_pick(&self, hi: u64, lo: u64, v6: bool) -> u32 {
        let (bits, family) = if v6 {
            (self.persist_v6 as u32, 6u64)
        } else {
            (self.persist_v4 as u32, 4u64)
        };
        let hi_bits = bits.min(64);
        let lo_bits = bits.saturating_sub(64);
        let h = mix64((hi & high_mask(hi_bits)) ^ family);
        let h = mix64(h ^ (lo & high_mask(lo_bits)));
        (h >> 32) as u32
    }

    /// Whether the set is one the XDP program acts on.
    pub fn is_valid(&self) -> bool {
        match Action::from_u8(self.action) {
            Some(Action::Answer) => {
                let count = self.count as usize;
                (1..=MAX_ADDRS).contains(&count)
                    && (1..=count).contains(&(self.records as usize))
                    && PickMode::from_u8(self.pick).is_some()
                    && self.slots.iter().all(|&s| (s as usize) < count)
                    && self.persist_v4 <= 32
                    && self.persist_v6 <= 128
            }
            Some(Action::SlowPath) => SlowAnswer::from_u8(self.slow).is_some(),
            Some(Action::Drop) => true,
            None => false,
        }
    }
}

/// Key of the LDNS sample map: a source address and the client class it mapped to.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct LdnsKey {
    /// IPv4 in the first 4 bytes (rest zero), or IPv6.
    pub addr: [u8; 16],
    /// The class the address mapped to.
    pub class: ClassId,
    /// 4 or 6.
    pub family: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 5],
}
// The program writes the key as three words (ebpf/src/client.rs `sample_ldns`): the address,
// then class and family in the low bytes of the third.
layout!(LdnsKey, 24, { addr: 0, class: 16, family: 18, _pad: 19 });
const _: () = assert!(size_of::<ClassId>() == 2);

/// What xgslbd tells `xgslbctl` through the pinned meta map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Meta {
    /// Publication generation: +1 for every publication that changed the maps.
    pub generation: u64,
    /// Full swaps (config changes) so far.
    pub swaps: u64,
    /// Entries of the selection table in service.
    pub selections: u64,
    /// Client-class prefixes in service (IPv4 + IPv6).
    pub prefixes: u64,
}
layout!(Meta, 32, { generation: 0, swaps: 8, selections: 16, prefixes: 24 });

/// An address and UDP port the XDP program answers on, as configured.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ListenerKey {
    /// IPv4 in the first 4 bytes (rest zero) or IPv6; all zero is the wildcard of the family.
    pub addr: [u8; 16],
    /// UDP port, host order.
    pub port: u16,
    /// 4 or 6.
    pub family: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
}
layout!(ListenerKey, 20, { addr: 0, port: 16, family: 18, _pad: 19 });

/// A listener as the program compares it: three words, no hashing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Listener {
    /// The address as two big-endian words (IPv4 in the low 32 bits of `hi`, `lo` zero);
    /// both zero: any address of the family.
    pub hi: u64,
    pub lo: u64,
    /// `Listener::tag` of the port and family.
    pub tag: u64,
}
layout!(Listener, 24, { hi: 0, lo: 8, tag: 16 });

impl Listener {
    /// The tag of a port (host order) and family (4 or 6): never zero, so an unused slot
    /// matches nothing.
    #[inline(always)]
    pub const fn tag(port: u16, family: u8) -> u64 {
        1 << 32 | (family as u64) << 16 | port as u64
    }

    /// The listener of a configured address and port.
    pub fn from_key(k: &ListenerKey) -> Self {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[8 - b.len()..].copy_from_slice(b);
            u64::from_be_bytes(w)
        };
        let (hi, lo) = if k.family == 4 {
            (word(&k.addr[..4]), 0)
        } else {
            (word(&k.addr[..8]), word(&k.addr[8..]))
        };
        Self {
            hi,
            lo,
            tag: Self::tag(k.port, k.family),
        }
    }
}

/// Value of the listener map (one entry): `count` listeners in `slots`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ListenerSet {
    pub slots: [Listener; MAX_LISTENERS as usize],
    pub count: u64,
}
layout!(ListenerSet, 24 * MAX_LISTENERS as usize + 8, {
    slots: 0,
    count: 24 * MAX_LISTENERS as usize,
});

/// What the XDP program did with a frame, one per-CPU counter each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every frame the program saw.
    Received = 0,
    /// Answered with XDP_TX (each also counts under one of the four kinds below).
    Answered,
    /// Answered: A or AAAA records of an answer set or wide IP.
    AnsweredAddresses,
    /// Answered: a precomputed RRset of the zone, with its authority and additional data.
    AnsweredRecords,
    /// Answered: NODATA (NOERROR, no records, the SOA in authority).
    AnsweredNoData,
    /// Answered: NXDOMAIN.
    AnsweredNxDomain,
    /// Dropped (a frame the program had begun to rewrite and could not finish).
    Dropped,
    /// Passed: not IPv4 or IPv6 (after up to two VLAN tags).
    PassNotIp,
    /// Passed: IPv4 with options, a fragment, or a bad header.
    PassIpv4Header,
    /// Passed: IPv6 with extension headers.
    PassIpv6ExtHeader,
    /// Passed: not UDP.
    PassNotUdp,
    /// Passed: UDP to an address:port that is not a listener.
    PassNotListener,
    /// Passed: a UDP checksum that does not verify, or none over IPv6 (invalid, RFC 8200
    /// 8.1). The kernel drops the datagram, as it would have without XDP.
    PassUdpChecksum,
    /// Passed: a DNS message longer than the XDP path parses.
    PassTooLong,
    /// Passed: the frame ends before the headers it announces.
    PassTruncated,
    /// Passed: not a plain query (QR, opcode, TC, rcode or Z set).
    PassNotQuery,
    /// Passed: section counts other than QD=1, AN=NS=0, AR<=1.
    PassSectionCounts,
    /// Passed: a compression pointer or a label type other than a plain label.
    PassBadLabel,
    /// Passed: the name is longer than `NAME_KEY_LEN`.
    PassNameTooLong,
    /// Passed: class other than IN.
    PassQclass,
    /// Passed: a query type the XDP path does not answer (meta types, DS).
    PassQtype,
    /// Passed: the additional record is not an OPT this path answers (version, options, shape).
    PassEdns,
    /// Passed: bytes after the last record, or lengths that disagree.
    PassTrailing,
    /// Passed: the name is in no zone the answer table holds.
    PassNoSelection,
    /// Passed: the entry is malformed or uses a pick mode this program does not know.
    PassBadSelection,
    /// Passed: the response does not fit the client's UDP size.
    PassTooBig,
    /// Passed: the frame could not be resized for the answer.
    PassResize,
    /// Passed: a table swap came between the lookups of one question (they met two tables).
    PassTableSwapped,
    /// Passed: the entry defers to the slow path (return to DNS, SERVFAIL, CNAME, referral,
    /// wildcard, a response too large to precompute).
    PassSlowPath,
    /// Dropped: the selection says drop (Drop Packet).
    DropPolicy,
    /// Dropped: over the response rate limit, and not the limited response that slips.
    RrlDropped,
    /// Answered with the slipped reply (TC=1, no records but the OPT): over the response
    /// rate limit (XDP_TX, not counted as `Answered`).
    RrlSlipped,
}

impl Counter {
    /// Number of counters.
    pub const COUNT: usize = Counter::RrlSlipped as usize + 1;
    /// Every counter in index order.
    pub const ALL: [Counter; Counter::COUNT] = [
        Counter::Received,
        Counter::Answered,
        Counter::AnsweredAddresses,
        Counter::AnsweredRecords,
        Counter::AnsweredNoData,
        Counter::AnsweredNxDomain,
        Counter::Dropped,
        Counter::PassNotIp,
        Counter::PassIpv4Header,
        Counter::PassIpv6ExtHeader,
        Counter::PassNotUdp,
        Counter::PassNotListener,
        Counter::PassUdpChecksum,
        Counter::PassTooLong,
        Counter::PassTruncated,
        Counter::PassNotQuery,
        Counter::PassSectionCounts,
        Counter::PassBadLabel,
        Counter::PassNameTooLong,
        Counter::PassQclass,
        Counter::PassQtype,
        Counter::PassEdns,
        Counter::PassTrailing,
        Counter::PassNoSelection,
        Counter::PassBadSelection,
        Counter::PassTooBig,
        Counter::PassResize,
        Counter::PassTableSwapped,
        Counter::PassSlowPath,
        Counter::DropPolicy,
        Counter::RrlDropped,
        Counter::RrlSlipped,
    ];

    /// The kind of an answer (each answered frame counts as `Answered` and one of these).
    pub const fn is_answer_kind(self) -> bool {
        matches!(
            self,
            Counter::AnsweredAddresses
                | Counter::AnsweredRecords
                | Counter::AnsweredNoData
                | Counter::AnsweredNxDomain
        )
    }

    /// Stable snake_case name for stats output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Received => "received",
            Counter::Answered => "answered",
            Counter::AnsweredAddresses => "answered_addresses",
            Counter::AnsweredRecords => "answered_records",
            Counter::AnsweredNoData => "answered_nodata",
            Counter::AnsweredNxDomain => "answered_nxdomain",
            Counter::Dropped => "dropped",
            Counter::PassNotIp => "pass_not_ip",
            Counter::PassIpv4Header => "pass_ipv4_header",
            Counter::PassIpv6ExtHeader => "pass_ipv6_ext_header",
            Counter::PassNotUdp => "pass_not_udp",
            Counter::PassNotListener => "pass_not_listener",
            Counter::PassUdpChecksum => "pass_udp_checksum",
            Counter::PassTooLong => "pass_too_long",
            Counter::PassTruncated => "pass_truncated",
            Counter::PassNotQuery => "pass_not_query",
            Counter::PassSectionCounts => "pass_section_counts",
            Counter::PassBadLabel => "pass_bad_label",
            Counter::PassNameTooLong => "pass_name_too_long",
            Counter::PassQclass => "pass_qclass",
            Counter::PassQtype => "pass_qtype",
            Counter::PassEdns => "pass_edns",
            Counter::PassTrailing => "pass_trailing",
            Counter::PassNoSelection => "pass_no_selection",
            Counter::PassBadSelection => "pass_bad_selection",
            Counter::PassTooBig => "pass_too_big",
            Counter::PassResize => "pass_resize",
            Counter::PassTableSwapped => "pass_table_swapped",
            Counter::PassSlowPath => "pass_slow_path",
            Counter::DropPolicy => "drop_policy",
            Counter::RrlDropped => "rrl_dropped",
            Counter::RrlSlipped => "rrl_slipped",
        }
    }
}

/// Per-CPU counters, indexed by `Counter`. One map entry so a packet costs one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Stats {
    pub counters: [u64; Counter::COUNT],
}
layout!(Stats, 8 * Counter::COUNT, { counters: 0 });

/// Per-CPU working memory of the XDP program (never read by user space). The question name
/// lives here rather than on the stack: the verifier tracks every stack byte it writes, and a
/// name written at a variable length splits its states past what it can explore.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Scratch {
    /// The question name in wire form, lowercased, zero padded; the bytes past
    /// `NAME_KEY_LEN` stay zero so that `NAME_KEY_LEN` bytes read from any label start stay
    /// inside (names are compared a whole key's words at a time, without branches).
    pub name: [u8; 2 * NAME_KEY_LEN],
    /// `hashes[i]`: the hash of the name's suffix from label `i` (0: the whole name).
    pub hashes: [u64; MAX_NAME_LABELS],
    /// `labels[i]`: offset of label `i` in `name`.
    pub labels: [u8; MAX_NAME_LABELS],
    /// A value stored and loaded back so the verifier forgets its exact value.
    pub launder: u64,
    /// What parsing found, handed from the parse stage to the answer stage.
    pub query: ParsedQuery,
    /// Queries seen by the answer stage on this CPU: picks the sampled ones.
    pub sampled: u64,
    /// The LDNS sample key under construction (kept off the stack like the name).
    pub ldns: LdnsKey,
    /// The query's client subnet option as the answer stage reads it: from byte 4 on its data
    /// (FAMILY, SOURCE and SCOPE PREFIX-LENGTH, then ADDRESS at byte 8: whole words), zero
    /// past it; then, the response's option written over it (code and length in the first 4
    /// bytes, our scope in byte 7).
    pub ecs_opt: [u8; 24],
    /// That subnet's address masked to the length honoured, as two host-order words (IPv4
    /// in the top 32 bits of the first).
    pub ecs_addr: [u64; 2],
    /// How the answer stage uses the subnet (ebpf/src/answer.rs `prepare_ecs`): 0 without one.
    pub ecs_use: u64,
    /// The ones' complement sum of the response's option, as 16-bit words from an even
    /// offset.
    pub ecs_sum: u64,
    /// The frame's headers and question, while they move to make room at the front for an
    /// answer the tailroom cannot hold; the OPT, while the rate limit's slipped reply moves
    /// it up.
    pub frame: [u8; FRAME_HEAD_MAX],
    /// The answer counter (`ANSWERS` index) and ECS counter (`ECS_STATS` index) the answer
    /// written counts in, `NO_COUNT` for none: counted once the rate limit lets it go.
    pub answer_stat: u32,
    pub ecs_stat: u32,
    /// The slipped reply of the answer written (the rate limit's, `ebpf/src/rrl.rs`): the
    /// bytes of records to take out after the question, and its UDP checksum field.
    pub slip_records: u32,
    pub slip_csum: u32,
    /// The query's COOKIE option data as the cookie stage reads it (the client cookie, then
    /// the server cookie when it is 16 bytes), zero past it.
    pub cookie_in: [u8; 24],
    /// The response's COOKIE option (code, length, client cookie, server cookie: 28 bytes)
    /// made by the cookie stage, zero past it.
    pub cookie_opt: [u8; 32],
    /// The ones' complement sum of the response's COOKIE option, as 16-bit words from an
    /// even offset.
    pub cookie_sum: u64,
}
/// `Scratch::answer_stat` and `ecs_stat` of an answer that counts in no such counter.
pub const NO_COUNT: u32 = u32::MAX;
/// Most bytes of headers and question the program moves (Ethernet, two VLAN tags, IPv6, UDP,
/// DNS header, a question of `NAME_KEY_LEN` bytes and its type and class).
/// Rounded up to whole words (the scratch has no padding).
pub const FRAME_HEAD_MAX: usize = (14 + 8 + 40 + 8 + 12 + NAME_KEY_LEN + 4).next_multiple_of(8);
const _: () = assert!(
    size_of::<Scratch>()
        == 2 * NAME_KEY_LEN
            + 8 * MAX_NAME_LABELS
            + MAX_NAME_LABELS
            + 8
            + 32
            + 8
            + 24
            + 24
            + 32
            + FRAME_HEAD_MAX
            + 16
            + 24
            + 32
            + 8
);

/// A query the XDP program may answer, as its parse stage leaves it for its answer stage.
/// (The two are separate BPF functions, each verified once; see ebpf/src/main.rs.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ParsedQuery {
    /// Frame offset of the IP header (after Ethernet and VLAN tags).
    pub l3_off: u16,
    /// Frame offset of the question's type field (just after the name).
    pub tail_off: u16,
    /// Question name length in wire form, root label included.
    pub name_len: u16,
    /// The query's DNS header flags.
    pub flags: u16,
    /// Ones' complement sum of the name bytes, as placed from an even offset, folded.
    pub name_sum: u32,
    /// Query type.
    pub qtype: u16,
    /// Largest DNS message the client accepts over UDP: 512 without EDNS, else its size
    /// clamped to 512..=EDNS_UDP_SIZE (what the slow path allows).
    pub limit: u16,
    /// 1 when the query had an OPT RR.
    pub has_opt: u8,
    /// 1 when that OPT had the DO bit (copied to the answer, RFC 3225).
    pub dnssec_ok: u8,
    /// 1 when an IPv4 query's UDP checksum was zero (the answer's stays zero).
    pub udp_csum_zero: u8,
    /// 1 for IPv6, 0 for IPv4.
    pub v6: u8,
    /// Labels of the name (root excluded), 1..=MAX_NAME_LABELS. (A u32: three padding bytes
    /// would be written with a `memset` call, a byte loop on BPF.)
    pub labels: u32,
    /// Frame offset of the data of the OPT's client subnet option (RFC 7871), 0 when it has
    /// none. The answer stage reads and checks it.
    pub ecs_off: u16,
    /// Length of that option's data.
    pub ecs_len: u16,
    /// Frame offset of the data of the OPT's COOKIE option (RFC 7873), 0 when it has none.
    /// The cookie stage reads and checks it.
    pub cookie_off: u16,
    /// Length of that option's data (8, or 16 to 40).
    pub cookie_len: u8,
    /// What the cookie stage found the query's cookie to be: a `CookieSeen` (0, `None`:
    /// none, or cookies are off; the response then carries no COOKIE). Rate limiting
    /// exempts `CookieSeen::Valid`.
    pub cookie: u8,
}
layout!(ParsedQuery, 32, {
    l3_off: 0, tail_off: 2, name_len: 4, flags: 6, name_sum: 8, qtype: 12, limit: 14,
    has_opt: 16, dnssec_ok: 17, udp_csum_zero: 18, v6: 19, labels: 20, ecs_off: 24,
    ecs_len: 26, cookie_off: 28, cookie_len: 30, cookie: 31,
});

#[cfg(feature = "user")]
mod user {
    // SAFETY: each type is #[repr(C)], bytemuck::Pod (no padding, any bit pattern valid).
    unsafe impl aya::Pod for super::Entry {}
    unsafe impl aya::Pod for super::ClassKey {}
    unsafe impl aya::Pod for super::ClassLengths {}
    unsafe impl aya::Pod for super::AnswerSet {}
    unsafe impl aya::Pod for super::ListenerKey {}
    unsafe impl aya::Pod for super::ListenerSet {}
    unsafe impl aya::Pod for super::Stats {}
    unsafe impl aya::Pod for super::Scratch {}
    unsafe impl aya::Pod for super::ParsedQuery {}
    unsafe impl aya::Pod for super::Meta {}
    unsafe impl aya::Pod for super::LdnsKey {}
    unsafe impl aya::Pod for super::EcsRegion {}
    unsafe impl aya::Pod for super::EcsConfig {}
    unsafe impl aya::Pod for super::RrlConfig {}
    unsafe impl aya::Pod for super::RrlKey {}
    unsafe impl aya::Pod for super::CookieConfig {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_all_is_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
    }

    #[test]
    fn answer_index_wraps_from_the_picked_slot() {
        let mut set = AnswerSet::zeroed();
        set.count = 3;
        set.records = 3;
        set.slots = [0; SLOTS];
        set.slots[1] = 2;
        assert_eq!(set.answer_index(1, 0), Some(2));
        assert_eq!(set.answer_index(1, 1), Some(0));
        assert_eq!(set.answer_index(SLOTS as u32 + 1, 2), Some(1));
        set.slots[2] = 3;
        assert_eq!(set.answer_index(2, 0), None);
        assert!(!set.is_valid());
    }

    #[test]
    fn persist_pick_hashes_only_the_masked_prefix() {
        let mut set = AnswerSet::zeroed();
        set.persist_v4 = 24;
        set.persist_v6 = 56;
        let v4 = |a: [u8; 4]| (u32::from_be_bytes(a) as u64) << 32;
        let p = set.persist_pick(v4([198, 18, 64, 1]), 0, false);
        assert_eq!(p, set.persist_pick(v4([198, 18, 64, 200]), 0, false));
        assert_ne!(p, set.persist_pick(v4([198, 18, 65, 1]), 0, false));
        let hi = 0x2001_0db8_0000_1200u64;
        let q = set.persist_pick(hi, 1, true);
        assert_eq!(q, set.persist_pick(hi | 0xff, u64::MAX, true));
        assert_ne!(q, set.persist_pick(hi + 0x100, 1, true));
        // The same bits as IPv4 and as IPv6 do not collide by construction.
        set.persist_v6 = 24;
        assert_ne!(p, set.persist_pick(v4([198, 18, 64, 1]), 0, true));
        // A zero-length mask sends every LDNS to one slot; /128 tells every address apart.
        set.persist_v4 = 0;
        assert_eq!(
            set.persist_pick(v4([1, 2, 3, 4]), 0, false),
            set.persist_pick(v4([5, 6, 7, 8]), 0, false)
        );
        set.persist_v6 = 128;
        assert_ne!(set.persist_pick(hi, 1, true), set.persist_pick(hi, 2, true));
    }
}
