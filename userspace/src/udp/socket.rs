//! The reuseport socket group of one listen address: one UDP socket per worker, all bound to
//! the address with SO_REUSEPORT. With CPU steering, a classic BPF program on the group hands
//! each datagram to the socket of the CPU that received it (the worker pinned there), so a
//! query is read, answered and sent on the core whose cache already holds it; that is right
//! when the NIC spreads receive over the CPUs (RSS). When every datagram arrives on one CPU
//! (one receive queue, veth) it would leave the other workers idle, and the kernel's hash of
//! addresses and ports spreads them instead (on the bench's veth: 200k qps without loss
//! against 100k steered by CPU).
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// How long a worker's blocking read waits before it looks at the stop flag.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Receive buffer asked for each socket (the kernel caps it at net.core.rmem_max): room for
/// a burst while the worker answers the previous batch.
const RECV_BUFFER: usize = 4 << 20;

/// `n` sockets bound to `addr` with SO_REUSEPORT, steered by CPU when `by_cpu` (socket `i`
/// gets what CPU `c` received when `c % n == i`), else by the kernel's hash. With port 0 the
/// first socket's port is used by the rest.
pub fn bind_group(addr: SocketAddr, n: usize, by_cpu: bool) -> io::Result<Vec<UdpSocket>> {
    let n = n.max(1);
    let mut at = addr;
    let mut group = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        force_recv_buffer(&socket);
        socket.bind(&at.into())?;
        socket.set_read_timeout(Some(READ_TIMEOUT))?;
        let socket: UdpSocket = socket.into();
        at = socket.local_addr()?;
        group.push(socket);
    }
    if by_cpu {
        steer_by_cpu(&group[0], n as u32)?;
    }
    Ok(group)
}

/// `group` (sockets of one address taken over from the xgslbd this one replaces, in the
/// kernel's group already) with sockets bound into it until it has `n`, steered by CPU over
/// all of them when `by_cpu` (the group's program is replaced), else by the kernel's hash.
/// A group of more than `n` is kept whole: closing a member would drop what it has queued.
pub fn extend_group(
    mut group: Vec<UdpSocket>,
    n: usize,
    by_cpu: bool,
) -> io::Result<Vec<UdpSocket>> {
    let Some(first) = group.first() else {
        return Ok(group);
    };
    let addr = first.local_addr()?;
    while group.len() < n {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        force_recv_buffer(&socket);
        socket.bind(&addr.into())?;
        socket.set_read_timeout(Some(READ_TIMEOUT))?;
        group.push(socket.into());
    }
    if by_cpu {
        steer_by_cpu(&group[0], group.len() as u32)?;
    }
    Ok(group)
}

/// Attaches `A = cpu % n; return A` to the reuseport group of `socket`
/// (SO_ATTACH_REUSEPORT_CBPF): the kernel picks the group's socket of that index.
fn steer_by_cpu(socket: &UdpSocket, n: u32) -> io::Result<()> {
    // linux/filter.h and linux/bpf_common.h.
    const BPF_LD: u16 = 0x00;
    const BPF_W: u16 = 0x00;
    const BPF_ABS: u16 = 0x20;
    const BPF_ALU: u16 = 0x04;
    const BPF_MOD: u16 = 0x90;
    const BPF_K: u16 = 0x00;
    const BPF_RET: u16 = 0x06;
    const BPF_A: u16 = 0x10;
    const SKF_AD_OFF: i32 = -0x1000;
    const SKF_AD_CPU: i32 = 36;
    let mut program = [
        libc::sock_filter {
            code: BPF_LD | BPF_W | BPF_ABS,
            jt: 0,
            jf: 0,
            k: (SKF_AD_OFF + SKF_AD_CPU) as u32,
        },
        libc::sock_filter {
            code: BPF_ALU | BPF_MOD | BPF_K,
            jt: 0,
            jf: 0,
            k: n,
        },
        libc::sock_filter {
            code: BPF_RET | BPF_A,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, both alive for the call; the kernel copies them.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for `RECV_BUFFER` of receive buffer: past net.core.rmem_max when privileged
/// (SO_RCVBUFFORCE, as Knot and NSD do), else up to it. Best effort: a smaller buffer still
/// works, it only drops sooner in a burst.
fn force_recv_buffer(socket: &Socket) {
    let size = RECV_BUFFER as libc::c_int;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    }
}

/// Whether `steering` means CPU steering for `workers` workers: `auto` asks whether
/// `iface` has at least that many receive queues (/sys/class/net/IFACE/queues/rx-*).
pub fn steer_by_cpu_for(
    steering: crate::config::UdpSteering,
    iface: Option<&str>,
    workers: usize,
) -> bool {
    use crate::config::UdpSteering;
    match steering {
        UdpSteering::Cpu => true,
        UdpSteering::Hash => false,
        UdpSteering::Auto => iface.is_some_and(|i| rx_queues(i) >= workers.max(2)),
    }
}

/// The receive queues of `iface` (0 when unknown).
fn rx_queues(iface: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0)
}
