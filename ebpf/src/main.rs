//! The xgslb XDP program: answers queries from the answer table with XDP_TX (A and AAAA of
//! answer sets and wide IPs, precomputed static RRsets, NODATA and NXDOMAIN) and passes
//! everything else to the kernel untouched (ARCHITECTURE.md "Data plane").
//!
//! The work is split in stages: the entry parses Ethernet, VLAN, IP and UDP; then global
//! BPF functions verify the UDP checksum, parse the DNS query (and hash its name's
//! suffixes), check its DNS cookie if it has one, write the answer, and apply the response
//! rate limit to it (`rrl`). Why, and the other things done for the verifier's sake:
//! `verifier.rs`.
#![no_std]
#![no_main]
// `atomic_xadd`: BPF has atomic adds, but Rust's atomics offer none on BPF (`rrl`).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod answer;
mod checksum;
mod client;
mod cookie;
mod frame;
mod lookup;
mod maps;
mod parse;
mod reflector;
mod rrl;
mod stats;
mod udp_checksum;
mod verifier;

use aya_ebpf::{
    bindings::{xdp_action, xdp_md},
    macros::xdp,
    programs::XdpContext,
};
use xgslb_common::{Counter, RrlDecision};

use answer::Verdict;

/// Return value of the stage functions that means "go on": the index of `Received`, which is
/// never an outcome.
const STAGE_OK: u32 = Counter::Received as u32;
/// Return value of the parse stage that means "go on, through the cookie stage": the query
/// has a COOKIE option. The index of `Answered`, never a stage's outcome either.
const STAGE_COOKIE: u32 = Counter::Answered as u32;

#[xdp]
pub fn xgslb(ctx: XdpContext) -> u32 {
    let outcome = match parse::parse_l3(&ctx) {
        Err(reason) => reason as u32,
        Ok(l3) => match xgslb_udp_checksum(ctx.ctx, l3.pack()) {
            STAGE_OK => match xgslb_parse_dns(ctx.ctx, l3.pack()) {
                STAGE_OK => answer_limited(ctx.ctx),
                STAGE_COOKIE => match xgslb_cookie(ctx.ctx) {
                    STAGE_OK => answer_limited(ctx.ctx),
                    reason => reason,
                },
                reason => reason,
            },
            reason => reason,
        },
    };
    let answered = answered(outcome);
    stats::count(outcome, answered);
    if answered || outcome == Counter::RrlSlipped as u32 {
        xdp_action::XDP_TX
    } else if outcome == Counter::Dropped as u32
        || outcome == Counter::DropPolicy as u32
        || outcome == Counter::RrlDropped as u32
    {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Whether `outcome` is the kind of an answer (sent whole).
#[inline(always)]
fn answered(outcome: u32) -> bool {
    (Counter::AnsweredAddresses as u32..=Counter::AnsweredNxDomain as u32).contains(&outcome)
}

/// The answer stage, then the rate limit on what it answered whole.
#[inline(always)]
fn answer_limited(ctx: *mut xdp_md) -> u32 {
    match xgslb_answer(ctx) {
        kind if answered(kind) => xgslb_limit(ctx, kind),
        reason => reason,
    }
}

/// Checksum stage: whether the UDP checksum of the datagram `l3` (an `L3` packed) verifies
/// (`udp_checksum::verifies`). The kernel drops a datagram whose checksum is wrong; answering
/// it here would guess. Returns `STAGE_OK` or `Counter::PassUdpChecksum`. A stage of its
/// own: its loop over the datagram's words is walked once, not once per way of reaching it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn xgslb_udp_checksum(ctx: *mut xdp_md, l3: u64) -> u32 {
    let ctx = XdpContext::new(ctx);
    if udp_checksum::verifies(&ctx, parse::L3::unpack(l3)) {
        STAGE_OK
    } else {
        Counter::PassUdpChecksum as u32
    }
}

/// Parse stage: the DNS query of the datagram `l3` (an `L3` packed) describes, into this
/// CPU's scratch (name, label offsets, suffix hashes, `ParsedQuery`). Returns `STAGE_OK`,
/// `STAGE_COOKIE` for a query with a COOKIE option, or a pass counter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn xgslb_parse_dns(ctx: *mut xdp_md, l3: u64) -> u32 {
    let ctx = XdpContext::new(ctx);
    let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
        return Counter::PassBadSelection as u32;
    };
    // SAFETY: this CPU's scratch value; XDP runs with preemption off, so nothing else uses
    // it until this frame is done.
    let scratch = unsafe { &mut *scratch };
    match parse::parse_dns(&ctx, scratch, parse::L3::unpack(l3)) {
        Ok(q) => {
            scratch.query = q;
            if q.cookie_off != 0 {
                STAGE_COOKIE
            } else {
                STAGE_OK
            }
        }
        Err(reason) => reason as u32,
    }
}

