//! The fleet part of the bench: several xgslbd in this process on loopback (XDP off), peered
//! in a full mesh with relay, fed by simulated agents that each report one virtual server's
//! health to their site's EDNS only, every second ([`shape`] has the layout). Measured, once
//! every EDNS has heard every agent and agrees with every peer: how long a health change at
//! one site takes until every EDNS publishes its consequence (an affected wide IP answers the
//! next site's virtual server, or its own again), the relay and peer traffic per EDNS, and
//! whether every EDNS's fingerprints agree with every peer's once settled again.
//!
//! Each EDNS is a whole xgslbd as `daemon::run` starts it (its balancer thread, ingest, peer
//! socket, UDP workers), so the fleet shares this machine's CPUs: on 2 cores, 16 EDNSs get an
//! eighth of a core each where a real fleet has a machine each.
mod agents;
mod edns;
mod shape;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use xgslb::daemon::peer_socket::PeerWireCounters;

pub use self::shape::{FULL, SMOKE, Shape};
use self::{
    agents::{Agent, REPORT_EVERY, Sequence},
    edns::Edns,
    shape::edns_name,
};
use crate::ingest::percentile;

/// Bounds on waits (each a deadline on a condition, never a sleep to let things happen).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long no EDNS may publish before the timed changes start: the agents' first reports
/// and the fleet's settling publications are over, so that each change is timed alone.
const QUIET: Duration = Duration::from_secs(2);

/// Runs the fleet part of `shape` on a thread of its own (on every CPU: the bench's main
/// thread is pinned to one). Prints a Markdown table, returns JSON.
pub fn run(shape: Shape) -> Result<Value> {
    std::thread::Builder::new()
        .name("fleet".into())
        .spawn(move || {
            unpin();
            measure(&shape)
        })
        .context("spawn the fleet thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the fleet thread panicked"))?
}

fn measure(shape: &Shape) -> Result<Value> {
    shape.check()?;
    let dir = tempfile::tempdir().context("temp dir")?;
    let configs = shape::write_configs(shape, dir.path(), online_cpus())?;
    let started = Instant::now();
    let mut fleet = edns::start(&configs, dir.path())?;
    let start_s = started.elapsed().as_secs_f64();
    let result = drive(shape, &fleet, start_s);
    edns::stop(&mut fleet);
    result
}

/// With the fleet serving: the agents on, then the measurement, then the agents off.
fn drive(shape: &Shape, fleet: &[Edns], start_s: f64) -> Result<Value> {
    let agents = Arc::new(agents::agents(shape)?);
    let seq = Arc::new(Sequence::new());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (agents, seq, stop) = (agents.clone(), seq.clone(), stop.clone());
        std::thread::Builder::new()
            .name("fleet-agents".into())
            .spawn(move || agents::heartbeats(agents, seq, stop))
            .context("spawn the agents")?
    };
    let result = timed(shape, fleet, &agents, &seq, start_s);
    stop.store(true, Ordering::Relaxed);
    match sender.join() {
        Ok(r) => r.context("the agents")?,
        Err(_) => bail!("the agents' thread panicked"),
    };
    result
}

/// Counters of every EDNS and of the process at one moment: a window's ends.
struct Snapshot {
    at: Instant,
    peers: Vec<PeerWireCounters>,
    generations: Vec<u64>,
    cpu_s: f64,
    drops: u64,
    /// The host's 1-minute load average: other work on the machine shows here.
    load: f64,
}

impl Snapshot {
    fn take(fleet: &[Edns]) -> Self {
        Self {
            at: Instant::now(),
            peers: fleet.iter().map(|e| edns::counters(&e.handle)).collect(),
            generations: fleet
                .iter()
                .map(|e| e.handle.published().generation)
                .collect(),
            cpu_s: cpu_seconds(),
            drops: edns::udp_rcvbuf_errors(),
            load: load_average(),
        }
    }
}

