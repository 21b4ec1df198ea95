//! Hop count toward an address, unprivileged: UDP datagrams with TTL (hop limit) 1..=max to
//! ports 33434 + TTL - 1 from one socket with IP_RECVERR / IPV6_RECVERR, then the ICMP
//! errors read from the socket's error queue (recvmsg MSG_ERRQUEUE). The destination port
//! of the datagram each error quotes (msg_name) tells its TTL; the hop count is the lowest
//! TTL that reached the target (port unreachable, or any unreachable from the target
//! itself). No raw sockets, so no privilege. Blocking: run it on a blocking thread.
use std::{
    mem::{MaybeUninit, size_of},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use super::error::Error;

/// Most hops probed.
pub const MAX_HOPS: u8 = 32;
/// The traceroute base port: TTL t goes to BASE_PORT + t - 1.
pub const BASE_PORT: u16 = 33434;

/// What one ICMP error says about the probe that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A router on the way: the TTL ran out there.
    TimeExceeded,
    /// The target itself answered.
    Reached,
    /// Some other error (a router's host or network unreachable, a filter).
    Unreachable,
}

/// Classifies an extended error: `v6` for ICMPv6, its type and code, and who sent it.
pub fn classify(
    v6: bool,
    icmp_type: u8,
    icmp_code: u8,
    offender: Option<IpAddr>,
    target: IpAddr,
) -> Answer {
    let (time_exceeded, unreachable, port_unreachable) = if v6 { (3, 1, 4) } else { (11, 3, 3) };
    if icmp_type == time_exceeded {
        Answer::TimeExceeded
    } else if icmp_type == unreachable
        && (icmp_code == port_unreachable || offender == Some(target))
    {
        Answer::Reached
    } else {
        Answer::Unreachable
    }
}

/// The hop count from the answers so far: the lowest TTL that reached the target.
pub fn hop_count(answers: &[(u8, Answer)]) -> Option<u8> {
    answers
        .iter()
        .filter(|(_, a)| *a == Answer::Reached)
        .map(|(ttl, _)| *ttl)
        .min()
}

/// Whether nothing more can lower the count: the target was reached at TTL t and every TTL
/// below t has an answer.
pub fn settled(answers: &[(u8, Answer)]) -> bool {
    match hop_count(answers) {
        Some(t) => (1..t).all(|ttl| answers.iter().any(|(a, _)| *a == ttl)),
        None => false,
    }
}

/// Measures the hop count to `target` with TTLs 1..=`max_hops`, waiting at most `timeout`
/// for the errors. `Ok(None)`: the target was not reached.
pub fn measure(target: IpAddr, max_hops: u8, timeout: Duration) -> Result<Option<u8>, Error> {
    let v6 = target.is_ipv6();
    let bind: SocketAddr = if v6 {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(Error::io("bind"))?;
    socket
        .set_nonblocking(true)
        .map_err(Error::io("nonblocking"))?;
    let fd = socket.as_raw_fd();
    if v6 {
        setsockopt(fd, libc::SOL_IPV6, libc::IPV6_RECVERR, 1)?;
    } else {
        setsockopt(fd, libc::SOL_IP, libc::IP_RECVERR, 1)?;
    }
    let max_hops = max_hops.clamp(1, MAX_HOPS);
    for ttl in 1..=max_hops {
        if v6 {
            setsockopt(fd, libc::SOL_IPV6, libc::IPV6_UNICAST_HOPS, ttl.into())?;
        } else {
            setsockopt(fd, libc::SOL_IP, libc::IP_TTL, ttl.into())?;
        }
        let to = SocketAddr::new(target, BASE_PORT + u16::from(ttl) - 1);
        // An error that arrived for an earlier probe is also reported by the next send (and
        // cleared by it): try again.
        let mut tries = 0;
        loop {
            match socket.send_to(&[ttl], to) {
                Ok(_) => break,
                Err(e) if tries < 3 && is_icmp_error(&e) => tries += 1,
                Err(source) => {
                    return Err(Error::Io {
                        what: format!("send to {to}"),
                        source,
                    });
                }
            }
        }
    }
    let deadline = Instant::now() + timeout;
    let mut answers = Vec::new();
    loop {
        drain_errors(fd, target, &mut answers)?;
        if settled(&answers) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::Io {
                    what: "poll".into(),
                    source: e,
                });
            }
        }
    }
    Ok(hop_count(&answers))
}

fn is_icmp_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EPROTO
                | libc::EACCES
                | libc::EPERM
        )
    )
}

fn setsockopt(fd: i32, level: i32, name: i32, value: i32) -> Result<(), Error> {
    // SAFETY: an int option of the documented size on a socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Error::Io {
            what: format!("setsockopt({level}, {name})"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Reads every queued error into `answers` as (TTL, answer).
fn drain_errors(fd: i32, target: IpAddr, answers: &mut Vec<(u8, Answer)>) -> Result<(), Error> {
    loop {
        let mut data = [0u8; 64];
        let mut control = [0u64; 64];
        let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = name.as_mut_ptr().cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 64]>() as _;
        // SAFETY: every pointer in msg points at a live buffer of the given length.
        let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(()),
                std::io::ErrorKind::Interrupted => continue,
                _ => Err(Error::Io {
                    what: "recvmsg(MSG_ERRQUEUE)".into(),
                    source: e,
                }),
            };
        }
        // SAFETY: the kernel filled msg_namelen bytes of the storage.
        let Some(port) = (unsafe { sockaddr_port(name.as_ptr(), msg.msg_namelen) }) else {
            continue;
        };
        let Some(ttl) = port
            .checked_sub(BASE_PORT)
            .and_then(|d| u8::try_from(d + 1).ok())
            .filter(|t| *t <= MAX_HOPS)
        else {
            continue;
        };
        // SAFETY: msg came back from recvmsg with its control buffer filled.
        if let Some(answer) = unsafe { read_cmsgs(&msg, target) } {
            answers.push((ttl, answer));
        }
    }
}

