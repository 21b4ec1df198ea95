//! Response rate limiting of the answers the program writes (the algorithm, shared with the
//! slow path, is `xgslb_common::rrl`'s): which answers go out, which go out slipped, which
//! are dropped; and the slipped reply, made from the answer in place.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_xdp_adjust_tail,
        generated::{bpf_ktime_get_coarse_ns, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    },
    programs::XdpContext,
};
use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::MaybeUninit,
};
use xgslb_common::{
    CookieSeen, RrlBucket, RrlClass, RrlDecision, RrlKey, Scratch, TAIL_LEN, flags, rrl_second,
};

use crate::{
    checksum::fold,
    client::{Source, read_destination, trie_key},
    frame::{MAX_PKT_OFF, load_be16, ptr_at},
    maps::{RRL, RRL_CONFIG, RRL_EXEMPT4, RRL_EXEMPT6},
    parse::{DNS_HLEN, ETH_HLEN, IPV4_HLEN, IPV6_HLEN, OPT_FIXED_LEN, UDP_HLEN},
};

/// Most bytes of the OPT an answer carries: its fixed part and a client subnet echo.
const OPT_MAX: usize = OPT_FIXED_LEN + 24;

// By reference on purpose: passed by value, the key is copied with a `memcpy` call.
#[allow(clippy::needless_borrows_for_generic_args)]
/// What becomes of the answer the answer stage wrote in the frame (its client and class
/// read back from it). An answer the limit cannot place (no config, no bucket) goes out.
#[inline(always)]
pub fn decide(ctx: &XdpContext, scratch: &Scratch) -> RrlDecision {
    let Some(config) = RRL_CONFIG.get(0) else {
        return RrlDecision::Answer;
    };
    let rate = config.rate;
    if rate == 0 {
        return RrlDecision::Answer;
    }
    let q = &scratch.query;
    let l3_off = q.l3_off as usize;
    if l3_off > ETH_HLEN + 8 {
        return RrlDecision::Answer;
    }
    let v6 = q.v6 != 0;
    // The answer stage swapped the addresses: the client is the destination now.
    let Some(client) = read_destination(ctx, l3_off, v6) else {
        return RrlDecision::Answer;
    };
    // The decision's `exempt` input: a valid server cookie of ours (the client proved it
    // gets our answers at its address, so it is no spoofed victim: RFC 7873 5.4), or an
    // exempt prefix.
    let listed = if v6 { config.exempt6 } else { config.exempt4 } != 0;
    let exempt = q.cookie == CookieSeen::Valid as u8 || (listed && in_exempt_prefix(&client, v6));
    if exempt {
        return RrlDecision::Answer;
    }
    let dns_off = l3_off + if v6 { IPV6_HLEN } else { IPV4_HLEN } + UDP_HLEN;
    let Some(dns) = ptr_at(ctx, dns_off, DNS_HLEN) else {
        return RrlDecision::Answer;
    };
    // SAFETY: the header's 12 bytes, checked by `ptr_at`.
    let class = unsafe { RrlClass::of(load_be16(dns.add(2)), load_be16(dns.add(6))) };
    let key = RrlKey::new(client.hi, client.lo, v6, class, config);
    // SAFETY: a helper without arguments.
    let now = rrl_second(unsafe { bpf_ktime_get_coarse_ns() });
    let bucket = match RRL.get_ptr(&key) {
        Some(b) => b,
        None => {
            // Another CPU may insert it first (then this insert fails and the lookup finds
            // theirs).
            // A bucket with nothing counted this second, written a word at a time where
            // it lies (a struct literal, or a value returned, is copied or zeroed with
            // `memcpy` or `memset`: byte loops on BPF).
            let mut fresh = MaybeUninit::<RrlBucket>::uninit();
            let words = fresh.as_mut_ptr().cast::<u64>();
            // SAFETY: the three words of the bucket.
            unsafe {
                words.write_volatile(now as u64);
                words.add(1).write_volatile(0);
                words.add(2).write_volatile(0);
            }
            // SAFETY: every word is written.
            let _ = RRL.insert(&key, unsafe { fresh.assume_init_ref() }, BPF_NOEXIST as u64);
            match RRL.get_ptr(&key) {
                Some(b) => b,
                None => return RrlDecision::Answer,
            }
        }
    };
    // The count after an atomic add, read back. (A fetching add needs BPF v3 code
    // generation, which this program does not ask of bpf-linker.)
    let add_one = |p: *mut u64| {
        // SAFETY: a word of the bucket. Rust's atomics offer no add on BPF.
        unsafe {
            let _ = atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1);
            p.read_volatile()
        }
    };
    // SAFETY: a value of the shared map, valid for this run (RCU); `add_one` adds atomically.
    unsafe { RrlBucket::account_at(bucket.cast_mut(), now, rate, config.slip, add_one) }
}