/// Settles the fleet, times the changes, settles again; prints and returns the figures.
fn timed(
    shape: &Shape,
    fleet: &[Edns],
    agents: &[Agent],
    seq: &Sequence,
    start_s: f64,
) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let settled = wait_fleet(&rt, fleet, SETTLE_TIMEOUT, || {
        edns::all_heard(fleet, agents.len()) && edns::agreement(fleet).2.is_empty()
    });
    let Some(settle) = settled else {
        bail!(
            "the fleet did not settle (every agent heard by every EDNS, every EDNS agreeing \
             with every peer) in {SETTLE_TIMEOUT:?}:\n{}",
            edns::state(fleet, agents.len())
        );
    };
    let generations = |fleet: &[Edns]| -> Vec<u64> {
        fleet
            .iter()
            .map(|e| e.handle.published().generation)
            .collect()
    };
    let (mut last, mut since) = (generations(fleet), Instant::now());
    let quiet = wait_fleet(&rt, fleet, SETTLE_TIMEOUT, || {
        let now = generations(fleet);
        if now != last {
            (last, since) = (now, Instant::now());
        }
        since.elapsed() >= QUIET
    });
    let Some(quiet) = quiet else {
        bail!(
            "the fleet kept publishing (no {QUIET:?} without a publication in \
             {SETTLE_TIMEOUT:?}):\n{}",
            edns::state(fleet, agents.len())
        );
    };
    let settle = settle + quiet;
    let before = Snapshot::take(fleet);
    let changes = changes(shape, fleet, &rt, agents, seq)?;
    let after = Snapshot::take(fleet);
    Ok(report(
        shape,
        fleet,
        Figures {
            start_s,
            settle,
            changes,
            before,
            after,
        },
    ))
}

/// What the timed changes measured.
struct Changes {
    /// Per change, per EDNS: ms from the report leaving until the EDNS answers the change.
    published_ms: Vec<Vec<f64>>,
    /// Per change: ms from the report leaving until every EDNS agrees with every peer again.
    agreed_ms: Vec<f64>,
}

/// The timed changes: pairs of one virtual server down, then up again (each pair another
/// one), each reported by its agent at once, each once the fleet has settled from the one
/// before (every EDNS agreeing with every peer: all have taken the last change in), so that
/// each is timed alone, as a change at a site mostly comes.
fn changes(
    shape: &Shape,
    fleet: &[Edns],
    rt: &tokio::runtime::Runtime,
    agents: &[Agent],
    seq: &Sequence,
) -> Result<Changes> {
    let mut out = Changes {
        published_ms: Vec::new(),
        agreed_ms: Vec::new(),
    };
    for c in 0..shape.changes {
        let j = (c / 2 * 37 + 3) % shape.vss();
        let down = c % 2 == 0;
        let want = shape.vs_address(if down { shape.pool_members(j)[1] } else { j });
        // Pacing: changes land at spread phases of the balancers' intervals and heartbeats.
        std::thread::sleep(Duration::from_millis(700 + (c as u64 * 379) % 1000));
        let sent = agents[j].report(seq, Some(!down))?;
        let times = rt.block_on(all_publish(fleet, j, want, sent));
        let late: Vec<String> = (0..fleet.len())
            .filter(|&i| times[i].is_none())
            .map(edns_name)
            .collect();
        ensure!(
            late.is_empty(),
            "change {c} ({} {}): not published within {CHANGE_TIMEOUT:?} by {}:\n{}",
            shape.vs_name(j),
            if down { "down" } else { "up" },
            late.join(", "),
            edns::state(fleet, agents.len())
        );
        out.published_ms.push(
            times
                .iter()
                .map(|t| t.map_or(f64::NAN, |t| t.as_secs_f64() * 1e3))
                .collect(),
        );
        let agreed = wait_fleet(rt, fleet, SETTLE_TIMEOUT, || {
            edns::agreement(fleet).2.is_empty()
        });
        ensure!(
            agreed.is_some(),
            "change {c}: the EDNSs did not agree again within {SETTLE_TIMEOUT:?}:\n{}",
            edns::state(fleet, agents.len())
        );
        out.agreed_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// Waits on each EDNS's publications until it answers `want` for wide IP `w`; each EDNS's
/// time from `since`, or `None` past [`CHANGE_TIMEOUT`].
async fn all_publish(
    fleet: &[Edns],
    w: usize,
    want: std::net::Ipv4Addr,
    since: Instant,
) -> Vec<Option<Duration>> {
    let deadline = tokio::time::Instant::from_std(since + CHANGE_TIMEOUT);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, e) in fleet.iter().enumerate() {
        let handle = e.handle.clone();
        // Taken before the first look: a publication in between wakes the wait below.
        let mut rx = handle.subscribe();
        tasks.spawn(async move {
            loop {
                if edns::answer(&handle, w) == [want] {
                    return (i, Some(since.elapsed()));
                }
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(Ok(())) => {}
                    _ => return (i, None),
                }
            }
        });
    }
    let mut out = vec![None; fleet.len()];
    while let Some(r) = tasks.join_next().await {
        if let Ok((i, t)) = r {
            out[i] = t;
        }
    }
    out
}

