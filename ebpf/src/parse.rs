//! Parsing of a frame up to the end of the DNS query: Ethernet (two VLAN tags at most), IPv4
//! or IPv6, UDP, the DNS header, the question and an optional OPT RR (its client subnet, RFC
//! 7871, read by the answer stage: `parse_ecs`). Each failed check names the counter of the
//! reason the frame is passed to the kernel.
use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use xgslb_common::{
    Counter, ECS_FAMILY_V4, ECS_FAMILY_V6, EDNS_UDP_SIZE, Listener, MAX_LISTENERS, MAX_NAME_LABELS,
    NAME_KEY_LEN, ParsedQuery, Scratch, cookie_len_ok, hash_word, mask_prefix, mix64, qtype,
};

use crate::{
    checksum,
    frame::{MAX_PKT_OFF, load_be16, ptr_at},
    maps::{LISTENERS, SEED},
    verifier::{launder, opaque},
};

pub const ETH_HLEN: usize = 14;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const UDP_HLEN: usize = 8;
pub const DNS_HLEN: usize = 12;
/// Owner (1), type (2), class (2), TTL (4), RDLENGTH (2).
pub const OPT_FIXED_LEN: usize = 11;
/// Queries longer than this go to the slow path. Real queries are far smaller; the bound keeps
/// every packet offset provably small for the verifier.
pub const MAX_DNS_LEN: usize = 512;
/// Most EDNS options walked in a query's OPT before passing it.
const MAX_OPTIONS: usize = 8;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// IP protocol number of UDP (also its pseudo-header's protocol field).
pub const IPPROTO_UDP: u8 = 17;
const CLASS_IN: u16 = 1;
use xgslb_common::edns_option;
pub use xgslb_common::flags;

/// Where the UDP datagram sits, as the entry point found it.
#[derive(Clone, Copy)]
pub struct L3 {
    /// Offset of the IP header.
    pub l3_off: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// UDP length (header included), already checked against the IP length.
    pub udp_len: usize,
    /// IPv4 UDP checksum was zero.
    pub udp_csum_zero: bool,
}

impl L3 {
    /// Packs into one scalar argument for the parse stage's global function.
    #[inline(always)]
    pub fn pack(self) -> u64 {
        self.l3_off as u64
            | (self.udp_len as u64) << 16
            | (self.v6 as u64) << 32
            | (self.udp_csum_zero as u64) << 33
    }

    #[inline(always)]
    pub fn unpack(v: u64) -> Self {
        Self {
            l3_off: (v & 0xffff) as usize,
            udp_len: ((v >> 16) & 0xffff) as usize,
            v6: (v >> 32) & 1 == 1,
            udp_csum_zero: (v >> 33) & 1 == 1,
        }
    }
}

