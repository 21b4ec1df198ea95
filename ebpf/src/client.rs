//! The client of a query (the LDNS that sent it): its source address, and its class, looked
//! up in the class table or the class tries (longest prefix match). The class selects the
//! entries that answer that client. Also the sampled query counts by LDNS and class.
use aya_ebpf::maps::lpm_trie::Key;
use core::mem::{offset_of, size_of};
use xgslb_common::{
    ClassId, ClassKey, DEFAULT_CLASS, EcsRegion, LDNS_SAMPLE_SHIFT, LdnsKey, MAX_CLASS_LENGTHS,
};

use crate::{
    frame::ptr_at,
    maps::{CLASS_LENGTHS, CLASS_TRIE4, CLASS_TRIE6, CLASSES, ECS_TRIE4, ECS_TRIE6, LDNS},
};

/// The source address of a query as two big-endian words: IPv4 in the top 32 bits of `hi`
/// (the rest zero), IPv6 in both.
pub struct Source {
    pub hi: u64,
    pub lo: u64,
}

/// A trie key laid out as the kernel's `bpf_lpm_trie_key` (u32 prefix length, then the
/// address), aligned so that it is written with whole 32-bit stores: the packed layout would
/// make the compiler store byte by byte.
#[repr(C, align(8))]
pub struct TrieKey {
    prefix_len: u32,
    data: [u32; 4],
}
// Read by the kernel as the tries' keys (aya's packed `Key`): the same offsets, and at least
// as many bytes.
const _: () = {
    assert!(offset_of!(TrieKey, prefix_len) == offset_of!(Key<[u8; 16]>, prefix_len));
    assert!(offset_of!(TrieKey, data) == offset_of!(Key<[u8; 16]>, data));
    assert!(offset_of!(TrieKey, data) == offset_of!(Key<[u8; 4]>, data));
    assert!(size_of::<TrieKey>() >= size_of::<Key<[u8; 16]>>());
};

/// Reads the source address of the IP header at `l3_off`.
#[inline(always)]
pub fn read_source(
    ctx: &aya_ebpf::programs::XdpContext,
    l3_off: usize,
    v6: bool,
) -> Option<Source> {
    read_address(ctx, l3_off + if v6 { 8 } else { 12 }, v6)
}

/// Reads the destination address of the IP header at `l3_off` (of an answer: the client).
#[inline(always)]
pub fn read_destination(
    ctx: &aya_ebpf::programs::XdpContext,
    l3_off: usize,
    v6: bool,
) -> Option<Source> {
    read_address(ctx, l3_off + if v6 { 24 } else { 16 }, v6)
}

/// Reads the IPv6 (`v6`) or IPv4 address at frame offset `at`.
#[inline(always)]
fn read_address(ctx: &aya_ebpf::programs::XdpContext, at: usize, v6: bool) -> Option<Source> {
    if v6 {
        let p = ptr_at(ctx, at, 16)?;
        // SAFETY: 16 bytes checked by `ptr_at`.
        let w = |i: usize| unsafe { u32::from_be(p.add(4 * i).cast::<u32>().read_unaligned()) };
        Some(Source {
            hi: (w(0) as u64) << 32 | w(1) as u64,
            lo: (w(2) as u64) << 32 | w(3) as u64,
        })
    } else {
        let p = ptr_at(ctx, at, 4)?;
        // SAFETY: 4 bytes checked by `ptr_at`.
        let a = unsafe { u32::from_be(p.cast::<u32>().read_unaligned()) };
        Some(Source {
            hi: (a as u64) << 32,
            lo: 0,
        })
    }
}

// By reference on purpose: passed by value, the key is copied with a `memcpy` call.
#[allow(clippy::needless_borrows_for_generic_args)]
/// The class of `src`: the value of the longest prefix containing it, else the default. One
/// class-table lookup per prefix length in use, longest first; the family's LPM trie when
/// it has more lengths than the table takes.
#[inline(always)]
pub fn class_of(src: &Source, v6: bool) -> ClassId {
    let Some(lengths) = CLASS_LENGTHS.get(0) else {
        return DEFAULT_CLASS;
    };
    if (if v6 { lengths.trie6 } else { lengths.trie4 }) != 0 {
        return trie_class_of(src, v6);
    }
    let Some(table) = CLASSES.get(0) else {
        return DEFAULT_CLASS;
    };
    let n = if v6 { lengths.n6 } else { lengths.n4 } as usize;
    for i in 0..MAX_CLASS_LENGTHS {
        if i >= n {
            break;
        }
        let key = if v6 {
            ClassKey::v6(src.hi, src.lo, lengths.v6[i])
        } else {
            ClassKey::v4((src.hi >> 32) as u32, lengths.v4[i])
        };
        // SAFETY: a value of the table in service, valid for this run (RCU).
        if let Some(class) = unsafe { table.get(&key) } {
            return *class;
        }
    }
    DEFAULT_CLASS
}

