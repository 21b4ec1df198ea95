//! The agent ingest: what xgslbd does with a datagram that arrives on `agents.listen`, and
//! what the balancer keeps of the reports it accepted.
//!
//! - [`Ingest`] (the receiving task): decode and verify ([`wire::decode`]), the replay guard
//!   ([`ReplayGuard`]), the key's site binding, and every health and load record's virtual
//!   server must exist at the report's site. A datagram that fails any check is refused whole
//!   and counted by reason ([`IngestCounters`]); one that passes goes to the balancer.
//! - [`AgentMetrics`] (the balancer): the last health, load and path metrics reported, with
//!   when, and the agents' states. [`AgentMetrics::metrics`] turns them into the model's
//!   [`Metrics`]: a virtual server whose reports stopped for `report_timeout_ms` is down, and
//!   paths not reported for as long are dropped. [`overlay`] lays the metrics file over them.
//!
//! Everything here is pure (the clock is a parameter), so the daemon and the tests drive it
//! alike. Reports are kept by name, not by model index, so they survive a config reload.
use std::{collections::HashMap, net::SocketAddr};

use ipnet::IpNet;

use super::{
    replay::ReplayGuard,
    state::{SavedPath, SavedVs, State},
    wire::{self, Datagram, Key, Kind, Load, Record, Reject},
};
use crate::{
    config::AgentsConfig,
    model::{Metrics, Model, PathMetrics, SiteId, VsMetrics},
};

/// Most (LDNS prefix, site) paths [`AgentMetrics`] keeps; reports of new ones beyond it are
/// dropped until old ones expire.
pub const MAX_PATHS: usize = 1 << 18;

/// Accepted datagrams and refused ones by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    pub accepted: u64,
    /// By [`Reject::index`] (the order of [`Reject::ALL`]).
    pub rejected: [u64; Reject::ALL.len()],
}

impl IngestCounters {
    /// Datagrams refused for `reason`.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.rejected[reason.index()]
    }

    /// Every refused datagram.
    pub fn total_rejected(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// (counter name, count) of each reason, in [`Reject::ALL`] order.
    pub fn by_name(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::ALL.iter().map(|r| (r.name(), self.rejected(*r)))
    }
}

/// A key the ingest accepts, and the site it is bound to.
#[derive(Clone, Debug)]
pub struct IngestKey {
    pub key: Key,
    /// Reports under this key must be for this site (else `WrongSite`).
    pub site: Option<String>,
}

/// The model's names as the ingest checks them: build it once per model (at start and on
/// every reload), not per datagram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VsIndex {
    /// Virtual server name to its site's name.
    vss: HashMap<String, String>,
}

impl VsIndex {
    pub fn new(model: &Model) -> Self {
        let vss = model
            .vss
            .iter()
            .filter_map(|v| Some((v.name.clone(), model.sites.get(v.site)?.name.clone())))
            .collect();
        Self { vss }
    }

    /// Whether a virtual server `vs` exists at `site`.
    pub fn at_site(&self, vs: &str, site: &str) -> bool {
        self.vss.get(vs).is_some_and(|s| s == site)
    }
}

/// Verifies datagrams and counts them.
#[derive(Clone, Debug)]
pub struct Ingest {
    keys: HashMap<u32, IngestKey>,
    guard: ReplayGuard,
    counters: IngestCounters,
}