/// Parses Ethernet, VLAN tags, IP and UDP up to a listener; the DNS message is `parse_dns`'s.
#[inline(always)]
pub fn parse_l3(ctx: &XdpContext) -> Result<L3, Counter> {
    let eth = ptr_at(ctx, 0, ETH_HLEN).ok_or(Counter::PassNotIp)?;
    // SAFETY (all loads below): each pointer comes from `ptr_at` with the length it reads.
    let mut proto = unsafe { load_be16(eth.add(12)) };
    let mut l3_off = ETH_HLEN;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let tag = ptr_at(ctx, l3_off, 4).ok_or(Counter::PassNotIp)?;
        proto = unsafe { load_be16(tag.add(2)) };
        l3_off += 4;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let tag = ptr_at(ctx, l3_off, 4).ok_or(Counter::PassNotIp)?;
            proto = unsafe { load_be16(tag.add(2)) };
            l3_off += 4;
        }
    }
    match proto {
        ETH_P_IP => parse_ipv4(ctx, l3_off),
        ETH_P_IPV6 => parse_ipv6(ctx, l3_off),
        _ => Err(Counter::PassNotIp),
    }
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3_off: usize) -> Result<L3, Counter> {
    let ip = ptr_at(ctx, l3_off, IPV4_HLEN).ok_or(Counter::PassTruncated)?;
    let (version_ihl, total_len, frag, proto) = unsafe {
        (
            *ip,
            load_be16(ip.add(2)) as usize,
            load_be16(ip.add(6)),
            *ip.add(9),
        )
    };
    // Options (IHL > 5) and fragments go to the kernel, which reassembles and parses them.
    if version_ihl != 0x45 || frag & 0x3fff != 0 {
        return Err(Counter::PassIpv4Header);
    }
    if proto != IPPROTO_UDP {
        return Err(Counter::PassNotUdp);
    }
    // A header the kernel would drop for a bad checksum must not be answered here either.
    // SAFETY: the header's IPV4_HLEN bytes were checked above.
    let sum = unsafe { checksum::sum_be16(ip, IPV4_HLEN / 2) };
    if checksum::fold(sum) != 0xffff {
        return Err(Counter::PassIpv4Header);
    }
    if total_len < IPV4_HLEN + UDP_HLEN || l3_off + total_len > frame_len(ctx) {
        return Err(Counter::PassTruncated);
    }
    let udp = ptr_at(ctx, l3_off + IPV4_HLEN, UDP_HLEN).ok_or(Counter::PassTruncated)?;
    let (dport, udp_len, csum) = unsafe {
        (
            load_be16(udp.add(2)),
            load_be16(udp.add(4)) as usize,
            load_be16(udp.add(6)),
        )
    };
    if udp_len != total_len - IPV4_HLEN {
        return Err(Counter::PassTrailing);
    }
    // SAFETY: 4 bytes of destination address inside the checked header.
    let dst = unsafe { u32::from_be(ip.add(16).cast::<u32>().read_unaligned()) };
    check_listener(dst as u64, 0, Listener::tag(dport, 4))?;
    Ok(L3 {
        l3_off,
        v6: false,
        udp_len,
        udp_csum_zero: csum == 0,
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3_off: usize) -> Result<L3, Counter> {
    let ip = ptr_at(ctx, l3_off, IPV6_HLEN).ok_or(Counter::PassTruncated)?;
    let (version, payload_len, next_header) =
        unsafe { (*ip >> 4, load_be16(ip.add(4)) as usize, *ip.add(6)) };
    if version != 6 {
        return Err(Counter::PassNotIp);
    }
    if next_header != IPPROTO_UDP {
        // Hop-by-hop, routing, fragment, ESP, AH, destination options, mobility, HIP, shim6.
        return Err(match next_header {
            0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 => Counter::PassIpv6ExtHeader,
            _ => Counter::PassNotUdp,
        });
    }
    if payload_len < UDP_HLEN || l3_off + IPV6_HLEN + payload_len > frame_len(ctx) {
        return Err(Counter::PassTruncated);
    }
    let udp = ptr_at(ctx, l3_off + IPV6_HLEN, UDP_HLEN).ok_or(Counter::PassTruncated)?;
    let (dport, udp_len, csum) = unsafe {
        (
            load_be16(udp.add(2)),
            load_be16(udp.add(4)) as usize,
            load_be16(udp.add(6)),
        )
    };
    if udp_len != payload_len {
        return Err(Counter::PassTrailing);
    }
    // RFC 8200 8.1: a zero UDP checksum over IPv6 is invalid; the kernel drops it.
    if csum == 0 {
        return Err(Counter::PassUdpChecksum);
    }
    // SAFETY: 16 bytes of destination address inside the checked header.
    let (hi, lo) = unsafe {
        (
            u64::from_be(ip.add(24).cast::<u64>().read_unaligned()),
            u64::from_be(ip.add(32).cast::<u64>().read_unaligned()),
        )
    };
    check_listener(hi, lo, Listener::tag(dport, 6))?;
    Ok(L3 {
        l3_off,
        v6: true,
        udp_len,
        udp_csum_zero: false,
    })
}

/// The destination must be a listener: its exact address, or any address of the family, at
/// the port. A handful of word compares: cheaper than hashing a 20-byte key, once or twice.
#[inline(always)]
fn check_listener(hi: u64, lo: u64, tag: u64) -> Result<(), Counter> {
    let set = LISTENERS.get(0).ok_or(Counter::PassNotListener)?;
    let count = set.count as usize;
    for i in 0..MAX_LISTENERS as usize {
        if i >= count {
            break;
        }
        let l = &set.slots[i];
        if l.tag == tag && ((l.hi == hi && l.lo == lo) || (l.hi == 0 && l.lo == 0)) {
            return Ok(());
        }
    }
    Err(Counter::PassNotListener)
}

/// RFC 1035 4.2.1: the UDP payload limit without EDNS, and the floor with it (RFC 6891 6.2.5).
const CLASSIC_UDP_SIZE: u16 = 512;

/// Parses the DNS query of the datagram `l3` describes into `scratch`: the name lowercased,
/// its labels and the hash of each of its suffixes, and the `ParsedQuery`.
#[inline(always)]
pub fn parse_dns(ctx: &XdpContext, scratch: &mut Scratch, l3: L3) -> Result<ParsedQuery, Counter> {
    let L3 {
        l3_off,
        v6,
        udp_len,
        udp_csum_zero,
    } = l3;
    // The fields arrive as an unknown scalar through a function argument: bound them again.
    if l3_off > ETH_HLEN + 8 {
        return Err(Counter::PassTruncated);
    }
    let dns_off = l3_off + if v6 { IPV6_HLEN } else { IPV4_HLEN } + UDP_HLEN;
    if udp_len < UDP_HLEN + DNS_HLEN {
        return Err(Counter::PassTruncated);
    }
    let dns_len = udp_len - UDP_HLEN;
    if dns_len > MAX_DNS_LEN {
        return Err(Counter::PassTooLong);
    }
    let dns_end = dns_off + dns_len;
    let hdr = ptr_at(ctx, dns_off, DNS_HLEN).ok_or(Counter::PassTruncated)?;
    let (qflags, qd, an, ns, ar) = unsafe {
        (
            load_be16(hdr.add(2)),
            load_be16(hdr.add(4)),
            load_be16(hdr.add(6)),
            load_be16(hdr.add(8)),
            load_be16(hdr.add(10)),
        )
    };
    if qflags & (flags::QR | flags::OPCODE | flags::TC | flags::Z | flags::RCODE) != 0 {
        return Err(Counter::PassNotQuery);
    }
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Err(Counter::PassSectionCounts);
    }

    // The name, label by label, lowercased into the scratch; its bytes summed for the checksum.
    let qname_off = dns_off + DNS_HLEN;
    let (name_len, labels) = read_name(ctx, scratch, qname_off, dns_end)?;
    let name_sum = fold_name(scratch, name_len);

    let tail_off =
        launder(scratch, qname_off + name_len, MAX_PKT_OFF).ok_or(Counter::PassTruncated)?;
    if tail_off + 4 > dns_end {
        return Err(Counter::PassTruncated);
    }
    let tail = ptr_at(ctx, tail_off, 4).ok_or(Counter::PassTruncated)?;
    let (qt, qclass) = unsafe { (load_be16(tail), load_be16(tail.add(2))) };
    if qclass != CLASS_IN {
        return Err(Counter::PassQclass);
    }
    if !qtype::answerable(qt) {
        return Err(Counter::PassQtype);
    }

    // The suffix hashes before the OPT: the many ways its walk ends (option counts, sizes, a
    // client subnet) would each walk the hashing loop again.
    hash_suffixes(scratch, labels)?;
    let rest = tail_off + 4;
    let (edns, ecs, cookie) = if ar == 0 {
        if rest != dns_end {
            return Err(Counter::PassTrailing);
        }
        (None, 0, 0)
    } else {
        // No client subnet or cookie until the OPT's walk meets one.
        let slots = OptionSlots {
            ecs: ecs_slot(scratch),
            cookie: cookie_slot(scratch),
        };
        // SAFETY (all): words of this CPU's scratch.
        unsafe {
            slots.ecs.write_volatile(0);
            slots.cookie.write_volatile(0);
        }
        let edns = parse_opt(ctx, &slots, rest, dns_end)?;
        unsafe {
            (
                Some(edns),
                slots.ecs.read_volatile(),
                slots.cookie.read_volatile(),
            )
        }
    };
    let (has_opt, dnssec_ok, limit) = match edns {
        // What the slow path allows: the client's size, at most ours, at least 512.
        Some(e) => (
            true,
            e.dnssec_ok,
            e.size.clamp(CLASSIC_UDP_SIZE, EDNS_UDP_SIZE),
        ),
        None => (false, false, CLASSIC_UDP_SIZE),
    };

    Ok(ParsedQuery {
        l3_off: l3_off as u16,
        tail_off: tail_off as u16,
        name_len: name_len as u16,
        flags: qflags,
        name_sum,
        qtype: qt,
        limit,
        has_opt: has_opt as u8,
        dnssec_ok: dnssec_ok as u8,
        udp_csum_zero: udp_csum_zero as u8,
        v6: v6 as u8,
        labels: labels as u32,
        ecs_off: ecs as u16,
        ecs_len: (ecs >> 16) as u16,
        cookie_off: cookie as u16,
        cookie_len: (cookie >> 16) as u8,
        // The cookie stage's to say.
        cookie: 0,
    })
}

/// The name as 8-byte words.
const NAME_WORDS: usize = NAME_KEY_LEN / 8;

/// Copies the question name at `qname_off` into `scratch.name` with one helper call and walks
/// its labels there, noting where each starts. Returns its length in wire form and its label
/// count (root excluded).
#[inline(always)]
fn read_name(
    ctx: &XdpContext,
    scratch: &mut Scratch,
    qname_off: usize,
    dns_end: usize,
) -> Result<(usize, usize), Counter> {
    if qname_off >= dns_end {
        return Err(Counter::PassTruncated);
    }
    let avail = dns_end - qname_off;
    let n =
        launder(scratch, avail.min(NAME_KEY_LEN), NAME_KEY_LEN).ok_or(Counter::PassTruncated)?;
    if n == 0 {
        return Err(Counter::PassTruncated);
    }
    // SAFETY: `scratch.name` has more than NAME_KEY_LEN >= n bytes; the helper checks the
    // packet range.
    let rc = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            qname_off as u32,
            scratch.name.as_mut_ptr().cast(),
            n as u32,
        )
    };
    if rc != 0 {
        return Err(Counter::PassTruncated);
    }
    let mut pos = 0usize;
    for i in 0..=MAX_NAME_LABELS {
        if pos >= n {
            // The name runs past what was copied: past the message, or past the key.
            return Err(if n < NAME_KEY_LEN {
                Counter::PassTruncated
            } else {
                Counter::PassNameTooLong
            });
        }
        let len = *scratch.name.get(pos).ok_or(Counter::PassNameTooLong)? as usize;
        if len == 0 {
            if i == 0 {
                // The root: no zone of ours; the slow path refuses it.
                return Err(Counter::PassNoSelection);
            }
            return Ok((pos + 1, i));
        }
        // 0xc0 is a compression pointer (never in a question we answer exactly like the slow
        // path), 0x40 and 0x80 are extended or obsolete label types.
        if len & 0xc0 != 0 {
            return Err(Counter::PassBadLabel);
        }
        let slot = scratch.labels.get_mut(i).ok_or(Counter::PassNameTooLong)?;
        *slot = pos as u8;
        pos += len + 1;
    }
    Err(Counter::PassNameTooLong)
}

