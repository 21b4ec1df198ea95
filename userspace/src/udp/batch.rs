//! Datagrams in batches: one recvmmsg fills up to `BATCH` preallocated buffers with the
//! sender of each, one sendmmsg sends the responses, each to its query's sender. A system
//! call costs about as much as answering a query; NSD and Knot batch for the same reason.
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest datagram read whole: what the previous single-socket server read too.
const RECV_LEN: usize = 65535;

/// Receive buffers and the senders of what they hold.
pub struct Received {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams held after the last `recv`.
    n: usize,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` point into this struct's own heap buffers,
// which move with it; they are reset before every use.
unsafe impl Send for Received {}

impl Default for Received {
    fn default() -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr.
        unsafe {
            Self {
                bufs: vec![0; BATCH * RECV_LEN],
                addrs: zeroed_batch(),
                iovs: zeroed_batch(),
                hdrs: zeroed_batch(),
                n: 0,
            }
        }
    }
}

impl Received {
    /// Reads at least one datagram (blocking up to the socket's read timeout, unless
    /// `dont_wait`), and whatever else is queued, up to `BATCH`. Returns how many.
    pub fn recv(&mut self, socket: &UdpSocket, dont_wait: bool) -> io::Result<usize> {
        self.n = 0;
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * RECV_LEN..].as_mut_ptr().cast(),
                iov_len: RECV_LEN,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at a buffer, address and iovec of this struct, alive
        // and unaliased for the call.
        let rc = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE | if dont_wait { libc::MSG_DONTWAIT } else { 0 },
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.n = rc as usize;
        Ok(self.n)
    }

    /// Datagram `i` of the last `recv` and its sender; `None` for a datagram longer than the
    /// buffer (cut, so not answered) or a sender of no IP family.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.n {
            return None;
        }
        let h = &self.hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (h.msg_len as usize).min(RECV_LEN);
        let from = sockaddr(&self.addrs[i])?;
        Some((&self.bufs[i * RECV_LEN..i * RECV_LEN + len], from))
    }
}

/// `BATCH` all-zero values.
///
/// # Safety
/// All-zero must be a valid `T` (true of the C structs used here).
unsafe fn zeroed_batch<T>() -> Vec<T> {
    // SAFETY: the caller's.
    (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect()
}

/// `storage` as a socket address, when it holds IPv4 or IPv6.
fn sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Responses queued for one sendmmsg: each the bytes of a buffer slot (answers from the plan)
/// or of a vector the full handler returned.
pub struct Outgoing {
    /// One response buffer per slot, for answers written in place.
    pub slots: Vec<[u8; super::answer::MAX_RESPONSE]>,
    lens: Vec<usize>,
    /// Responses made by the full handler, by slot.
    owned: Vec<Option<Vec<u8>>>,
    /// Each response's destination (socket2's sockaddr, as sendmmsg takes it).
    addrs: Vec<socket2::SockAddr>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    n: usize,
}

// SAFETY: as for `Received`: pointers into its own buffers, set just before each send.
unsafe impl Send for Outgoing {}

impl Default for Outgoing {
    fn default() -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr.
        unsafe {
            Self {
                slots: vec![[0; super::answer::MAX_RESPONSE]; BATCH],
                lens: vec![0; BATCH],
                owned: (0..BATCH).map(|_| None).collect(),
                addrs: Vec::with_capacity(BATCH),
                iovs: zeroed_batch(),
                hdrs: zeroed_batch(),
                n: 0,
            }
        }
    }
}

impl Outgoing {
    /// The buffer of the next slot, for a response written in place (`None`: the batch is
    /// full).
    pub fn next_slot(&mut self) -> Option<&mut [u8; super::answer::MAX_RESPONSE]> {
        self.slots.get_mut(self.n)
    }

    /// Queues the first `len` bytes of the next slot's buffer for `to`.
    pub fn push_slot(&mut self, len: usize, to: SocketAddr) {
        if self.n < BATCH {
            self.lens[self.n] = len;
            self.owned[self.n] = None;
            self.queue(to);
        }
    }

    /// Queues `response` for `to`.
    pub fn push_owned(&mut self, response: Vec<u8>, to: SocketAddr) {
        if self.n < BATCH {
            self.lens[self.n] = response.len();
            self.owned[self.n] = Some(response);
            self.queue(to);
        }
    }

    fn queue(&mut self, to: SocketAddr) {
        // `addrs` holds exactly the `n` queued (cleared on each send): no allocation past
        // its capacity.
        self.addrs.push(to.into());
        self.n += 1;
    }

    /// Sends what is queued; returns (sent, failed). A datagram the kernel refuses (no
    /// route, a full buffer) is skipped, never retried: DNS clients retry.
    pub fn send(&mut self, socket: &UdpSocket) -> (usize, usize) {
        for i in 0..self.n {
            let base = match &mut self.owned[i] {
                Some(v) => v.as_mut_ptr(),
                None => self.slots[i].as_mut_ptr(),
            };
            self.iovs[i] = libc::iovec {
                iov_base: base.cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = self.addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_namelen = self.addrs[i].len();
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let (mut done, mut failed) = (0, 0);
        while done < self.n {
            // SAFETY: headers `done..n` point at this struct's buffers, alive for the call.
            let rc = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.hdrs[done..].as_mut_ptr(),
                    (self.n - done) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                done += rc as usize;
            } else {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram failed: skip it and send the rest.
                done += 1;
                failed += 1;
            }
        }
        let sent = self.n - failed;
        for o in &mut self.owned[..self.n] {
            *o = None;
        }
        self.addrs.clear();
        self.n = 0;
        (sent, failed)
    }
}

/// The client address a query came from, as the handlers see it (IPv4-mapped as IPv4).
pub fn client_ip(from: SocketAddr) -> IpAddr {
    from.ip().to_canonical()
}