impl Ingest {
    /// An ingest accepting `keys`, with a replay guard of `max_skew_ms` and `max_agents`.
    pub fn new(
        keys: impl IntoIterator<Item = IngestKey>,
        max_skew_ms: u64,
        max_agents: usize,
    ) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.key.id, k)).collect(),
            guard: ReplayGuard::new(max_skew_ms, max_agents),
            counters: IngestCounters::default(),
        }
    }

    /// The ingest `[agents]` describes.
    pub fn from_config(c: &AgentsConfig) -> Self {
        Self::new(Self::keys_of(c), c.max_skew_ms, c.max_agents)
    }

    fn keys_of(c: &AgentsConfig) -> Vec<IngestKey> {
        c.keys
            .iter()
            .map(|k| IngestKey {
                key: k.key.clone(),
                site: k.site.clone(),
            })
            .collect()
    }

    /// On a reload: the new keys and limits; the replay state and the counters stay (a
    /// changed `max_skew_ms` or `max_agents` starts a new guard).
    pub fn reconfigure(&mut self, c: &AgentsConfig) {
        self.keys = Self::keys_of(c)
            .into_iter()
            .map(|k| (k.key.id, k))
            .collect();
        if self.guard.limits() != (c.max_skew_ms, c.max_agents) {
            self.guard = ReplayGuard::new(c.max_skew_ms, c.max_agents);
        }
    }

    /// Verifies `bytes` received at `now_ms` (milliseconds since the Unix epoch) against the
    /// keys, the replay guard and `index`: the report to apply, or why it is refused. Either
    /// way it is counted.
    pub fn accept(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        index: &VsIndex,
    ) -> Result<Datagram, Reject> {
        self.counted(bytes, now_ms, index, true)
    }

    /// [`Ingest::accept`] for a report a peer relayed: checked alike and counted alike,
    /// except that one already taken (`Replayed`: the agent reports here too, or another
    /// peer relayed it) is the caller's to count as a duplicate, not a refusal.
    pub fn accept_relayed(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        index: &VsIndex,
    ) -> Result<Datagram, Reject> {
        self.counted(bytes, now_ms, index, false)
    }

    /// `check`, counted: accepted, or refused by reason (`Replayed` only if `replays_refused`).
    fn counted(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        index: &VsIndex,
        replays_refused: bool,
    ) -> Result<Datagram, Reject> {
        let r = self.check(bytes, now_ms, index);
        match &r {
            Ok(_) => self.counters.accepted += 1,
            Err(Reject::Replayed) if !replays_refused => {}
            Err(reason) => self.counters.rejected[reason.index()] += 1,
        }
        r
    }

    fn check(&mut self, bytes: &[u8], now_ms: u64, index: &VsIndex) -> Result<Datagram, Reject> {
        let d = wire::decode(bytes, |id| self.keys.get(&id).map(|k| k.key.clone()))?;
        // Replies go from the EDNS to agents: one sent here is reflected.
        if d.header.kind != Kind::Report {
            return Err(Reject::Malformed);
        }
        self.guard.check(&d.header, now_ms)?;
        let bound = self
            .keys
            .get(&d.header.key_id)
            .and_then(|k| k.site.as_deref());
        if bound.is_some_and(|s| s != d.header.site) {
            return Err(Reject::WrongSite);
        }
        for r in &d.records {
            if let Record::Health { vs, .. } | Record::Load { vs, .. } = r
                && !index.at_site(vs, &d.header.site)
            {
                return Err(Reject::UnknownVs);
            }
        }
        Ok(d)
    }

    /// The key with `id`, to sign replies with.
    pub fn key(&self, id: u32) -> Option<&Key> {
        self.keys.get(&id).map(|k| &k.key)
    }

    pub fn counters(&self) -> &IngestCounters {
        &self.counters
    }

    pub fn guard(&self) -> &ReplayGuard {
        &self.guard
    }
}

/// Whether an agent has reported within the timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentLiveness {
    Up,
    /// No report for longer than the timeout.
    Stale,
}

impl AgentLiveness {
    pub const fn name(self) -> &'static str {
        match self {
            AgentLiveness::Up => "up",
            AgentLiveness::Stale => "stale",
        }
    }
}

/// What is known of one agent: its last accepted report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentState {
    pub key_id: u32,
    /// Where its last report came from.
    pub address: SocketAddr,
    pub site: String,
    /// When its last report arrived (our clock, ms since the epoch).
    pub last_report_ms: u64,
    pub last_sequence: u64,
    /// Records in its last datagram.
    pub records: usize,
}

