//! Response rate limiting (RRL) of UDP responses, as both paths apply it (Knot DNS's RRL is
//! the reference: a rate per client prefix and response class, slip, exempt prefixes).
//!
//! # The algorithm (one, for the XDP program and the slow path)
//! A response's **bucket** is the client's address masked to `RrlConfig::prefix4` or
//! `prefix6` bits and the response's class (`RrlClass::of`: its header's RCODE and answer
//! count). When a UDP response is about to go to a client that is not exempt and `rate` is
//! not 0, at whole second `t` of CLOCK_MONOTONIC_COARSE (`bpf_ktime_get_coarse_ns` in the
//! program, `clock_gettime(CLOCK_MONOTONIC_COARSE)` in user space: the same clock, read
//! without the cycle counter; a tick's resolution is plenty for whole seconds), its bucket
//! {second, count, limited} is accounted (`RrlBucket::account`):
//! 1. if `second != t`: `count = 0`, `limited = 0`, `second = t`;
//! 2. `count += 1`; if `count <= rate`, the response goes out (`RrlDecision::Answer`);
//! 3. else `limited += 1`; if `slip > 0` and `limited % slip == 0`, the slipped reply goes
//!    out (`Slip`: the response's header with TC=1 and its RCODE, its question, and of its
//!    records only the OPT, byte for byte as the full response has it), else nothing
//!    (`Drop`).
//!
//! A bucket nobody has used this second decides exactly as a missing one, so a table may
//! evict any such bucket without changing a decision. An exempt client (today: its source
//! is in an exempt prefix) is answered without touching its bucket.
//!
//! Each path counts only its own responses (the program's table is not the slow path's):
//! a client whose queries go to both gets up to `rate` from each.
//!
//! In the program, the counts go up by atomic adds on a bucket shared by every CPU (the slow
//! path locks its table instead), but the reset in step 1 is not atomic with them: two CPUs
//! starting a bucket's second at once both reset it, and an add that falls between another
//! CPU's check and reset is lost. That is benign: at a second's boundary a few responses may
//! be counted in the other second, so a limit is overshot (or reached early) by at most one
//! response per CPU and second.
use bytemuck::{Pod, Zeroable};

use crate::{flags, mask_prefix};

/// Buckets each path keeps at most (the program's LRU map; the slow path's table). A
/// flood from one prefix uses one bucket per class; only more prefixes than this active
/// in one second make a path forget a count (an evicted bucket starts again from zero).
pub const RRL_TABLE_ENTRIES: u32 = 65_536;
/// Exempt prefixes per family at most (the size of each of the program's exempt tries).
pub const MAX_RRL_EXEMPT: u32 = 1024;
/// Largest `RrlConfig::rate` (responses per second per bucket) and `slip` accepted.
pub const MAX_RRL_RATE: u32 = 1_000_000;
pub const MAX_RRL_SLIP: u32 = 100;

/// How the XDP program limits responses (one entry of `map_names::RRL_CONFIG`); all zero
/// (rate 0) is off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RrlConfig {
    /// Responses per second per bucket; 0: no limit.
    pub rate: u32,
    /// Every `slip`-th limited response goes out slipped; 0: none, all are dropped.
    pub slip: u32,
    /// Bits of an IPv4 and of an IPv6 client address that make its bucket's prefix.
    pub prefix4: u8,
    pub prefix6: u8,
    /// 1 when the family's exempt trie holds prefixes (else the program skips the lookup).
    pub exempt4: u8,
    pub exempt6: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 4],
}
layout!(RrlConfig, 16, {
    rate: 0, slip: 4, prefix4: 8, prefix6: 9, exempt4: 10, exempt6: 11, _pad: 12,
});

/// What a response is, for its bucket. Classes keep a flood of one kind (say NXDOMAIN for
/// random names) from using up a resolver's budget for another (its real answers).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RrlClass {
    /// NOERROR with answers (referrals, with none, are `NoData`, as in Knot).
    Positive = 0,
    /// NOERROR without answers.
    NoData = 1,
    /// NXDOMAIN.
    NxDomain = 2,
    /// Any other RCODE (REFUSED, FORMERR, SERVFAIL, NOTIMP, ...: only the slow path sends
    /// these).
    Error = 3,
}

