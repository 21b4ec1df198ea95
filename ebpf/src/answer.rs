//! Turning a parsed query into its response in place: find the entry, pick the records or
//! take the precomputed tail, resize the frame, swap addresses, write the header, the records
//! and the OPT, and checksum (from sums of the parts, never a pass over the frame).
use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail, generated::bpf_xdp_store_bytes},
    programs::XdpContext,
};
use xgslb_common::{
    AnswerSet, Body, ClassId, Counter, EDNS_UDP_SIZE, Entry, FRAME_HEAD_MAX, MAX_ADDRS,
    MAX_ANSWER_STATS, NO_FIX, PickMode, ResponseTail, Scratch, TAIL_LEN, qtype,
};

use crate::{
    checksum::{at_parity, finish_udp, fold, sum_be16, sum_u32},
    client::{read_source, sample_ldns},
    frame::{MAX_PKT_OFF, load_be16, ptr_at},
    lookup::{CLASS_UNKNOWN, find},
    maps::{ANSWERS, PICK},
    parse::{DNS_HLEN, ETH_HLEN, IPV4_HLEN, IPV6_HLEN, OPT_FIXED_LEN, UDP_HLEN, flags},
    verifier::opaque,
};

/// Why the program does not answer.
pub enum Verdict {
    /// Hand the frame to the kernel untouched, counting the reason.
    Pass(Counter),
    /// The frame was already resized and cannot be finished; it is not valid to pass.
    Drop,
    /// The entry says drop (Drop Packet).
    DropPolicy,
}

/// An answer record's fixed part: owner C0 0C (the question name), type, class, TTL,
/// RDLENGTH.
const RR_HEAD_LEN: usize = 12;
/// TTL of the IP header of answers, as the kernel's default.
const REPLY_TTL: u8 = 64;
/// RCODE of NXDOMAIN.
const NXDOMAIN: u16 = 3;

#[inline(always)]
unsafe fn store_be16(p: *mut u8, v: u16) {
    unsafe { p.cast::<u16>().write_unaligned(v.to_be()) }
}

#[inline(always)]
unsafe fn swap_bytes<const N: usize>(a: *mut u8, b: *mut u8) {
    unsafe { core::ptr::swap_nonoverlapping(a.cast::<[u8; N]>(), b.cast::<[u8; N]>(), 1) }
}

/// What the sections after the question will hold, and their checksum contribution.
struct Written {
    /// Answer, authority and additional counts (the OPT not included).
    an: u16,
    ns: u16,
    ar: u16,
    /// Header bits besides QR, RD and CD.
    flags: u16,
    /// The counter of the kind of answer.
    kind: Counter,
}

/// Answers the query in `scratch` in place; `Ok` is the answered-kind counter for XDP_TX.
#[inline(always)]
pub fn answer(ctx: &XdpContext, scratch: &mut Scratch) -> Result<Counter, Verdict> {
    let q = scratch.query;
    // The query arrives through map memory: bound what becomes an offset again.
    let l3_off = q.l3_off as usize;
    let tail_off = q.tail_off as usize;
    if l3_off > ETH_HLEN + 8 || tail_off > MAX_PKT_OFF {
        return Err(Verdict::Pass(Counter::PassTruncated));
    }
    let v6 = q.v6 != 0;
    let src = read_source(ctx, l3_off, v6).ok_or(Verdict::Pass(Counter::PassTruncated))?;
    let found = find(scratch, &src, v6).map_err(Verdict::Pass)?;
    let known = found.class != CLASS_UNKNOWN;
    sample_ldns(
        &mut scratch.sampled,
        &mut scratch.ldns,
        &src,
        v6,
        found.class as ClassId,
        known,
    );
    let entry: &Entry = found.entry;
    let body = entry.body.as_ptr();
    match Body::from_u8(entry.head.body) {
        Some(Body::Answer) => {
            // SAFETY: the body is 8-aligned in the map value and holds an `AnswerSet`.
            let set = unsafe { &*body.cast::<AnswerSet>() };
            answer_set(ctx, &q, set, &src, v6)
        }
        Some(Body::Response) => {
            // SAFETY: as above, a `ResponseTail`.
            let tail = unsafe { &*body.cast::<ResponseTail>() };
            response(ctx, &q, tail)
        }
        Some(Body::Pass) => Err(Verdict::Pass(Counter::PassSlowPath)),
        Some(Body::Drop) => Err(Verdict::DropPolicy),
        None => Err(Verdict::Pass(Counter::PassBadSelection)),
    }
}

