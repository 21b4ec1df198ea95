//! A query whose UDP checksum is wrong, sent over a real veth from a raw socket, is not
//! answered: XDP passes it (`pass_udp_checksum`) and the kernel drops it (its UDP
//! `InCsumErrors` grows), as it would without XDP; the same query with its checksum right is
//! answered by XDP. Over IPv4 and IPv6.
use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use xgslb::config::XdpModeSetting;
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_model},
    frame::{dns_query, fold, inet_sum, wire_name},
    netns::{CLIENT_V4, CLIENT_V6, NetnsPair, SERVER_V4, SERVER_V6},
    servers::in_ns,
};

/// Query ids: the one sent with a wrong checksum, and the one sent right after it.
const BAD: u16 = 0x0bad;
const GOOD: u16 = 0x600d;

/// A UDP datagram from `src`:`sport` to `dst`:53 carrying an A query for www with `id`, its
/// checksum right, or off by one when `corrupt`.
fn datagram(src: IpAddr, dst: IpAddr, sport: u16, id: u16, corrupt: bool) -> Vec<u8> {
    let payload = dns_query(id, 0x0100, &wire_name("www.example.test"), 1, 1, None);
    let len = (8 + payload.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let octets = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let pseudo = inet_sum(inet_sum(0, &octets(src)), &octets(dst)) + 17 + u32::from(len);
    let mut csum = match !fold(inet_sum(pseudo, &udp)) {
        0 => 0xffff,
        c => c,
    };
    if corrupt {
        csum = csum.wrapping_add(1).max(1);
    }
    udp[6..8].copy_from_slice(&csum.to_be_bytes());
    udp
}

/// A raw socket of `dst`'s family for UDP: the datagram is sent as written, checksum and
/// all (the kernel adds only the IP header).
fn raw_udp_socket(dst: IpAddr) -> OwnedFd {
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a plain socket(2) call; the fd is owned from here on.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW, libc::IPPROTO_UDP) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Sends `datagram` to `dst` on the raw socket `fd`.
fn send_raw(fd: &OwnedFd, dst: IpAddr, datagram: &[u8]) {
    // SAFETY: zeroed sockaddr structs are valid; the one filled is passed with its own
    // length, and `datagram` is a live buffer of its length.
    let n = unsafe {
        match dst {
            IpAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                libc::sendto(
                    fd.as_raw_fd(),
                    datagram.as_ptr().cast(),
                    datagram.len(),
                    0,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            IpAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                libc::sendto(
                    fd.as_raw_fd(),
                    datagram.as_ptr().cast(),
                    datagram.len(),
                    0,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    assert_eq!(
        n,
        datagram.len() as isize,
        "sendto {dst}: {}",
        std::io::Error::last_os_error()
    );
}

/// From the client namespace: sends the query with a wrong checksum, then the same query
/// with it right, and returns the ids of the replies that came before the good one's (a
/// bounded wait: the good one's reply, or a deadline).
fn bad_then_good(pair: &NetnsPair, src: &str, dst: &str) -> Vec<u16> {
    let (src, dst): (IpAddr, IpAddr) = (src.parse().expect("src"), dst.parse().expect("dst"));
    in_ns(&pair.client, move || {
        let sock = UdpSocket::bind(SocketAddr::new(src, 0)).expect("bind the client socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let port = sock.local_addr().expect("local address").port();
        let raw = raw_udp_socket(dst);
        send_raw(&raw, dst, &datagram(src, dst, port, BAD, true));
        send_raw(&raw, dst, &datagram(src, dst, port, GOOD, false));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ids = Vec::new();
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            if id == GOOD {
                return ids;
            }
            ids.push(id);
        }
        panic!("no reply to the good query from {dst} within 10 s (before it: {ids:x?})");
    })
    .join()
    .expect("the client thread")
}

/// The kernel's count of UDP datagrams dropped for a bad checksum in namespace `ns`
/// (`/proc/net/snmp` for IPv4, `/proc/net/snmp6` for IPv6).
fn checksum_errors(ns: &str, v6: bool) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(if v6 {
            "/proc/net/snmp6"
        } else {
            "/proc/net/snmp"
        })
        .output()
        .expect("read the UDP counters");
    let text = String::from_utf8_lossy(&out.stdout);
    if v6 {
        let line = text
            .lines()
            .find(|l| l.starts_with("Udp6InCsumErrors"))
            .expect("Udp6InCsumErrors in /proc/net/snmp6");
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("a count")
    } else {
        // Two "Udp:" lines: the names, then the values.
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().expect("names"), udp.next().expect("values"));
        let at = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .expect("InCsumErrors in /proc/net/snmp");
        values
            .split_whitespace()
            .nth(at)
            .and_then(|v| v.parse().ok())
            .expect("a count")
    }
}

#[test]
fn a_query_with_a_wrong_udp_checksum_is_passed_by_xdp_and_dropped_by_the_kernel() {
    let pair = NetnsPair::new("csum");
    let cfg = ConfigDir::new(&test_model().answer("www.example.test.", 30, &[("198.18.1.10", 1)]));
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    for (src, dst, v6) in [(CLIENT_V4, SERVER_V4, false), (CLIENT_V6, SERVER_V6, true)] {
        let (before, errors) = (d.stats(), checksum_errors(&pair.server, v6));
        let replies = bad_then_good(&pair, src, dst);
        let after = d.stats();
        let grew = |c: Counter| after[c as usize] - before[c as usize];
        assert!(
            replies.is_empty(),
            "{dst}: replies before the good query's: {replies:x?}"
        );
        assert_eq!(
            (grew(Counter::PassUdpChecksum), grew(Counter::Answered)),
            (1, 1),
            "{dst}: the bad query passed, the good one answered by XDP"
        );
        assert_eq!(
            checksum_errors(&pair.server, v6),
            errors + 1,
            "{dst}: the kernel dropped the bad query for its checksum"
        );
    }
}
