//! The balancer's side of peering: what each peer told us (contact, fingerprints, the
//! decisions it makes for the wide IPs we defer to it), what we tell each peer (hellos,
//! fingerprints, our decisions for the wide IPs it defers to us), which wide IPs diverge,
//! and how each deferred wide IP is published now.
//!
//! Pure: the clock is a parameter and the messages are records in and out, so tests drive
//! two tables against each other without sockets. The daemon verifies datagrams before
//! they reach [`PeerTable::receive`] and sends what [`PeerTable::outgoing`] returns.
use std::collections::{BTreeMap, HashMap};

use super::fingerprint::{self, NamedOutcomes};
use crate::{
    balance::{Outcome, trace::Step},
    config::PeeringConfig,
    metrics::wire::{
        Record,
        peer::{ClassKeys, Inputs, PeerRecord},
    },
    model::{Model, WhenPeerSilent},
    plan::{
        deferred::{Deferred, DeferredWideIps, PeerOutcomes},
        part::WideIpOutcomes,
    },
};

/// Heartbeats between full resends of fingerprints and subscribed decisions (a lost
/// datagram is made good within this many). The fingerprints go a share per heartbeat
/// ([`PeerTable::outgoing`]): all at once, 10,000 wide IPs to 15 peers are over 5,000
/// datagrams in one burst, more than the sockets' buffers hold.
pub const FULL_EVERY: u64 = 10;

/// A peer's whole decision for one wide IP.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerDecision {
    pub generation: u64,
    pub arrived_ms: u64,
    pub outcomes: NamedOutcomes,
}

/// Decision records of one generation, until all have arrived.
#[derive(Clone, Debug, Default)]
struct Partial {
    generation: u64,
    parts: Option<u16>,
    records: Vec<(ClassKeys, bool, Outcome<String>)>,
}

/// What the balancer counts per peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerEvents {
    /// Verified datagrams from it.
    pub messages: u64,
    /// Whole decisions it sent for wide IPs we defer to it.
    pub decisions: u64,
    /// Times it went silent, and came back.
    pub went_silent: u64,
    pub came_back: u64,
}

/// What is known of one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerState {
    pub name: String,
    pub site: String,
    pub last_contact_ms: Option<u64>,
    /// Its last hello: inputs, digest, wide IPs.
    pub hello: Option<(Inputs, u64, u32)>,
    /// The digest of our fingerprints it holds, from its last hello, and when that came:
    /// equal to ours, it needs none resent.
    holds_ours: Option<(u64, u64)>,
    /// Its decision fingerprints, by wide IP, and their digest (kept up to date entry by
    /// entry).
    fingerprints: BTreeMap<String, u64>,
    fingerprints_digest: u64,
    /// Its decisions for the wide IPs we defer to it.
    pub decisions: HashMap<String, PeerDecision>,
    partial: HashMap<String, Partial>,
    /// Wide IPs it defers to us, with when it last asked.
    subscriptions: HashMap<String, u64>,
    /// Wide IPs whose decision it has not been sent since it changed (or it subscribed).
    unsent: std::collections::BTreeSet<String>,
    pub events: PeerEvents,
    /// Silent at the last publication (for the switch's log line and counts).
    silent: bool,
}

impl PeerState {
    /// Nothing heard for `silent_after_ms` (or never).
    pub fn is_silent(&self, now_ms: u64, silent_after_ms: u64) -> bool {
        self.last_contact_ms
            .is_none_or(|t| now_ms.saturating_sub(t) > silent_after_ms)
    }

