//! xgslb-agent: runs at a site, checks the health and load of its virtual servers, probes the
//! paths to LDNSs, and reports all of it to every configured EDNS over the metric protocol
//! ([`crate::metrics::wire`]).
//!
//! - [`config`]: the agent's TOML config, validated as a whole into the specs the other
//!   modules own ([`health::CheckConfig`], [`sampler::LoadConfig`], [`probe::ProbeConfig`]).
//! - [`error`]: the one error type of the agent.
//! - [`health`]: health checks and the rise/fall state machine.
//! - [`http`]: check URLs and HTTP GET over hyper (checks, load endpoints); [`tls`] for HTTPS.
//! - [`load`]: load parsers over kernel file text and load JSON; [`sampler`] reads them.
//! - [`probe`]: LDNS targets, RTT and completion; [`hops`]: hop count via the error queue.
//! - [`report`]: records from the latest state, fan-out to the EDNSs, their replies.
use std::sync::{Arc, Mutex};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub mod config;
pub mod error;
pub mod health;
pub mod hops;
pub mod http;
pub mod load;
pub mod probe;
pub mod report;
pub mod sampler;
pub mod tls;

pub use config::AgentConfig;
pub use error::Error;

use probe::Requests;
use report::{Latest, Peer, VsLatest};

/// Runs the agent until `shutdown`: health checks, load samples, probes and reports, each on
/// its own schedule. Calls `ready` once every task runs. Failures of checks, sources, probes
/// or EDNSs are logged and retried, never fatal.
pub async fn run(
    config: AgentConfig,
    shutdown: CancellationToken,
    ready: impl FnOnce(),
) -> Result<(), Error> {
    let mut peers = Vec::new();
    for (i, e) in config.edns.iter().enumerate() {
        let peer = Peer::connect(i, e).await.map_err(|source| Error::Socket {
            address: e.address,
            source,
        })?;
        peers.push(peer);
    }
    let latest = Arc::new(Mutex::new(Latest {
        vs: config
            .vs
            .iter()
            .map(|v| VsLatest {
                name: v.name.clone(),
                ..VsLatest::default()
            })
            .collect(),
        paths: Vec::new(),
    }));
    let requests = Arc::new(Mutex::new(Requests::default()));
    let tasks = TaskTracker::new();

    for (i, vs) in config.vs.iter().enumerate() {
        if let Some(check) = vs.check.clone() {
            let latest = latest.clone();
            let publish = move |up: Option<bool>| {
                if let Ok(mut l) = latest.lock()
                    && let Some(v) = l.vs.get_mut(i)
                {
                    v.up = up;
                }
            };
            tasks.spawn(health::watch(
                vs.name.clone(),
                check,
                publish,
                shutdown.clone(),
            ));
        }
        if !vs.load.is_empty() {
            let sampler =
                sampler::Sampler::new(vs.name.clone(), vs.load.clone(), sampler::Roots::default());
            tasks.spawn(sample_load(
                i,
                sampler,
                config.interval,
                latest.clone(),
                shutdown.clone(),
            ));
        }
    }
    if config.probes.max_targets > 0 {
        tasks.spawn(probe_paths(
            config.probes.clone(),
            config.interval * probe::REQUEST_MAX_AGE_INTERVALS,
            latest.clone(),
            requests.clone(),
            shutdown.clone(),
        ));
    }
    for p in &peers {
        tasks.spawn(report::read_replies(
            p.index,
            p.address,
            p.socket.clone(),
            p.key.clone(),
            requests.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(report::send_reports(
        config.agent_id.clone(),
        config.site.clone(),
        config.interval,
        peers,
        latest,
        shutdown.clone(),
    ));
    tasks.close();
    tracing::info!(
        agent = config.agent_id,
        site = config.site,
        edns = config.edns.len(),
        vs = config.vs.len(),
        "agent running"
    );
    ready();
    shutdown.cancelled().await;
    tasks.wait().await;
    Ok(())
}

/// Samples one VS's load every interval into `latest`.
async fn sample_load(
    index: usize,
    mut sampler: sampler::Sampler,
    interval: std::time::Duration,
    latest: Arc<Mutex<Latest>>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let load = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = sampler.sample() => l,
        };
        if let Ok(mut l) = latest.lock()
            && let Some(v) = l.vs.get_mut(index)
        {
            v.load = Some(load);
        }
    }
}

/// Probes the bounded target set every probe interval into `latest`.
async fn probe_paths(
    config: probe::ProbeConfig,
    request_max_age: std::time::Duration,
    latest: Arc<Mutex<Latest>>,
    requests: Arc<Mutex<Requests>>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let requested = match requests.lock() {
            Ok(r) => r.current(std::time::Instant::now(), request_max_age),
            Err(_) => Vec::new(),
        };
        let targets = probe::targets(&config.ldns, &requested, config.max_targets);
        let paths = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = probe::probe_round(&targets, &config) => p,
        };
        if let Ok(mut l) = latest.lock() {
            l.paths = paths;
        }
    }
}
