//! DNS cookies (RFC 7873, server cookies of RFC 9018): the cookie stage checks the query's
//! COOKIE option (`ParsedQuery::cookie_off`) and leaves in the scratch what it found
//! (`ParsedQuery::cookie`) and the option the response carries (`cookie_opt`, its sum in
//! `cookie_sum`): the client cookie and a server cookie, the query's own when it is valid
//! and less than half an hour old, else a fresh one. The answer stage copies it into the
//! OPT (`answer::finish`).
//!
//! SipHash-2-4 is written out here (user space uses the `siphasher` crate; the tests hold
//! both to RFC 9018's vectors): its input is 20 bytes (IPv4 client) or 32 (IPv6), read as
//! little-endian words.
use aya_ebpf::{
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use xgslb_common::{
    CLIENT_COOKIE_LEN, COOKIE_REPLY_LEN, CookieSeen, CookieState, Counter, SERVER_COOKIE_LEN,
    SERVER_COOKIE_VERSION, Scratch, cookie_len_ok, cookie_stamp, edns_option,
};

use crate::{
    frame::{MAX_PKT_OFF, ptr_at},
    maps::COOKIE,
    parse::ETH_HLEN,
};

/// A COOKIE option's data that holds one of our server cookies.
const OURS_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;

/// Checks the cookie of the query in `scratch` and makes the response's. Passes the query
/// (`PassEdns`) while xgslbd has published no cookie config; with cookies off, leaves the
/// query as without a cookie.
#[inline(always)]
pub fn check(ctx: &XdpContext, scratch: &mut Scratch) -> Result<(), Counter> {
    let config = COOKIE.get(0).ok_or(Counter::PassEdns)?;
    if config.state == CookieState::Off as u32 {
        return Ok(());
    }
    if config.state != CookieState::On as u32 {
        return Err(Counter::PassEdns);
    }
    let q = scratch.query;
    let (off, len, l3_off) = (
        q.cookie_off as usize,
        q.cookie_len as usize,
        q.l3_off as usize,
    );
    // Through map memory: bound them again.
    if off == 0 || off > MAX_PKT_OFF || !cookie_len_ok(len) || l3_off > ETH_HLEN + 8 {
        return Err(Counter::PassEdns);
    }
    let ours = len == OURS_LEN;
    let read = if ours { OURS_LEN } else { CLIENT_COOKIE_LEN };
    let words = scratch.cookie_in.as_mut_ptr().cast::<u64>();
    // SAFETY (all): the three words of `scratch.cookie_in`, 8-aligned in the scratch; the
    // helper checks the packet range. Whole-word stores: no memset.
    let rc = unsafe {
        words.add(1).write_volatile(0);
        words.add(2).write_volatile(0);
        bpf_xdp_load_bytes(ctx.ctx, off as u32, words.cast(), read as u32)
    };
    if rc != 0 {
        return Err(Counter::PassTruncated);
    }
    let (client, stamped, hash) = unsafe {
        (
            words.read_volatile(),
            words.add(1).read_volatile(),
            words.add(2).read_volatile(),
        )
    };
    let ip = ClientIp::read(ctx, l3_off, q.v6 != 0).ok_or(Counter::PassTruncated)?;
    let key = config.key;
    let now = unix_seconds(config.clock_offset_ns);

    // The query's server cookie, when it is ours: version, reserved and timestamp as sent
    // (the reserved bytes are hashed as received, RFC 9018 4.4), then the hash.
    // A server cookie of another length is not ours: invalid.
    let mut seen = if len == CLIENT_COOKIE_LEN {
        CookieSeen::ClientOnly
    } else {
        CookieSeen::Invalid
    };
    let mut echo = false;
    if ours {
        let version = stamped as u8;
        let stamp = u32::from_be((stamped >> 32) as u32);
        if version == SERVER_COOKIE_VERSION
            && let Some(young) = cookie_stamp(stamp, now)
            && siphash24(key, client, stamped, &ip) == hash
        {
            seen = CookieSeen::Valid;
            echo = young;
        }
    }
    let (stamped, hash) = if echo {
        (stamped, hash)
    } else {
        // Version 1, reserved zero, the timestamp big endian: bytes 8..16 of the input.
        let fresh = SERVER_COOKIE_VERSION as u64 | (now.to_be() as u64) << 32;
        (fresh, siphash24(key, client, fresh, &ip))
    };
    write_reply(scratch, client, stamped, hash);
    scratch.query.cookie = seen as u8;
    Ok(())
}

/// The client's address as SipHash input words: IPv4 in the low half of `last` (with the
/// input's length, 20, in its top byte), IPv6 in two words and the length (32) alone.
struct ClientIp {
    v6: bool,
    words: [u64; 2],
    last: u64,
}

impl ClientIp {
    /// The source address of the IP header at `l3_off` (IPv6 if `v6`).
    #[inline(always)]
    fn read(ctx: &XdpContext, l3_off: usize, v6: bool) -> Option<Self> {
        if v6 {
            let p = ptr_at(ctx, l3_off + 8, 16)?;
            // SAFETY: 16 bytes checked by `ptr_at`.
            let (a, b) = unsafe {
                (
                    p.cast::<u64>().read_unaligned(),
                    p.add(8).cast::<u64>().read_unaligned(),
                )
            };
            Some(Self {
                v6: true,
                words: [a, b],
                last: 32 << 56,
            })
        } else {
            let p = ptr_at(ctx, l3_off + 12, 4)?;
            // SAFETY: 4 bytes checked by `ptr_at`.
            let a = unsafe { p.cast::<u32>().read_unaligned() } as u64;
            Some(Self {
                v6: false,
                words: [0, 0],
                last: a | 20 << 56,
            })
        }
    }
}

/// Unix time in seconds, modulo 2^32 (RFC 9018's timestamp), from the boot clock and the
/// offset xgslbd publishes.
#[inline(always)]
fn unix_seconds(offset_ns: u64) -> u32 {
    // SAFETY: a helper without arguments.
    let boot = unsafe { bpf_ktime_get_boot_ns() };
    (boot.wrapping_add(offset_ns) / 1_000_000_000) as u32
}

/// Writes the response's option to `scratch.cookie_opt` and its sum to `scratch.cookie_sum`:
/// OPTION-CODE 10, OPTION-LENGTH 24, the client cookie, then the server cookie (`stamped`:
/// version, reserved, timestamp; `hash`), each word as the little-endian load of its bytes.
#[inline(always)]
fn write_reply(scratch: &mut Scratch, client: u64, stamped: u64, hash: u64) {
    // Bytes 00 0a 00 18 as a little-endian half word.
    let head = (edns_option::COOKIE as u64).to_be() >> 48 | (COOKIE_REPLY_LEN as u64) << 24;
    let w = [
        head | client << 32,
        client >> 32 | stamped << 32,
        stamped >> 32 | hash << 32,
        hash >> 32,
    ];
    let out = scratch.cookie_opt.as_mut_ptr().cast::<u64>();
    let mut sum = 0u64;
    for (i, x) in w.iter().enumerate() {
        // SAFETY: four words of `scratch.cookie_opt`, 8-aligned in the scratch.
        unsafe { out.add(i).write_volatile(*x) };
        sum += (x & 0xffff_ffff) + (x >> 32);
    }
    // Little-endian words sum to the byte-swapped big-endian sum (RFC 1071 2(B)).
    let folded = crate::checksum::fold(((sum & 0xffff_ffff) + (sum >> 32)) as u32);
    scratch.cookie_sum = folded.swap_bytes() as u64;
}

/// SipHash-2-4 under `key` of the client cookie, `stamped` (version, reserved, timestamp)
/// and the client's address: RFC 9018's hash, as the little-endian word its 8 bytes load as.
#[inline(always)]
fn siphash24(key: [u64; 2], client: u64, stamped: u64, ip: &ClientIp) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    compress(&mut v, client);
    compress(&mut v, stamped);
    if ip.v6 {
        compress(&mut v, ip.words[0]);
        compress(&mut v, ip.words[1]);
    }
    compress(&mut v, ip.last);
    v[2] ^= 0xff;
    round(&mut v);
    round(&mut v);
    round(&mut v);
    round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// One message word: two SipRounds.
#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

/// SipRound.
#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}