/// Cookie stage: checks the COOKIE option of the query in this CPU's scratch and makes the
/// response's (`cookie::check`), for queries that have one. Returns `STAGE_OK` or a pass
/// counter. A stage of its own: SipHash is long, and walked once here.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn xgslb_cookie(ctx: *mut xdp_md) -> u32 {
    let ctx = XdpContext::new(ctx);
    let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
        return Counter::PassBadSelection as u32;
    };
    // SAFETY: as in `xgslb_parse_dns`.
    let scratch = unsafe { &mut *scratch };
    match cookie::check(&ctx, scratch) {
        Ok(()) => STAGE_OK,
        Err(reason) => reason as u32,
    }
}

/// Answer stage: answers the query in this CPU's scratch in place. Returns the answered-kind
/// counter (XDP_TX), `Counter::Dropped` or `Counter::DropPolicy` (XDP_DROP), or a pass
/// counter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn xgslb_answer(ctx: *mut xdp_md) -> u32 {
    let ctx = XdpContext::new(ctx);
    let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
        return Counter::PassBadSelection as u32;
    };
    // SAFETY: as in `xgslb_parse_dns`.
    let scratch = unsafe { &mut *scratch };
    match answer::answer(&ctx, scratch) {
        Ok(kind) => kind as u32,
        Err(Verdict::Pass(reason)) => reason as u32,
        Err(Verdict::Drop) => Counter::Dropped as u32,
        Err(Verdict::DropPolicy) => Counter::DropPolicy as u32,
    }
}

/// Limit stage: the response rate limit (`rrl`) on the answer of kind `kind` the answer
/// stage wrote. Returns `kind` (the answer goes out, and counts in its answer and ECS
/// counters), `Counter::RrlSlipped` (the frame is now the slipped reply: XDP_TX),
/// `Counter::RrlDropped` (XDP_DROP) or `Counter::Dropped` (the slipped reply could not be
/// finished). A stage of its own: verified once, not once per way the answer stage ends.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn xgslb_limit(ctx: *mut xdp_md, kind: u32) -> u32 {
    let ctx = XdpContext::new(ctx);
    let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
        return kind;
    };
    // SAFETY: as in `xgslb_parse_dns`.
    let scratch = unsafe { &mut *scratch };
    match rrl::decide(&ctx, scratch) {
        RrlDecision::Answer => {
            stats::count_answer(scratch);
            kind
        }
        RrlDecision::Drop => Counter::RrlDropped as u32,
        RrlDecision::Slip => match rrl::slip(&ctx, scratch) {
            Ok(()) => Counter::RrlSlipped as u32,
            Err(()) => Counter::Dropped as u32,
        },
    }
}

/// Fallback stage: for a question without an entry of its own, which name's fallback entry
/// answers it (`lookup::fallback`). A stage of its own so that the verifier walks the label
/// loop once, not once for every way the answer stage goes on from each label.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn xgslb_fallback(labels: u64) -> u32 {
    let Some(scratch) = maps::SCRATCH.get_ptr(0) else {
        return lookup::FALLBACK_MISS;
    };
    // SAFETY: as in `xgslb_parse_dns`; only read here.
    lookup::fallback(unsafe { &*scratch }, labels as usize)
}

/// The program has no panicking paths; were one to appear, this infinite loop makes the
/// verifier reject the program instead of letting it misbehave.
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