impl RrlClass {
    /// Every class, in value order.
    pub const ALL: [RrlClass; 4] = [Self::Positive, Self::NoData, Self::NxDomain, Self::Error];

    /// The class of a response with header flags `flags` and answer count `ancount`. The
    /// header's 4-bit RCODE decides (an extended RCODE in the OPT, such as BADVERS, is not
    /// looked at: its header RCODE is NOERROR, so it counts as `NoData`).
    #[inline(always)]
    pub const fn of(flags: u16, ancount: u16) -> Self {
        match flags & flags::RCODE {
            0 if ancount == 0 => Self::NoData,
            0 => Self::Positive,
            3 => Self::NxDomain,
            _ => Self::Error,
        }
    }

    /// Stable snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::NoData => "nodata",
            Self::NxDomain => "nxdomain",
            Self::Error => "error",
        }
    }
}

/// What becomes of one response (step 2 and 3 of the algorithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RrlDecision {
    /// Send the response.
    Answer,
    /// Send the slipped reply instead (TC=1: a real client retries over TCP).
    Slip,
    /// Send nothing.
    Drop,
}

/// Key of a bucket: the client's address masked to its family's prefix length, as two
/// host-order words (IPv4 in the top 32 bits of `hi`), and the class and family.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct RrlKey {
    pub hi: u64,
    pub lo: u64,
    /// `RrlClass` in the low byte, the family (4 or 6) in the next.
    pub tag: u64,
}
layout!(RrlKey, 24, { hi: 0, lo: 8, tag: 16 });

impl RrlKey {
    /// The bucket of a `class` response to address `hi`:`lo` (IPv6 if `v6`) under `config`.
    #[inline(always)]
    pub const fn new(hi: u64, lo: u64, v6: bool, class: RrlClass, config: &RrlConfig) -> Self {
        let bits = if v6 {
            config.prefix6 as u32
        } else {
            config.prefix4 as u32
        };
        let (hi, lo) = mask_prefix(hi, lo, bits);
        let family: u64 = if v6 { 6 } else { 4 };
        Self {
            hi,
            lo,
            tag: class as u64 | family << 8,
        }
    }
}

/// A bucket's state (the value of the program's `map_names::RRL` map, and of the slow
/// path's table): the second it counts, and that second's responses and limited ones.
/// Whole words: BPF has 64-bit atomics only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RrlBucket {
    pub second: u64,
    pub count: u64,
    pub limited: u64,
}
layout!(RrlBucket, 24, { second: 0, count: 8, limited: 16 });

impl RrlBucket {
    /// A bucket with nothing counted in second `second`.
    pub const fn new(second: u32) -> Self {
        Self {
            second: second as u64,
            count: 0,
            limited: 0,
        }
    }

    /// Accounts one response at second `now` with `rate` responses per second and `slip`
    /// (the algorithm's steps 1 to 3; `rate` is not 0), on a bucket no one else touches
    /// meanwhile (the slow path's table holds a lock).
    pub fn account(&mut self, now: u32, rate: u32, slip: u32) -> RrlDecision {
        let add_one = |p: *mut u64| {
            // SAFETY: a field of this bucket, borrowed exclusively.
            unsafe {
                *p = (*p).wrapping_add(1);
                *p
            }
        };
        // SAFETY: `self` is a valid bucket; `add_one` adds one and returns the sum.
        unsafe { Self::account_at(self, now, rate, slip, add_one) }
    }

    /// The algorithm's steps 1 to 3 on the bucket at `bucket`, which other CPUs may account
    /// at the same time: the counts go up through `add_one` (atomically: the XDP program's
    /// BPF atomic add), the rest are single word loads and stores.
    ///
    /// # Safety
    /// `bucket` points at a valid bucket for the call; `add_one(p)` adds 1 to the word at
    /// `p` and returns its value after (which, read back after an atomic add, may include
    /// other CPUs' adds since: at the limit, two CPUs may then both find themselves over it,
    /// and one more response is limited than would have been; benign too).
    #[inline(always)]
    pub unsafe fn account_at(
        bucket: *mut RrlBucket,
        now: u32,
        rate: u32,
        slip: u32,
        add_one: impl Fn(*mut u64) -> u64,
    ) -> RrlDecision {
        let now = now as u64;
        // SAFETY: fields of the caller's valid bucket.
        let (second, count, limited) = unsafe {
            (
                core::ptr::addr_of_mut!((*bucket).second),
                core::ptr::addr_of_mut!((*bucket).count),
                core::ptr::addr_of_mut!((*bucket).limited),
            )
        };
        // SAFETY: as above; volatile: each a single load or store the compiler keeps in
        // this order, for the other CPUs.
        unsafe {
            if second.read_volatile() != now {
                // The counts first: a CPU that sees the new second sees them reset.
                count.write_volatile(0);
                limited.write_volatile(0);
                second.write_volatile(now);
            }
        }
        if add_one(count) <= rate as u64 {
            return RrlDecision::Answer;
        }
        let limited = add_one(limited);
        if slip != 0 && limited.is_multiple_of(slip as u64) {
            RrlDecision::Slip
        } else {
            RrlDecision::Drop
        }
    }
}

