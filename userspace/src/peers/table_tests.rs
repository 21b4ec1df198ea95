//! Two peer tables talking through the wire format: deferral, its policies when the peer
//! falls silent, subscriptions, and divergence.
use super::*;
use crate::{
    balance::classes::client_classes,
    config::Config,
    metrics::wire::{self, Header, Key, Kind},
    model::{Metrics, VsMetrics},
    plan::{
        deferred::Deferred,
        publication::{ClassIds, Live, publication_counted},
    },
    test_model::TestModel,
};

const SILENT: u64 = 3000;

/// Two sites, a ratio pool across them behind www (deferred by `b` to `a` when `defer`),
/// and a peering with the other EDNS.
fn config(me: &str, other: &str, defer: Option<&str>) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("peer.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut t = TestModel::new(&["198.18.0.2:53"])
        .demo_zone()
        .site(
            "a",
            "lb",
            &[("one", "198.18.1.1"), ("one6", "2001:db8:1::1")],
        )
        .site("b", "lb2", &[("two", "198.18.2.1")])
        .pool("p", &["one", "one6", "two"], "ratio")
        .wideip("www.example.test.", &["p"]);
    if let Some(when) = defer {
        t = t
            .with(&format!("decided_by = \"{other}\""))
            .with(&format!("when_peer_silent = \"{when}\""));
    }
    t = t
        .wideip("api.example.test.", &["p"])
        .peering(me, "a", "198.18.0.2:5301")
        .peer(other, "b", "198.18.0.3:5301", 1, "peer.key");
    t.load(dir.path())
}

/// An EDNS: config, metrics, and its table.
struct Edns {
    cfg: Config,
    metrics: Metrics,
    table: PeerTable,
    ids: ClassIds,
    generation: u64,
}

impl Edns {
    fn new(cfg: Config) -> Self {
        let table = PeerTable::new(cfg.peering.as_ref().unwrap());
        Self {
            cfg,
            metrics: Metrics::default(),
            table,
            ids: ClassIds::default(),
            generation: 0,
        }
    }

    fn set_up(&mut self, vs: &str, up: bool) {
        let i = self
            .cfg
            .model
            .vss
            .iter()
            .position(|v| v.name == vs)
            .unwrap();
        self.metrics.vs.insert(
            i,
            VsMetrics {
                up: Some(up),
                ..VsMetrics::default()
            },
        );
    }

    /// Publishes at `now`: the deferred wide IPs as the table says; returns www's [A, AAAA]
    /// outcomes of the default class, by VS name.
    fn publish(&mut self, now: u64) -> [Outcome<String>; 2] {
        let model = &self.cfg.model;
        let deferred = self.table.deferred(model, now);
        let classes = client_classes(model, &self.metrics, 16);
        let p = publication_counted(
            model,
            &self.metrics,
            &classes,
            &mut self.ids,
            &mut Default::default(),
            &[],
            Live {
                deferred: Some(&deferred),
                ..Live::default()
            },
        );
        self.generation += 1;
        self.table.published(
            model,
            fingerprint::inputs(model, &self.metrics),
            self.generation,
            &p.outcomes(),
        );
        let named = fingerprint::named(model, &p.parts[0].outcomes);
        named[0].1.clone()
    }

    fn deferred(&mut self, now: u64) -> Option<Deferred> {
        self.table.deferred(&self.cfg.model, now).remove(&0)
    }
}

/// Sends `from`'s outgoing records to `to` through the wire (encode, decode), at `now`.
fn deliver(from: &mut Edns, to: &mut Edns, now: u64, heartbeat: bool) -> bool {
    let key = Key {
        id: 1,
        secret: b"0123456789abcdef0123456789abcdef".to_vec(),
    };
    let mut changed = false;
    for (_, records) in from.table.outgoing(&from.cfg.model, now, heartbeat) {
        let header = Header {
            kind: Kind::Peer,
            key_id: 1,
            sequence: now,
            timestamp_ms: now,
            agent: from.table.config().name.clone(),
            site: "a".into(),
        };
        for d in wire::encode(&header, &records, &key) {
            let d = wire::decode(&d, |_| Some(key.clone())).unwrap();
            let peer = to.table.index(&d.header.agent).unwrap();
            changed |= to.table.receive(peer, &d.records, now);
        }
    }
    changed
}

