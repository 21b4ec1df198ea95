//! The balancer thread: it owns the model, the metrics and the damping state, and it is the
//! only writer of the answer table and class tries. Events reach it over a
//! crossbeam channel; every interval it also polls the metrics file. Whatever changed is
//! recomputed, published to the maps (a swap for a config, single entries for metrics) and
//! handed to the slow path as a new snapshot, so both paths answer from the same data.
use std::{sync::Arc, time::Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, select, tick};
use hickory_proto::rr::{LowerName, Name, RecordType};
use tokio::sync::watch;
use xgslb_common::{AnswerSet, ClassId};

use super::{
    DaemonError,
    cell::SwapCell,
    events::{Admin, AdminError, Event},
    ingest::{IngestShared, now_ms},
    peer_socket::PeerShared,
    probe_targets::top_ldns,
};
use crate::{
    balance::{classes::client_classes, damping::Damper},
    config::Config,
    dns::transfer::{
        Transfers, counters::TransferCounters, notify::NotifyJob, versions::ZoneVersions,
    },
    dns::{Catalog, Zone},
    maps::DataPlane,
    metrics::file::MetricsWatcher,
    metrics::ingest::{AgentMetrics, VsIndex, overlay},
    metrics::wire::{self, Header, Kind, peer::Inputs},
    model::Metrics,
    peers::{PeerTable, fingerprint},
    plan::snapshot::{SetEntry, Snapshot},
    plan::{
        answer_sets::answer_sets,
        publication::{ClassIds, Live, Publication, StatIds, publication_counted},
        reuse::Reuse,
    },
    view::{Decisions, Published, Served, View, ViewCell},
};

/// What handling an event asks of the loop.
enum Handled {
    /// Nothing more (the handler published, or nothing changed).
    Done,
    /// What is served must be recomputed.
    Changed,
    /// An agent report may have moved a metric (a value differs or had gone stale):
    /// recompute if the metrics decided from moved.
    Reported,
    /// Shut down.
    Stop,
}

/// LDNSs asked of each client class, and in all, when agents are told what to probe.
const PROBES_PER_CLASS: usize = 4;
const MAX_PROBE_TARGETS: usize = 64;
/// Intervals between refreshes of the LDNSs to probe (each refresh counts a new period).
const PROBE_REFRESH_INTERVALS: u64 = 10;

impl crate::udp::Source for SwapCell<Served> {
    type Publication = Served;

    fn current(&self) -> Arc<Served> {
        self.load()
    }
}

/// The slow path's handle on what the balancer publishes.
pub type ServedCell = Arc<SwapCell<Served>>;

/// What the balancer publishes, for its readers.
pub struct Outputs {
    /// What both slow paths answer from.
    pub served: ServedCell,
    /// Publication facts, for waiters.
    pub published: watch::Receiver<Published>,
    /// The live model, for control commands and the metrics endpoint.
    pub view: ViewCell,
}

/// The balancer's state.
pub struct Balancer {
    /// Shared with the view: an admin change copies it (rarely), publications do not.
    config: Arc<Config>,
    /// The zones served: as loaded, with the serials `versions` decided.
    zones: Vec<Zone>,
    /// What each zone transferred, version by version (serials, IXFR differences).
    versions: ZoneVersions,
    /// Zone transfers' counters, for the daemon's life.
    transfer_counters: Arc<TransferCounters>,
    /// The slow path's responses to client subnets, kept across catalogs.
    ecs_counters: Arc<crate::dns::EcsCounters>,
    /// DNS cookies (`[cookies]`): on or off, the secret, the slow paths' counters; given to
    /// every catalog and plan, and to the XDP program with each swap.
    cookies: Arc<crate::dns::Cookies>,
    /// Where the NOTIFYs of changed zones go, once the notifier runs.
    notifier: Option<tokio::sync::mpsc::UnboundedSender<NotifyJob>>,
    statics: Vec<(Name, RecordType, AnswerSet)>,
    /// The metrics file's (or `Event::Metrics`'): laid over the agents' field by field.
    file_metrics: Metrics,
    /// What agents reported.
    agent_metrics: Arc<AgentMetrics>,
    /// Shared with the ingest task, when `[agents]` is configured.
    ingest: Option<Arc<IngestShared>>,
    /// Intervals run, for the slower periodic work.
    intervals: u64,
    watcher: Option<MetricsWatcher>,
    ids: ClassIds,
    /// Answer-counter slots, kept for the process's life.
    stat_ids: StatIds,
    damper: Damper,
    dataplane: Option<DataPlane>,
    served: ServedCell,
    published: watch::Sender<Published>,
    view: ViewCell,
    facts: Published,
    /// The metrics the last publication decided from (the view shows them).
    decided_from: Metrics,
    /// The answer-table entries of the zones' precomputed responses, made with the catalog
    /// (on reload): publications add the answer sets' entries to them.
    static_entries: Vec<xgslb_common::Entry>,
    /// The last publication's content, to tell whether a tick changed anything.
    last: Option<Vec<SetEntry>>,
    last_prefixes: Vec<(ipnet::IpNet, ClassId)>,
    /// The peer EDNSs, with `[peering]`.
    peering: Option<Peering>,
    /// Each wide IP's part of the last publication (cleared when the model changes).
    reuse: Reuse,
    /// Handing over (`Event::Pause`): a successor writes the maps; nothing is published.
    paused: bool,
    /// The state file: the agents' reports saved across restarts.
    state: Option<StateSaver>,
    /// A restart's warm-up: the adopted maps are kept until it ends.
    warm: Option<WarmUp>,
}