    /// Wide IPs whose fingerprint differs from ours (`own`), when the peer decided from the
    /// same inputs and we hold its whole set of fingerprints (its digest matches them);
    /// otherwise nothing can be said, and none are listed.
    pub fn divergent(&self, own: &OwnState) -> Vec<String> {
        let Some((inputs, digest, _)) = self.hello else {
            return Vec::new();
        };
        if inputs != own.inputs || self.fingerprints_digest != digest {
            return Vec::new();
        }
        // Its digest is ours: the same set (the 64-bit digest is what `comparable` already
        // rests on). Agreement is the common case, and this spares a lookup per wide IP per
        // peer at every publication.
        if digest == own.digest {
            return Vec::new();
        }
        let mut out: Vec<String> = self
            .fingerprints
            .iter()
            .filter(|(w, f)| own.fingerprints.get(*w).is_some_and(|o| o != *f))
            .map(|(w, _)| w.clone())
            .collect();
        out.sort();
        out
    }

    /// Whether we can compare at all (same inputs, whole fingerprint set).
    pub fn comparable(&self, own: &OwnState) -> bool {
        self.hello.is_some_and(|(inputs, digest, _)| {
            inputs == own.inputs && self.fingerprints_digest == digest
        })
    }
}

/// Our last publication, as peers are told it.
#[derive(Clone, Debug, Default)]
pub struct OwnState {
    pub inputs: Inputs,
    /// Our publication generation (decisions carry it).
    pub generation: u64,
    pub fingerprints: BTreeMap<String, u64>,
    pub digest: u64,
    decisions: HashMap<String, NamedOutcomes>,
    /// Wide IPs whose fingerprint changed since peers were last told.
    changed: std::collections::BTreeSet<String>,
    /// Our digest as peers were last told it, and since when (ms).
    told: (u64, u64),
    /// By model index: each wide IP's name (lowercase) and the outcomes its fingerprint and
    /// decision were last made from, valid for the model of `inputs.config`; a publication
    /// fingerprints again only the wide IPs whose outcomes moved.
    made_from: Vec<(String, WideIpOutcomes)>,
}

/// One peer as `xgslbctl peers` and the metrics endpoint show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub site: String,
    pub address: std::net::SocketAddr,
    /// Unix ms of its last verified datagram.
    pub last_contact_ms: Option<u64>,
    pub silent: bool,
    /// Same inputs as ours and its whole fingerprint set held: its decisions can be compared.
    pub comparable: bool,
    /// Wide IPs whose decisions differ from ours though they should agree.
    pub divergent: Vec<String>,
    /// Wide IPs we defer to it, and of those, how many we hold a decision of.
    pub deferred: usize,
    pub decisions_held: usize,
    /// Wide IPs it defers to us.
    pub subscriptions: usize,
    pub messages: u64,
    pub decisions: u64,
    pub went_silent: u64,
    pub came_back: u64,
}

/// Every peer, and us.
#[derive(Clone, Debug)]
pub struct PeerTable {
    config: PeeringConfig,
    pub peers: Vec<PeerState>,
    pub own: OwnState,
    heartbeats: u64,
}

impl PeerTable {
    pub fn new(config: &PeeringConfig) -> Self {
        let mut t = Self {
            config: config.clone(),
            peers: Vec::new(),
            own: OwnState::default(),
            heartbeats: 0,
        };
        t.reconfigure(config);
        t
    }

    pub fn config(&self) -> &PeeringConfig {
        &self.config
    }

    /// A new `[peering]`: peers kept by name keep what is known of them.
    pub fn reconfigure(&mut self, config: &PeeringConfig) {
        let mut old: HashMap<String, PeerState> =
            self.peers.drain(..).map(|p| (p.name.clone(), p)).collect();
        self.peers = config
            .peers
            .iter()
            .map(|p| {
                // Never heard: silent from the start, which is no switch to count.
                let mut s = old.remove(&p.name).unwrap_or_else(|| PeerState {
                    silent: true,
                    ..PeerState::default()
                });
                s.name.clone_from(&p.name);
                s.site.clone_from(&p.site);
                s
            })
            .collect();
        self.config = config.clone();
    }

