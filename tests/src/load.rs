//! A bounded, paced query load with every query accounted for: each UDP query carries its
//! own id on its own socket, each TCP query its own connection, and at the end every query
//! is answered or counted lost. Runs in the client namespace of a `NetnsPair`.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};

/// How long an answer may take before its query counts as lost.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Most queries one UDP stream sends (its ids are 16 bits).
const MAX_UDP_QUERIES: u64 = 60_000;

/// A query's wire form for `name` and `rtype` with id 0 (the sender writes each id).
pub fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut q = Message::new(0, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    q.to_vec().expect("encode")
}

/// What one stream of queries counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub answered: u64,
    /// Answers whose addresses were checked and held the forbidden one (see `UdpStream`).
    pub forbidden: u64,
    /// The first unanswered queries (UDP: their ids, the order they were sent in).
    pub missing: [Option<u16>; 4],
}

impl Tally {
    pub fn lost(&self) -> u64 {
        self.sent - self.answered
    }
}

/// One paced UDP stream: `rate` queries a second of one question from one socket, each
/// with the next id; a receiver marks each id answered.
pub struct UdpStream {
    stop: Arc<AtomicBool>,
    /// Set once the sender has stopped: the receiver waits for the last answers.
    drain: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    forbidden: Arc<AtomicU64>,
    seen: Arc<Vec<AtomicBool>>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpStream {
    /// Starts sending `query` to `server` from namespace `ns`, `rate` a second. An answer
    /// that holds the bytes of `forbidden` (an IPv4 address, as an A record's data) counts
    /// in `Tally::forbidden`.
    pub fn start(
        ns: &str,
        server: SocketAddr,
        query: Vec<u8>,
        rate: u32,
        forbidden: Option<std::net::Ipv4Addr>,
    ) -> Self {
        let ns = ns.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            crate::netns::enter_namespace(&ns);
            let socket = UdpSocket::bind(match server {
                SocketAddr::V4(_) => "0.0.0.0:0",
                SocketAddr::V6(_) => "[::]:0",
            })
            .expect("bind");
            socket.connect(server).expect("connect");
            let _ = tx.send(socket);
        });
        let socket = rx.recv().expect("socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(
            (0..=u16::MAX as usize)
                .map(|_| AtomicBool::new(false))
                .collect::<Vec<_>>(),
        );
        let receiver = {
            let (socket, stop, answered, sent, bad, seen) = (
                socket.try_clone().expect("clone"),
                drain.clone(),
                answered.clone(),
                sent.clone(),
                bad.clone(),
                seen.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut quiet_since: Option<Instant> = None;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        let done = answered.load(Ordering::Relaxed) >= sent.load(Ordering::Relaxed);
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if done || since.elapsed() > ANSWER_TIMEOUT {
                            return;
                        }
                    }
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    if n < 12 || buf[2] & 0x80 == 0 {
                        continue;
                    }
                    let id = u16::from_be_bytes([buf[0], buf[1]]) as usize;
                    if !seen[id].swap(true, Ordering::Relaxed) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(a) = forbidden
                        && buf[..n]
                            .windows(6)
                            .any(|w| w[..2] == [0, 4] && w[2..] == a.octets())
                    {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let sender = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut q = query;
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) && n < MAX_UDP_QUERIES {
                    // Paced: query n goes out at n / rate seconds.
                    let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    q[..2].copy_from_slice(&(n as u16).to_be_bytes());
                    if socket.send(&q).is_ok() {
                        n += 1;
                        sent.store(n, Ordering::Relaxed);
                    }
                }
            })
        };
        UdpStream {
            stop,
            drain,
            answered,
            sent,
            forbidden: bad,
            seen,
            threads: vec![sender, receiver],
        }
    }

    /// Answers so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for the last answers (at most `ANSWER_TIMEOUT`), and counts.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut threads = self.threads.into_iter();
        for t in threads.by_ref().take(1) {
            t.join().expect("sender thread");
        }
        self.drain.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("receiver thread");
        }
        let sent = self.sent.load(Ordering::Relaxed);
        let mut missing = [None; 4];
        let unanswered = (0..sent).filter(|&i| !self.seen[i as usize].load(Ordering::Relaxed));
        for (m, id) in missing.iter_mut().zip(unanswered) {
            *m = Some(id as u16);
        }
        Tally {
            sent,
            answered: self.answered.load(Ordering::Relaxed),
            forbidden: self.forbidden.load(Ordering::Relaxed),
            missing,
        }
    }
}

/// One TCP query after another, each on a new connection, `rate` a second at most.
pub struct TcpStreamLoad {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Tally, Vec<String>)>,
    answered: Arc<AtomicU64>,
}

impl TcpStreamLoad {
    /// Starts the queries (an answer holding `forbidden` as an A record's data counts in
    /// `Tally::forbidden`).
    pub fn start(
        ns: &str,
        server: SocketAddr,
        query: Vec<u8>,
        rate: u32,
        forbidden: Option<std::net::Ipv4Addr>,
    ) -> Self {
        let ns = ns.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, a) = (stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            crate::netns::enter_namespace(&ns);
            let mut tally = Tally::default();
            let mut errors = Vec::new();
            let start = Instant::now();
            let mut framed = (query.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&query);
            while !s.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(tally.sent as f64 / f64::from(rate));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                tally.sent += 1;
                framed[2..4].copy_from_slice(&(tally.sent as u16).to_be_bytes());
                match ask_tcp(server, &framed) {
                    Ok(body) => {
                        if forbidden.is_some_and(|a| holds_address(&body, a)) {
                            tally.forbidden += 1;
                        }
                        tally.answered += 1;
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (tally, errors)
        });
        TcpStreamLoad {
            stop,
            thread,
            answered,
        }
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops and counts; the errors of the queries that failed.
    pub fn finish(self) -> (Tally, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("tcp load thread")
    }
}

/// Whether a response holds `a` as an A record's data (RDLENGTH 4, then the address).
fn holds_address(response: &[u8], a: std::net::Ipv4Addr) -> bool {
    response
        .windows(6)
        .any(|w| w[..2] == [0, 4] && w[2..] == a.octets())
}

/// One framed query on a new connection; its answer must come whole.
fn ask_tcp(server: SocketAddr, framed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, ANSWER_TIMEOUT)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    s.write_all(framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    if body.len() < 12 || body[..2] != framed[2..4] || body[2] & 0x80 == 0 {
        return Err(std::io::Error::other("not the answer to the query sent"));
    }
    Ok(body)
}