/// The key of `src` (the whole address) in a trie of its family.
#[inline(always)]
pub fn trie_key(src: &Source, v6: bool) -> TrieKey {
    let mut key = TrieKey {
        prefix_len: 0,
        data: [0; 4],
    };
    let words = core::ptr::addr_of_mut!(key.data).cast::<u32>();
    // SAFETY (all stores): inside `key.data`, 4-byte aligned. Volatile so that the compiler
    // keeps them as word stores instead of a `memset` of the struct.
    unsafe {
        core::ptr::addr_of_mut!(key.prefix_len).write_volatile(if v6 { 128 } else { 32 });
        words.write_volatile(((src.hi >> 32) as u32).to_be());
        words.add(1).write_volatile((src.hi as u32).to_be());
        words.add(2).write_volatile(((src.lo >> 32) as u32).to_be());
        words.add(3).write_volatile((src.lo as u32).to_be());
    }
    key
}

/// The class of `src` from the family's LPM trie.
#[inline(always)]
fn trie_class_of(src: &Source, v6: bool) -> ClassId {
    let key = trie_key(src, v6);
    let found = if v6 {
        // SAFETY: `TrieKey` starts with the layout of the trie's packed key (u32, [u8; 16]).
        let k = unsafe { &*core::ptr::addr_of!(key).cast() };
        CLASS_TRIE6.get(0).and_then(|t| t.get(k)).copied()
    } else {
        // SAFETY: as above, for (u32, [u8; 4]).
        let k = unsafe { &*core::ptr::addr_of!(key).cast() };
        CLASS_TRIE4.get(0).and_then(|t| t.get(k)).copied()
    };
    found.unwrap_or(DEFAULT_CLASS)
}

/// The class and scope of a client subnet's address `addr` (masked to the length honoured)
/// from the family's ECS trie: its ECS partition prefix (`xgslb_common::EcsRegion`). An
/// address the trie does not cover is in the default class with scope 0, as the slow path
/// has it; `None` when no trie is in service.
#[inline(always)]
pub fn ecs_region(addr: &Source, v6: bool) -> Option<EcsRegion> {
    let key = trie_key(addr, v6);
    let found = if v6 {
        // SAFETY: as in `trie_class_of`.
        let k = unsafe { &*core::ptr::addr_of!(key).cast() };
        ECS_TRIE6.get(0)?.get(k).copied()
    } else {
        // SAFETY: as in `trie_class_of`.
        let k = unsafe { &*core::ptr::addr_of!(key).cast() };
        ECS_TRIE4.get(0)?.get(k).copied()
    };
    Some(found.unwrap_or(EcsRegion {
        class: DEFAULT_CLASS,
        scope: 0,
        _pad: 0,
    }))
}

// By reference on purpose: passed by value, the key is copied with a `memcpy` call.
#[allow(clippy::needless_borrows_for_generic_args)]
/// Counts one query in 2^LDNS_SAMPLE_SHIFT by LDNS address and class, so that xgslbd can tell
/// agents which resolvers send the most queries (and are worth probing). `sampled` is this
/// CPU's query count; `key` is scratch space for the map key. The class is worked out here
/// when the lookup did not need it (`known` false): for the sampled queries only.
#[inline(always)]
pub fn sample_ldns(
    sampled: &mut u64,
    key: &mut LdnsKey,
    src: &Source,
    v6: bool,
    class: ClassId,
    known: bool,
) {
    let n = *sampled;
    *sampled = n.wrapping_add(1);
    if n & ((1 << LDNS_SAMPLE_SHIFT) - 1) != 0 {
        return;
    }
    let class = if known { class } else { class_of(src, v6) };
    let words = core::ptr::addr_of_mut!(key.addr).cast::<u64>();
    // SAFETY: `LdnsKey` is 8-aligned and its first 16 bytes are the address; the third word
    // holds class, family and padding. Volatile keeps them whole-word stores (no memset).
    unsafe {
        words.write_volatile(src.hi.to_be());
        words.add(1).write_volatile(src.lo.to_be());
        // Little endian (bpfel): class in bytes 16-17, family in byte 18.
        let tail = (class as u64) | ((if v6 { 6u64 } else { 4 }) << 16);
        words.add(2).write_volatile(tail);
    }
    match LDNS.get_ptr_mut(&*key) {
        // SAFETY: this CPU's value of a per-CPU map; XDP runs with preemption off.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = LDNS.insert(&*key, &1, 0);
        }
    }
}
