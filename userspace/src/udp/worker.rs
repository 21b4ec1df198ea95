//! The workers: one OS thread per core, pinned, each owning one socket of every listen
//! address's reuseport group (the one the kernel steers its CPU's datagrams to). A worker
//! reads a batch, takes the publication in service once for the whole batch (a pointer load,
//! no lock), answers from the plan into its own buffers or through the full handler, puts
//! each response past the response rate limit (`limit`), and sends the batch. It counts
//! into its own counters; nothing is logged per query.
use std::io;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use xgslb_common::RrlDecision;

use super::answer::{PlanAnswers, Planned};
use super::batch::{BATCH, Outgoing, Received, client_ip};
use super::limit::{RRL_OFF, ResponseLimiter, RrlRules, monotonic_second, slip_in_place};
use super::socket::READ_TIMEOUT;
use crate::backoff::LogLimiter;
use crate::dns::RcodeCounters;

/// What the workers answer from: the publication in service.
pub trait Source: Send + Sync + 'static {
    type Publication: Publication;
    /// The publication in service now (readers never block the publisher).
    fn current(&self) -> Arc<Self::Publication>;
}

/// One publication as the workers use it.
pub trait Publication: Send + Sync + 'static {
    /// The plan's answers.
    fn plan(&self) -> &PlanAnswers;
    /// The full handler's response to a UDP query the plan does not answer.
    fn respond(&self, query: &[u8], client: IpAddr) -> Option<Vec<u8>>;
    /// The response rate limit's rules (default: off).
    fn rrl(&self) -> &RrlRules {
        &RRL_OFF
    }
}

/// One worker's counters, written by it alone (its own cache lines), summed by readers.
#[derive(Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    /// Datagrams read.
    pub received: AtomicU64,
    /// Answered from the plan.
    pub planned: AtomicU64,
    /// Answered by the full handler.
    pub handled: AtomicU64,
    /// Read but not answered (the handler or the plan said drop, or a cut datagram).
    pub unanswered: AtomicU64,
    /// Responses the rate limit dropped.
    pub rrl_dropped: AtomicU64,
    /// Responses the rate limit sent as their slipped reply (TC=1, no records).
    pub rrl_slipped: AtomicU64,
    /// Responses the kernel refused to send.
    pub send_failed: AtomicU64,
    pub rcodes: RcodeCounters,
}

/// The sums of every worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub workers: usize,
    pub received: u64,
    pub planned: u64,
    pub handled: u64,
    pub unanswered: u64,
    pub rrl_dropped: u64,
    pub rrl_slipped: u64,
    pub send_failed: u64,
}

/// The running workers.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counters: Vec<Arc<WorkerCounters>>,
}

impl Workers {
    /// Starts one worker per socket group member: worker `i` serves socket `i` of every group
    /// in `groups` (each group one listen address, all of one size), pinned to `cores[i]`
    /// when given. Every worker counts its responses in `limiter`.
    pub fn start<S: Source>(
        groups: Vec<Vec<UdpSocket>>,
        cores: &[usize],
        source: Arc<S>,
        limiter: Arc<ResponseLimiter>,
    ) -> io::Result<Self> {
        let n = groups.first().map_or(0, Vec::len);
        let mut per_worker: Vec<Vec<UdpSocket>> = (0..n).map(|_| Vec::new()).collect();
        for group in groups {
            for (i, s) in group.into_iter().enumerate() {
                if let Some(w) = per_worker.get_mut(i) {
                    w.push(s);
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(n);
        let mut counters = Vec::with_capacity(n);
        for (i, sockets) in per_worker.into_iter().enumerate() {
            let c = Arc::new(WorkerCounters::default());
            counters.push(c.clone());
            let (stop, source, core) = (stop.clone(), source.clone(), cores.get(i).copied());
            let limiter = limiter.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("xgslb-udp-{i}"))
                    .spawn(move || {
                        if let Some(id) = core {
                            core_affinity::set_for_current(core_affinity::CoreId { id });
                        }
                        run(&sockets, &*source, &limiter, &c, &stop);
                    })?,
            );
        }
        Ok(Self {
            stop,
            threads,
            counters,
        })
    }

    /// Every worker's counters.
    pub fn counters(&self) -> Vec<Arc<WorkerCounters>> {
        self.counters.clone()
    }

    /// Stops the workers (each within its read timeout) and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a UDP worker panicked");
            }
        }
    }
}

/// The sums of `counters`.
pub fn totals(counters: &[Arc<WorkerCounters>]) -> Totals {
    let mut t = Totals {
        workers: counters.len(),
        ..Totals::default()
    };
    for c in counters {
        t.received += c.received.load(Ordering::Relaxed);
        t.planned += c.planned.load(Ordering::Relaxed);
        t.handled += c.handled.load(Ordering::Relaxed);
        t.unanswered += c.unanswered.load(Ordering::Relaxed);
        t.rrl_dropped += c.rrl_dropped.load(Ordering::Relaxed);
        t.rrl_slipped += c.rrl_slipped.load(Ordering::Relaxed);
        t.send_failed += c.send_failed.load(Ordering::Relaxed);
    }
    t
}

