//! Turning a parsed query into its response in place: find the entry, pick the records or
//! take the precomputed tail, resize the frame, swap addresses, write the header, the records
//! and the OPT (with the query's client subnet echoed and its scope, and the cookie the cookie
//! stage made), and checksum (from sums of the parts, never a pass over the frame).
use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail, generated::bpf_xdp_store_bytes},
    programs::XdpContext,
};
use xgslb_common::{
    AnswerSet, Body, COOKIE_REPLY_LEN, ClassId, Counter, ECS_FAMILY_V6, EDNS_UDP_SIZE, Entry,
    FRAME_HEAD_MAX, MAX_ADDRS, MAX_ANSWER_STATS, NO_COUNT, NO_FIX, PickMode, ResponseTail, Scratch,
    TAIL_LEN, ecs_scope, ecs_stat_index, edns_option, mask_prefix, qtype,
};

use crate::{
    checksum::{at_parity, finish_udp, fold, sum_be16, sum_u32, sum_u64},
    client::{Source, read_source, sample_ldns},
    frame::{MAX_PKT_OFF, load_be16, ptr_at},
    lookup::{CLASS_UNKNOWN, ECS_BY_CLASS, ECS_USED, Subnet, find},
    maps::{COOKIE_STATS, ECS_CONFIG, PICK},
    parse::{DNS_HLEN, ETH_HLEN, IPV4_HLEN, IPV6_HLEN, OPT_FIXED_LEN, UDP_HLEN, flags, parse_ecs},
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

/// An answer written: its kind, the counters it counts in once it goes out (`NO_COUNT`:
/// none), and its slipped reply's (`crate::rrl`) records to take out and UDP checksum.
pub struct Written {
    pub kind: Counter,
    pub answer_stat: u32,
    pub ecs_stat: u32,
    pub slip_records: u32,
    pub slip_csum: u16,
}

/// What the sections after the question will hold, and their checksum contribution.
struct Sections {
    /// Answer, authority and additional counts (the OPT not included).
    an: u16,
    ns: u16,
    ar: u16,
    /// Header bits besides QR, RD and CD.
    flags: u16,
    /// The counter of the kind of answer.
    kind: Counter,
}

/// Reads and checks the query's client subnet (its option's data at frame offset `off`,
/// `len` bytes: `parse::parse_ecs`) and leaves in the scratch how the answer uses it:
/// `ecs_addr`, the address masked to the length the config honours, and `ecs_use` (`Use`).
/// A query whose subnet is malformed, or that the program may not answer, is passed.
#[inline(always)]
fn prepare_ecs(
    ctx: &XdpContext,
    scratch: &mut Scratch,
    off: usize,
    len: usize,
) -> Result<(), Verdict> {
    let pass = || Verdict::Pass(Counter::PassEdns);
    let (family, source, hi, lo) = parse_ecs(ctx, scratch, off, len).ok_or_else(pass)?;
    // Before the first publication, or when only some resolvers' subnets are trusted (the
    // slow path checks the source), the program answers none.
    let config = ECS_CONFIG.get(0).ok_or_else(pass)?;
    if config.answer == 0 {
        return Err(pass());
    }
    let v6 = family == ECS_FAMILY_V6;
    let cap = if v6 { config.max6 } else { config.max4 } as u32;
    let honoured = source.min(cap);
    let (mhi, mlo) = mask_prefix(hi, lo, honoured);
    scratch.ecs_addr = [mhi, mlo];
    let echo_len = 8 + source.div_ceil(8) as u64;
    // SAFETY: a word of this CPU's scratch; volatile: read back as such (`Use::of`).
    unsafe {
        core::ptr::addr_of_mut!(scratch.ecs_use)
            .write_volatile(honoured as u64 | (v6 as u64) << 8 | echo_len << 9)
    };
    Ok(())
}

/// How the answer uses the query's client subnet: `prepare_ecs`'s `scratch.ecs_use`, or
/// without a subnet the query's `ecs_len` (0), both packed as `Subnet` | echo length << 9.
/// Either is read from map memory: the verifier knows neither value, and walks what follows
/// once for both (verifier.rs).
struct Use {
    /// The subnet as the lookup sees it (`honoured` 0: the query's source stands for the
    /// client).
    subnet: Subnet,
    /// Bytes of the option a response echoes (code and length included); 0 without one.
    echo_len: usize,
}

impl Use {
    /// The use of the client subnet of `q` (the query in `scratch`), prepared.
    #[inline(always)]
    fn of(
        ctx: &XdpContext,
        scratch: &mut Scratch,
        q: &xgslb_common::ParsedQuery,
    ) -> Result<Self, Verdict> {
        let off = q.ecs_off as usize;
        let u = if off == 0 {
            // The parse leaves `ecs_len` 0 with `ecs_off`: no subnet.
            q.ecs_len as u64
        } else {
            prepare_ecs(ctx, scratch, off, q.ecs_len as usize)?;
            // SAFETY: a word of this CPU's scratch.
            unsafe { core::ptr::addr_of!(scratch.ecs_use).read_volatile() }
        };
        Ok(Self {
            subnet: Subnet(u & 0x1ff),
            echo_len: (u >> 9 & 0x1f) as usize,
        })
    }

    /// Writes the option a response echoes over the query's in `scratch.ecs_opt`, with the
    /// scope of an answer the lookup found as `how` (`Found::ecs`) and whose pick hashed
    /// `persist` bits of the subnet (0: none), and its sum to `scratch.ecs_sum`. The scope is
    /// what the answer depended on (the class's partition prefix, the persist mask) within
    /// the length honoured; 0 when the subnet did not stand for the client.
    #[inline(always)]
    fn echo(&self, scratch: &mut Scratch, how: u64, persist: u8) {
        if self.echo_len < 8 {
            return;
        }
        let scope = if how & ECS_USED == 0 {
            0
        } else {
            let by_class = (how & ECS_BY_CLASS != 0).then_some(how as u8);
            let persist = (persist != 0).then_some(persist);
            ecs_scope(by_class, persist, self.subnet.honoured() as u8)
        };
        let words = scratch.ecs_opt.as_mut_ptr().cast::<u64>();
        // SAFETY: the three words of `scratch.ecs_opt`, 8-aligned in the scratch.
        unsafe {
            // OPTION-CODE, OPTION-LENGTH; FAMILY and SOURCE as the query sent them; SCOPE.
            let query = u64::from_be(*words);
            let head = (edns_option::ECS as u64) << 48
                | (self.echo_len as u64 - 4) << 32
                | (query & 0xffff_ff00)
                | scope as u64;
            *words = head.to_be();
            // The address is zero past its bytes, so its words sum as the bytes sent.
            scratch.ecs_sum = (sum_u64(head)
                + sum_u64(u64::from_be(*words.add(1)))
                + sum_u64(u64::from_be(*words.add(2)))) as u64;
        }
    }
}

/// Answers the query in `scratch` in place; `Ok` is the answered-kind counter for XDP_TX.
/// What the rate limit and the counters need of the answer is left in `scratch`.
#[inline(always)]
pub fn answer(ctx: &XdpContext, scratch: &mut Scratch) -> Result<Counter, Verdict> {
    let w = write(ctx, scratch)?;
    scratch.answer_stat = w.answer_stat;
    scratch.ecs_stat = w.ecs_stat;
    scratch.slip_records = w.slip_records;
    scratch.slip_csum = w.slip_csum as u32;
    Ok(w.kind)
}

/// Writes the answer to the query in `scratch` in place.
#[inline(always)]
fn write(ctx: &XdpContext, scratch: &mut Scratch) -> Result<Written, Verdict> {
    let q = scratch.query;
    // The query arrives through map memory: bound what becomes an offset again.
    let l3_off = q.l3_off as usize;
    let tail_off = q.tail_off as usize;
    if l3_off > ETH_HLEN + 8 || tail_off > MAX_PKT_OFF {
        return Err(Verdict::Pass(Counter::PassTruncated));
    }
    let v6 = q.v6 != 0;
    let src = read_source(ctx, l3_off, v6).ok_or(Verdict::Pass(Counter::PassTruncated))?;
    let ecs = Use::of(ctx, scratch, &q)?;
    let found = find(scratch, &src, v6, &ecs.subnet).map_err(Verdict::Pass)?;
    // How the client subnet was used.
    let how = found.ecs;
    // The LDNS samples count the resolver's own class, not its client's.
    let known = found.class != CLASS_UNKNOWN && how & ECS_BY_CLASS == 0;
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
            let used = how & ECS_USED != 0;
            let (pick, persist) = pick(set, &src, v6, scratch, &ecs.subnet, used)?;
            ecs.echo(scratch, how, persist);
            answer_set(ctx, &q, set, pick, scratch, ecs.echo_len)
        }
        Some(Body::Response) => {
            // SAFETY: as above, a `ResponseTail`.
            let tail = unsafe { &*body.cast::<ResponseTail>() };
            ecs.echo(scratch, how, 0);
            response(ctx, &q, tail, scratch, ecs.echo_len)
        }
        Some(Body::Pass) => Err(Verdict::Pass(Counter::PassSlowPath)),
        Some(Body::Drop) => Err(Verdict::DropPolicy),
        None => Err(Verdict::Pass(Counter::PassBadSelection)),
    }
}