/// The response's length up to the end of the question.
#[inline(always)]
fn question_end(q: &xgslb_common::ParsedQuery) -> usize {
    q.tail_off as usize + 4
}

/// Resizes the frame to end `records` bytes after the question, plus the OPT if the query
/// had one; checks the DNS message fits the client's size. Returns the frame offset of the
/// OPT (the end of the records).
#[inline(always)]
fn resize(
    ctx: &XdpContext,
    q: &xgslb_common::ParsedQuery,
    records: usize,
) -> Result<usize, Verdict> {
    let l3_off = q.l3_off as usize;
    let ip_hlen = if q.v6 != 0 { IPV6_HLEN } else { IPV4_HLEN };
    let dns_off = l3_off + ip_hlen + UDP_HLEN;
    let opt_off = question_end(q) + records;
    let new_len = opt_off + if q.has_opt != 0 { OPT_FIXED_LEN } else { 0 };
    if new_len - dns_off > q.limit as usize {
        return Err(Verdict::Pass(Counter::PassTooBig));
    }
    let delta = new_len as i32 - (ctx.data_end() - ctx.data()) as i32;
    // SAFETY: plain helper call on this program's context.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        grow_at_head(ctx, question_end(q), delta)?;
    }
    Ok(opt_off)
}

/// Makes the frame `delta` bytes longer when its tailroom is short (veth hands XDP frames
/// with little, for one): the room comes from the headroom, and the headers and question
/// (`keep` bytes) move to the new start, so that the frame reads as before with `delta` more
/// bytes after the question. The move is a forward copy a word at a time inside the frame
/// (the destination is below the source, so no word is overwritten before it is read):
/// cheaper than copying out and back through helpers.
#[inline(always)]
fn grow_at_head(ctx: &XdpContext, keep: usize, delta: i32) -> Result<(), Verdict> {
    if keep == 0 || keep > FRAME_HEAD_MAX || delta <= 0 || delta as usize > MAX_PKT_OFF / 2 {
        return Err(Verdict::Pass(Counter::PassResize));
    }
    // SAFETY: plain helper call on this program's context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -delta) } != 0 {
        return Err(Verdict::Pass(Counter::PassResize));
    }
    // From here on the frame is no longer the query: a failure drops it.
    let d = delta as usize;
    for k in 0..FRAME_HEAD_MAX / 8 {
        let at = 8 * k;
        if at + 8 > keep {
            break;
        }
        let src = ptr_at(ctx, d + at, 8).ok_or(Verdict::Drop)?;
        let dst = ptr_at(ctx, at, 8).ok_or(Verdict::Drop)?;
        // SAFETY: 8 bytes each, checked by `ptr_at`.
        unsafe {
            dst.cast::<u64>()
                .write_unaligned(src.cast::<u64>().read_unaligned())
        };
    }
    let whole = keep & !7;
    for i in 0..7 {
        if whole + i >= keep {
            break;
        }
        let src = ptr_at(ctx, d + whole + i, 1).ok_or(Verdict::Drop)?;
        let dst = ptr_at(ctx, whole + i, 1).ok_or(Verdict::Drop)?;
        // SAFETY: one byte each, checked by `ptr_at`.
        unsafe { *dst = *src };
    }
    Ok(())
}