/// Returns the ones' complement sum of the name as sent and lowercases it in place, 8 bytes
/// at a time, over the name's own words only (the last one cleared past the name). What lies
/// beyond is never read unmasked: names are hashed label by label and compared over their
/// length (`lookup::same_name`).
#[inline(always)]
fn fold_name(scratch: &mut Scratch, name_len: usize) -> u32 {
    let words = scratch.name.as_mut_ptr().cast::<u64>();
    let mut sum = 0u64;
    for w in 0..NAME_WORDS {
        let start = w * 8;
        if start >= name_len {
            break;
        }
        // SAFETY: w < NAME_WORDS words of the name; read_unaligned as [u8] has no alignment.
        let x = unsafe { words.add(w).read_unaligned() };
        let x = if name_len - start < 8 {
            x & ((1u64 << (8 * (name_len - start))) - 1)
        } else {
            x
        };
        sum += (x & 0xffff_ffff) + (x >> 32);
        // SAFETY: w < NAME_WORDS words of the name.
        unsafe { words.add(w).write_unaligned(ascii_lower8(x)) };
    }
    // The words were loaded little endian: their 16-bit sum is the byte-swapped big-endian
    // sum (RFC 1071 2(B)); the name starts at an even offset of the message.
    let folded = checksum::fold(((sum & 0xffff_ffff) + (sum >> 32)) as u32);
    folded.swap_bytes() as u32
}

