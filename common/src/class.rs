//! The client class of a source address without a trie walk: the class table is a hash map
//! from masked prefixes to classes, and the XDP program looks up the source address masked
//! to each prefix length in use, longest first: one hash lookup per length until one hits
//! (an LPM trie costs about 135 ns at 10k prefixes; a hash lookup a small fraction of it).
//! A family with more lengths than `MAX_CLASS_LENGTHS` (or an IPv6 prefix longer than
//! `MAX_HASHED_V6_LEN`) is looked up in its LPM trie instead (`ClassLengths::trie4/6`).
use bytemuck::{Pod, Zeroable};

use crate::high_mask;

/// A client class: the value of the class table and of the class tries (keyed by the
/// kernel's LPM layout: a u32 prefix length in bits, then the address in network order,
/// `[u8; 4]` or `[u8; 16]`), and the class of an answer-table entry (`EntryHead::class`)
/// and of an LDNS sample (`LdnsKey::class`). One width everywhere: what a trie gives the
/// program is what it looks up.
pub type ClassId = u16;
/// Client class of an address no prefix covers; also the fallback of every lookup, so it
/// is the class of the entries that serve every client (`ANY_CLASS`).
pub const DEFAULT_CLASS: ClassId = 0;
const _: () = assert!(DEFAULT_CLASS == crate::ANY_CLASS);

/// Prefix lengths per family the program tries in the class table.
pub const MAX_CLASS_LENGTHS: usize = 8;
/// Longest IPv6 prefix the class table holds: the key keeps the length in the low byte of
/// the address, which a prefix of at most 120 bits leaves zero.
pub const MAX_HASHED_V6_LEN: u8 = 120;
/// The low word of every IPv4 key: no IPv6 key has 255 in its low byte (lengths <= 120).
const V4_TAG: u64 = 0xff;

/// Key of the class table: an address masked to a prefix length, with the length.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ClassKey {
    pub hi: u64,
    pub lo: u64,
}
layout!(ClassKey, 16, { hi: 0, lo: 8 });

impl ClassKey {
    /// The key of IPv4 address `addr` (host order) masked to `len` bits (0..=32).
    #[inline(always)]
    pub const fn v4(addr: u32, len: u8) -> Self {
        let masked = (addr as u64) << 32 & high_mask(len as u32);
        Self {
            hi: masked | len as u64,
            lo: V4_TAG,
        }
    }

    /// The key of IPv6 address `hi`:`lo` (two big-endian words) masked to `len` bits
    /// (0..=MAX_HASHED_V6_LEN).
    #[inline(always)]
    pub const fn v6(hi: u64, lo: u64, len: u8) -> Self {
        let bits = len as u32;
        let lo_bits = bits.saturating_sub(64);
        Self {
            hi: hi & high_mask(if bits < 64 { bits } else { 64 }),
            lo: (lo & high_mask(lo_bits)) | len as u64,
        }
    }
}

/// The prefix lengths in the class table, longest first, per family; and which family is
/// looked up in its trie instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ClassLengths {
    pub v4: [u8; MAX_CLASS_LENGTHS],
    pub v6: [u8; MAX_CLASS_LENGTHS],
    /// Lengths in use in `v4` and `v6`.
    pub n4: u8,
    pub n6: u8,
    /// 1: this family's classes are in its LPM trie (too many lengths for the table).
    pub trie4: u8,
    pub trie6: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 4],
}
layout!(ClassLengths, 24, { v4: 0, v6: 8, n4: 16, n6: 17, trie4: 18, trie6: 19, _pad: 20 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_mask_and_tell_lengths_and_families_apart() {
        let a = u32::from_be_bytes([198, 18, 64, 7]);
        let b = u32::from_be_bytes([198, 18, 64, 200]);
        assert_eq!(ClassKey::v4(a, 24), ClassKey::v4(b, 24));
        assert_ne!(ClassKey::v4(a, 24), ClassKey::v4(a, 25));
        assert_ne!(ClassKey::v4(a, 32), ClassKey::v4(b, 32));
        assert_eq!(ClassKey::v4(a, 0), ClassKey::v4(0, 0));
        let hi = 0x2001_0db8_0000_0001;
        assert_eq!(ClassKey::v6(hi, 5, 64), ClassKey::v6(hi, 9, 64));
        assert_ne!(ClassKey::v6(hi, 5, 64), ClassKey::v6(hi, 5, 56));
        assert_eq!(ClassKey::v6(hi, 0x1234, 112), ClassKey::v6(hi, 0x12ff, 112));
        assert_ne!(ClassKey::v6(hi, 0x1234, 120), ClassKey::v6(hi, 0x1334, 120));
        // No IPv6 key is an IPv4 key.
        assert_ne!(ClassKey::v6(a as u64, 0xff, 0).lo, ClassKey::v4(a, 0).lo);
    }
}