/// A or AAAA records from an answer set (by the query type).
#[inline(always)]
fn answer_set(
    ctx: &XdpContext,
    q: &xgslb_common::ParsedQuery,
    set: &AnswerSet,
    src: &crate::client::Source,
    v6: bool,
) -> Result<Counter, Verdict> {
    let records = set.records as usize;
    if records == 0 || records > set.count as usize || records > MAX_ADDRS {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    }
    let aaaa = q.qtype == qtype::AAAA;
    if !aaaa && q.qtype != qtype::A {
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
    let rdlen: usize = if aaaa { 16 } else { 4 };
    let rr_len = RR_HEAD_LEN + rdlen;
    let ans_off = question_end(q);
    let opt_off = resize(ctx, q, records * rr_len)?;
    // From here on the frame is no longer the query: any failure drops it.

    // The records, summed as a stream from the first record (an even offset of the stream
    // that starts at the question's type field).
    let mut sum = 0u32;
    let ttl = set.ttl;
    let head = rr_head(q.qtype, ttl, rdlen as u16);
    let head_sum = 0xc00c + q.qtype as u32 + 1 + sum_u32(ttl) + rdlen as u32;
    for i in 0..MAX_ADDRS {
        if i >= records {
            break;
        }
        let idx = set.answer_index(pick, i as u32).ok_or(Verdict::Drop)? as usize;
        // The verifier cannot bound a modulo; the compiler knows idx < MAX_ADDRS and would
        // drop a plain mask, so the mask goes on a value it cannot see through.
        let idx = opaque(idx) & (MAX_ADDRS - 1);
        let addr = set.addrs.get(idx).ok_or(Verdict::Drop)?;
        let at = ans_off + i * rr_len;
        let p = ptr_at(ctx, at, RR_HEAD_LEN).ok_or(Verdict::Drop)?;
        // SAFETY: `p` has RR_HEAD_LEN bytes in the frame.
        unsafe { p.cast::<[u8; RR_HEAD_LEN]>().write_unaligned(head) };
        if aaaa {
            let a = ptr_at(ctx, at + RR_HEAD_LEN, 16).ok_or(Verdict::Drop)?;
            // SAFETY: 16 bytes checked by `ptr_at`; `addr` is 16 bytes of map value.
            // Two word copies: a `[u8; 16]` copy becomes a call to `memmove`, a byte loop.
            unsafe {
                let words = addr.as_ptr().cast::<u64>();
                let (hi, lo) = (words.read_unaligned(), words.add(1).read_unaligned());
                a.cast::<u64>().write_unaligned(hi);
                a.add(8).cast::<u64>().write_unaligned(lo);
                sum += sum_be16(addr.as_ptr(), 8);
            }
        } else {
            let a = ptr_at(ctx, at + RR_HEAD_LEN, 4).ok_or(Verdict::Drop)?;
            let v4 = [addr[0], addr[1], addr[2], addr[3]];
            // SAFETY: 4 bytes checked by `ptr_at`.
            unsafe { a.cast::<[u8; 4]>().write_unaligned(v4) };
            sum += sum_u32(u32::from_be_bytes(v4));
        }
        sum += head_sum;
    }
    count_answer(set.stat, lead);
    finish(
        ctx,
        q,
        opt_off,
        sum,
        false,
        Written {
            an: records as u16,
            ns: 0,
            ar: 0,
            flags: flags::AA,
            kind: Counter::AnsweredAddresses,
        },
    )
}

/// The fixed part of an answer record owned by the question name.
#[inline(always)]
fn rr_head(rtype: u16, ttl: u32, rdlen: u16) -> [u8; RR_HEAD_LEN] {
    let t = rtype.to_be_bytes();
    let ttl = ttl.to_be_bytes();
    let l = rdlen.to_be_bytes();
    [
        0xc0, 0x0c, t[0], t[1], 0, 1, ttl[0], ttl[1], ttl[2], ttl[3], l[0], l[1],
    ]
}

/// A precomputed response: the tail copied after the question, its pointer to the question
/// name's suffix written.
#[inline(always)]
fn response(
    ctx: &XdpContext,
    q: &xgslb_common::ParsedQuery,
    tail: &ResponseTail,
) -> Result<Counter, Verdict> {
    let len = tail.len as usize;
    if len == 0 || len > TAIL_LEN {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    }
    let ans_off = question_end(q);
    let opt_off = resize(ctx, q, len)?;
    // SAFETY: `len` bytes of the map value's tail; the helper checks the packet range.
    let rc = unsafe {
        bpf_xdp_store_bytes(
            ctx.ctx,
            ans_off as u32,
            tail.bytes.as_ptr() as *mut _,
            len as u32,
        )
    };
    if rc != 0 {
        return Err(Verdict::Drop);
    }
    let mut sum = tail.sum as u32;
    if tail.fix_at != NO_FIX {
        let at = tail.fix_at as usize;
        let suffix = tail.fix_suffix as usize;
        let name_len = q.name_len as usize;
        if suffix > name_len || at + 2 > len {
            return Err(Verdict::Drop);
        }
        let ptr = 0xc000 | (DNS_HLEN + name_len - suffix) as u16;
        let p = ptr_at(ctx, ans_off + at, 2).ok_or(Verdict::Drop)?;
        // SAFETY: 2 bytes checked by `ptr_at`.
        unsafe { store_be16(p, ptr) };
        sum += if at & 1 == 0 {
            ptr as u32
        } else {
            ptr.swap_bytes() as u32
        };
    }
    let rcode = tail.flags & flags::RCODE;
    let kind = if rcode == NXDOMAIN {
        Counter::AnsweredNxDomain
    } else if tail.an == 0 {
        Counter::AnsweredNoData
    } else {
        Counter::AnsweredRecords
    };
    finish(
        ctx,
        q,
        opt_off,
        sum,
        len & 1 == 1,
        Written {
            an: tail.an,
            ns: tail.ns,
            ar: tail.ar,
            flags: tail.flags & (flags::AA | flags::RCODE),
            kind,
        },
    )
}

/// Writes the OPT (if the query had one), the addresses, ports, lengths, header and checksums
/// around the records already written. `records_sum` is the records' sum as 16-bit words
/// from their start (an even offset of the stream that begins at the question's type);
/// `records_odd` says they are an odd number of bytes, which puts the OPT at an odd offset.
#[inline(always)]
fn finish(
    ctx: &XdpContext,
    q: &xgslb_common::ParsedQuery,
    opt_off: usize,
    records_sum: u32,
    records_odd: bool,
    w: Written,
) -> Result<Counter, Verdict> {
    let l3_off = q.l3_off as usize;
    if l3_off > ETH_HLEN + 8 || opt_off > MAX_PKT_OFF + TAIL_LEN {
        return Err(Verdict::Drop);
    }
    let v6 = q.v6 != 0;
    let has_opt = q.has_opt != 0;
    let ip_hlen = if v6 { IPV6_HLEN } else { IPV4_HLEN };
    let udp_off = l3_off + ip_hlen;
    let new_len = opt_off + if has_opt { OPT_FIXED_LEN } else { 0 };
    let udp_len = new_len - udp_off;

    // The stream from the question's type field: type, class IN, the records, the OPT.
    let mut tail_sum = q.qtype as u32 + 1 + records_sum;
    if has_opt {
        let p = ptr_at(ctx, opt_off, OPT_FIXED_LEN).ok_or(Verdict::Drop)?;
        let size = EDNS_UDP_SIZE.to_be_bytes();
        let do_bit = if q.dnssec_ok != 0 { 0x80 } else { 0 };
        let opt = [0, 0, 41, size[0], size[1], 0, 0, do_bit, 0, 0, 0];
        // SAFETY: `p` has OPT_FIXED_LEN bytes in the frame.
        unsafe { p.cast::<[u8; OPT_FIXED_LEN]>().write_unaligned(opt) };
        // Its 16-bit words from an even offset: 00 00 | 29 size_hi | size_lo 00 | 00 DO | ...
        let opt_sum = 0x2900 + (size[0] as u32) + ((size[1] as u32) << 8) + do_bit as u32;
        tail_sum += at_parity(opt_sum, records_odd);
    }
    let tail_sum = at_parity(tail_sum, q.name_len & 1 == 1);

    // Ethernet: back to where it came from.
    let eth = ptr_at(ctx, 0, ETH_HLEN).ok_or(Verdict::Drop)?;
    // SAFETY: 12 bytes of MACs inside the checked 14.
    unsafe { swap_bytes::<6>(eth, eth.add(6)) };

    let ar = w.ar + if has_opt { 1 } else { 0 };
    let reply_flags = flags::QR | w.flags | (q.flags & (flags::RD | flags::CD));
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
            // The header checksum, updated for the two words that change (RFC 1624 eqn. 3;
            // the query's was checked): total length, and TTL beside the protocol. Swapping
            // the addresses leaves the sum as it was.
            let total = (IPV4_HLEN + udp_len) as u16;
            let ttl_proto = (REPLY_TTL as u16) << 8 | *ip.add(9) as u16;
            let sum = !load_be16(ip.add(10)) as u32
                + !load_be16(ip.add(2)) as u32
                + total as u32
                + !load_be16(ip.add(8)) as u32
                + ttl_proto as u32;
            store_be16(ip.add(2), total);
            *ip.add(8) = REPLY_TTL;
            store_be16(ip.add(10), !fold(sum));
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
        store_be16(dns.add(6), w.an);
        store_be16(dns.add(8), w.ns);
        store_be16(dns.add(10), ar);

        let mut sum = pseudo_sum + 17 + udp_len as u32;
        sum += load_be16(udp) as u32 + load_be16(udp.add(2)) as u32 + udp_len as u32;
        sum += load_be16(dns) as u32 + reply_flags as u32 + 1;
        sum += w.an as u32 + w.ns as u32 + ar as u32;
        sum += q.name_sum + tail_sum;
        let csum = if q.udp_csum_zero != 0 {
            0
        } else {
            finish_udp(sum)
        };
        store_be16(udp.add(6), csum);
    }
    Ok(w.kind)
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
