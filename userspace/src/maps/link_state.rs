//! What the kernel says an interface runs: the XDP program attached to it and in which mode,
//! asked over rtnetlink (one RTM_GETLINK), the way `ip link show` learns it. The metrics
//! endpoint reads it at every scrape, so a program detached behind xgslbd's back, or one
//! attached in generic mode, shows as it is, not as xgslbd last did.
use std::{io, os::fd::AsRawFd};

/// How an XDP program is attached (the kernel's `XDP_ATTACHED_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttachment {
    /// No XDP program on the interface.
    None,
    /// In the driver (native mode).
    Native,
    /// In the generic (skb) path: every frame is copied first.
    Generic,
    /// Offloaded to the NIC.
    Offload,
    /// Several programs in several modes at once.
    Multi,
}

impl XdpAttachment {
    /// The name the metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Offload => "offload",
            Self::Multi => "multi",
        }
    }
}

/// The XDP state of one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpState {
    pub attached: XdpAttachment,
    /// The id of the attached program (0 when none, or in multi mode).
    pub prog_id: u32,
}

// From include/uapi/linux/if_link.h: IFLA_XDP's nested attributes and XDP_ATTACHED_*.
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
/// Nested-attribute flags in `nla_type` (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;

/// The XDP program attached to `iface` in this process's network namespace, and its mode.
pub fn xdp_state(iface: &str) -> io::Result<XdpState> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let reply = get_link(index)?;
    parse_link(&reply)
}

/// Sends RTM_GETLINK for `index` and returns the one reply message.
fn get_link(index: u32) -> io::Result<Vec<u8>> {
    // SAFETY: socket(2) with constant arguments; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut req = Vec::with_capacity(NLMSG_HDR + IFINFOMSG);
    req.extend_from_slice(&((NLMSG_HDR + IFINFOMSG) as u32).to_ne_bytes());
    req.extend_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    // ifinfomsg: family AF_UNSPEC, pad, type, index, flags, change.
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    req.extend_from_slice(&(index as i32).to_ne_bytes());
    req.extend_from_slice(&[0; 8]);
    // SAFETY: the buffer is valid for its length; the kernel is the default destination.
    let sent = unsafe { libc::send(socket.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // A link message is a few kilobytes (stats, names, queues); 64 KiB holds any.
    let mut buf = vec![0u8; 65536];
    // SAFETY: the buffer is valid and writable for its length.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes in `b` as (type without flags, payload).
fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, 0)?);
        let kind = u16_at(b, 2)? & NLA_TYPE_MASK;
        let payload = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, payload))
    })
}

/// The XDP state in an RTM_NEWLINK reply (or the error of an NLMSG_ERROR one).
fn parse_link(msg: &[u8]) -> io::Result<XdpState> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed rtnetlink reply");
    let len = u32_at(msg, 0).ok_or_else(bad)? as usize;
    let kind = u16_at(msg, 4).ok_or_else(bad)?;
    let msg = msg.get(..len).ok_or_else(bad)?;
    if i32::from(kind) == libc::NLMSG_ERROR {
        let errno = u32_at(msg, NLMSG_HDR).ok_or_else(bad)? as i32;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != libc::RTM_NEWLINK {
        return Err(bad());
    }
    let attrs = msg.get(NLMSG_HDR + IFINFOMSG..).ok_or_else(bad)?;
    let mut state = XdpState {
        attached: XdpAttachment::None,
        prog_id: 0,
    };
    let Some((_, xdp)) = attributes(attrs).find(|&(k, _)| k == IFLA_XDP) else {
        return Ok(state);
    };
    for (k, v) in attributes(xdp) {
        match k {
            IFLA_XDP_ATTACHED => {
                state.attached = match v.first() {
                    Some(1) => XdpAttachment::Native,
                    Some(2) => XdpAttachment::Generic,
                    Some(3) => XdpAttachment::Offload,
                    Some(4) => XdpAttachment::Multi,
                    _ => XdpAttachment::None,
                }
            }
            IFLA_XDP_PROG_ID => state.prog_id = u32_at(v, 0).unwrap_or(0),
            _ => {}
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWLINK message with `attrs` after its ifinfomsg.
    fn newlink(attrs: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + IFINFOMSG + attrs.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0; IFINFOMSG]);
        m.extend_from_slice(attrs);
        m
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    #[test]
    fn the_mode_and_program_are_read_from_the_nested_xdp_attribute() {
        let xdp = [
            attr(IFLA_XDP_ATTACHED, &[2]),
            attr(IFLA_XDP_PROG_ID, &77u32.to_ne_bytes()),
        ]
        .concat();
        let msg = newlink(
            &[
                attr(3, b"eth0\0"), // IFLA_IFNAME first, an odd length padded
                attr(IFLA_XDP | 0x8000, &xdp),
            ]
            .concat(),
        );
        let state = parse_link(&msg).unwrap();
        assert_eq!(state.attached, XdpAttachment::Generic);
        assert_eq!(state.prog_id, 77);
        let none = parse_link(&newlink(&attr(3, b"lo\0"))).unwrap();
        assert_eq!(none.attached, XdpAttachment::None);
    }

    #[test]
    fn an_error_reply_and_a_short_one_are_errors() {
        let mut err = Vec::new();
        err.extend_from_slice(&20u32.to_ne_bytes());
        err.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        err.extend_from_slice(&[0; 10]);
        err.extend_from_slice(&(-libc::ENODEV).to_ne_bytes());
        let e = parse_link(&err).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        assert!(parse_link(&[1, 2, 3]).is_err());
        let mut long = newlink(&[]);
        long[0] = 200; // claims more than it holds
        assert!(parse_link(&long).is_err());
    }

    #[test]
    fn loopback_has_no_xdp_program() {
        // No privileges needed: any process may ask.
        let state = xdp_state("lo").unwrap();
        assert_eq!(state.attached, XdpAttachment::None, "{state:?}");
        assert!(xdp_state("no-such-if0").is_err());
    }
}