/// How a balancer begins: where the state file is, and whether the maps it publishes to
/// hold a serving program's publication (a restart that adopted it).
#[derive(Clone, Debug, Default)]
pub struct WarmStart {
    pub state_file: Option<std::path::PathBuf>,
    pub adopted: bool,
}

/// A restarted xgslbd that adopted a serving program, knowing less than its predecessor:
/// until every virtual server agents reported for has a fresh report, or the grace period
/// ends, the maps keep what the predecessor published and the slow path answers from the
/// last known reports (`AgentMetrics::metrics_warming`).
#[derive(Clone, Debug)]
struct WarmUp {
    /// When it ends at the latest (ms since the epoch).
    until_ms: u64,
    /// The virtual servers agents report for: those of the state file and those at the
    /// sites of site-bound agent keys.
    expected: Vec<String>,
}

/// Saves the agents' reports to the state file: at most every `STATE_SAVE_EVERY` while
/// reports arrive (on its own thread: the balancer never waits for a disk), and at once
/// when stopping or handing over.
struct StateSaver {
    path: std::path::PathBuf,
    queue: crossbeam_channel::Sender<crate::metrics::state::State>,
    /// The reports count and time of the last save.
    saved: (u64, Instant),
}

/// How often the state file is written at most while reports arrive: well within the
/// agents' report timeout, so that a restart after a crash finds fresh reports.
const STATE_SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);

impl StateSaver {
    fn new(path: std::path::PathBuf) -> std::io::Result<Self> {
        let (queue, states) = crossbeam_channel::bounded::<crate::metrics::state::State>(1);
        let at = path.clone();
        std::thread::Builder::new()
            .name("xgslb-state".into())
            .spawn(move || {
                for state in states {
                    if let Err(e) = crate::metrics::state::save(&at, &state) {
                        tracing::warn!("cannot save the state file {}: {e}", at.display());
                    }
                }
            })?;
        // The first reports are saved at once.
        let long_ago = Instant::now().checked_sub(STATE_SAVE_EVERY);
        Ok(Self {
            path,
            queue,
            saved: (0, long_ago.unwrap_or_else(Instant::now)),
        })
    }

    /// Queues `state` when `reports` moved and the last save is old enough.
    fn maybe(&mut self, reports: u64, state: impl FnOnce() -> crate::metrics::state::State) {
        if reports != self.saved.0 && self.saved.1.elapsed() >= STATE_SAVE_EVERY {
            // Full: a save is under way; the next interval tries again.
            if self.queue.try_send(state()).is_ok() {
                self.saved = (reports, Instant::now());
            }
        }
    }

    /// Writes `state` now, on the caller's thread.
    fn now(&mut self, state: &crate::metrics::state::State) {
        match crate::metrics::state::save(&self.path, state) {
            Ok(()) => tracing::info!("state saved to {}", self.path.display()),
            Err(e) => tracing::warn!("cannot save the state file {}: {e}", self.path.display()),
        }
    }
}

/// The balancer's side of peering: the table, and the socket it sends from.
struct Peering {
    table: PeerTable,
    shared: Arc<PeerShared>,
    /// The next sequence number: from the clock at start, in microseconds, so that a
    /// restarted EDNS sends above what its peers' replay windows hold of it.
    sequence: u64,
    /// Added to publication generations on the wire, from the clock at start, so that a
    /// restarted EDNS's decisions are newer than its last life's (see `wire::peer`).
    epoch: u64,
    /// The model's fingerprint (the config part of our inputs): a hash of the whole model,
    /// costly at 10,000 wide IPs, so kept until the model changes (`None`: compute it).
    model_fingerprint: Option<u64>,
    /// The agents' metrics our last publication told peers (the rest of our inputs).
    agent_metrics: Metrics,
}

impl Peering {
    /// Sends what the table has for each peer (`heartbeat`: the periodic part too).
    fn send(&mut self, model: &crate::model::Model, heartbeat: bool) {
        let now = now_ms();
        let config = self.table.config().clone();
        for (i, records) in self.table.outgoing(model, now, heartbeat) {
            let Some(peer) = config.peers.get(i) else {
                continue;
            };
            let header = Header {
                kind: Kind::Peer,
                key_id: peer.key.id,
                sequence: self.sequence,
                timestamp_ms: now,
                agent: config.name.clone(),
                site: config.site.clone(),
            };
            let datagrams = wire::encode(&header, &records, &peer.key);
            self.sequence += datagrams.len() as u64;
            for d in datagrams {
                self.shared.send(&peer.name, peer.address, &d);
            }
        }
    }
}

