//! The fleet's xgslbd: each on its own thread and current-thread runtime (its balancer on
//! its own thread, as always), started together, and what is read of them: an answer,
//! whether peers agree, whether every agent is heard, the peer counters.
use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use hickory_proto::rr::RData;
use tokio_util::sync::CancellationToken;
use xgslb::{
    config::XdpModeSetting,
    control::dispatch::Daemon as _,
    daemon::{self, DaemonHandle, peer_socket::PeerWireCounters},
    dns::Dynamic,
    metrics::ingest::AgentLiveness,
};

use super::shape::{edns_name, wideip_name};

/// How long the fleet may take to start: a bound, not a sleep.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// The client every answer is asked for (no regions: every client is in the default class).
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

/// One xgslbd of the fleet.
pub struct Edns {
    pub handle: DaemonHandle,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<()>>>,
}

/// Starts an xgslbd per config at once, XDP off, and waits until all serve; on failure
/// stops those started.
pub fn start(configs: &[PathBuf], dir: &Path) -> Result<Vec<Edns>> {
    let mut starting = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (ready_tx, ready_rx) = mpsc::channel::<DaemonHandle>();
        let opts = daemon::Options {
            iface: None,
            xdp_mode: Some(XdpModeSetting::Off),
            // XDP off: never created, nothing pinned.
            pin_dir: Some(dir.join(format!("pins-{i}"))),
            leave_serving: false,
            control_socket: Some(dir.join(format!("{}.sock", edns_name(i)))),
            replace: false,
        };
        let config = config.clone();
        let thread = std::thread::Builder::new()
            .name(edns_name(i))
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(daemon::run(
                    &config,
                    opts,
                    move |h| {
                        let _ = ready_tx.send(h);
                    },
                    token,
                ))?;
                Ok(())
            })
            .context("spawn an xgslbd thread")?;
        starting.push((shutdown, thread, ready_rx));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let mut fleet = Vec::new();
    let mut failed = None;
    for (i, (shutdown, thread, ready)) in starting.into_iter().enumerate() {
        match ready.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(handle) => fleet.push(Edns {
                handle,
                shutdown,
                thread: Some(thread),
            }),
            Err(_) => {
                shutdown.cancel();
                let why = match thread.join() {
                    Ok(Err(e)) => format!("{e:#}"),
                    Ok(Ok(())) => "it stopped".into(),
                    Err(_) => "it panicked".into(),
                };
                failed.get_or_insert(format!("{} did not start: {why}", edns_name(i)));
            }
        }
    }
    if let Some(why) = failed {
        stop(&mut fleet);
        bail!(why);
    }
    Ok(fleet)
}

/// Stops every EDNS (all told first, then each waited for).
pub fn stop(fleet: &mut [Edns]) {
    for e in fleet.iter() {
        e.shutdown.cancel();
    }
    for (i, e) in fleet.iter_mut().enumerate() {
        let result = match e.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(anyhow::anyhow!("panicked")),
            None => Ok(()),
        };
        if let Err(why) = result {
            eprintln!("fleet: {}: {why:#}", edns_name(i));
        }
    }
}

/// The A addresses `handle` publishes for wide IP `w`.
pub fn answer(handle: &DaemonHandle, w: usize) -> Vec<Ipv4Addr> {
    match handle.answer(&wideip_name(w), CLIENT, 0) {
        Some(Dynamic::Records(records)) => records
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether EDNS `handle` holds peer `p` as agreeing: heard, comparable (same inputs, its
/// whole fingerprint set), and no wide IP divergent.
fn agrees(p: &xgslb::peers::table::PeerStatus) -> bool {
    p.comparable && p.divergent.is_empty() && !p.silent
}

/// (EDNS, peer) pairs that agree, of all pairs, and the pairs that do not, as "a->b".
pub fn agreement(fleet: &[Edns]) -> (usize, usize, Vec<String>) {
    let mut agree = 0;
    let mut all = 0;
    let mut not = Vec::new();
    for (i, e) in fleet.iter().enumerate() {
        for p in &e.handle.view().peers {
            all += 1;
            if agrees(p) {
                agree += 1;
            } else {
                not.push(format!("{}->{}", edns_name(i), p.name));
            }
        }
    }
    (agree, all, not)
}

/// The peers EDNS `e` holds as agreeing.
pub fn agreeing_peers(e: &Edns) -> usize {
    e.handle.view().peers.iter().filter(|p| agrees(p)).count()
}

/// Agents EDNS `e` has heard within their timeout (directly or relayed).
fn heard(e: &Edns) -> usize {
    e.handle.agents().map_or(0, |a| {
        a.agents
            .iter()
            .filter(|s| s.liveness == AgentLiveness::Up)
            .count()
    })
}

/// Every EDNS has heard all `agents`.
pub fn all_heard(fleet: &[Edns], agents: usize) -> bool {
    fleet.iter().all(|e| heard(e) == agents)
}

/// An EDNS's peer counters summed over its peers.
pub fn counters(handle: &DaemonHandle) -> PeerWireCounters {
    let mut sum = PeerWireCounters::default();
    for c in handle.peer_counters().values() {
        sum.accepted += c.accepted;
        sum.relayed_in += c.relayed_in;
        sum.relay_duplicates += c.relay_duplicates;
        sum.relay_refused += c.relay_refused;
        sum.relayed_out += c.relayed_out;
        sum.send_errors += c.send_errors;
        for (s, r) in sum.rejected.iter_mut().zip(c.rejected) {
            *s += r;
        }
    }
    sum
}

/// Per EDNS: agents heard, reports, publications, peers agreeing, peer counters; then the
/// UDP receive-buffer drops. What an unsettled fleet is reported with.
pub fn state(fleet: &[Edns], agents: usize) -> String {
    let mut s = String::new();
    for (i, e) in fleet.iter().enumerate() {
        let peers = e.handle.view().peers.clone();
        let f = e.handle.published();
        let c = counters(&e.handle);
        let accepted = e.handle.agents().map_or(0, |a| a.counters.accepted);
        s += &format!(
            "  {}: agents heard {} of {agents}; reports accepted {accepted}, applied {}; \
             publications {}, the last in {} us; peers agreeing {} of {}, comparable {}, \
             silent {}; peer datagrams accepted {}, refused {}; relayed in {}, out {}; send \
             errors {}\n",
            edns_name(i),
            heard(e),
            f.reports,
            f.generation,
            f.last_publication_us,
            peers.iter().filter(|p| agrees(p)).count(),
            peers.len(),
            peers.iter().filter(|p| p.comparable).count(),
            peers.iter().filter(|p| p.silent).count(),
            c.accepted,
            c.total_rejected(),
            c.relayed_in,
            c.relayed_out,
            c.send_errors,
        );
    }
    s + &format!(
        "  UDP receive-buffer drops (this network namespace, every process): {}\n",
        udp_rcvbuf_errors()
    )
}

/// `RcvbufErrors` of /proc/net/snmp: datagrams dropped for a full receive buffer in this
/// network namespace (every process's sockets).
pub fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