    /// The index of the peer named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.name == name)
    }

    /// A verified datagram's records from peer `peer`; whether a deferred wide IP's
    /// decision is now new (the caller publishes).
    pub fn receive(&mut self, peer: usize, records: &[Record], now_ms: u64) -> bool {
        let Some(p) = self.peers.get_mut(peer) else {
            return false;
        };
        p.last_contact_ms = Some(now_ms);
        p.events.messages += 1;
        // Silent at the last publication and heard now: its wide IPs follow it again.
        let mut changed = p.silent;
        for r in records {
            let Record::Peer(r) = r else { continue };
            match r {
                PeerRecord::Hello {
                    inputs,
                    digest,
                    wideips,
                    held,
                } => {
                    p.hello = Some((*inputs, *digest, *wideips));
                    p.holds_ours = Some((*held, now_ms));
                    // It has fewer wide IPs than we hold fingerprints of (a reload removed
                    // some): start over; its next full resend fills the table again.
                    if p.fingerprints.len() > *wideips as usize {
                        p.fingerprints.clear();
                        p.fingerprints_digest = 0;
                    }
                }
                PeerRecord::Subscribe { wideip } => {
                    if p.subscriptions.insert(wideip.clone(), now_ms).is_none() {
                        p.unsent.insert(wideip.clone());
                    }
                }
                PeerRecord::Fingerprint {
                    wideip,
                    fingerprint,
                    ..
                } => {
                    // Most are the periodic resend of what is held: nothing to do.
                    if p.fingerprints.get(wideip) == Some(fingerprint) {
                        continue;
                    }
                    let new = fingerprint::digest_entry(wideip, *fingerprint);
                    let old = p
                        .fingerprints
                        .insert(wideip.clone(), *fingerprint)
                        .map_or(0, |f| fingerprint::digest_entry(wideip, f));
                    p.fingerprints_digest =
                        p.fingerprints_digest.wrapping_sub(old).wrapping_add(new);
                }
                PeerRecord::DecisionSet {
                    wideip,
                    generation,
                    parts,
                } => {
                    let part = partial(&mut p.partial, wideip, *generation);
                    part.parts = Some(*parts);
                    changed |= complete(p, wideip, now_ms);
                }
                PeerRecord::Decision {
                    wideip,
                    generation,
                    class,
                    v6,
                    outcome,
                } => {
                    let part = partial(&mut p.partial, wideip, *generation);
                    // At most one record per (class, family): a duplicate replaces.
                    part.records.retain(|(k, f, _)| (k, f) != (class, v6));
                    part.records.push((*class, *v6, outcome.clone()));
                    changed |= complete(p, wideip, now_ms);
                }
            }
        }
        changed
    }

    /// Takes our publication: its `inputs` (see [`fingerprint::inputs`]; the caller keeps
    /// the model's part, which is costly, until the model changes), generation and every
    /// wide IP's outcomes (by model index, as the publication made them). Under the same
    /// model, only the wide IPs whose outcomes changed are fingerprinted again.
    pub fn published(
        &mut self,
        model: &Model,
        inputs: Inputs,
        generation: u64,
        outcomes: &[&WideIpOutcomes],
    ) {
        let own = &mut self.own;
        // Equal config fingerprints: the same wide IPs and virtual servers at the same
        // indices, so the outcomes kept by index still name the same things.
        let same_model = own.inputs.config == inputs.config
            && own.made_from.len() == model.wideips.len()
            && outcomes.len() == model.wideips.len();
        own.inputs = inputs;
        own.generation = generation;
        if !same_model {
            own.made_from = model
                .wideips
                .iter()
                .map(|w| (w.name.to_lowercase().to_string(), Vec::new()))
                .collect();
            // Wide IPs the model no longer has leave; the rest are compared below.
            let names: std::collections::HashSet<&String> =
                own.made_from.iter().map(|(n, _)| n).collect();
            own.fingerprints.retain(|w, _| names.contains(w));
            own.decisions.retain(|w, _| names.contains(w));
            own.digest = fingerprint::digest(&own.fingerprints);
        }
        for ((name, made_from), &o) in own.made_from.iter_mut().zip(outcomes) {
            if same_model && made_from == o {
                continue;
            }
            made_from.clone_from(o);
            let named = fingerprint::named(model, o);
            let fp = fingerprint::decision(&named);
            let old = own.fingerprints.insert(name.clone(), fp);
            if old != Some(fp) {
                let old = old.map_or(0, |f| fingerprint::digest_entry(name, f));
                own.digest = own
                    .digest
                    .wrapping_sub(old)
                    .wrapping_add(fingerprint::digest_entry(name, fp));
                own.changed.insert(name.clone());
                for p in &mut self.peers {
                    if p.subscriptions.contains_key(name) {
                        p.unsent.insert(name.clone());
                    }
                }
            }
            own.decisions.insert(name.clone(), named);
        }
    }

    /// Whether a peer fell silent or was heard again since the last publication (which
    /// changes how the wide IPs it decides are published).
    pub fn silence_changed(&self, now_ms: u64) -> bool {
        let silent_after = self.config.silent_after_ms;
        self.peers
            .iter()
            .any(|p| p.is_silent(now_ms, silent_after) != p.silent)
    }

    /// How each deferred wide IP of `model` is published at `now_ms`, logging and counting
    /// each peer's switch to silent and back.
    pub fn deferred(&mut self, model: &Model, now_ms: u64) -> DeferredWideIps {
        let silent_after = self.config.silent_after_ms;
        for p in &mut self.peers {
            let silent = p.is_silent(now_ms, silent_after);
            if silent != p.silent {
                if silent {
                    p.events.went_silent += 1;
                    tracing::warn!(
                        "peer {} is silent (nothing for {silent_after} ms): the wide IPs it \
                         decides follow their when_peer_silent",
                        p.name
                    );
                } else if p.events.went_silent > 0 {
                    p.events.came_back += 1;
                    tracing::info!("peer {} is back: it decides its wide IPs again", p.name);
                } else {
                    tracing::info!("peer {} heard from", p.name);
                }
                p.silent = silent;
            }
        }
        let mut out = DeferredWideIps::new();
        for (w, wideip) in model.wideips.iter().enumerate() {
            let Some(d) = &wideip.deferral else { continue };
            let Some(p) = self.peers.iter().find(|p| p.name == d.peer) else {
                continue;
            };
            let name = wideip.name.to_lowercase().to_string();
            let last = p.decisions.get(&name);
            let silent = p.is_silent(now_ms, silent_after);
            let silent_step = || Step::PeerSilent {
                wideip: w,
                peer: p.name.clone(),
                silent_ms: p.last_contact_ms.map(|t| now_ms.saturating_sub(t)),
                when: d.when_silent,
            };
            let peer_outcomes = |decision: &PeerDecision| {
                let step = Step::DecidedByPeer {
                    wideip: w,
                    peer: p.name.clone(),
                    generation: decision.generation,
                    age_ms: now_ms.saturating_sub(decision.arrived_ms),
                };
                local_outcomes(model, step, &decision.outcomes)
            };
            let deferred = match (silent, last, d.when_silent) {
                (false, Some(decision), _) => peer_outcomes(decision),
                // Heard from, but no decision yet: decide here, as when it is silent.
                (false, None, _) => None,
                (true, Some(decision), WhenPeerSilent::KeepLast) => {
                    peer_outcomes(decision).map(|o| match o {
                        Deferred::Peer(mut p) => {
                            p.step = silent_step();
                            Deferred::Peer(p)
                        }
                        other => other,
                    })
                }
                (true, _, WhenPeerSilent::AllDown) => Some(Deferred::AllDown(silent_step())),
                (true, _, _) => Some(Deferred::Local(silent_step())),
            };
            if let Some(deferred) = deferred {
                out.insert(w, deferred);
            }
        }
        out
    }

    /// What to send now, per peer index: every `heartbeat` a hello, our subscriptions and a
    /// [`FULL_EVERY`]th share of our fingerprints (so all of them every `FULL_EVERY`
    /// heartbeats); after a publication the fingerprints that changed; decisions to
    /// subscribers that have not had the latest, and all of them every `FULL_EVERY`
    /// heartbeats.
    pub fn outgoing(
        &mut self,
        model: &Model,
        now_ms: u64,
        heartbeat: bool,
    ) -> Vec<(usize, Vec<Record>)> {
        let share = heartbeat.then(|| {
            self.heartbeats += 1;
            self.heartbeats % FULL_EVERY
        });
        let full = share == Some(1);
        let own = &mut self.own;
        let changed = std::mem::take(&mut own.changed);
        let record = |(w, fp): (&String, &u64)| {
            Record::Peer(PeerRecord::Fingerprint {
                inputs: own.inputs,
                wideip: w.clone(),
                fingerprint: *fp,
            })
        };
        // The same for every peer: made once.
        let fingerprints: Vec<Record> = changed
            .iter()
            .filter_map(|w| own.fingerprints.get_key_value(w))
            .map(record)
            .collect();
        if own.told.0 != own.digest {
            own.told = (own.digest, now_ms);
        }
        // The periodic resend, for the peers that do not hold all of ours: at 10,000 wide
        // IPs and 15 peers it is most of the protocol's traffic, and a settled fleet needs
        // none of it. A hello that says otherwise counts once it came well after we told
        // the change (half a heartbeat): before, it may only predate what is on its way.
        let slack = self.config.heartbeat_ms / 2;
        let told = own.told;
        let lacking = |p: &PeerState| match p.holds_ours {
            None => true,
            Some((held, at)) => held != told.0 && at >= told.1.saturating_add(slack),
        };
        let resend: Vec<Record> = match share {
            Some(share) if self.peers.iter().any(lacking) => own
                .fingerprints
                .iter()
                .enumerate()
                .filter(|(i, (w, _))| *i as u64 % FULL_EVERY == share && !changed.contains(*w))
                .map(|(_, entry)| record(entry))
                .collect(),
            _ => Vec::new(),
        };
        let silent_after = self.config.silent_after_ms;
        let mut out = Vec::new();
        for (i, p) in self.peers.iter_mut().enumerate() {
            let mut records = fingerprints.clone();
            if lacking(p) {
                records.extend(resend.iter().cloned());
            }
            // Subscriptions not renewed for as long as a peer takes to be silent lapse.
            p.subscriptions
                .retain(|_, t| now_ms.saturating_sub(*t) <= silent_after);
            if full {
                p.unsent.extend(p.subscriptions.keys().cloned());
            }
            let unsent = std::mem::take(&mut p.unsent);
            for w in unsent.iter().filter(|w| p.subscriptions.contains_key(*w)) {
                if let Some(named) = own.decisions.get(w) {
                    records.extend(decision_records(w, own.generation, named));
                }
            }
            if heartbeat {
                for wideip in &model.wideips {
                    if wideip.deferral.as_ref().is_some_and(|d| d.peer == p.name) {
                        records.push(Record::Peer(PeerRecord::Subscribe {
                            wideip: wideip.name.to_lowercase().to_string(),
                        }));
                    }
                }
            }
            // The hello last: a receiver holds our fingerprints before it compares digests.
            if heartbeat || !records.is_empty() {
                records.push(Record::Peer(PeerRecord::Hello {
                    inputs: own.inputs,
                    digest: own.digest,
                    wideips: own.fingerprints.len() as u32,
                    held: p.fingerprints_digest,
                }));
            }
            if !records.is_empty() {
                out.push((i, records));
            }
        }
        out
    }

    /// Each peer's status at `now_ms`.
    pub fn status(&self, model: &Model, now_ms: u64) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .zip(&self.config.peers)
            .map(|(p, c)| {
                let deferred: Vec<String> = model
                    .wideips
                    .iter()
                    .filter(|w| w.deferral.as_ref().is_some_and(|d| d.peer == p.name))
                    .map(|w| w.name.to_lowercase().to_string())
                    .collect();
                PeerStatus {
                    name: p.name.clone(),
                    site: p.site.clone(),
                    address: c.address,
                    last_contact_ms: p.last_contact_ms,
                    silent: p.is_silent(now_ms, self.config.silent_after_ms),
                    comparable: p.comparable(&self.own),
                    divergent: p.divergent(&self.own),
                    deferred: deferred.len(),
                    decisions_held: deferred
                        .iter()
                        .filter(|w| p.decisions.contains_key(*w))
                        .count(),
                    subscriptions: p.subscriptions.len(),
                    messages: p.events.messages,
                    decisions: p.events.decisions,
                    went_silent: p.events.went_silent,
                    came_back: p.events.came_back,
                }
            })
            .collect()
    }

    /// Every (peer, wide IP) whose decisions differ though they should agree.
    pub fn divergent(&self) -> Vec<(String, String)> {
        self.peers
            .iter()
            .flat_map(|p| {
                p.divergent(&self.own)
                    .into_iter()
                    .map(|w| (p.name.clone(), w))
            })
            .collect()
    }
}