/// One agent, for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStatus {
    pub agent: String,
    pub state: AgentState,
    /// Milliseconds since its last report.
    pub age_ms: u64,
    pub liveness: AgentLiveness,
}

/// The last report of a virtual server.
#[derive(Clone, Debug, PartialEq)]
struct VsReport {
    /// The site it was reported at (a reload may move a name: then it is not used).
    site: String,
    up: Option<bool>,
    load: Option<Load>,
    /// When health, load and either last arrived.
    health_ms: Option<u64>,
    load_ms: Option<u64>,
    /// Restored from the state file, not reported to this process yet.
    restored: bool,
}

impl VsReport {
    fn last_ms(&self) -> u64 {
        self.last_ms_opt().unwrap_or(0)
    }

    fn last_ms_opt(&self) -> Option<u64> {
        self.health_ms.max(self.load_ms)
    }
}

/// What the balancer keeps of the agents' reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentMetrics {
    vss: HashMap<String, VsReport>,
    /// Reports restored from the state file that were older than the timeout: unknown, but
    /// held at their last values while the restarted xgslbd warms up (`metrics_warming`).
    held: HashMap<String, VsReport>,
    /// By (LDNS prefix, site name): the metrics and when they arrived.
    paths: HashMap<(IpNet, String), (PathMetrics, u64)>,
    agents: HashMap<String, AgentState>,
}