impl Balancer {
    /// Computes and publishes the first selections of `config`: on success the slow path
    /// and the maps (when `dataplane` is given) serve them.
    pub fn start(
        config: Config,
        zones: Vec<Zone>,
        dataplane: Option<DataPlane>,
        (ingest, peers): (Option<Arc<IngestShared>>, Option<Arc<PeerShared>>),
        warm: WarmStart,
    ) -> Result<(Self, Outputs), DaemonError> {
        let statics = answer_sets(&config.answers);
        let watcher = config
            .balancer
            .metrics_file
            .as_ref()
            .map(|p| MetricsWatcher::new(p.clone()));
        let (published, rx) = watch::channel(Published::default());
        let peering = match (&config.peering, peers) {
            (Some(c), Some(shared)) => Some(Peering {
                table: PeerTable::new(c),
                shared,
                sequence: now_ms().saturating_mul(1000),
                epoch: now_ms().saturating_mul(crate::metrics::wire::peer::GENERATIONS),
                model_fingerprint: None,
                agent_metrics: Metrics::default(),
            }),
            _ => None,
        };
        // The secret of the program in service, when there is one and the config names none:
        // its clients' cookies stay valid across the restart.
        let adopted = dataplane
            .as_ref()
            .and_then(|dp| dp.cookies.adopted_secret());
        let cookies = Arc::new(crate::dns::Cookies::of_config(
            &config.cookies,
            adopted,
            Arc::default(),
        )?);
        let config = Arc::new(config);
        // What readers see until the first publication: nothing served yet.
        let nothing = Arc::new(Served::empty()?);
        let versions = ZoneVersions::default().updated(zones);
        let mut b = Self {
            config: config.clone(),
            zones: versions.zones,
            versions: versions.versions,
            transfer_counters: Arc::default(),
            ecs_counters: Arc::default(),
            cookies,
            notifier: None,
            statics,
            file_metrics: Metrics::default(),
            agent_metrics: Arc::new(AgentMetrics::new()),
            ingest,
            intervals: 0,
            watcher,
            ids: ClassIds::default(),
            stat_ids: StatIds::default(),
            damper: Damper::new(),
            dataplane,
            served: Arc::new(SwapCell::from_arc(nothing.clone())),
            published,
            view: Arc::new(ArcSwap::from_pointee(View {
                facts: Published::default(),
                config,
                served: nothing,
                metrics: Metrics::default(),
                availability: Vec::new(),
                file_metrics: Metrics::default(),
                agent_metrics: Arc::default(),
                peers: Vec::new(),
                warming: None,
            })),
            facts: Published::default(),
            decided_from: Metrics::default(),
            static_entries: Vec::new(),
            last: None,
            last_prefixes: Vec::new(),
            peering,
            reuse: Reuse::default(),
            paused: false,
            state: None,
            warm: None,
        };
        b.warm_start(&warm);
        b.share_model();
        b.poll_metrics();
        b.publish(true)?;
        // The first publication's facts (the metrics file read at start among them) are
        // announced now: a waiter that reads them before the first tick must not take that
        // tick's announcement of the same facts for news.
        b.announce();
        let outputs = Outputs {
            served: b.served.clone(),
            published: rx,
            view: b.view.clone(),
        };
        Ok((b, outputs))
    }

    /// Sends the NOTIFYs of zone changes to `notifier` from now on, starting with every
    /// zone's current version (secondaries learn of what changed while xgslbd was down).
    pub fn notify_to(&mut self, notifier: tokio::sync::mpsc::UnboundedSender<NotifyJob>) {
        self.notifier = Some(notifier);
        let origins: Vec<Name> = self.zones.iter().map(|z| z.origin().clone()).collect();
        self.notify(&origins);
    }

