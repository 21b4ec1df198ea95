//! EDNS Client Subnet (RFC 7871) as both paths apply it: a query's client subnet, masked to
//! the longest source prefix honoured, stands for the client (its class, its persist hash),
//! and the response echoes the option with a scope: the widest prefix around that address
//! over which the name's answer is the same.
//!
//! The scope comes from the ECS partition: the class prefixes cut into the fewest prefixes
//! that each lie inside one class's addresses with no other class's prefix inside them
//! (every address of the family is in exactly one). An address's partition prefix gives its
//! class and, as its length, the scope of every answer that depends on the class. Its
//! tries hold exactly the partition, so the longest match is the partition prefix.
use bytemuck::{Pod, Zeroable};

use crate::ClassId;

/// What a wide IP does with a query's client subnet (`AnswerSet::ecs`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcsUse {
    /// The subnet stands for the client (class, persist), and the scope says what the answer
    /// depended on.
    Honor = 0,
    /// The query's source address stands for the client; the response's scope is 0.
    Ignore = 1,
}

impl EcsUse {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Honor),
            1 => Some(Self::Ignore),
            _ => None,
        }
    }
}

/// Default longest IPv4 source prefix honoured (RFC 7871 11.1 recommends /24 at most).
pub const ECS_MAX_V4: u8 = 24;
/// Default longest IPv6 source prefix honoured (RFC 7871 11.1 recommends /56 at most).
pub const ECS_MAX_V6: u8 = 56;

/// Value of the ECS tries: the class of every address under the key's prefix, and that
/// prefix's length (the scope of an answer that depends on the class).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EcsRegion {
    pub class: ClassId,
    pub scope: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
}
layout!(EcsRegion, 4, { class: 0, scope: 2, _pad: 3 });

/// How the XDP program treats a query's client subnet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EcsConfig {
    /// 1: the program answers queries with a client subnet (the ECS tries in service match
    /// the class table); 0: it passes them to the slow path (before the first publication,
    /// and when only some resolvers' subnets are trusted: the slow path checks the source).
    pub answer: u8,
    /// Longest source prefix honoured, per family: a longer one is cut to it (RFC 7871
    /// 7.1.2), and the scope never exceeds it.
    pub max4: u8,
    pub max6: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 5],
}
layout!(EcsConfig, 8, { answer: 0, max4: 1, max6: 2, _pad: 3 });

/// Length of the ECS stats array: one counter per (family, scope), IPv4 scopes 0..=32 first,
/// then IPv6 scopes 0..=128.
pub const ECS_STATS_LEN: u32 = 33 + 129;

/// Index in the ECS stats of an answer to a client subnet of family `v6` with scope `scope`
/// (clamped to the family's longest).
#[inline(always)]
pub const fn ecs_stat_index(v6: bool, scope: u8) -> u32 {
    if v6 {
        33 + if scope > 128 { 128 } else { scope as u32 }
    } else if scope > 32 {
        32
    } else {
        scope as u32
    }
}

/// The (family `v6`, scope) counted at ECS stats index `index`: `ecs_stat_index` undone.
pub const fn ecs_stat_of(index: u32) -> Option<(bool, u8)> {
    if index < 33 {
        Some((false, index as u8))
    } else if index < ECS_STATS_LEN {
        Some((true, (index - 33) as u8))
    } else {
        None
    }
}

/// The scope of an answer: `by_class` (the client's partition prefix length) when the
/// answer depends on the class, else 0; widened to the persist mask when the pick hashes
/// the address; never past `honoured`, the source prefix length the answer used.
#[inline(always)]
pub const fn ecs_scope(by_class: Option<u8>, persist: Option<u8>, honoured: u8) -> u8 {
    let mut s = match by_class {
        Some(l) => l,
        None => 0,
    };
    if let Some(p) = persist
        && p > s
    {
        s = p;
    }
    if s > honoured { honoured } else { s }
}

/// ECS FAMILY of IPv4 (RFC 7871 6, the IANA address family numbers).
pub const ECS_FAMILY_V4: u16 = 1;
/// ECS FAMILY of IPv6.
pub const ECS_FAMILY_V6: u16 = 2;

/// An address as two big-endian words (IPv4 in the top 32 bits of `hi`, as the program reads
/// addresses) masked to its first `bits` bits (0..=128).
#[inline(always)]
pub const fn mask_prefix(hi: u64, lo: u64, bits: u32) -> (u64, u64) {
    let hi_bits = if bits > 64 { 64 } else { bits };
    let lo_bits = bits.saturating_sub(64);
    (
        hi & crate::high_mask(hi_bits),
        lo & crate::high_mask(lo_bits),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_prefix_keeps_exactly_the_prefix() {
        let (hi, lo) = (0x2001_0db8_ffff_ffff_u64, u64::MAX);
        assert_eq!(mask_prefix(hi, lo, 0), (0, 0));
        assert_eq!(mask_prefix(hi, lo, 32), (0x2001_0db8_0000_0000, 0));
        assert_eq!(mask_prefix(hi, lo, 64), (hi, 0));
        assert_eq!(mask_prefix(hi, lo, 72), (hi, 0xff00_0000_0000_0000));
        assert_eq!(mask_prefix(hi, lo, 128), (hi, lo));
    }

    #[test]
    fn the_scope_is_the_widest_dependency_within_the_honoured_length() {
        assert_eq!(ecs_scope(None, None, 24), 0);
        assert_eq!(ecs_scope(Some(20), None, 24), 20);
        assert_eq!(ecs_scope(Some(20), None, 16), 16);
        assert_eq!(ecs_scope(Some(17), Some(28), 24), 24);
        assert_eq!(ecs_scope(None, Some(20), 24), 20);
        assert_eq!(ecs_stat_index(false, 40), 32);
        assert_eq!(ecs_stat_index(true, 0), 33);
        assert_eq!(ecs_stat_index(true, 200), ECS_STATS_LEN - 1);
        for i in 0..ECS_STATS_LEN {
            let (v6, scope) = ecs_stat_of(i).unwrap();
            assert_eq!(ecs_stat_index(v6, scope), i);
        }
        assert_eq!(ecs_stat_of(ECS_STATS_LEN), None);
    }
}