/// The pick of an answer from `set` to a query from `src` (IPv6 if `v6`), and the bits of the
/// client's address it hashed when they count for the scope (else 0): the client subnet
/// `subnet` (its address in `scratch`) stands for the client when `used`.
#[inline(always)]
fn pick(
    set: &AnswerSet,
    src: &Source,
    v6: bool,
    scratch: &Scratch,
    subnet: &Subnet,
    used: bool,
) -> Result<(u32, u8), Verdict> {
    match PickMode::from_u8(set.pick) {
        Some(PickMode::Counter) => match PICK.get_ptr_mut(0) {
            // SAFETY: this CPU's counter; XDP runs with preemption off.
            Some(c) => unsafe {
                let v = *c;
                *c = v.wrapping_add(1);
                Ok((v, 0))
            },
            None => Err(Verdict::Pass(Counter::PassBadSelection)),
        },
        // The client subnet, when it stands for the client, is hashed in place of the source.
        Some(PickMode::Persist) if used => {
            let [hi, lo] = scratch.ecs_addr;
            let v6 = subnet.v6();
            let bits = if v6 { set.persist_v6 } else { set.persist_v4 };
            Ok((set.persist_pick(hi, lo, v6), bits))
        }
        Some(PickMode::Persist) => Ok((set.persist_pick(src.hi, src.lo, v6), 0)),
        None => Err(Verdict::Pass(Counter::PassBadSelection)),
    }
}

