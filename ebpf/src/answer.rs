//! Turning a parsed query into its answer in place: look up the selection, pick the records,
//! resize the frame, swap addresses, write the header, the records and the OPT, checksum.
use aya_ebpf::{helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use xgslb_common::{
    Action, AnswerSet, Counter, DEFAULT_CLASS, EDNS_UDP_SIZE, MAX_ADDRS, MAX_ANSWER_STATS,
    PickMode, Scratch, SelectionKey,
};

use crate::{
    checksum::{at_parity, finish_udp, fold, sum_be16, sum_u32},
    maps::{ANSWERS, PICK, SELECTIONS},
    parse::{
        DNS_HLEN, ETH_HLEN, IPV4_HLEN, IPV6_HLEN, MAX_PKT_OFF, OPT_FIXED_LEN, UDP_HLEN, flags,
        load_be16, opaque, ptr_at,
    },
    region::{class_of, read_source, sample_ldns},
};

/// Why the program does not answer.
pub enum Verdict {
    /// Hand the frame to the kernel untouched, counting the reason.
    Pass(Counter),
    /// The frame was already resized and cannot be finished; it is not valid to pass.
    Drop,
    /// The selection says drop (Drop Packet).
    DropPolicy,
}

/// One A record: owner C0 0C (the question name), type, class, TTL, RDLENGTH 4, address.
const A_RR_LEN: usize = 16;
/// TTL of the IP header of answers, as the kernel's default.
const REPLY_TTL: u8 = 64;

#[inline(always)]
unsafe fn store_be16(p: *mut u8, v: u16) {
    unsafe { p.cast::<u16>().write_unaligned(v.to_be()) }
}

#[inline(always)]
unsafe fn swap_bytes<const N: usize>(a: *mut u8, b: *mut u8) {
    unsafe { core::ptr::swap_nonoverlapping(a.cast::<[u8; N]>(), b.cast::<[u8; N]>(), 1) }
}

/// The answer set for `key` and the client's class: the class's own, else the default
/// class's (the balancer publishes a class only where its answer differs from the default).
// By reference on purpose: passed by value, the key is copied with a `memcpy` call.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn lookup_selection(key: &mut SelectionKey, class: u32) -> Result<&AnswerSet, Verdict> {
    let table = SELECTIONS
        .get(0)
        .ok_or(Verdict::Pass(Counter::PassNoSelection))?;
    if class != DEFAULT_CLASS as u32 {
        key.region = class as u16;
        if let Some(set) = table.get_ptr(&*key) {
            // SAFETY: the element stays valid for this program run (RCU, no-prealloc table).
            return Ok(unsafe { &*set });
        }
    }
    key.region = DEFAULT_CLASS;
    let set = table
        .get_ptr(&*key)
        .ok_or(Verdict::Pass(Counter::PassNoSelection))?;
    // SAFETY: as above.
    Ok(unsafe { &*set })
}

