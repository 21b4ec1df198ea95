//! A minimal DNS reflector for the benchmarks only: the ceiling an XDP_TX program reaches on
//! this machine. IPv4 without VLAN, UDP to port 53: swap MACs, addresses and ports, set QR,
//! fix the UDP checksum incrementally (RFC 1624). It answers nothing real.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{
    frame::{load_be16, ptr_at},
    parse::{ETH_HLEN, IPV4_HLEN, UDP_HLEN},
};

#[xdp]
pub fn xgslb_reflector(ctx: XdpContext) -> u32 {
    reflect(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn reflect(ctx: &XdpContext) -> Option<u32> {
    let p = ptr_at(ctx, 0, ETH_HLEN + IPV4_HLEN + UDP_HLEN + 4)?;
    // SAFETY: every access is inside the checked span.
    unsafe {
        if load_be16(p.add(12)) != 0x0800 || *p.add(14) != 0x45 || *p.add(23) != 17 {
            return None;
        }
        let udp = p.add(ETH_HLEN + IPV4_HLEN);
        if load_be16(udp.add(2)) != 53 {
            return None;
        }
        core::ptr::swap_nonoverlapping(p.cast::<[u8; 6]>(), p.add(6).cast::<[u8; 6]>(), 1);
        core::ptr::swap_nonoverlapping(p.add(26).cast::<[u8; 4]>(), p.add(30).cast::<[u8; 4]>(), 1);
        core::ptr::swap_nonoverlapping(udp.cast::<[u8; 2]>(), udp.add(2).cast::<[u8; 2]>(), 1);
        let flags_p = udp.add(UDP_HLEN + 2);
        let old = load_be16(flags_p);
        let new = old | 0x8000;
        flags_p.cast::<u16>().write_unaligned(new.to_be());
        let csum = load_be16(udp.add(6));
        if csum != 0 {
            let sum = (!csum) as u32 + (!old) as u32 + new as u32;
            let c = !crate::checksum::fold(sum);
            udp.add(6).cast::<u16>().write_unaligned(c.to_be());
        }
    }
    Some(xdp_action::XDP_TX)
}

/// XDP_PASS for everything. Test and demo topologies attach it to the client end of a veth
/// pair: veth delivers frames that the server end sends with XDP_TX only to a peer whose
/// receive side runs NAPI, which an attached XDP program turns on.
#[xdp]
pub fn xgslb_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