/// The partial decision of `wideip`, started anew for a newer generation.
fn partial<'a>(
    partials: &'a mut HashMap<String, Partial>,
    wideip: &str,
    generation: u64,
) -> &'a mut Partial {
    let p = partials.entry(wideip.to_owned()).or_default();
    if p.generation != generation {
        *p = Partial {
            generation,
            ..Partial::default()
        };
    }
    p
}

/// Moves `wideip`'s partial decision to the peer's decisions once all its parts are in (and
/// it is newer than what is held); whether it did.
fn complete(p: &mut PeerState, wideip: &str, now_ms: u64) -> bool {
    let Some(part) = p.partial.get(wideip) else {
        return false;
    };
    if part.parts != Some(part.records.len() as u16) {
        return false;
    }
    let Some(part) = p.partial.remove(wideip) else {
        return false;
    };
    if p.decisions
        .get(wideip)
        .is_some_and(|d| d.generation > part.generation)
    {
        return false;
    }
    let mut by_class: BTreeMap<ClassKeys, [Outcome<String>; 2]> = BTreeMap::new();
    for (keys, v6, outcome) in part.records {
        by_class
            .entry(keys)
            .or_insert([Outcome::NoData, Outcome::NoData])[usize::from(v6)] = outcome;
    }
    let outcomes: NamedOutcomes = by_class.into_iter().collect();
    let same = p
        .decisions
        .get(wideip)
        .is_some_and(|d| d.outcomes == outcomes);
    p.events.decisions += 1;
    p.decisions.insert(
        wideip.to_owned(),
        PeerDecision {
            generation: part.generation,
            arrived_ms: now_ms,
            outcomes,
        },
    );
    // A resend of the same decision changes nothing served (but its age in explain).
    !same
}