/// Answers `q` in place; `Ok` means the frame is ready for XDP_TX.
#[inline(always)]
pub fn answer(ctx: &XdpContext, scratch: &mut Scratch) -> Result<(), Verdict> {
    let q = &scratch.query;
    // The query arrives through map memory: bound what becomes an offset again.
    let l3_off = q.l3_off as usize;
    let tail_off = q.tail_off as usize;
    if l3_off > ETH_HLEN + 8 || tail_off > MAX_PKT_OFF {
        return Err(Verdict::Pass(Counter::PassTruncated));
    }
    let v6 = q.v6 != 0;
    let src = read_source(ctx, l3_off, v6).ok_or(Verdict::Pass(Counter::PassTruncated))?;
    let class = class_of(&src, v6);
    sample_ldns(&mut scratch.sampled, &mut scratch.ldns, &src, v6, class);
    let set = lookup_selection(&mut scratch.key, class)?;
    match Action::from_u8(set.action) {
        Some(Action::Answer) => {}
        Some(Action::SlowPath) => return Err(Verdict::Pass(Counter::PassSlowPath)),
        Some(Action::Drop) => return Err(Verdict::DropPolicy),
        None => return Err(Verdict::Pass(Counter::PassBadSelection)),
    }
    let records = set.records as usize;
    if records == 0 || records > set.count as usize {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    }
    let pick = match PickMode::from_u8(set.pick) {
        Some(PickMode::Counter) => match PICK.get_ptr_mut(0) {
            // SAFETY: this CPU's counter; XDP runs with preemption off.
            Some(c) => unsafe {
                let v = *c;
                *c = v.wrapping_add(1);
                v
            },
            None => return Err(Verdict::Pass(Counter::PassBadSelection)),
        },
        Some(PickMode::Persist) => set.persist_pick(src.hi, src.lo, v6),
        None => return Err(Verdict::Pass(Counter::PassBadSelection)),
    };
    let Some(lead) = set.answer_index(pick, 0) else {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    };
    let stat = set.stat;

    let has_opt = q.has_opt != 0;
    let ip_hlen = if v6 { IPV6_HLEN } else { IPV4_HLEN };
    let udp_off = l3_off + ip_hlen;
    let ans_off = tail_off + 4;
    let opt_off = ans_off + records * A_RR_LEN;
    let new_len = opt_off + if has_opt { OPT_FIXED_LEN } else { 0 };
    let udp_len = new_len - udp_off;
    let delta = new_len as i32 - (ctx.data_end() - ctx.data()) as i32;
    if delta != 0 {
        // SAFETY: plain helper call on this program's context.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
            return Err(Verdict::Pass(Counter::PassResize));
        }
    }
    // From here on the frame is no longer the query: any failure drops it.

    // The answer records, summed as a stream starting at the question's type field.
    let mut tail_sum = 1u32 + 1; // QTYPE A, QCLASS IN
    let ttl = set.ttl;
    for i in 0..MAX_ADDRS {
        if i >= records {
            break;
        }
        let idx = set.answer_index(pick, i as u32).ok_or(Verdict::Drop)? as usize;
        // The verifier cannot bound a modulo; the compiler knows idx < MAX_ADDRS and would
        // drop a plain mask, so the mask goes on a value it cannot see through.
        let idx = opaque(idx) & (MAX_ADDRS - 1);
        let addr = set.addrs.get(idx).ok_or(Verdict::Drop)?;
        let p = ptr_at(ctx, ans_off + i * A_RR_LEN, A_RR_LEN).ok_or(Verdict::Drop)?;
        let mut rr = [0u8; A_RR_LEN];
        rr[0] = 0xc0;
        rr[1] = 0x0c;
        rr[3] = 1;
        rr[5] = 1;
        rr[6..10].copy_from_slice(&ttl.to_be_bytes());
        rr[11] = 4;
        rr[12..16].copy_from_slice(&addr[..4]);
        // SAFETY: `p` has A_RR_LEN bytes in the frame.
        unsafe { p.cast::<[u8; A_RR_LEN]>().write_unaligned(rr) };
        tail_sum += 0xc00c + 1 + 1 + sum_u32(ttl) + 4;
        tail_sum += sum_u32(u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]));
    }
    if has_opt {
        let p = ptr_at(ctx, opt_off, OPT_FIXED_LEN).ok_or(Verdict::Drop)?;
        let size = EDNS_UDP_SIZE.to_be_bytes();
        let do_bit = if q.dnssec_ok != 0 { 0x80 } else { 0 };
        let opt = [0, 0, 41, size[0], size[1], 0, 0, do_bit, 0, 0, 0];
        // SAFETY: `p` has OPT_FIXED_LEN bytes in the frame.
        unsafe { p.cast::<[u8; OPT_FIXED_LEN]>().write_unaligned(opt) };
        // The OPT starts at an even stream offset, an odd number of bytes into its record, so
        // its words straddle fields: 00 00 | 29 size_hi | size_lo 00 | 00 DO | 00 00 | 00.
        tail_sum += 0x2900 + (size[0] as u32) + ((size[1] as u32) << 8) + do_bit as u32;
    }
    let tail_sum = at_parity(tail_sum, q.name_len & 1 == 1);

    // Ethernet: back to where it came from.
    let eth = ptr_at(ctx, 0, ETH_HLEN).ok_or(Verdict::Drop)?;
    // SAFETY: 12 bytes of MACs inside the checked 14.
    unsafe { swap_bytes::<6>(eth, eth.add(6)) };

    let ar = if has_opt { 1 } else { 0 };
    let reply_flags = flags::QR | flags::AA | (q.flags & (flags::RD | flags::CD));
    let pseudo_sum;
    let udp;
    if v6 {
        let ip = ptr_at(ctx, l3_off, IPV6_HLEN + UDP_HLEN + DNS_HLEN).ok_or(Verdict::Drop)?;
        // SAFETY: every access below is inside the checked header span.
        unsafe {
            swap_bytes::<16>(ip.add(8), ip.add(24));
            store_be16(ip.add(4), udp_len as u16);
            *ip.add(7) = REPLY_TTL;
            // Source and destination addresses.
            pseudo_sum = sum_be16(ip.add(8), 16);
            udp = ip.add(IPV6_HLEN);
        }
    } else {
        let ip = ptr_at(ctx, l3_off, IPV4_HLEN + UDP_HLEN + DNS_HLEN).ok_or(Verdict::Drop)?;
        // SAFETY: every access below is inside the checked header span.
        unsafe {
            swap_bytes::<4>(ip.add(12), ip.add(16));
            store_be16(ip.add(2), (IPV4_HLEN + udp_len) as u16);
            *ip.add(8) = REPLY_TTL;
            store_be16(ip.add(10), 0);
            store_be16(ip.add(10), !fold(sum_be16(ip, IPV4_HLEN / 2)));
            // Source and destination addresses.
            pseudo_sum = sum_be16(ip.add(12), 4);
            udp = ip.add(IPV4_HLEN);
        }
    }
    // SAFETY: `udp` points at the UDP header and DNS header inside the checked span.
    unsafe {
        swap_bytes::<2>(udp, udp.add(2));
        store_be16(udp.add(4), udp_len as u16);
        let dns = udp.add(UDP_HLEN);
        store_be16(dns.add(2), reply_flags);
        store_be16(dns.add(6), records as u16);
        store_be16(dns.add(10), ar);

        let mut sum = pseudo_sum + 17 + udp_len as u32;
        sum += load_be16(udp) as u32 + load_be16(udp.add(2)) as u32 + udp_len as u32;
        sum += load_be16(dns) as u32 + reply_flags as u32 + 1 + records as u32 + ar as u32;
        sum += q.name_sum + tail_sum;
        let csum = if q.udp_csum_zero != 0 {
            0
        } else {
            finish_udp(sum)
        };
        store_be16(udp.add(6), csum);
    }
    count_answer(stat, lead);
    Ok(())
}

/// Counts an answer led by address `lead` of the set with stat slot `stat`.
#[inline(always)]
fn count_answer(stat: u32, lead: u32) {
    if stat >= MAX_ANSWER_STATS {
        return; // NO_STAT, or a slot past the map
    }
    let i = stat * MAX_ADDRS as u32 + (lead & (MAX_ADDRS as u32 - 1));
    if let Some(c) = ANSWERS.get_ptr_mut(i) {
        // SAFETY: this CPU's counter; XDP runs with preemption off.
        unsafe { *c += 1 };
    }
}