/// Fills `scratch.hashes` with the hash of every suffix of the name, from the root up, as
/// `xgslb_common::name_hash` computes them: one pass over the labels' words.
#[inline(always)]
fn hash_suffixes(scratch: &mut Scratch, labels: usize) -> Result<(), Counter> {
    let mut h = *SEED.get(0).ok_or(Counter::PassBadSelection)?;
    let name = scratch.name.as_ptr();
    for j in 0..MAX_NAME_LABELS {
        if j >= labels {
            break;
        }
        let i = opaque(labels - 1 - j) & (MAX_NAME_LABELS - 1);
        let off = *scratch.labels.get(i).ok_or(Counter::PassNameTooLong)? as usize;
        if off >= NAME_KEY_LEN {
            return Err(Counter::PassNameTooLong);
        }
        // The label's wire bytes: its length byte and the label.
        let seg = *scratch.name.get(off).ok_or(Counter::PassNameTooLong)? as usize + 1;
        for k in 0..8 {
            let at = k * 8;
            if at >= seg {
                break;
            }
            let p = off + at;
            if p >= NAME_KEY_LEN {
                return Err(Counter::PassNameTooLong);
            }
            // SAFETY: p + 8 <= NAME_KEY_LEN + 8, the size of `scratch.name`.
            let mut w = unsafe { name.add(p).cast::<u64>().read_unaligned() };
            let rem = seg - at;
            if rem < 8 {
                w &= (1u64 << (8 * rem)) - 1;
            }
            h = hash_word(h, w);
        }
        h = mix64(h);
        *scratch.hashes.get_mut(i).ok_or(Counter::PassNameTooLong)? = h;
    }
    Ok(())
}