/// The response's length up to the end of the question.
#[inline(always)]
fn question_end(q: &xgslb_common::ParsedQuery) -> usize {
    q.tail_off as usize + 4
}

/// Resizes the frame to end `records` bytes after the question, plus the OPT if the query
/// had one (with its client subnet echoed and its cookie answered); checks the DNS message
/// fits the client's size.
/// Returns the frame offset of the OPT (the end of the records).
#[inline(always)]
fn resize(
    ctx: &XdpContext,
    q: &xgslb_common::ParsedQuery,
    records: usize,
    echo_len: usize,
) -> Result<usize, Verdict> {
    let l3_off = q.l3_off as usize;
    let ip_hlen = if q.v6 != 0 { IPV6_HLEN } else { IPV4_HLEN };
    let dns_off = l3_off + ip_hlen + UDP_HLEN;
    let opt_off = question_end(q) + records;
    let new_len = opt_off
        + if q.has_opt != 0 {
            OPT_FIXED_LEN + echo_len + cookie_len(q)
        } else {
            0
        };
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
    pick: u32,
    scratch: &Scratch,
    echo_len: usize,
) -> Result<Written, Verdict> {
    let records = set.records as usize;
    if records == 0 || records > set.count as usize || records > MAX_ADDRS {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    }
    let aaaa = q.qtype == qtype::AAAA;
    if !aaaa && q.qtype != qtype::A {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    }
    let Some(lead) = set.answer_index(pick, 0) else {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    };
    let rdlen: usize = if aaaa { 16 } else { 4 };
    let rr_len = RR_HEAD_LEN + rdlen;
    let ans_off = question_end(q);
    let opt_off = resize(ctx, q, records * rr_len, echo_len)?;
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
    let mut written = finish(
        ctx,
        q,
        opt_off,
        sum,
        false,
        Echo {
            scratch,
            len: echo_len,
        },
        Sections {
            an: records as u16,
            ns: 0,
            ar: 0,
            flags: flags::AA,
            kind: Counter::AnsweredAddresses,
        },
    )?;
    written.answer_stat = answer_stat(set.stat, lead);
    Ok(written)
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
    scratch: &Scratch,
    echo_len: usize,
) -> Result<Written, Verdict> {
    let len = tail.len as usize;
    if len == 0 || len > TAIL_LEN {
        return Err(Verdict::Pass(Counter::PassBadSelection));
    }
    let ans_off = question_end(q);
    let opt_off = resize(ctx, q, len, echo_len)?;
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
        Echo {
            scratch,
            len: echo_len,
        },
        Sections {
            an: tail.an,
            ns: tail.ns,
            ar: tail.ar,
            flags: tail.flags & (flags::AA | flags::RCODE),
            kind,
        },
    )
}