impl AgentMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in a report that [`Ingest::accept`] passed, received from `from` at `now_ms`.
    /// Health and load replace the VS's last ones (a load record replaces the whole load:
    /// absent values are unknown); paths are kept per (prefix, the report's site).
    ///
    /// Returns whether [`Self::metrics`] (with `timeout_ms`) may now say something else: a
    /// value differs, or it had gone stale. Most reports repeat what is known, and building
    /// the metrics to compare after each is what a fleet of agents would otherwise cost.
    pub fn apply(&mut self, d: &Datagram, from: SocketAddr, now_ms: u64, timeout_ms: u64) -> bool {
        let h = &d.header;
        if h.kind != Kind::Report {
            return false;
        }
        // What `metrics` counts as fresh, it must not count as stale here.
        let stale = |t: Option<u64>| t.is_none_or(|t| !within(t, now_ms, timeout_ms));
        let mut changed = false;
        self.agents.insert(
            h.agent.clone(),
            AgentState {
                key_id: h.key_id,
                address: from,
                site: h.site.clone(),
                last_report_ms: now_ms,
                last_sequence: h.sequence,
                records: d.records.len(),
            },
        );
        for r in &d.records {
            if let Record::Health { vs, .. } | Record::Load { vs, .. } = r {
                self.held.remove(vs);
            }
            match r {
                Record::Health { vs, up } => {
                    let e = self.vs_report(vs, &h.site);
                    changed |= e.up != Some(*up) || stale(e.last_ms_opt());
                    e.up = Some(*up);
                    e.health_ms = Some(now_ms);
                }
                Record::Load { vs, load } => {
                    let e = self.vs_report(vs, &h.site);
                    changed |= e.load != Some(*load) || stale(e.load_ms);
                    e.load = Some(*load);
                    e.load_ms = Some(now_ms);
                }
                Record::Path {
                    ldns,
                    rtt_us,
                    hops,
                    completion,
                } => {
                    let key = (*ldns, h.site.clone());
                    if self.paths.len() >= MAX_PATHS && !self.paths.contains_key(&key) {
                        continue;
                    }
                    let m = PathMetrics {
                        rtt_ms: f64::from(*rtt_us) / 1000.0,
                        hops: u32::from(*hops),
                        completion: *completion,
                    };
                    let before = self.paths.insert(key, (m, now_ms));
                    changed |= before.is_none_or(|(p, t)| p != m || stale(Some(t)));
                }
                Record::ProbeRequest { .. } | Record::Peer(_) => {}
            }
        }
        changed
    }

    fn vs_report(&mut self, vs: &str, site: &str) -> &mut VsReport {
        let e = self.vss.entry(vs.to_owned()).or_insert_with(|| VsReport {
            site: site.to_owned(),
            up: None,
            load: None,
            health_ms: None,
            load_ms: None,
            restored: false,
        });
        if e.site != site {
            // Another site speaks for it now (the config moved it): start over.
            *e = VsReport {
                site: site.to_owned(),
                up: None,
                load: None,
                health_ms: None,
                load_ms: None,
                restored: false,
            };
        }
        // Reported now: what was restored is this process's own knowledge from here on.
        e.restored = false;
        e
    }

    /// The model's metrics as of `now_ms`. A virtual server reported within `timeout_ms`
    /// has its last health (unknown if only load was reported) and its load if that is that
    /// recent; one whose last report is older is down (`up: Some(false)`), whatever it said;
    /// one never reported (or reported at another site than the model's) is absent: unknown,
    /// so up. Paths older than `timeout_ms` are left out.
    pub fn metrics(&self, model: &Model, now_ms: u64, timeout_ms: u64) -> Metrics {
        self.metrics_with(model, now_ms, timeout_ms, false)
    }

    /// [`Self::metrics`] while a restarted xgslbd warms up: what was restored from the
    /// state file and not reported since (whatever its age, `held` ones included) counts
    /// with its last values, as the predecessor last knew them, rather than down or unknown.
    pub fn metrics_warming(&self, model: &Model, now_ms: u64, timeout_ms: u64) -> Metrics {
        self.metrics_with(model, now_ms, timeout_ms, true)
    }

    fn metrics_with(&self, model: &Model, now_ms: u64, timeout_ms: u64, hold: bool) -> Metrics {
        let fresh = |t: u64| within(t, now_ms, timeout_ms);
        let mut m = Metrics::default();
        for (id, vs) in model.vss.iter().enumerate() {
            let r = match (self.vss.get(&vs.name), hold) {
                (Some(r), _) => r,
                (None, true) => match self.held.get(&vs.name) {
                    Some(r) => r,
                    None => continue,
                },
                (None, false) => continue,
            };
            if model.sites.get(vs.site).is_none_or(|s| s.name != r.site) {
                continue;
            }
            let held = hold && r.restored;
            let v = if !held && !fresh(r.last_ms()) {
                VsMetrics {
                    up: Some(false),
                    ..VsMetrics::default()
                }
            } else {
                let load = r
                    .load
                    .filter(|_| held || r.load_ms.is_some_and(fresh))
                    .unwrap_or_default();
                VsMetrics {
                    up: r.up,
                    connections: load.connections,
                    packets_per_second: load.packets_per_second,
                    kilobits_per_second: load.kilobits_per_second,
                    cpu_percent: load.cpu_percent,
                    capacity: load.capacity,
                    score: load.score,
                }
            };
            m.vs.insert(id, v);
        }
        let sites: HashMap<&str, SiteId> = model
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        for ((prefix, site), (p, t)) in &self.paths {
            if let (true, Some(&s)) = (fresh(*t), sites.get(site.as_str())) {
                m.paths.entry(*prefix).or_default().insert(s, *p);
            }
        }
        m
    }

    /// The reports as the state file keeps them, as of `now_ms`.
    pub fn saved(&self, now_ms: u64) -> State {
        let mut vss: Vec<SavedVs> = self
            .vss
            .iter()
            .chain(self.held.iter().filter(|(n, _)| !self.vss.contains_key(*n)))
            .map(|(name, r)| SavedVs {
                name: name.clone(),
                site: r.site.clone(),
                up: r.up,
                health_ms: r.health_ms,
                load: r.load,
                load_ms: r.load_ms,
            })
            .collect();
        vss.sort_by(|a, b| a.name.cmp(&b.name));
        let mut paths: Vec<SavedPath> = self
            .paths
            .iter()
            .map(|((prefix, site), (p, at_ms))| SavedPath {
                prefix: prefix.to_string(),
                site: site.clone(),
                rtt_ms: p.rtt_ms,
                hops: p.hops,
                completion: p.completion,
                at_ms: *at_ms,
            })
            .collect();
        paths.sort_by(|a, b| (&a.prefix, &a.site).cmp(&(&b.prefix, &b.site)));
        State {
            version: super::state::VERSION,
            saved_ms: now_ms,
            vss,
            paths,
        }
    }

    /// Takes in what a state file kept, as of `now_ms`: a report at most `timeout_ms` old
    /// counts as if it had just been received here (and ages from its time); an older one
    /// is unknown, kept only as held (`metrics_warming`); an older path is dropped. A report
    /// this process has received wins over a restored one. Returns (fresh, held) counts.
    pub fn restore(&mut self, state: &State, now_ms: u64, timeout_ms: u64) -> (usize, usize) {
        let (mut fresh, mut held) = (0, 0);
        for v in &state.vss {
            if self.vss.contains_key(&v.name) || v.name.is_empty() || v.site.is_empty() {
                continue;
            }
            let r = VsReport {
                site: v.site.clone(),
                up: v.up,
                load: v.load.map(|l| Load {
                    cpu_percent: l.cpu_percent.filter(|c| (0.0..=100.0).contains(c)),
                    ..l
                }),
                health_ms: v.health_ms.filter(|&t| t <= now_ms),
                load_ms: v.load_ms.filter(|&t| t <= now_ms),
                restored: true,
            };
            match r.last_ms_opt() {
                Some(t) if within(t, now_ms, timeout_ms) => {
                    fresh += 1;
                    self.vss.insert(v.name.clone(), r);
                }
                Some(_) => {
                    held += 1;
                    self.held.insert(v.name.clone(), r);
                }
                None => {}
            }
        }
        for p in &state.paths {
            let Ok(prefix) = p.prefix.parse::<IpNet>() else {
                continue;
            };
            let valid = prefix.trunc() == prefix
                && p.rtt_ms.is_finite()
                && (0.0..=1.0).contains(&p.completion);
            if valid && within(p.at_ms, now_ms, timeout_ms) && self.paths.len() < MAX_PATHS {
                let m = PathMetrics {
                    rtt_ms: p.rtt_ms,
                    hops: p.hops,
                    completion: p.completion,
                };
                self.paths
                    .entry((prefix, p.site.clone()))
                    .or_insert((m, p.at_ms));
            }
        }
        (fresh, held)
    }

    /// The end of a warm-up: held reports (too old when restored) are unknown from now on.
    pub fn end_warm_up(&mut self) {
        self.held.clear();
    }

    /// The names of virtual servers restored from the state file (held ones too): those an
    /// agent reported for before the restart.
    pub fn restored_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .vss
            .iter()
            .filter(|(_, r)| r.restored)
            .map(|(n, _)| n.clone())
            .chain(self.held.keys().cloned())
            .collect();
        v.sort();
        v
    }

    /// Whether virtual server `vs` has a report at most `timeout_ms` old (received, or
    /// restored that young).
    pub fn is_fresh(&self, vs: &str, now_ms: u64, timeout_ms: u64) -> bool {
        self.vss
            .get(vs)
            .and_then(VsReport::last_ms_opt)
            .is_some_and(|t| within(t, now_ms, timeout_ms))
    }

    /// What is known of virtual server `vs`'s health and where it comes from, as of
    /// `now_ms` (`warming`: held reports count, see `metrics_warming`).
    pub fn knowledge(&self, vs: &str, now_ms: u64, timeout_ms: u64, warming: bool) -> Knowledge {
        let age = |r: &VsReport| now_ms.saturating_sub(r.last_ms());
        match (self.vss.get(vs), self.held.get(vs)) {
            (Some(r), _) if r.restored && warming => Knowledge::Restored { age_ms: age(r) },
            (Some(r), _) if within(r.last_ms(), now_ms, timeout_ms) => {
                if r.restored {
                    Knowledge::Restored { age_ms: age(r) }
                } else {
                    Knowledge::Reported { age_ms: age(r) }
                }
            }
            (Some(r), _) => Knowledge::Stale { age_ms: age(r) },
            (None, Some(r)) if warming => Knowledge::Held { age_ms: age(r) },
            _ => Knowledge::Unknown,
        }
    }

    /// Every agent that reported, by agent id.
    pub fn agents(&self, now_ms: u64, timeout_ms: u64) -> Vec<AgentStatus> {
        let mut v: Vec<AgentStatus> = self
            .agents
            .iter()
            .map(|(agent, s)| {
                let age_ms = now_ms.saturating_sub(s.last_report_ms);
                AgentStatus {
                    agent: agent.clone(),
                    state: s.clone(),
                    age_ms,
                    liveness: if age_ms <= timeout_ms {
                        AgentLiveness::Up
                    } else {
                        AgentLiveness::Stale
                    },
                }
            })
            .collect();
        v.sort_by(|a, b| a.agent.cmp(&b.agent));
        v
    }

    /// Forgets paths and agents not heard of for `max_age_ms`, and reports of virtual
    /// servers the model no longer has. Reports of the model's virtual servers stay, however
    /// old: a VS whose agent went silent must stay down, not become unknown. The balancer
    /// calls it now and then (a max age of many timeouts keeps stale agents in status).
    pub fn expire(&mut self, model: &Model, now_ms: u64, max_age_ms: u64) {
        let fresh = |t: u64| within(t, now_ms, max_age_ms);
        self.paths.retain(|_, (_, t)| fresh(*t));
        self.agents.retain(|_, s| fresh(s.last_report_ms));
        let names: std::collections::HashSet<&str> =
            model.vss.iter().map(|v| v.name.as_str()).collect();
        self.vss.retain(|name, _| names.contains(name.as_str()));
    }
}