/// A worker's loop over its sockets until `stop`. With one socket it blocks in the read;
/// with several (one per listen address) it waits in poll(2) for any of them.
fn run<S: Source>(
    sockets: &[UdpSocket],
    source: &S,
    limiter: &ResponseLimiter,
    c: &WorkerCounters,
    stop: &AtomicBool,
) {
    let mut received = Received::default();
    let mut out = Outgoing::default();
    let mut pick = 0u32;
    let mut recv_log = LogLimiter::new();
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let several = sockets.len() > 1;
    while !stop.load(Ordering::Relaxed) {
        if several {
            // SAFETY: `fds` is a live array of `fds.len()` pollfd.
            let rc = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    READ_TIMEOUT.as_millis() as libc::c_int,
                )
            };
            if rc <= 0 {
                continue; // timeout, or EINTR: look at the stop flag again
            }
        }
        for (socket, fd) in sockets.iter().zip(&fds) {
            if several && fd.revents == 0 {
                continue;
            }
            let n = match received.recv(socket, several) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // Errors here are per datagram (an ICMP error reported on the socket).
                    recv_log.warn(|suppressed| {
                        tracing::warn!(%e, suppressed, "dns udp: receive failed");
                    });
                    continue;
                }
            };
            let answering = Answering {
                limiter,
                counters: c,
            };
            answer_batch(&received, n, source, &answering, &mut pick, &mut out);
            let (_, failed) = out.send(socket);
            if failed > 0 {
                c.send_failed.fetch_add(failed as u64, Ordering::Relaxed);
            }
        }
    }
}

/// What a worker answers with besides the publication: the shared rate limit's table and
/// its own counters.
struct Answering<'a> {
    limiter: &'a ResponseLimiter,
    counters: &'a WorkerCounters,
}

/// What the rate limit made of a response.
enum Limited {
    /// Send this many bytes: the response.
    Whole(usize),
    /// Send this many bytes: the slipped reply, made in place.
    Slipped(usize),
    /// Send nothing.
    Dropped,
}

impl Answering<'_> {
    /// Puts `response` (a whole message, slipped in place if it comes to that) to
    /// `client` past the rate limit of `rules` at second `now`; `exempt`: the client is
    /// never limited.
    fn limit(
        &self,
        rules: &RrlRules,
        (client, exempt): (IpAddr, bool),
        now: u32,
        response: &mut [u8],
    ) -> Limited {
        if !rules.is_on() {
            return Limited::Whole(response.len());
        }
        let c = self.counters;
        match self.limiter.decide(rules, client, exempt, response, now) {
            RrlDecision::Answer => Limited::Whole(response.len()),
            RrlDecision::Slip => match slip_in_place(response) {
                Some(len) => {
                    c.rrl_slipped.fetch_add(1, Ordering::Relaxed);
                    Limited::Slipped(len)
                }
                None => {
                    c.rrl_dropped.fetch_add(1, Ordering::Relaxed);
                    Limited::Dropped
                }
            },
            RrlDecision::Drop => {
                c.rrl_dropped.fetch_add(1, Ordering::Relaxed);
                Limited::Dropped
            }
        }
    }
}

/// Answers the `n` datagrams in `received` into `out`.
fn answer_batch<S: Source>(
    received: &Received,
    n: usize,
    source: &S,
    answering: &Answering,
    pick: &mut u32,
    out: &mut Outgoing,
) {
    let c = answering.counters;
    let publication = source.current();
    let plan = publication.plan();
    let rules = publication.rrl();
    let now = if rules.is_on() { monotonic_second() } else { 0 };
    c.received.fetch_add(n as u64, Ordering::Relaxed);
    for i in 0..n.min(BATCH) {
        let Some((query, from)) = received.get(i) else {
            c.unanswered.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let client = client_ip(from);
        let Some(slot) = out.next_slot() else {
            break;
        };
        // The rate limit's `exempt` input, from the request: its source in an exempt
        // prefix, or a valid server cookie of ours (checked only when the limit is on).
        let exempt = rules.is_on() && (rules.exempts(client) || plan.valid_cookie(query, client));
        let limited = (client, exempt);
        match plan.answer(query, client, pick, slot) {
            Planned::Answered(len) => {
                match answering.limit(rules, limited, now, &mut slot[..len]) {
                    Limited::Whole(len) => {
                        c.rcodes.count(Some(&slot[..len]));
                        out.push_slot(len, from);
                        c.planned.fetch_add(1, Ordering::Relaxed);
                    }
                    Limited::Slipped(len) => {
                        c.rcodes.count(Some(&slot[..len]));
                        out.push_slot(len, from);
                    }
                    Limited::Dropped => c.rcodes.count(None),
                }
            }
            Planned::Drop => {
                c.rcodes.count(None);
                c.unanswered.fetch_add(1, Ordering::Relaxed);
            }
            Planned::SlowPath => match publication.respond(query, client) {
                Some(mut response) => match answering.limit(rules, limited, now, &mut response) {
                    Limited::Whole(_) => {
                        c.rcodes.count(Some(&response));
                        out.push_owned(response, from);
                        c.handled.fetch_add(1, Ordering::Relaxed);
                    }
                    Limited::Slipped(len) => {
                        response.truncate(len);
                        c.rcodes.count(Some(&response));
                        out.push_owned(response, from);
                    }
                    Limited::Dropped => c.rcodes.count(None),
                },
                None => {
                    c.rcodes.count(None);
                    c.unanswered.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }
}
