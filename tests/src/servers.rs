//! Small real servers for the agent tests, each on a thread inside a test namespace: an HTTP
//! server behind a virtual server (stoppable, holding its connections open so that they
//! count), and an LDNS that answers DNS probes with a per-source delay and loss. This kernel
//! has no netem qdisc (CONFIG_NET_SCH_NETEM is off), so the LDNS host itself makes a path slow
//! or lossy, on real UDP traffic.
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Runs `f` on a new thread inside namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        crate::netns::enter_namespace(&ns);
        f()
    })
}

/// An HTTP/1.1 server answering `200 ok` to every request, keeping every connection open
/// until stopped (so that the host's socket table counts them).
pub struct HttpServer {
    stop: Arc<AtomicBool>,
    fd: i32,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: &str, addr: SocketAddr) -> Self {
        let listener = in_ns(ns, move || TcpListener::bind(addr))
            .join()
            .expect("bind thread")
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let fd = listener.as_raw_fd();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
            while !flag.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    break;
                };
                let held = held.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 1024];
                    // Answer a request if one comes; either way keep the connection.
                    if let Ok(n) = stream.read(&mut buf)
                        && n > 0
                    {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        );
                    }
                    if let Ok(mut h) = held.lock() {
                        h.push(stream);
                    }
                });
            }
        });
        Self {
            stop,
            fd,
            thread: Some(thread),
        }
    }

    /// Stops accepting and closes the listening socket (connections get refused).
    pub fn stop(&mut self) {
        // Once only: after the thread ends the fd is closed, and its number may be reused.
        let Some(t) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: the listener's fd is open until its thread ends, which this wakes.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        let _ = t.join();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the LDNS treats probes from one source address.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathShape {
    /// Added before each answer.
    pub delay: Duration,
    /// Every `drop_every`-th probe is not answered (0: none).
    pub drop_every: u32,
}

/// A DNS responder on port 53 that answers every query (header echoed with QR and REFUSED:
/// an answer is an answer to a prober) after the delay set for its source, dropping some.
pub struct Ldns {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ldns {
    /// Serves on `addr` (port 53) inside `ns`, shaping by source address.
    pub fn start(ns: &str, addr: IpAddr, shapes: Vec<(IpAddr, PathShape)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = in_ns(ns, move || {
            let sock = UdpSocket::bind(SocketAddr::new(addr, 53)).expect("bind the LDNS");
            let mut counts: Vec<u32> = vec![0; shapes.len()];
            // Answers due, by time.
            let mut due: BinaryHeap<Reverse<(Instant, SocketAddr, Vec<u8>)>> = BinaryHeap::new();
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                while due.peek().is_some_and(|Reverse((t, _, _))| *t <= now) {
                    if let Some(Reverse((_, to, msg))) = due.pop() {
                        let _ = sock.send_to(&msg, to);
                    }
                }
                let wait = due
                    .peek()
                    .map(|Reverse((t, _, _))| t.saturating_duration_since(now))
                    .unwrap_or(Duration::from_millis(50))
                    .clamp(Duration::from_millis(1), Duration::from_millis(50));
                let _ = sock.set_read_timeout(Some(wait));
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                let shape = shapes.iter().position(|(a, _)| *a == from.ip());
                let PathShape { delay, drop_every } =
                    shape.map(|i| shapes[i].1).unwrap_or_default();
                if let Some(i) = shape {
                    counts[i] += 1;
                    if drop_every > 0 && counts[i].is_multiple_of(drop_every) {
                        continue;
                    }
                }
                let mut msg = buf[..n].to_vec();
                msg[2] |= 0x80; // QR
                msg[3] = (msg[3] & 0xf0) | 5; // REFUSED
                due.push(Reverse((Instant::now() + delay, from, msg)));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ldns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