/// Where a virtual server's health comes from (`AgentMetrics::knowledge`): the tri-state of
/// health, up, down or unknown, with the age of what it rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knowledge {
    /// Reported to this process within the timeout.
    Reported { age_ms: u64 },
    /// Restored from the state file, not reported to this process yet: within the timeout,
    /// or held while warming up.
    Restored { age_ms: u64 },
    /// Restored from the state file older than the timeout: unknown, held at its last value
    /// while warming up.
    Held { age_ms: u64 },
    /// No report for longer than the timeout: down.
    Stale { age_ms: u64 },
    /// Never reported (or only for another site): unknown, counted as up.
    Unknown,
}

/// Whether a report received at `t_ms` is at most `age_ms` old at `now_ms`.
fn within(t_ms: u64, now_ms: u64, age_ms: u64) -> bool {
    now_ms.saturating_sub(t_ms) <= age_ms
}

/// The agents' metrics with the metrics file laid over them: every value the file has wins,
/// field by field (health, each load value, each (prefix, site) path); the rest is the
/// agents'. The file stays for tests and operator overrides.
pub fn overlay(agent: Metrics, file: &Metrics) -> Metrics {
    let mut m = agent;
    for (id, f) in &file.vs {
        let v = m.vs.entry(*id).or_default();
        v.up = f.up.or(v.up);
        v.connections = f.connections.or(v.connections);
        v.packets_per_second = f.packets_per_second.or(v.packets_per_second);
        v.kilobits_per_second = f.kilobits_per_second.or(v.kilobits_per_second);
        v.cpu_percent = f.cpu_percent.or(v.cpu_percent);
        v.capacity = f.capacity.or(v.capacity);
        v.score = f.score.or(v.score);
    }
    for (prefix, sites) in &file.paths {
        let e = m.paths.entry(*prefix).or_default();
        for (s, p) in sites {
            e.insert(*s, *p);
        }
    }
    m
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