/// The port of a sockaddr_in or sockaddr_in6.
///
/// # Safety
/// `sa` points at `len` initialised bytes of a socket address.
unsafe fn sockaddr_port(sa: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<u16> {
    // SAFETY: the caller's; each read is checked against len first.
    unsafe {
        match i32::from((*sa).ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                Some(u16::from_be((*sa.cast::<libc::sockaddr_in>()).sin_port))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                Some(u16::from_be((*sa.cast::<libc::sockaddr_in6>()).sin6_port))
            }
            _ => None,
        }
    }
}

/// The answer an IP_RECVERR / IPV6_RECVERR control message carries, if any.
///
/// # Safety
/// `msg` was filled by recvmsg.
unsafe fn read_cmsgs(msg: &libc::msghdr, target: IpAddr) -> Option<Answer> {
    // SAFETY: the CMSG_* walk stays within msg_controllen; the extended error and the
    // offender address that follows it are read unaligned from inside the message.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let level = (*cmsg).cmsg_level;
            let kind = (*cmsg).cmsg_type;
            let is_err = (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
            let len = (*cmsg).cmsg_len as usize;
            let data = libc::CMSG_DATA(cmsg);
            let header = data as usize - cmsg as usize;
            if is_err && len >= header + size_of::<libc::sock_extended_err>() {
                let ee: libc::sock_extended_err = std::ptr::read_unaligned(data.cast());
                let v6 = match ee.ee_origin {
                    libc::SO_EE_ORIGIN_ICMP => false,
                    libc::SO_EE_ORIGIN_ICMP6 => true,
                    // Local errors (EMSGSIZE and the like) say nothing of the path.
                    _ => return None,
                };
                let offender_at = data.add(size_of::<libc::sock_extended_err>());
                let room = len - header - size_of::<libc::sock_extended_err>();
                let offender = read_offender(offender_at, room);
                return Some(classify(v6, ee.ee_type, ee.ee_code, offender, target));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
        None
    }
}

/// The address of the offender sockaddr after an extended error, `room` bytes available.
///
/// # Safety
/// `at` points at `room` readable bytes.
unsafe fn read_offender(at: *const u8, room: usize) -> Option<IpAddr> {
    // SAFETY: the caller's; each read is checked against room first.
    unsafe {
        if room < size_of::<libc::sa_family_t>() {
            return None;
        }
        let family: libc::sa_family_t = std::ptr::read_unaligned(at.cast());
        match i32::from(family) {
            libc::AF_INET if room >= size_of::<libc::sockaddr_in>() => {
                let sa: libc::sockaddr_in = std::ptr::read_unaligned(at.cast());
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))))
            }
            libc::AF_INET6 if room >= size_of::<libc::sockaddr_in6>() => {
                let sa: libc::sockaddr_in6 = std::ptr::read_unaligned(at.cast());
                Some(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 64, 1));
    const R: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

    #[test]
    fn errors_classify() {
        assert_eq!(classify(false, 11, 0, Some(R), T), Answer::TimeExceeded);
        assert_eq!(classify(false, 3, 3, Some(T), T), Answer::Reached);
        // A filter at the target (admin prohibited) still reached it.
        assert_eq!(classify(false, 3, 13, Some(T), T), Answer::Reached);
        // A router saying host unreachable did not.
        assert_eq!(classify(false, 3, 1, Some(R), T), Answer::Unreachable);
        let t6: IpAddr = "2001:db8:4000::1".parse().unwrap();
        assert_eq!(classify(true, 3, 0, None, t6), Answer::TimeExceeded);
        assert_eq!(classify(true, 1, 4, None, t6), Answer::Reached);
        assert_eq!(classify(true, 1, 3, None, t6), Answer::Unreachable);
    }

    #[test]
    fn the_lowest_reaching_ttl_counts() {
        use Answer::*;
        let a = [(3, Reached), (1, TimeExceeded), (4, Reached)];
        assert_eq!(hop_count(&a), Some(3));
        assert!(!settled(&a), "TTL 2 may still answer");
        let a = [(3, Reached), (1, TimeExceeded), (2, TimeExceeded)];
        assert!(settled(&a));
        assert_eq!(hop_count(&[(1, TimeExceeded), (2, Unreachable)]), None);
        assert!(!settled(&[]));
    }

    #[test]
    fn loopback_is_one_hop() {
        let hops = measure(IpAddr::V4(Ipv4Addr::LOCALHOST), 4, Duration::from_secs(2)).unwrap();
        assert_eq!(hops, Some(1));
    }
}