/// The records that carry one wide IP's decision: the set, then one per class and family.
fn decision_records(wideip: &str, generation: u64, named: &NamedOutcomes) -> Vec<Record> {
    let mut out = vec![Record::Peer(PeerRecord::DecisionSet {
        wideip: wideip.to_owned(),
        generation,
        parts: (named.len() * 2).min(usize::from(u16::MAX)) as u16,
    })];
    for (class, outcomes) in named.iter().take(usize::from(u16::MAX) / 2) {
        for (v6, outcome) in [false, true].into_iter().zip(outcomes) {
            out.push(Record::Peer(PeerRecord::Decision {
                wideip: wideip.to_owned(),
                generation,
                class: *class,
                v6,
                outcome: outcome.clone(),
            }));
        }
    }
    out
}

/// A peer's decision by this model's indices; `None` (decide here) if it names a virtual
/// server this model does not have (the configs differ).
fn local_outcomes(model: &Model, step: Step, outcomes: &NamedOutcomes) -> Option<Deferred> {
    let index = |name: &String| model.vss.iter().position(|v| &v.name == name);
    let classes = outcomes
        .iter()
        .map(|(k, [a, b])| Some((*k, [a.map_members(index)?, b.map_members(index)?])))
        .collect::<Option<Vec<_>>>()?;
    Some(Deferred::Peer(PeerOutcomes::new(step, classes)))
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
