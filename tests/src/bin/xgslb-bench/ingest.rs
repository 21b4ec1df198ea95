//! The ingest part of the bench: verified agent reports per second on one core (decode, HMAC,
//! replay window, site and VS checks), and the latency from a report leaving an agent's
//! socket to the selection map holding its consequence (xgslbd in-process on loopback, XDP
//! loaded but not attached, maps written as always).
use std::{
    net::UdpSocket,
    path::Path,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xgslb::{
    config::Config,
    daemon::{self, DaemonHandle, ingest::now_ms},
    metrics::{
        ingest::{Ingest, IngestKey, VsIndex},
        wire::{self, Header, Key, Kind, Load, Record},
    },
    test_model::TestModel,
};
use xgslb_tests::{agents::write_key, pins::PinDir};

const SECRET: &str = "bench-secret-0123456789abcdef0123";
const DNS_PORT: u16 = 55353;
const AGENT_PORT: u16 = 55300;

fn config(dir: &Path, pins: &Path) -> Result<std::path::PathBuf> {
    write_key(&dir.join("bench.key"), SECRET);
    let path = TestModel::new(&[&format!("127.0.0.1:{DNS_PORT}")])
        .set(
            "server",
            &format!("pin_dir = {:?}", pins.display().to_string()),
        )
        .agents(&format!("127.0.0.1:{AGENT_PORT}"))
        .agent_key(1, "bench.key", None)
        .demo_zone()
        .site("tokyo", "lb", &[("a", "198.18.1.1"), ("b", "198.18.1.2")])
        .pool("p", &["a", "b"], "global_availability")
        .wideip("ga.example.test.", &["p"])
        .write(dir);
    Ok(path)
}

fn key() -> Key {
    Key {
        id: 1,
        secret: SECRET.as_bytes().to_vec(),
    }
}

/// A report like an agent's: health and load of both virtual servers.
fn report(sequence: u64, a_up: bool) -> Vec<u8> {
    let header = Header {
        kind: Kind::Report,
        key_id: 1,
        sequence,
        timestamp_ms: now_ms(),
        agent: "bench-agent".into(),
        site: "tokyo".into(),
    };
    let load = Load {
        connections: Some(sequence % 1000),
        cpu_percent: Some(12.5),
        ..Load::default()
    };
    let records = vec![
        Record::Health {
            vs: "a".into(),
            up: a_up,
        },
        Record::Health {
            vs: "b".into(),
            up: true,
        },
        Record::Load {
            vs: "a".into(),
            load,
        },
        Record::Load {
            vs: "b".into(),
            load,
        },
    ];
    wire::encode(&header, &records, &key()).remove(0)
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Verified reports per second through `Ingest::accept` on this (pinned) thread.
fn verify_rate(cfg: &Config, n: usize) -> Result<f64> {
    let index = VsIndex::new(&cfg.model);
    let mut ingest = Ingest::new(
        [IngestKey {
            key: key(),
            site: None,
        }],
        30_000,
        4096,
    );
    let datagrams: Vec<Vec<u8>> = (0..n).map(|i| report(1 + i as u64, true)).collect();
    let now = now_ms();
    let start = Instant::now();
    for d in &datagrams {
        if ingest.accept(d, now, &index).is_err() {
            bail!("a valid report was refused: {:?}", ingest.counters());
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs the ingest part. Prints a Markdown table, returns JSON.
pub fn run(smoke: bool) -> Result<Value> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let pins = PinDir::new("ingest-bench");
    let path = config(dir.path(), pins.path())?;
    let cfg = Config::load(&path).context("bench config")?;
    let (verify_n, samples) = if smoke {
        (20_000, 50)
    } else {
        (500_000, 2_000)
    };
    let rate = verify_rate(&cfg, verify_n)?;

    // xgslbd in-process; the handle tells when each publication is done.
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<DaemonHandle>();
    let opts = daemon::Options {
        iface: None,
        xdp_mode: None,
        pin_dir: Some(pins.path().to_owned()),
        leave_serving: false,
        control_socket: Some(dir.path().join("control.sock")),
        replace: false,
    };
    let cfg_path = path.clone();
    let thread = std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        rt.block_on(daemon::run(
            &cfg_path,
            opts,
            move |h| {
                let _ = ready_tx.send(h);
            },
            token,
        ))?;
        Ok(())
    });
    let handle = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .context("xgslbd did not start")?;
    let sock = UdpSocket::bind("127.0.0.1:0").context("agent socket")?;
    sock.connect(("127.0.0.1", AGENT_PORT)).context("connect")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut rx = handle.subscribe();
    let mut latencies = Vec::with_capacity(samples);
    let mut sequence = now_ms() * 1000;
    for i in 0..samples {
        sequence += 1;
        // Each report flips a's health: every one changes a selection.
        let datagram = report(sequence, i % 2 == 1);
        let seen = rx.borrow_and_update().generation;
        let start = Instant::now();
        sock.send(&datagram).context("send")?;
        rt.block_on(async {
            loop {
                if rx.borrow_and_update().generation > seen {
                    return Ok(());
                }
                match tokio::time::timeout(Duration::from_secs(5), rx.changed()).await {
                    Ok(Ok(())) => {}
                    _ => bail!("no publication for report {i}"),
                }
            }
        })?;
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
    }
    shutdown.cancel();
    match thread.join() {
        Ok(r) => r.context("xgslbd")?,
        Err(_) => bail!("xgslbd panicked"),
    }
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    print!(
        "\n### Agent ingest\n\n\
         | verified reports/s (one core) | report to map p50 (us) | p99 (us) |\n|---:|---:|---:|\n\
         | {rate:.0} | {p50:.0} | {p99:.0} |\n\n\
         - verified reports per second: {rate:.0}; target (>= 100,000): {}\n\
         - report to map, p99 over {samples} reports that each change a selection: {p99:.0} us; \
         target (< 1,000 us): {}\n",
        verdict(rate >= 100_000.0),
        verdict(p99 < 1000.0),
    );
    Ok(json!({
        "verified_reports_per_second": rate,
        "report_to_map_p50_us": p50,
        "report_to_map_p99_us": p99,
        "samples": samples,
    }))
}