/// ASCII lowercase of 8 bytes at once; other bytes unchanged (RFC 4343). Label length bytes
/// (at most 63) are never in 'A'..='Z', so a whole wire-form name can go through it.
#[inline(always)]
fn ascii_lower8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = x & (0x7f * ONES);
    let ge_a = low7 + (0x80 - b'A' as u64) * ONES;
    let gt_z = low7 + (0x7f - b'Z' as u64) * ONES;
    let upper = ge_a & !gt_z & !x & (0x80 * ONES);
    x | (upper >> 2)
}

/// What a query's OPT RR says.
struct Edns {
    /// The DO bit.
    dnssec_ok: bool,
    /// The requestor's UDP payload size.
    size: u16,
}

/// Where the OPT's walk notes the options the later stages read: words of the scratch's
/// query (`ecs_slot`, `cookie_slot`), each the option data's frame offset in its low half
/// and its length above.
struct OptionSlots {
    ecs: *mut u32,
    cookie: *mut u32,
}

/// Checks the OPT RR at `off` (the query's last record, ending at `dns_end`) and returns what
/// it says. Options are walked to prove the record well formed; where a client subnet's data
/// lies is noted in `slots.ecs` for the answer stage, which reads it (`parse_ecs`), and a
/// cookie's in `slots.cookie` for the cookie stage; the others are ignored (RFC 6891
/// 6.1.2).
#[inline(always)]
fn parse_opt(
    ctx: &XdpContext,
    slots: &OptionSlots,
    off: usize,
    dns_end: usize,
) -> Result<Edns, Counter> {
    if off + OPT_FIXED_LEN > dns_end {
        return Err(Counter::PassTruncated);
    }
    let opt = ptr_at(ctx, off, OPT_FIXED_LEN).ok_or(Counter::PassTruncated)?;
    let (owner, rtype, size, ext_rcode, version, opt_flags, rdlen) = unsafe {
        (
            *opt,
            load_be16(opt.add(1)),
            load_be16(opt.add(3)),
            *opt.add(5),
            *opt.add(6),
            load_be16(opt.add(7)),
            load_be16(opt.add(9)) as usize,
        )
    };
    // Another record type, another owner, or a version we do not speak (the slow path answers
    // BADVERS) all go to the slow path.
    if owner != 0 || rtype != qtype::OPT || ext_rcode != 0 || version != 0 {
        return Err(Counter::PassEdns);
    }
    let mut o = off + OPT_FIXED_LEN;
    if o + rdlen != dns_end {
        return Err(Counter::PassTrailing);
    }
    // Where a client subnet or a cookie lies goes to the scratch as soon as it is met and is
    // read back from there: the walk carries nothing of it on, so the verifier walks the
    // rest once for all queries.
    for _ in 0..MAX_OPTIONS {
        if o >= dns_end {
            break;
        }
        if o + 4 > dns_end {
            return Err(Counter::PassEdns);
        }
        let p = ptr_at(ctx, o, 4).ok_or(Counter::PassTruncated)?;
        let (code, len) = unsafe { (load_be16(p), load_be16(p.add(2)) as usize) };
        // RFC 7873 5.2.2: a malformed COOKIE is FORMERR; leave that to the slow path. NSID
        // (RFC 5001: answered with the server's id) changes the response, so the slow path
        // decides on it. A second client subnet or cookie is left to the slow path too (it
        // reads the first): rare enough not to be worth proving both paths agree on.
        if (code == edns_option::COOKIE && !cookie_len_ok(len)) || code == edns_option::NSID {
            return Err(Counter::PassEdns);
        }
        let data = o + 4;
        o = data + len;
        if o > dns_end {
            return Err(Counter::PassEdns);
        }
        let slot = if code == edns_option::ECS {
            slots.ecs
        } else if code == edns_option::COOKIE {
            slots.cookie
        } else {
            continue;
        };
        // SAFETY (both): a word of this CPU's scratch (`OptionSlots`).
        if unsafe { slot.read_volatile() } != 0 {
            return Err(Counter::PassEdns);
        }
        unsafe { slot.write_volatile(data as u32 | (len as u32) << 16) };
    }
    if o != dns_end {
        return Err(Counter::PassEdns);
    }
    Ok(Edns {
        dnssec_ok: opt_flags & 0x8000 != 0,
        size,
    })
}