    /// Queues the NOTIFYs of the zones at `origins` (those with secondaries to notify).
    fn notify(&self, origins: &[Name]) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let transfers = self.served.load().transfers.clone();
        for origin in origins {
            if let Some(job) = transfers.notify_job(&LowerName::new(origin)) {
                // The notifier stops only at shutdown, after the balancer.
                let _ = notifier.send(job);
            }
        }
    }

    /// Runs the event loop until `Shutdown` (or the senders are gone); returns the data
    /// plane so that the daemon can detach it or leave it serving.
    pub fn run(mut self, events: Receiver<Event>) -> Option<DataPlane> {
        if let Some(cpu) = self.config.balancer.cpu.or_else(last_core) {
            if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                tracing::info!("balancer pinned to CPU {cpu}");
            } else {
                tracing::warn!("cannot pin the balancer to CPU {cpu}; it runs unpinned");
            }
        }
        let ticks = tick(self.config.balancer.interval);
        let heartbeat_ms = self
            .config
            .peering
            .as_ref()
            .map_or(3_600_000, |p| p.heartbeat_ms);
        let heartbeats = tick(std::time::Duration::from_millis(heartbeat_ms));
        loop {
            // A tick first takes the events already waiting: acting on an older state, it
            // would take agents and peers whose datagrams are queued for stale or silent.
            let stop = select! {
                recv(events) -> event => match event {
                    Ok(event) => self.take_events(Some(event), &events),
                    Err(_) => true,
                },
                recv(ticks) -> _ => self.take_events(None, &events) || {
                    self.interval();
                    false
                },
                recv(heartbeats) -> _ => self.take_events(None, &events) || {
                    self.heartbeat();
                    false
                },
            };
            if stop {
                self.save_state_now();
                return self.dataplane;
            }
        }
    }

    /// Handles `first` and every event already waiting, then publishes once if they changed
    /// what is served: under a flood of reports the balancer publishes as fast as it can, not
    /// once per report. Whether to stop.
    fn take_events(&mut self, first: Option<Event>, events: &Receiver<Event>) -> bool {
        let mut dirty = false;
        let mut reported = false;
        let mut next = first.or_else(|| events.try_recv().ok());
        while let Some(event) = next {
            match self.handle(event) {
                Handled::Stop => return true,
                Handled::Changed => dirty = true,
                Handled::Reported => reported = true,
                Handled::Done => {}
            }
            next = events.try_recv().ok();
        }
        // Most reports repeat what is known (an agent reports every second): those are not
        // `Reported`, change no decision, and the next heartbeat or interval shows them in
        // the view.
        if !self.paused && (dirty || (reported && self.metrics_moved())) {
            self.publish_or_log(false);
        }
        self.check_warm_up();
        false
    }

    /// One event; whether what is served must be recomputed.
    fn handle(&mut self, event: Event) -> Handled {
        if self.paused {
            return self.handle_paused(event);
        }
        match event {
            Event::Reload { validated, done } => {
                let (config, zones) = *validated;
                let result = self.reload(config, zones);
                let _ = done.send(result.map_err(|e| DaemonError::NotApplied(Box::new(e))));
                Handled::Done
            }
            Event::Metrics(metrics) => {
                self.file_metrics = metrics;
                self.facts.metric_updates += 1;
                Handled::Changed
            }
            Event::Report {
                datagram,
                from,
                at_ms,
            } => {
                let timeout = self
                    .config
                    .agents
                    .as_ref()
                    .map_or(0, |a| a.report_timeout_ms);
                let changed =
                    Arc::make_mut(&mut self.agent_metrics).apply(&datagram, from, at_ms, timeout);
                self.facts.reports += 1;
                if changed {
                    Handled::Reported
                } else {
                    Handled::Done
                }
            }
            Event::Peer {
                peer,
                datagram,
                at_ms,
            } => {
                let Some(p) = self.peering.as_mut() else {
                    return Handled::Done;
                };
                let Some(i) = p.table.index(&peer) else {
                    return Handled::Done; // a peer a reload just removed
                };
                if p.table.receive(i, &datagram.records, at_ms) {
                    Handled::Changed
                } else {
                    Handled::Done
                }
            }
            Event::Admin { command, done } => {
                let result = self.admin(&command);
                let changed = result.is_ok();
                if changed {
                    // Published before the reply, so that the caller sees its change served.
                    self.publish_or_log(false);
                }
                let _ = done.send(result.map_err(DaemonError::Admin));
                Handled::Done
            }
            Event::Attach { iface, mode, done } => {
                let result = match self.dataplane.as_mut() {
                    Some(dp) => dp.attach(&iface, mode).map_err(DaemonError::from),
                    None => Err(DaemonError::Stopped),
                };
                let _ = done.send(result);
                Handled::Done
            }
            Event::Pause { done } => {
                // The successor reads it: what we know now is what it starts from.
                self.save_state_now();
                self.paused = true;
                tracing::info!("handing over: the balancer publishes no more");
                let _ = done.send(Ok(()));
                Handled::Done
            }
            Event::Resume => Handled::Done,
            Event::Shutdown => Handled::Stop,
        }
    }

    /// An event while paused (handing over): changes are refused, reports dropped (the
    /// successor reads the agents' socket now); `Resume` publishes again.
    fn handle_paused(&mut self, event: Event) -> Handled {
        match event {
            Event::Reload { done, .. } | Event::Admin { done, .. } => {
                let _ = done.send(Err(DaemonError::HandingOver));
                Handled::Done
            }
            Event::Attach { done, .. } => {
                let _ = done.send(Err(DaemonError::HandingOver));
                Handled::Done
            }
            Event::Pause { done } => {
                let _ = done.send(Ok(()));
                Handled::Done
            }
            Event::Resume => {
                self.paused = false;
                tracing::info!("handover called off: the balancer publishes again");
                Handled::Changed
            }
            Event::Metrics(_) | Event::Report { .. } | Event::Peer { .. } => Handled::Done,
            Event::Shutdown => Handled::Stop,
        }
    }

    /// The periodic work: the metrics file, agents' timeouts, the LDNSs to probe, and a
    /// publication (damped weights move a step per interval even without new metrics), or,
    /// when it would compute what is served already, only the view's refresh.
    fn interval(&mut self) {
        if self.paused {
            return;
        }
        self.intervals += 1;
        self.facts.intervals = self.intervals;
        self.poll_metrics();
        if let Some(dp) = self.dataplane.as_mut()
            && let Err(e) = dp.cookies.refresh_clock()
        {
            tracing::warn!("cannot write the XDP program's clock for DNS cookies: {e}");
        }
        if let Some(agents) = &self.config.agents {
            let now = super::ingest::now_ms();
            // Forget what has been silent for ten timeouts (the VSs stay known, and down).
            if self.intervals.is_multiple_of(10) {
                let max_age = agents.report_timeout_ms.saturating_mul(10);
                Arc::make_mut(&mut self.agent_metrics).expire(&self.config.model, now, max_age);
            }
            if self.intervals % PROBE_REFRESH_INTERVALS == 1 {
                self.refresh_probe_targets();
            }
        }
        if self.at_rest() {
            self.announce();
        } else {
            self.publish_or_log(false);
        }
        self.check_warm_up();
        if self.config.agents.is_some() {
            let (reports, agents) = (self.facts.reports, &self.agent_metrics);
            if let Some(saver) = self.state.as_mut() {
                saver.maybe(reports, || agents.saved(now_ms()));
            }
        }
    }

    /// Opens the state file and takes in what it kept; with an adopted serving program and
    /// less knowledge than it was published with, starts the warm-up (see `WarmUp`).
    fn warm_start(&mut self, warm: &WarmStart) {
        let Some(agents) = self.config.agents.clone() else {
            return;
        };
        let now = now_ms();
        if let Some(path) = &warm.state_file {
            match crate::metrics::state::load(path) {
                Ok(Some(state)) => {
                    let (fresh, held) = Arc::make_mut(&mut self.agent_metrics).restore(
                        &state,
                        now,
                        agents.report_timeout_ms,
                    );
                    tracing::info!(
                        "state file {}: {fresh} virtual servers' reports restored, {held} older than the report timeout (unknown), saved {} ms ago",
                        path.display(),
                        now.saturating_sub(state.saved_ms)
                    );
                }
                Ok(None) => tracing::info!("no state file at {} yet", path.display()),
                Err(e) => tracing::warn!("{e}; starting without it"),
            }
            match StateSaver::new(path.clone()) {
                Ok(s) => self.state = Some(s),
                Err(e) => tracing::warn!("cannot start the state file's writer: {e}"),
            }
        }
        let grace = self
            .config
            .balancer
            .warm_grace
            .map_or(agents.report_timeout_ms, |g| g.as_millis() as u64);
        if !warm.adopted || grace == 0 {
            return;
        }
        let model = &self.config.model;
        let bound: Vec<&str> = agents
            .keys
            .iter()
            .filter_map(|k| k.site.as_deref())
            .collect();
        let mut expected = self.agent_metrics.restored_names();
        for v in &model.vss {
            let site = model.sites.get(v.site).map(|s| s.name.as_str());
            if site.is_some_and(|s| bound.contains(&s)) && !expected.contains(&v.name) {
                expected.push(v.name.clone());
            }
        }
        expected.retain(|n| model.vss.iter().any(|v| v.name == *n));
        let w = WarmUp {
            until_ms: now + grace,
            expected,
        };
        let waiting = self.waiting_for(&w, now);
        if w.expected.is_empty() || !waiting.is_empty() {
            tracing::info!(
                "warming up: the adopted program's maps stay until agents report for {} or for {grace} ms",
                if waiting.is_empty() {
                    "every virtual server".to_owned()
                } else {
                    waiting.join(", ")
                }
            );
            self.warm = Some(w);
        } else {
            Arc::make_mut(&mut self.agent_metrics).end_warm_up();
        }
    }

    /// The expected virtual servers of `w` without a fresh report as of `now`.
    fn waiting_for(&self, w: &WarmUp, now: u64) -> Vec<String> {
        let timeout = self
            .config
            .agents
            .as_ref()
            .map_or(0, |a| a.report_timeout_ms);
        w.expected
            .iter()
            .filter(|n| !self.agent_metrics.is_fresh(n, now, timeout))
            .cloned()
            .collect()
    }

    /// Ends the warm-up when every expected virtual server has a fresh report or the grace
    /// period is over, and publishes to the maps from then on.
    fn check_warm_up(&mut self) {
        let Some(w) = &self.warm else {
            return;
        };
        let now = now_ms();
        let waiting = self.waiting_for(w, now);
        let reported = !w.expected.is_empty() && waiting.is_empty();
        if !reported && now < w.until_ms {
            return;
        }
        if reported {
            tracing::info!("warm: every virtual server agents report for has reported");
        } else {
            tracing::warn!(
                "warm-up grace over without a report for {}: their health is unknown",
                if waiting.is_empty() {
                    "any virtual server".to_owned()
                } else {
                    waiting.join(", ")
                }
            );
        }
        self.warm = None;
        Arc::make_mut(&mut self.agent_metrics).end_warm_up();
        self.publish_or_log(true);
    }

    /// The warm-up as the view shows it.
    fn warming(&self) -> Option<crate::view::Warming> {
        let w = self.warm.as_ref()?;
        let now = now_ms();
        Some(crate::view::Warming {
            ends_in_ms: w.until_ms.saturating_sub(now),
            waiting_for: self.waiting_for(w, now),
        })
    }

    /// Writes the state file now (stopping, handing over).
    fn save_state_now(&mut self) {
        if self.config.agents.is_none() {
            return;
        }
        let state = self.agent_metrics.saved(now_ms());
        if let Some(saver) = self.state.as_mut() {
            saver.now(&state);
        }
    }

    /// Whether a publication now would compute exactly what the last one did: it was written
    /// (not failed), nothing it decides from has moved since (metrics, agents' staleness, the
    /// metrics file, peers' silence), and nothing in it moves by itself: no damped weights
    /// (their steps go on while metrics stand still) and no wide IP served with a peer's
    /// decision (whose age its trace shows). Then a publication is a function of the same
    /// model and metrics: at 10,000 wide IPs that spares tens of milliseconds per interval.
    fn at_rest(&self) -> bool {
        self.last.is_some()
            && self.damper.is_empty()
            && !self.metrics_moved()
            && self.peering.as_ref().is_none_or(|p| {
                !p.table.silence_changed(now_ms())
                    && !self
                        .config
                        .model
                        .wideips
                        .iter()
                        .any(|w| w.deferral.is_some())
            })
    }

    /// Tells every peer we are here (and what it should know), and republishes when a peer
    /// fell silent or came back: that changes how the wide IPs it decides are served.
    fn heartbeat(&mut self) {
        if self.paused {
            return;
        }
        let Some(p) = self.peering.as_ref() else {
            return;
        };
        if p.table.silence_changed(now_ms()) {
            self.publish_or_log(false);
        }
        if let Some(p) = self.peering.as_mut() {
            p.send(&self.config.model, true);
        }
        // The peers' last contact and state, for readers, even when nothing was published.
        self.announce();
    }

    /// Whether the metrics decisions would be made from now differ from those of the last
    /// publication (a report changed a value, or a virtual server's reports went stale), or
    /// the agents' own metrics, which peers compare, do.
    fn metrics_moved(&self) -> bool {
        let (agents, decide_from) = self.current_metrics();
        decide_from != self.decided_from
            || self
                .peering
                .as_ref()
                .is_some_and(|p| p.agent_metrics != agents)
    }

    /// The model changed (a reload, an operator's change): its fingerprint is made again.
    fn model_changed(&mut self) {
        self.reuse.clear();
        if let Some(p) = self.peering.as_mut() {
            p.model_fingerprint = None;
        }
    }

    /// Asks agents (in the ingest's replies) to probe the busiest LDNSs of each class.
    fn refresh_probe_targets(&mut self) {
        let (Some(shared), Some(dp)) = (&self.ingest, self.dataplane.as_mut()) else {
            return;
        };
        match dp.take_ldns_samples() {
            Ok(samples) => {
                let targets = top_ldns(&samples, PROBES_PER_CLASS, MAX_PROBE_TARGETS);
                shared.probe_targets.store(Arc::new(targets));
            }
            Err(e) => tracing::warn!("cannot read the LDNS samples: {e}"),
        }
    }

    /// Gives the ingest the model's virtual servers and the `[agents]` config.
    fn share_model(&self) {
        let Some(shared) = &self.ingest else {
            return;
        };
        shared
            .index
            .store(Arc::new(VsIndex::new(&self.config.model)));
        if let (Some(c), Ok(mut r)) = (&self.config.agents, shared.reconfigure.lock()) {
            *r = Some(c.clone());
        }
    }

    /// Gives the peer table and socket the `[peering]` config.
    fn share_peering(&mut self) {
        if let (Some(p), Some(c)) = (self.peering.as_mut(), &self.config.peering) {
            p.table.reconfigure(c);
            p.shared.config.store(Arc::new(c.clone()));
        }
    }

    /// The agents' metrics alone (no metrics file), what peers compare inputs by, and the
    /// metrics decisions are made from: the agents' with the metrics file's over them.
    fn current_metrics(&self) -> (Metrics, Metrics) {
        match &self.config.agents {
            Some(agents) => {
                let (model, now, timeout) =
                    (&self.config.model, now_ms(), agents.report_timeout_ms);
                let agents = if self.warm.is_some() {
                    self.agent_metrics.metrics_warming(model, now, timeout)
                } else {
                    self.agent_metrics.metrics(model, now, timeout)
                };
                let decide_from = overlay(agents.clone(), &self.file_metrics);
                (agents, decide_from)
            }
            None => (Metrics::default(), self.file_metrics.clone()),
        }
    }

    /// Applies an operator's change to the model; the caller publishes.
    fn admin(&mut self, command: &Admin) -> Result<(), AdminError> {
        let find = |name: &str| {
            self.config
                .model
                .vss
                .iter()
                .position(|v| v.name == name)
                .ok_or_else(|| AdminError::NoVs(name.to_owned()))
        };
        match command {
            Admin::SetEnabled { vs, enabled } => {
                let i = find(vs)?;
                Arc::make_mut(&mut self.config).model.vss[i].enabled = *enabled;
            }
            Admin::SetSiteEnabled { site, enabled } => {
                let model = &mut Arc::make_mut(&mut self.config).model;
                let s = model
                    .sites
                    .iter()
                    .position(|x| x.name == *site)
                    .ok_or_else(|| AdminError::NoSite(site.clone()))?;
                for vs in model.vss.iter_mut().filter(|v| v.site == s) {
                    vs.enabled = *enabled;
                }
            }
            Admin::SetRatio { vs, ratio } => {
                if *ratio == 0 {
                    return Err(AdminError::ZeroRatio);
                }
                let i = find(vs)?;
                let model = &mut Arc::make_mut(&mut self.config).model;
                model.vss[i].ratio = *ratio;
                // Pool members that took the VS's ratio follow it.
                for pool in &mut model.pools {
                    for m in pool.members.iter_mut().filter(|m| m.vs == i) {
                        m.ratio = *ratio;
                    }
                }
            }
        }
        self.model_changed();
        tracing::info!("admin: {command:?}");
        Ok(())
    }

    /// Serves `config` from now on, or keeps the old one and says why (a publication that
    /// failed: the catalog refused the GSLB names, or a map write).
    fn reload(&mut self, config: Config, zones: Vec<Zone>) -> Result<(), DaemonError> {
        // New cookie settings keep the secret in use unless they name one.
        let cookies = if config.cookies == self.config.cookies {
            self.cookies.clone()
        } else {
            Arc::new(crate::dns::Cookies::of_config(
                &config.cookies,
                Some(self.cookies.secret().clone()),
                self.cookies.counters().clone(),
            )?)
        };
        let old_cookies = std::mem::replace(&mut self.cookies, cookies);
        let old = std::mem::replace(&mut self.config, Arc::new(config));
        self.model_changed();
        // Serials first: the catalog (and so every path) serves the zones with them.
        let updated = self.versions.updated(zones);
        let old_zones = std::mem::replace(&mut self.zones, updated.zones);
        let old_versions = std::mem::replace(&mut self.versions, updated.versions);
        let old_statics = std::mem::replace(&mut self.statics, answer_sets(&self.config.answers));
        let new_watcher = self
            .config
            .balancer
            .metrics_file
            .as_ref()
            .map(|p| MetricsWatcher::new(p.clone()));
        let old_watcher = std::mem::replace(&mut self.watcher, new_watcher);
        // Damping state and metrics refer to model indices, which a new model renumbers.
        let old_damper = std::mem::take(&mut self.damper);
        let old_metrics = std::mem::take(&mut self.file_metrics);
        self.poll_metrics();
        match self.publish(true) {
            Ok(()) => {
                self.share_model();
                self.share_peering();
                self.facts.reloads += 1;
                self.announce();
                for origin in &updated.changed {
                    let serial = self
                        .zones
                        .iter()
                        .find(|z| z.origin() == origin)
                        .map(Zone::serial);
                    tracing::info!(zone = %origin, serial, "zone changed");
                }
                self.notify(&updated.changed);
                tracing::info!("reloaded {}", self.config.path.display());
                Ok(())
            }
            Err(e) => {
                tracing::error!("reload refused, the old config keeps serving: {e}");
                self.config = old;
                self.model_changed();
                self.zones = old_zones;
                self.versions = old_versions;
                self.statics = old_statics;
                self.watcher = old_watcher;
                self.damper = old_damper;
                self.file_metrics = old_metrics;
                self.cookies = old_cookies;
                if let Err(e) = self.publish(true) {
                    tracing::error!("cannot republish the old config: {e}");
                }
                // The failure counted, for the metrics endpoint.
                self.announce();
                Err(e)
            }
        }
    }

    /// Reads the metrics file if it changed; a bad file is logged and changes nothing.
    fn poll_metrics(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        match watcher.poll(&self.config.model) {
            None => {}
            Some(Ok(metrics)) => {
                self.file_metrics = metrics;
                self.facts.metric_updates += 1;
            }
            Some(Err(e)) => {
                self.facts.metric_errors += 1;
                tracing::warn!("metrics file ignored, the last metrics stay: {e}");
            }
        }
    }

    fn publish_or_log(&mut self, swap: bool) {
        if let Err(e) = self.publish(swap) {
            tracing::error!("publication failed, the previous one keeps serving: {e}");
        }
        self.announce();
    }

    /// Publishes the view (before the facts: a waiter on the facts then reads a view at
    /// least as new) and the facts.
    fn announce(&self) {
        let metrics = &self.decided_from;
        let model = &self.config.model;
        let availability = (0..model.vss.len())
            .map(|i| crate::balance::available(model, i, metrics))
            .collect();
        let peers = self
            .peering
            .as_ref()
            .map(|p| p.table.status(model, now_ms()))
            .unwrap_or_default();
        self.view.store(Arc::new(View {
            facts: self.facts,
            config: self.config.clone(),
            served: self.served.load(),
            metrics: metrics.clone(),
            availability,
            file_metrics: self.file_metrics.clone(),
            agent_metrics: self.agent_metrics.clone(),
            peers,
            warming: self.warming(),
        }));
        self.published.send_replace(self.facts);
    }

    /// Recomputes every selection and publishes what changed; `swap` for a config change.
    /// A failure is counted (the operator's alert on publications that fail).
    fn publish(&mut self, swap: bool) -> Result<(), DaemonError> {
        let result = self.try_publish(swap);
        if result.is_err() {
            self.facts.publication_failures += 1;
        }
        result
    }

    fn try_publish(&mut self, swap: bool) -> Result<(), DaemonError> {
        let start = Instant::now();
        let (agent_metrics, metrics) = self.current_metrics();
        let deferred = self
            .peering
            .as_mut()
            .map(|p| p.table.deferred(&self.config.model, now_ms()));
        let model = &self.config.model;
        let classes = client_classes(model, &metrics, self.config.balancer.max_classes);
        if classes.over_bound > 0 {
            tracing::warn!(
                "{} LDNS prefixes exceed balancer.max_classes ({}): they get their region's class",
                classes.over_bound,
                self.config.balancer.max_classes
            );
        }
        let publication = publication_counted(
            model,
            &metrics,
            &classes,
            &mut self.ids,
            &mut self.damper,
            &self.statics,
            Live {
                stats: Some(&mut self.stat_ids),
                deferred: deferred.as_ref(),
                reuse: Some(&mut self.reuse),
            },
        );
        if let Some(p) = self.peering.as_mut() {
            let inputs = Inputs {
                config: *p
                    .model_fingerprint
                    .get_or_insert_with(|| fingerprint::config(model)),
                metrics: fingerprint::metrics(model, &agent_metrics),
            };
            let generation = p.epoch + self.facts.generation + 1;
            p.table
                .published(model, inputs, generation, &publication.outcomes());
            p.agent_metrics = agent_metrics;
            // What changed goes out now, not at the next heartbeat.
            p.send(model, false);
        }
        let Publication {
            sets,
            prefixes,
            parts,
        } = publication;
        // Kept for the view (what the decisions were made from), not computed again there.
        self.decided_from = metrics;
        if !swap && self.last.as_ref() == Some(&sets) && self.last_prefixes == prefixes {
            return Ok(());
        }
        // The slow path's side is built first: a config the catalog refuses (a wide IP at a
        // CNAME or below a cut) never reaches the maps.
        let snapshot = Snapshot::after(
            &self.served.load().snapshot,
            sets.iter().cloned(),
            &prefixes,
        )
        .with_ecs(self.config.ecs.clone());
        let (catalog, transfers, statics) = if swap {
            let catalog = Catalog::new(self.zones.clone(), &snapshot.dynamic_names())?
                .with_ecs_counters(self.ecs_counters.clone())
                .with_cookies(self.cookies.clone());
            let statics = crate::plan::static_entries(&catalog.precompute());
            let transfers =
                Transfers::new(&self.versions, &self.config, self.transfer_counters.clone());
            (Arc::new(catalog), Arc::new(transfers), Some(statics))
        } else {
            let served = self.served.load();
            (served.catalog.clone(), served.transfers.clone(), None)
        };
        let rrl = if swap {
            Arc::new(crate::udp::RrlRules::new(&self.config.rrl))
        } else {
            self.served.load().rrl.clone()
        };
        let entries = crate::plan::plan(statics.as_ref().unwrap_or(&self.static_entries), &sets);
        // Warming up: the adopted maps stay as the predecessor published them.
        if let Some(dp) = self.dataplane.as_mut().filter(|_| self.warm.is_none()) {
            let written = if swap {
                dp.tables
                    .set_ecs_policy(&self.config.ecs)
                    .and_then(|()| dp.rrl.publish(&self.config.rrl))
                    .and_then(|()| dp.cookies.publish(&self.cookies))
                    .and_then(|()| dp.tables.swap(&entries, &prefixes))
            } else {
                dp.tables.update(&entries, &prefixes)
            };
            let report = match written {
                Ok(report) => report,
                Err(e) => {
                    // Publish again on the next tick, whatever it computes.
                    self.last = None;
                    return Err(e.into());
                }
            };
            tracing::debug!(
                "published {} entries, {} prefixes: {} writes{}, in service after {:?}, \
                 done in {:?}",
                entries.len(),
                prefixes.len(),
                report.writes,
                if report.swapped { " (swap)" } else { "" },
                report.live,
                report.elapsed
            );
        }
        let decisions = Decisions {
            wideips: model
                .wideips
                .iter()
                .map(|w| LowerName::new(&w.name))
                .collect(),
            names: crate::balance::trace::Names::of(model),
            parts,
        };
        let served = Arc::new(Served {
            catalog,
            transfers,
            snapshot,
            plan: crate::udp::PlanAnswers::new(entries, &prefixes)
                .with_cookies(self.cookies.clone()),
            decisions,
            rrl,
        });
        self.served.store(served);
        if let Some(statics) = statics {
            self.static_entries = statics;
        }
        self.last = Some(sets);
        self.last_prefixes = prefixes;
        self.facts.generation += 1;
        self.facts.last_publication_us = start.elapsed().as_micros() as u64;
        tracing::debug!("publication took {:?}", start.elapsed());
        Ok(())
    }
}

/// The zones of `config`, loaded and validated.
pub(crate) fn load_zones(config: &Config) -> Result<Vec<Zone>, DaemonError> {
    Ok(config
        .zones
        .iter()
        .map(|z| Zone::load(&z.origin, &z.file))
        .collect::<Result<Vec<_>, _>>()?)
}

/// The last core: the default home of the balancer, away from core 0 where most interrupts
/// and the first tokio workers land.
fn last_core() -> Option<usize> {
    core_affinity::get_core_ids()?.last().map(|c| c.id)
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
pub(crate) mod tests;