// By reference on purpose: passed by value, the key is copied with a `memcpy` call.
#[allow(clippy::needless_borrows_for_generic_args)]
/// Whether `client` is in one of the exempt prefixes of its family.
#[inline(always)]
fn in_exempt_prefix(client: &Source, v6: bool) -> bool {
    let key = trie_key(client, v6);
    if v6 {
        // SAFETY: `TrieKey` starts with the layout of the trie's packed key (u32, [u8; 16]).
        let k = unsafe { &*core::ptr::addr_of!(key).cast() };
        RRL_EXEMPT6.get(k).is_some()
    } else {
        // SAFETY: as above, for (u32, [u8; 4]).
        let k = unsafe { &*core::ptr::addr_of!(key).cast() };
        RRL_EXEMPT4.get(k).is_some()
    }
}

/// Turns the answer in the frame into its slipped reply: the same header with TC set and
/// no records but the OPT, the question, then the OPT exactly as the answer had it (client
/// subnet echo included), moved up to follow the question. The UDP checksum comes worked
/// out from the answer stage (`scratch.slip_csum`). `Err`: the frame is no longer either
/// (drop it).
#[inline(always)]
pub fn slip(ctx: &XdpContext, scratch: &mut Scratch) -> Result<(), ()> {
    let q = scratch.query;
    let l3_off = q.l3_off as usize;
    let tail_off = q.tail_off as usize;
    let records = scratch.slip_records as usize;
    if l3_off > ETH_HLEN + 8 || tail_off > MAX_PKT_OFF || records > MAX_PKT_OFF + TAIL_LEN {
        return Err(());
    }
    let question_end = tail_off + 4;
    if records != 0 {
        let len = ctx.data_end() - ctx.data();
        if len < question_end + records {
            return Err(());
        }
        let opt_len = len - question_end - records;
        if q.has_opt != 0 {
            if !(OPT_FIXED_LEN..=OPT_MAX).contains(&opt_len) {
                return Err(());
            }
            // Through the scratch: the helpers copy between frame and memory, not within
            // the frame.
            let buf = scratch.frame.as_mut_ptr().cast();
            // SAFETY: `opt_len` <= OPT_MAX bytes of `scratch.frame` (FRAME_HEAD_MAX); the
            // helpers check the frame's range.
            let rc = unsafe {
                bpf_xdp_load_bytes(
                    ctx.ctx,
                    (question_end + records) as u32,
                    buf,
                    opt_len as u32,
                )
            };
            // SAFETY: as above.
            if rc != 0
                || unsafe { bpf_xdp_store_bytes(ctx.ctx, question_end as u32, buf, opt_len as u32) }
                    != 0
            {
                return Err(());
            }
        } else if opt_len != 0 {
            return Err(());
        }
        // SAFETY: plain helper call on this program's context.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, -(records as i32)) } != 0 {
            return Err(());
        }
    }
    let v6 = q.v6 != 0;
    let ip_hlen = if v6 { IPV6_HLEN } else { IPV4_HLEN };
    let ip = ptr_at(ctx, l3_off, ip_hlen + UDP_HLEN + DNS_HLEN).ok_or(())?;
    let cut = records as u16;
    // SAFETY: every access below is inside the checked header span.
    unsafe {
        if v6 {
            store_be16(ip.add(4), load_be16(ip.add(4)).wrapping_sub(cut));
        } else {
            // The header checksum, for the total length that changes (RFC 1624 eqn. 3).
            let total = load_be16(ip.add(2));
            let shorter = total.wrapping_sub(cut);
            let sum = !load_be16(ip.add(10)) as u32 + !total as u32 + shorter as u32;
            store_be16(ip.add(2), shorter);
            store_be16(ip.add(10), !fold(sum));
        }
        let udp = ip.add(ip_hlen);
        store_be16(udp.add(4), load_be16(udp.add(4)).wrapping_sub(cut));
        store_be16(udp.add(6), scratch.slip_csum as u16);
        let dns = udp.add(UDP_HLEN);
        store_be16(dns.add(2), load_be16(dns.add(2)) | flags::TC);
        store_be16(dns.add(6), 0);
        store_be16(dns.add(8), 0);
        store_be16(dns.add(10), q.has_opt as u16);
    }
    Ok(())
}

#[inline(always)]
unsafe fn store_be16(p: *mut u8, v: u16) {
    unsafe { p.cast::<u16>().write_unaligned(v.to_be()) }
}