/// `ParsedQuery::ecs_off` and `ecs_len` of the scratch's query as one word (the offset in
/// the low half: little endian), where the OPT's walk notes them.
#[inline(always)]
fn ecs_slot(scratch: &mut Scratch) -> *mut u32 {
    core::ptr::addr_of_mut!(scratch.query.ecs_off).cast::<u32>()
}

/// `ParsedQuery::cookie_off`, `cookie_len` and `cookie` of the scratch's query as one word,
/// where the OPT's walk notes the first two (`cookie`, the top byte, stays 0).
#[inline(always)]
fn cookie_slot(scratch: &mut Scratch) -> *mut u32 {
    core::ptr::addr_of_mut!(scratch.query.cookie_off).cast::<u32>()
}

/// The client subnet of the option whose `len` bytes of data start at frame offset `off`
/// (RFC 7871 6), read into `scratch.ecs_opt`: returns its FAMILY, SOURCE PREFIX-LENGTH and
/// ADDRESS (two big-endian words, zero past the prefix). `None` for a malformed one (7.1.1:
/// unknown family, a source prefix longer than the address, an address field of another
/// length than the prefix needs, bits set past the prefix): the query is passed, and the
/// slow path answers it with FORMERR.
#[inline(always)]
pub fn parse_ecs(
    ctx: &XdpContext,
    scratch: &mut Scratch,
    off: usize,
    len: usize,
) -> Option<(u16, u32, u64, u64)> {
    // FAMILY, the two prefix lengths and at most 16 address bytes.
    if !(4..=20).contains(&len) || off > MAX_PKT_OFF {
        return None;
    }
    let words = scratch.ecs_opt.as_mut_ptr().cast::<u64>();
    // SAFETY: three words inside `scratch.ecs_opt` (8-aligned in the 8-aligned scratch).
    // Volatile keeps them whole-word stores (no memset).
    unsafe {
        words.write_volatile(0);
        words.add(1).write_volatile(0);
        words.add(2).write_volatile(0);
    }
    let n = launder(scratch, len, 20)?;
    if n < 4 {
        return None;
    }
    // SAFETY: 4 + n <= 24 bytes of `scratch.ecs_opt`; the helper checks the packet range.
    let rc = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            off as u32,
            scratch.ecs_opt.as_mut_ptr().add(4).cast(),
            n as u32,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: the words written above.
    let (head, hi, lo) = unsafe {
        (
            u64::from_be(words.read_volatile()),
            u64::from_be(words.add(1).read_volatile()),
            u64::from_be(words.add(2).read_volatile()),
        )
    };
    // Bytes 4 and 5 FAMILY, 6 SOURCE PREFIX-LENGTH (7, SCOPE, is ours to set).
    let family = (head >> 16) as u16;
    let source = (head >> 8) as u32 & 0xff;
    let max = match family {
        ECS_FAMILY_V4 => 32,
        ECS_FAMILY_V6 => 128,
        _ => return None,
    };
    if source > max || len - 4 != source.div_ceil(8) as usize {
        return None;
    }
    if mask_prefix(hi, lo, source) != (hi, lo) {
        return None;
    }
    Some((family, source, hi, lo))
}