/// Waits, woken by the first EDNS's publications and announcements (at least one per
/// balancer interval), until `done` holds; how long it took, or `None` past `timeout`.
fn wait_fleet(
    rt: &tokio::runtime::Runtime,
    fleet: &[Edns],
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let mut rx = fleet.first()?.handle.subscribe();
    rt.block_on(async {
        loop {
            if done() {
                return Some(start.elapsed());
            }
            let left = timeout.checked_sub(start.elapsed())?;
            if tokio::time::timeout(left, rx.changed()).await.is_err() {
                return None;
            }
        }
    })
}

/// What was measured.
struct Figures {
    start_s: f64,
    /// From the agents' start until every EDNS heard every agent and agreed with every peer,
    /// and no EDNS published for [`QUIET`].
    settle: Duration,
    changes: Changes,
    before: Snapshot,
    after: Snapshot,
}

/// Prints the Markdown report, returns the JSON.
fn report(shape: &Shape, fleet: &[Edns], f: Figures) -> Value {
    let window_s = (f.after.at - f.before.at).as_secs_f64();
    let rate = |n: u64| n as f64 / window_s;
    let cores_busy = (f.after.cpu_s - f.before.cpu_s) / window_s;
    let drops = f.after.drops.saturating_sub(f.before.drops);
    let (rss, peak) = memory_mib();
    let (agree, pairs, not) = edns::agreement(fleet);
    let mut agreed = f.changes.agreed_ms.clone();
    agreed.sort_by(f64::total_cmp);
    let mut worst: Vec<f64> = f
        .changes
        .published_ms
        .iter()
        .map(|c| c.iter().copied().fold(0.0, f64::max))
        .collect();
    let per_change = worst.clone();
    worst.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&worst, 0.5), percentile(&worst, 0.99));
    let max = worst.last().copied().unwrap_or(f64::NAN);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut s = format!(
        "\n### EDNS fleet\n\n\
         {} xgslbd in one process on loopback (XDP off), full mesh with relay; {} agents \
         across {} sites ({} without an EDNS) each reporting one virtual server's health every \
         {} ms to its site's EDNS only; {} wide IPs. Started in {:.1} s; every agent heard \
         everywhere, every fingerprint equal and no EDNS publishing for {} s, {:.1} s after the \
         agents started. {} changes \
         over {window_s:.0} s, the process using {cores_busy:.2} of {} CPUs (host load \
         average {:.1} before, {:.1} after); resident memory {rss:.0} MiB (peak {peak:.0}); UDP \
         receive-buffer drops meanwhile (this network namespace): {drops}.\n\n\
         | change published by every EDNS p50 (ms) | p99 (ms) | max (ms) |\n|---:|---:|---:|\n\
         | {p50:.0} | {p99:.0} | {max:.0} |\n\n\
         | EDNS | direct agents | change p50 (ms) | relayed out/s | relayed in/s | relay \
         duplicates | peer datagrams in/s | refused or unsent | publications/s | peers \
         agreeing |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        shape.ednss,
        shape.vss(),
        shape.sites,
        shape.sites - shape.ednss,
        REPORT_EVERY.as_millis(),
        shape.wideips,
        f.start_s,
        QUIET.as_secs(),
        f.settle.as_secs_f64(),
        shape.changes,
        online_cpus(),
        f.before.load,
        f.after.load,
    );
    let mut per_edns = Vec::new();
    for (i, e) in fleet.iter().enumerate() {
        let (b, a) = (&f.before.peers[i], &f.after.peers[i]);
        let mut mine: Vec<f64> = f.changes.published_ms.iter().map(|c| c[i]).collect();
        mine.sort_by(f64::total_cmp);
        let refused = (a.relay_refused + a.total_rejected() + a.send_errors)
            - (b.relay_refused + b.total_rejected() + b.send_errors);
        let row = json!({
            "name": edns_name(i),
            "direct_agents": shape.direct_agents(i),
            "change_p50_ms": percentile(&mine, 0.5),
            "relayed_out_per_s": rate(a.relayed_out - b.relayed_out),
            "relayed_in_per_s": rate(a.relayed_in - b.relayed_in),
            "relay_duplicates": a.relay_duplicates - b.relay_duplicates,
            "peer_datagrams_in_per_s": rate(a.accepted - b.accepted),
            "refused_or_unsent": refused,
            "publications_per_s": rate(f.after.generations[i] - f.before.generations[i]),
            "agreeing_peers": edns::agreeing_peers(e),
        });
        s += &format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {} | {:.1} | {} of {} |\n",
            row["name"].as_str().unwrap_or_default(),
            row["direct_agents"],
            row["change_p50_ms"].as_f64().unwrap_or(f64::NAN),
            row["relayed_out_per_s"].as_f64().unwrap_or(f64::NAN),
            row["relayed_in_per_s"].as_f64().unwrap_or(f64::NAN),
            row["relay_duplicates"],
            row["peer_datagrams_in_per_s"].as_f64().unwrap_or(f64::NAN),
            refused,
            row["publications_per_s"].as_f64().unwrap_or(f64::NAN),
            row["agreeing_peers"],
            fleet.len() - 1,
        );
        per_edns.push(row);
    }
    let change_met = p99 < 1000.0;
    let fingerprints_met = agree == pairs;
    s += &format!(
        "\n- a health change at one site until every EDNS publishes its consequence, p99 over \
         {} changes: {p99:.0} ms; target (< 1,000 ms): {}\n\
         - fingerprints once settled: {agree} of {pairs} (EDNS, peer) pairs comparable and \
         agreeing{}, every pair again {:.1} s (p50; p99 {:.1} s) after each change; target \
         (all): {}\n",
        shape.changes,
        verdict(change_met),
        if not.is_empty() {
            String::new()
        } else {
            format!(" (not: {})", not.join(" "))
        },
        percentile(&agreed, 0.5) / 1e3,
        percentile(&agreed, 0.99) / 1e3,
        verdict(fingerprints_met),
    );
    print!("{s}");
    json!({
        "ednss": shape.ednss,
        "sites": shape.sites,
        "agents": shape.vss(),
        "wideips": shape.wideips,
        "report_interval_ms": REPORT_EVERY.as_millis() as u64,
        "start_s": f.start_s,
        "settle_s": f.settle.as_secs_f64(),
        "changes": shape.changes,
        "change_ms": per_change,
        "change_p50_ms": p50,
        "change_p99_ms": p99,
        "change_max_ms": max,
        "window_s": window_s,
        "cpus": online_cpus(),
        "cores_busy": cores_busy,
        "load_average": [f.before.load, f.after.load],
        "rss_mib": rss,
        "peak_rss_mib": peak,
        "udp_receive_buffer_drops": drops,
        "agreeing_pairs": agree,
        "pairs": pairs,
        "agreed_again_ms": f.changes.agreed_ms,
        "per_edns": per_edns,
        "target": {
            "change_p99_under_ms": 1000,
            "change_met": change_met,
            "fingerprints_met": fingerprints_met,
        },
    })
}

/// Process CPU time (user and system), seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given; RUSAGE_SELF is always valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// The host's 1-minute load average (NaN if unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// This process's resident memory and its peak, MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Lets this thread, and the threads it starts, run on every online CPU.
fn unpin() {
    // SAFETY: the set is a zeroed local that CPU_SET fills; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..online_cpus() {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}