/// Whole seconds of a CLOCK_MONOTONIC_COARSE time in nanoseconds: the `now` of `account`.
#[inline(always)]
pub const fn rrl_second(monotonic_ns: u64) -> u32 {
    (monotonic_ns / 1_000_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_rcode_and_the_answer_count() {
        assert_eq!(RrlClass::of(0x8400, 1), RrlClass::Positive);
        assert_eq!(RrlClass::of(0x8400, 0), RrlClass::NoData);
        assert_eq!(RrlClass::of(0x8403, 0), RrlClass::NxDomain);
        for rcode in [1, 2, 4, 5, 9, 15] {
            assert_eq!(RrlClass::of(0x8000 | rcode, 0), RrlClass::Error);
        }
    }

    #[test]
    fn a_bucket_answers_rate_then_slips_every_slipth() {
        let mut b = RrlBucket::new(7);
        let got: [RrlDecision; 8] = core::array::from_fn(|_| b.account(7, 3, 2));
        use RrlDecision::*;
        assert_eq!(got, [Answer, Answer, Answer, Drop, Slip, Drop, Slip, Drop]);
        // A new second starts again.
        assert_eq!(b.account(8, 3, 2), Answer);
        assert_eq!(b.second, 8);
        // Slip 1: every limited response slips; slip 0: none.
        let mut b = RrlBucket::new(0);
        assert_eq!([b.account(0, 1, 1), b.account(0, 1, 1)], [Answer, Slip]);
        let mut b = RrlBucket::new(0);
        assert_eq!([b.account(0, 1, 0), b.account(0, 1, 0)], [Answer, Drop]);
    }

    #[test]
    fn a_stale_bucket_decides_as_a_new_one() {
        let (mut stale, mut fresh) = (RrlBucket::new(1), RrlBucket::new(5));
        for _ in 0..10 {
            stale.account(1, 2, 3);
        }
        for _ in 0..10 {
            assert_eq!(stale.account(5, 2, 3), fresh.account(5, 2, 3));
        }
    }

    #[test]
    fn keys_mask_the_address_and_keep_class_and_family_apart() {
        let c = RrlConfig {
            rate: 1,
            slip: 2,
            prefix4: 24,
            prefix6: 56,
            exempt4: 0,
            exempt6: 0,
            _pad: [0; 4],
        };
        let v4 = |a: [u8; 4]| (u32::from_be_bytes(a) as u64) << 32;
        let k = RrlKey::new(v4([198, 18, 7, 9]), 0, false, RrlClass::Positive, &c);
        assert_eq!(
            k,
            RrlKey::new(v4([198, 18, 7, 200]), 0, false, RrlClass::Positive, &c)
        );
        assert_ne!(
            k,
            RrlKey::new(v4([198, 18, 8, 9]), 0, false, RrlClass::Positive, &c)
        );
        assert_ne!(
            k,
            RrlKey::new(v4([198, 18, 7, 9]), 0, false, RrlClass::NxDomain, &c)
        );
        assert_ne!(
            k,
            RrlKey::new(v4([198, 18, 7, 9]), 0, true, RrlClass::Positive, &c)
        );
        let hi = 0x2001_0db8_0000_1200u64;
        assert_eq!(
            RrlKey::new(hi, 1, true, RrlClass::Error, &c),
            RrlKey::new(hi | 0xff, u64::MAX, true, RrlClass::Error, &c)
        );
    }
}