/// Writes the OPT (if the query had one, with the client subnet `echo`), the
/// addresses, ports, lengths, header and checksums around the records already written.
/// `records_sum` is the records' sum as 16-bit words from their start (an even offset of the
/// stream that begins at the question's type); `records_odd` says they are an odd number of
/// bytes, which puts the OPT at an odd offset. Also works out the checksum of the slipped
/// reply (`crate::rrl::slip`), for the few instructions it costs here, where every sum is at
/// hand.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish(
    ctx: &XdpContext,
    q: &xgslb_common::ParsedQuery,
    opt_off: usize,
    records_sum: u32,
    records_odd: bool,
    echo: Echo,
    w: Sections,
) -> Result<Written, Verdict> {
    let l3_off = q.l3_off as usize;
    if l3_off > ETH_HLEN + 8 || opt_off > MAX_PKT_OFF + TAIL_LEN {
        return Err(Verdict::Drop);
    }
    let v6 = q.v6 != 0;
    let has_opt = q.has_opt != 0;
    let ip_hlen = if v6 { IPV6_HLEN } else { IPV4_HLEN };
    let udp_off = l3_off + ip_hlen;
    // Only a query with an OPT has a client subnet to echo or a cookie to answer (0 bytes
    // otherwise).
    let echo_len = echo.len;
    let cookie_len = cookie_len(q);
    let new_len = opt_off
        + if has_opt {
            OPT_FIXED_LEN + echo_len + cookie_len
        } else {
            0
        };
    let udp_len = new_len - udp_off;

    // The stream from the question's type field: type, class IN, the records, the OPT.
    let mut tail_sum = q.qtype as u32 + 1 + records_sum;
    // The OPT's sum from an even offset: where the slipped reply has it, right after the
    // question's class.
    let mut opt_even = 0;
    if has_opt {
        let p = ptr_at(ctx, opt_off, OPT_FIXED_LEN).ok_or(Verdict::Drop)?;
        let size = EDNS_UDP_SIZE.to_be_bytes();
        let do_bit = if q.dnssec_ok != 0 { 0x80 } else { 0 };
        // RDLENGTH: the echoed subnet and the cookie, if any (at most 24 + 28 bytes: the
        // high byte is zero).
        let rdlen = (echo_len + cookie_len) as u8;
        let opt = [0, 0, 41, size[0], size[1], 0, 0, do_bit, 0, 0, rdlen];
        // SAFETY: `p` has OPT_FIXED_LEN bytes in the frame.
        unsafe { p.cast::<[u8; OPT_FIXED_LEN]>().write_unaligned(opt) };
        // Its 16-bit words from an even offset: 00 00 | 29 size_hi | size_lo 00 | 00 DO |
        // 00 00 | RDLENGTH's low byte and the option's first.
        let mut opt_sum = 0x2900
            + (size[0] as u32)
            + ((size[1] as u32) << 8)
            + do_bit as u32
            + ((rdlen as u32) << 8);
        if echo_len != 0 {
            // The option follows the fixed part's 11 bytes: at an odd offset of the OPT.
            write_echo(ctx, opt_off + OPT_FIXED_LEN, &echo)?;
            opt_sum += at_parity(echo.scratch.ecs_sum as u32, true);
        }
        if cookie_len != 0 {
            // After the subnet: at an odd offset of the OPT when the subnet's is even.
            write_cookie(ctx, opt_off + OPT_FIXED_LEN + echo_len, echo.scratch)?;
            opt_sum += at_parity(echo.scratch.cookie_sum as u32, echo_len & 1 == 0);
        }
        opt_even = fold(opt_sum) as u32;
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
    // The slipped reply: no records, the OPT after the question, TC set, AR the OPT's.
    let slip_records = (opt_off - question_end(q)) as u32;
    let slip_len = udp_len as u32 - slip_records;
    let slip_flags = reply_flags | flags::TC;
    let slip_ar = has_opt as u32;
    let slip_tail = at_parity(q.qtype as u32 + 1 + opt_even, q.name_len & 1 == 1);
    let slip_csum;
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

        // Everything else as the answer has it.
        let ports = load_be16(udp) as u32 + load_be16(udp.add(2)) as u32;
        let slip = pseudo_sum + 17 + 2 * slip_len + ports + load_be16(dns) as u32;
        let slip = slip + slip_flags as u32 + 1 + slip_ar + q.name_sum + slip_tail;
        slip_csum = if q.udp_csum_zero != 0 {
            0
        } else {
            finish_udp(slip)
        };
    }
    let ecs_stat = if echo_len != 0 {
        // FAMILY's low byte and SCOPE, from the option written.
        let opt = &echo.scratch.ecs_opt;
        ecs_stat_index(opt[5] == ECS_FAMILY_V6 as u8, opt[7])
    } else {
        NO_COUNT
    };
    // Queries with a cookie answered, by what their cookie was (before the rate limit: what
    // the cookie stage found, whatever becomes of the answer).
    if cookie_len != 0 {
        count_cookie(q.cookie);
    }
    Ok(Written {
        kind: w.kind,
        answer_stat: NO_COUNT,
        ecs_stat,
        slip_records,
        slip_csum,
    })
}

