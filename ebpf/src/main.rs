//! The xgslb XDP program: answers A queries for published selections with XDP_TX and passes
//! everything else to the kernel untouched (ARCHITECTURE.md "Data plane").
//!
//! The work is split in three stages: the entry parses Ethernet, VLAN, IP and UDP; then two
//! global BPF functions parse the DNS query and write the answer. The verifier checks a global
//! function once, on its own, with its arguments unknown: without the split it would walk the
//! answer stage once for every way of reaching it (every name length, VLAN count, address
//! family, option count) and give up at its 1M-instruction limit.
#![no_std]
#![no_main]

mod answer;
mod checksum;
mod maps;
mod parse;
mod reflector;
mod region;
mod stats;

use aya_ebpf::{
    bindings::{xdp_action, xdp_md},
    macros::xdp,
    programs::XdpContext,
};
use xgslb_common::Counter;

use answer::Verdict;

/// Return value of the stage functions that means "go on": the index of `Received`, which is
/// never an outcome.
const STAGE_OK: u32 = Counter::Received as u32;

#[xdp]
pub fn xgslb(ctx: XdpContext) -> u32 {
    let outcome = match parse::parse_l3(&ctx) {
        Err(reason) => reason as u32,
        Ok(l3) => match xgslb_parse_dns(ctx.ctx, l3.pack()) {
            STAGE_OK => xgslb_answer(ctx.ctx),
            reason => reason,
        },
    };
    if outcome == STAGE_OK {
        stats::count(Counter::Answered as u32);
        xdp_action::XDP_TX
    } else if outcome == Counter::Dropped as u32 || outcome == Counter::DropPolicy as u32 {
        stats::count(outcome);
        xdp_action::XDP_DROP
    } else {
        stats::count(outcome);
        xdp_action::XDP_PASS
    }
}

/// Parse stage: the DNS query of the datagram `l3` (an `L3` packed) describes, into this
/// CPU's scratch (selection key and `ParsedQuery`). Returns `STAGE_OK` or a pass counter.
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
    // The name is written whole by the parse (copied, then cleared past its end).
    scratch.key.qtype = 0;
    scratch.key.region = 0;
    match parse::parse_dns(&ctx, &mut scratch.key, parse::L3::unpack(l3)) {
        Ok(q) => {
            scratch.query = q;
            STAGE_OK
        }
        Err(reason) => reason as u32,
    }
}

/// Answer stage: answers the query in this CPU's scratch in place. Returns `STAGE_OK`
/// (XDP_TX), `Counter::Dropped` or `Counter::DropPolicy` (XDP_DROP), or a pass counter.
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
        Ok(()) => STAGE_OK,
        Err(Verdict::Pass(reason)) => reason as u32,
        Err(Verdict::Drop) => Counter::Dropped as u32,
        Err(Verdict::DropPolicy) => Counter::DropPolicy as u32,
    }
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
