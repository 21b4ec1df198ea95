//! Whether a query's UDP checksum verifies: the kernel drops a datagram whose checksum is
//! wrong, so the program must not answer it.
use aya_ebpf::programs::XdpContext;

use crate::{
    checksum,
    frame::ptr_at,
    parse::{ETH_HLEN, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, L3, MAX_DNS_LEN, UDP_HLEN},
};

/// Most bytes of a UDP datagram the program answers: its header and `parse::MAX_DNS_LEN`
/// bytes of DNS (longer ones are passed before anything is summed).
const MAX_UDP_LEN: usize = UDP_HLEN + MAX_DNS_LEN;

/// Whether the UDP checksum of the datagram `l3` describes verifies (RFC 768, RFC 8200 8.1):
/// the ones' complement sum of the pseudo-header and the whole datagram, its checksum field
/// included, is 0xffff. An IPv4 datagram sent without a checksum (zero) verifies; an IPv6
/// one never does (`parse_ipv6` passes it before). A datagram longer than the program
/// answers, or cut short, does not verify here: the kernel sees to it.
///
/// The datagram is summed 8 bytes at a time as little-endian words, which sums its 16-bit
/// words byte-swapped (RFC 1071 2(B)); the pseudo-header's words are added swapped to match,
/// and a sum of 0xffff reads the same both ways. The last 1 to 7 bytes come from the 8 that
/// end the datagram (it is never shorter than its header), shifted down past the bytes
/// already summed: no byte is read past the datagram, and they land in the lanes an aligned
/// load would give them.
#[inline(always)]
pub fn verifies(ctx: &XdpContext, l3: L3) -> bool {
    let len = l3.udp_len;
    if l3.udp_csum_zero {
        return true;
    }
    // The fields come through a function argument: bound them again.
    if l3.l3_off > ETH_HLEN + 8 || !(UDP_HLEN..=MAX_UDP_LEN).contains(&len) {
        return false;
    }
    let (addrs_off, addr_words, udp_off) = if l3.v6 {
        (l3.l3_off + 8, 4, l3.l3_off + IPV6_HLEN)
    } else {
        (l3.l3_off + 12, 1, l3.l3_off + IPV4_HLEN)
    };
    let word = |off: usize| -> Option<u64> {
        let p = ptr_at(ctx, off, 8)?;
        // SAFETY: 8 bytes checked by `ptr_at`.
        Some(unsafe { p.cast::<u64>().read_unaligned() })
    };
    // The pseudo-header: source and destination addresses, the protocol and the UDP length.
    let mut sum = ((IPPROTO_UDP as u64) << 8) + (len as u16).swap_bytes() as u64;
    for i in 0..4 {
        if i >= addr_words {
            break;
        }
        let Some(x) = word(addrs_off + 8 * i) else {
            return false;
        };
        sum += (x & 0xffff_ffff) + (x >> 32);
    }
    let whole = len / 8;
    for i in 0..MAX_UDP_LEN / 8 {
        if i >= whole {
            break;
        }
        let Some(x) = word(udp_off + 8 * i) else {
            return false;
        };
        sum += (x & 0xffff_ffff) + (x >> 32);
    }
    let rest = len & 7;
    if rest != 0 {
        let Some(x) = word(udp_off + len - 8) else {
            return false;
        };
        let x = x >> (8 * (8 - rest));
        sum += (x & 0xffff_ffff) + (x >> 32);
    }
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    checksum::fold(((sum & 0xffff_ffff) + (sum >> 32)) as u32) == 0xffff
}