/// Bytes of the COOKIE option the response to `q` carries: the cookie stage's (code and
/// length, the client cookie and a server cookie) when it found one (`ParsedQuery::cookie`
/// is not `CookieSeen::None`), else none. Worked out without a branch, so that the verifier
/// walks what follows once for both.
#[inline(always)]
fn cookie_len(q: &xgslb_common::ParsedQuery) -> usize {
    let seen = q.cookie as usize & 3;
    ((seen | seen >> 1) & 1) * (4 + COOKIE_REPLY_LEN)
}

/// Copies the COOKIE option the cookie stage made (`scratch.cookie_opt`) to frame offset
/// `at` (its bytes are already part of the frame).
#[inline(always)]
fn write_cookie(ctx: &XdpContext, at: usize, scratch: &Scratch) -> Result<(), Verdict> {
    let bytes = scratch.cookie_opt.as_ptr();
    // SAFETY: 28 bytes of the 32 of `scratch.cookie_opt`; the helper checks the packet range
    // (and only reads the buffer).
    let rc = unsafe {
        bpf_xdp_store_bytes(
            ctx.ctx,
            at as u32,
            bytes as *mut _,
            (4 + COOKIE_REPLY_LEN) as u32,
        )
    };
    if rc != 0 {
        return Err(Verdict::Drop);
    }
    Ok(())
}

/// Counts an answer to a query whose cookie was `seen` (a `CookieSeen`).
#[inline(always)]
fn count_cookie(seen: u8) {
    if let Some(c) = COOKIE_STATS.get_ptr_mut(seen as u32) {
        // SAFETY: this CPU's counter; XDP runs with preemption off.
        unsafe { *c += 1 };
    }
}

/// The client subnet option a response carries: `len` bytes (0: none) of `scratch.ecs_opt`,
/// their sum in `scratch.ecs_sum` (`Use::echo`).
struct Echo<'a> {
    scratch: &'a Scratch,
    len: usize,
}

/// Copies the client subnet option `echo` to frame offset `at` (its bytes are already part
/// of the frame).
#[inline(always)]
fn write_echo(ctx: &XdpContext, at: usize, echo: &Echo) -> Result<(), Verdict> {
    let len = echo.len;
    if !(8..=24).contains(&len) {
        return Err(Verdict::Drop);
    }
    let bytes = echo.scratch.ecs_opt.as_ptr();
    // SAFETY: `len` <= 24 bytes of `scratch.ecs_opt`; the helper checks the packet range
    // (and only reads the buffer).
    let rc = unsafe { bpf_xdp_store_bytes(ctx.ctx, at as u32, bytes as *mut _, len as u32) };
    if rc != 0 {
        return Err(Verdict::Drop);
    }
    Ok(())
}

/// The answer counter of an answer led by address `lead` of the set with stat slot `stat`.
#[inline(always)]
fn answer_stat(stat: u32, lead: u32) -> u32 {
    if stat >= MAX_ANSWER_STATS {
        return NO_COUNT; // NO_STAT, or a slot past the map
    }
    stat * MAX_ADDRS as u32 + (lead & (MAX_ADDRS as u32 - 1))
}