fn names(o: &Outcome<String>) -> Vec<String> {
    match o {
        Outcome::Answer { members, .. } => members.iter().map(|m| m.0.clone()).collect(),
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn a_deferred_wide_ip_serves_the_peers_decision_and_each_silence_policy() {
    for when in ["decide_locally", "keep_last", "all_down"] {
        let mut a = Edns::new(config("edns-a", "edns-b", None));
        let mut b = Edns::new(config("edns-b", "edns-a", Some(when)));
        // A sees "two" down; B sees everything up: B must serve A's view.
        a.set_up("two", false);
        let t = 1_000_000;
        a.publish(t);
        b.publish(t);
        // B subscribes on its heartbeat; A answers with its decision.
        deliver(&mut b, &mut a, t, true);
        deliver(&mut a, &mut b, t + 1, true);
        let served = b.publish(t + 2);
        assert_eq!(names(&served[0]), ["one"], "{when}");
        assert_eq!(names(&served[1]), ["one6"], "{when}");
        let Some(Deferred::Peer(p)) = b.deferred(t + 2) else {
            panic!("{when}: not deferred")
        };
        assert!(matches!(p.step, Step::DecidedByPeer { ref peer, .. } if peer == "edns-a"));

        // A changes its mind ("two" back up): B follows on the next publication.
        a.set_up("two", true);
        a.publish(t + 10);
        assert!(deliver(&mut a, &mut b, t + 11, false), "{when}");
        assert_eq!(names(&b.publish(t + 12)[0]), ["one", "two"], "{when}");
        a.set_up("two", false);
        a.publish(t + 20);
        deliver(&mut a, &mut b, t + 21, false);

        // A falls silent.
        let later = t + 21 + SILENT + 1;
        let served = b.publish(later);
        match when {
            "decide_locally" => assert_eq!(names(&served[0]), ["one", "two"]),
            "keep_last" => assert_eq!(names(&served[0]), ["one"]),
            _ => assert_eq!(names(&served[0]), ["ReturnToDns"]),
        }
        assert_eq!(b.table.peers[0].events.went_silent, 1, "{when}");
        // A comes back: B follows it again.
        deliver(&mut a, &mut b, later + 5, true);
        assert_eq!(names(&b.publish(later + 6)[0]), ["one"], "{when}");
        assert_eq!(b.table.peers[0].events.came_back, 1, "{when}");
    }
}

#[test]
fn divergence_is_listed_only_for_the_wide_ips_that_differ_under_equal_inputs() {
    let mut a = Edns::new(config("edns-a", "edns-b", None));
    let mut b = Edns::new(config("edns-b", "edns-a", None));
    let t = 5_000_000;
    a.publish(t);
    b.publish(t);
    deliver(&mut a, &mut b, t, true);
    assert!(b.table.peers[0].comparable(&b.table.own));
    assert!(b.table.divergent().is_empty());

    // B's www differs for a reason its inputs do not show (a local override of the
    // decision: here, b publishes www with "two" down through its deferred path).
    let mut deferred = DeferredWideIps::new();
    let mut m = b.metrics.clone();
    let two = b
        .cfg
        .model
        .vss
        .iter()
        .position(|v| v.name == "two")
        .unwrap();
    m.vs.insert(
        two,
        VsMetrics {
            up: Some(false),
            ..VsMetrics::default()
        },
    );
    let classes = client_classes(&b.cfg.model, &m, 16);
    let p = publication_counted(
        &b.cfg.model,
        &m,
        &classes,
        &mut b.ids,
        &mut Default::default(),
        &[],
        Live {
            deferred: Some(&{
                deferred.clear();
                deferred.clone()
            }),
            ..Live::default()
        },
    );
    // Its own agent metrics (the inputs) are unchanged: only the served decision differs.
    let inputs = fingerprint::inputs(&b.cfg.model, &b.metrics);
    b.table.published(&b.cfg.model, inputs, 2, &p.outcomes());
    let d = b.table.divergent();
    assert_eq!(
        d,
        [
            ("edns-a".to_owned(), "api.example.test.".to_owned()),
            ("edns-a".to_owned(), "www.example.test.".to_owned())
        ]
    );

    // Different inputs: nothing can be said.
    b.set_up("one", false);
    b.publish(t + 1);
    assert!(!b.table.peers[0].comparable(&b.table.own));
    assert!(b.table.divergent().is_empty());
}

#[test]
fn a_decision_is_applied_only_whole_and_an_older_generation_never_replaces_a_newer() {
    let mut a = Edns::new(config("edns-a", "edns-b", None));
    let mut b = Edns::new(config("edns-b", "edns-a", Some("decide_locally")));
    let t = 9_000_000;
    a.publish(t);
    deliver(&mut b, &mut a, t, true);
    let out = a.table.outgoing(&a.cfg.model, t, false);
    let records: Vec<Record> = out.into_iter().flat_map(|(_, r)| r).collect();
    let decision: Vec<Record> = records
        .iter()
        .filter(|r| {
            matches!(
                r,
                Record::Peer(PeerRecord::DecisionSet { .. } | PeerRecord::Decision { .. })
            )
        })
        .cloned()
        .collect();
    assert!(decision.len() >= 3, "{records:?}");
    // Heard from (no longer silent) before the parts arrive.
    b.table.receive(0, &[], t);
    b.table.deferred(&b.cfg.model, t);
    // All but the last part: nothing applied.
    assert!(!b.table.receive(0, &decision[..decision.len() - 1], t));
    assert!(b.table.peers[0].decisions.is_empty());
    assert!(b.table.receive(0, &decision[decision.len() - 1..], t));
    let generation = b.table.peers[0].decisions["www.example.test."].generation;
    // The same parts of an older generation are ignored.
    let older: Vec<Record> = decision
        .iter()
        .map(|r| match r.clone() {
            Record::Peer(PeerRecord::DecisionSet { wideip, parts, .. }) => {
                Record::Peer(PeerRecord::DecisionSet {
                    wideip,
                    parts,
                    generation: generation - 1,
                })
            }
            Record::Peer(PeerRecord::Decision {
                wideip,
                class,
                v6,
                outcome,
                ..
            }) => Record::Peer(PeerRecord::Decision {
                wideip,
                class,
                v6,
                outcome,
                generation: generation - 1,
            }),
            other => other,
        })
        .collect();
    assert!(!b.table.receive(0, &older, t + 1));
    assert_eq!(
        b.table.peers[0].decisions["www.example.test."].generation,
        generation
    );
}

/// `n` wide IPs, w0 to w{n-1}, each served by its own pool of one virtual server: the
/// even ones by "one" (site a), the odd ones by "two" (site b); peered with `other`.
fn wide(me: &str, other: &str, n: usize) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("peer.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut t = TestModel::new(&["198.18.0.2:53"])
        .demo_zone()
        .site("a", "lb", &[("one", "198.18.1.1")])
        .site("b", "lb2", &[("two", "198.18.2.1")])
        .pool("p1", &["one"], "global_availability")
        .pool("p2", &["two"], "global_availability");
    for w in 0..n {
        let pool = if w % 2 == 0 { "p1" } else { "p2" };
        t = t.wideip(&format!("w{w}.example.test."), &[pool]);
    }
    t.peering(me, "a", "198.18.0.2:5301")
        .peer(other, "b", "198.18.0.3:5301", 1, "peer.key")
        .load(dir.path())
}

/// Edns-a and edns-b peered over `n` wide IPs (see [`wide`]), each published at `t`.
fn published_pair(n: usize, t: u64) -> (Edns, Edns) {
    let mut a = Edns::new(wide("edns-a", "edns-b", n));
    let mut b = Edns::new(wide("edns-b", "edns-a", n));
    a.publish(t);
    b.publish(t);
    (a, b)
}

/// The fingerprint records among `records`, by wide IP.
fn fingerprinted(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Peer(PeerRecord::Fingerprint { wideip, .. }) => Some(wideip.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publication_fingerprints_again_only_what_changed_and_keeps_the_digest_whole() {
    let mut a = Edns::new(wide("edns-a", "edns-b", 4));
    let t = 2_000_000;
    a.publish(t);
    let first = a.table.outgoing(&a.cfg.model, t, false);
    assert_eq!(
        fingerprinted(&first[0].1).len(),
        4,
        "the first tells everything"
    );
    let digest = |e: &Edns| fingerprint::digest(&e.table.own.fingerprints);
    assert_eq!(a.table.own.digest, digest(&a));

    // The same outcomes again: nothing to tell.
    a.publish(t + 1);
    assert!(a.table.outgoing(&a.cfg.model, t + 1, false).is_empty());

    // "two" down moves the odd wide IPs only; the digest follows, entry by entry.
    let before = a.table.own.fingerprints.clone();
    a.set_up("two", false);
    a.publish(t + 2);
    let out = a.table.outgoing(&a.cfg.model, t + 2, false);
    assert_eq!(
        fingerprinted(&out[0].1),
        ["w1.example.test.", "w3.example.test."]
    );
    assert_eq!(a.table.own.digest, digest(&a));
    assert_eq!(
        a.table.own.fingerprints["w0.example.test."],
        before["w0.example.test."]
    );
    assert_ne!(
        a.table.own.fingerprints["w1.example.test."],
        before["w1.example.test."]
    );

    // Another model (a reload that drops two wide IPs): everything is made again.
    let mut fewer = Edns::new(wide("edns-a", "edns-b", 2));
    std::mem::swap(&mut fewer.table, &mut a.table);
    fewer.set_up("two", false);
    fewer.publish(t + 3);
    let own = &fewer.table.own;
    assert_eq!(own.fingerprints.len(), 2);
    assert_eq!(own.digest, digest(&fewer));
    assert_eq!(
        own.fingerprints["w1.example.test."],
        a_fingerprint_of(&wide("edns-x", "edns-y", 2), "two", 1)
    );
}

/// Wide IP `w`'s fingerprint in a fresh publication of `cfg` with `down` down.
fn a_fingerprint_of(cfg: &Config, down: &str, w: usize) -> u64 {
    let mut e = Edns::new(cfg.clone());
    e.set_up(down, false);
    e.publish(1);
    e.table.own.fingerprints[&format!("w{w}.example.test.")]
}

#[test]
fn fingerprints_go_a_share_per_heartbeat_and_all_of_them_every_full_every() {
    let n = 25;
    let t = 3_000_000;
    let (mut a, mut b) = published_pair(n, t);
    // The first publication's fingerprints are lost on the way.
    a.table.outgoing(&a.cfg.model, t, false);
    let mut sent = std::collections::BTreeSet::new();
    for h in 1..=FULL_EVERY {
        let out = a.table.outgoing(&a.cfg.model, t + h, true);
        let share = fingerprinted(&out[0].1);
        assert!(share.len() <= n.div_ceil(FULL_EVERY as usize), "{share:?}");
        sent.extend(share);
        let peer = b.table.index("edns-a").unwrap();
        b.table.receive(peer, &out[0].1, t + h);
        assert_eq!(
            b.table.peers[peer].comparable(&b.table.own),
            h == FULL_EVERY,
            "after heartbeat {h}"
        );
    }
    assert_eq!(sent.len(), n, "every fingerprint once");
    assert!(b.table.divergent().is_empty());
}

#[test]
fn a_peer_that_holds_every_fingerprint_is_sent_none_again_until_it_lacks_one() {
    let n = 20;
    let t = 4_000_000;
    let (mut a, mut b) = published_pair(n, t);
    // Both tell each other everything, then B's hello says it holds all of A's.
    deliver(&mut a, &mut b, t, false);
    deliver(&mut b, &mut a, t, true);
    for h in 1..=2 * FULL_EVERY {
        let out = a.table.outgoing(&a.cfg.model, t + h, true);
        assert!(
            fingerprinted(&out[0].1).is_empty(),
            "heartbeat {h}: {out:?}"
        );
    }
    // A change whose fingerprints are lost. A hello from B sent before they could have
    // arrived says nothing; one sent well after (half a heartbeat) says what it holds, and
    // the periodic resend to it starts again until it holds them.
    a.set_up("two", false);
    a.publish(t + 100);
    let lost = a.table.outgoing(&a.cfg.model, t + 100, false);
    assert_eq!(fingerprinted(&lost[0].1).len(), n / 2);
    deliver(&mut b, &mut a, t + 101, true);
    let out = a.table.outgoing(&a.cfg.model, t + 102, true);
    assert!(fingerprinted(&out[0].1).is_empty(), "{out:?}");
    let later = t + 100 + a.table.config().heartbeat_ms;
    deliver(&mut b, &mut a, later, true);
    let mut resent = 0;
    for h in 1..=FULL_EVERY {
        let now = later + h;
        let out = a.table.outgoing(&a.cfg.model, now, true);
        resent += fingerprinted(&out[0].1).len();
        let peer = b.table.index("edns-a").unwrap();
        b.table.receive(peer, &out[0].1, now);
    }
    assert_eq!(resent, n, "a whole round, once");
    assert_eq!(b.table.peers[0].fingerprints_digest, a.table.own.digest);
    deliver(&mut b, &mut a, later + 100, true);
    let out = a.table.outgoing(&a.cfg.model, later + 101, true);
    assert!(fingerprinted(&out[0].1).is_empty(), "{out:?}");
}
