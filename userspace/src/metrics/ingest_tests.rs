//! Ingest: accepted reports becoming metrics, every refused datagram counted and changing
//! nothing, silent virtual servers going down, and reports across a reload.
use super::*;
use crate::metrics::wire::{Header, MAX_DATAGRAM, TAG_LEN, encode};

const NOW: u64 = 1_700_000_000_000;
const TIMEOUT: u64 = 3000;

use crate::metrics::test_model::model;

fn key(id: u32) -> Key {
    Key {
        id,
        secret: format!("the-secret-of-key-{id}").into_bytes(),
    }
}

/// Key 1 bound to tokyo, key 2 to newyork, key 3 to no site.
fn ingest() -> Ingest {
    Ingest::new(
        [
            IngestKey {
                key: key(1),
                site: Some("tokyo".into()),
            },
            IngestKey {
                key: key(2),
                site: Some("newyork".into()),
            },
            IngestKey {
                key: key(3),
                site: None,
            },
        ],
        30_000,
        64,
    )
}

fn header(key_id: u32, site: &str, sequence: u64, timestamp_ms: u64) -> Header {
    Header {
        kind: Kind::Report,
        key_id,
        sequence,
        timestamp_ms,
        agent: format!("{site}-agent"),
        site: site.into(),
    }
}

fn from() -> SocketAddr {
    "198.18.1.2:40000".parse().unwrap()
}

fn tokyo_records(up: bool) -> Vec<Record> {
    vec![
        Record::Health {
            vs: "tokyo-www".into(),
            up,
        },
        Record::Load {
            vs: "tokyo-www".into(),
            load: Load {
                connections: Some(120),
                cpu_percent: Some(40.5),
                ..Load::default()
            },
        },
        Record::Path {
            ldns: "198.18.64.0/24".parse().unwrap(),
            rtt_us: 12_500,
            hops: 7,
            completion: 0.99,
        },
    ]
}

/// One tokyo report, sequence `seq`, sent at `NOW`.
fn tokyo(seq: u64, up: bool) -> Vec<u8> {
    encode(&header(1, "tokyo", seq, NOW), &tokyo_records(up), &key(1)).remove(0)
}

/// The pipeline of xgslbd: the ingest, then the balancer's apply.
struct Edns {
    ingest: Ingest,
    agents: AgentMetrics,
    index: VsIndex,
}

impl Edns {
    fn new() -> Self {
        Self {
            ingest: ingest(),
            agents: AgentMetrics::new(),
            index: VsIndex::new(&model()),
        }
    }

    fn receive(&mut self, bytes: &[u8], now_ms: u64) -> Result<(), Reject> {
        let d = self.ingest.accept(bytes, now_ms, &self.index)?;
        self.agents.apply(&d, from(), now_ms, TIMEOUT);
        Ok(())
    }
}

#[test]
fn an_accepted_report_becomes_metrics() {
    let mut e = Edns::new();
    e.receive(&tokyo(1, true), NOW).unwrap();
    let m = e.agents.metrics(&model(), NOW + 10, TIMEOUT);
    assert_eq!(
        m.vs[&0],
        VsMetrics {
            up: Some(true),
            connections: Some(120),
            cpu_percent: Some(40.5),
            ..VsMetrics::default()
        }
    );
    // Never reported: absent (unknown, so up).
    assert_eq!(m.vs.len(), 1);
    let path = m.paths[&"198.18.64.0/24".parse::<IpNet>().unwrap()][&0];
    assert_eq!(
        path,
        PathMetrics {
            rtt_ms: 12.5,
            hops: 7,
            completion: 0.99
        }
    );
    assert_eq!(e.ingest.counters().accepted, 1);
    assert_eq!(e.ingest.counters().total_rejected(), 0);

    let status = e.agents.agents(NOW + 10, TIMEOUT);
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].agent, "tokyo-agent");
    assert_eq!(status[0].state.address, from());
    assert_eq!(status[0].state.site, "tokyo");
    assert_eq!(status[0].state.last_sequence, 1);
    assert_eq!(status[0].state.records, 3);
    assert_eq!(status[0].state.last_report_ms, NOW);
    assert_eq!(status[0].age_ms, 10);
    assert_eq!(status[0].liveness, AgentLiveness::Up);
    let later = e.agents.agents(NOW + TIMEOUT + 1, TIMEOUT);
    assert_eq!(later[0].liveness, AgentLiveness::Stale);
}

/// Re-tags `d` with `k` after a change.
fn retag(mut d: Vec<u8>, k: &Key) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let n = d.len() - TAG_LEN;
    d.truncate(n);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&k.secret).unwrap();
    mac.update(&d);
    d.extend_from_slice(&mac.finalize().into_bytes());
    d
}

#[test]
fn every_refused_datagram_is_counted_and_changes_nothing() {
    let mut e = Edns::new();
    e.receive(&tokyo(10, true), NOW).unwrap();
    let before = e.agents.clone();
    let metrics = e.agents.metrics(&model(), NOW, TIMEOUT);

    let mut forged = tokyo(11, false);
    let at = forged.len() - 40; // a record byte
    forged[at] ^= 1;
    let other_secret = Key {
        id: 1,
        secret: b"not-the-tokyo-secret".to_vec(),
    };
    let mut wrong_version = tokyo(11, false);
    wrong_version[4] = 2;
    let mut bad_magic = tokyo(11, false);
    bad_magic[0] = 0;
    let reply = encode(
        &Header {
            kind: Kind::Reply,
            ..header(1, "tokyo", 11, NOW)
        },
        &[],
        &key(1),
    )
    .remove(0);
    let unknown_vs = vec![Record::Health {
        vs: "osaka-www".into(),
        up: false,
    }];
    let vs_elsewhere = vec![
        Record::Health {
            vs: "tokyo-www".into(),
            up: false,
        },
        Record::Health {
            vs: "newyork-www".into(),
            up: false,
        },
    ];
    let cases: Vec<(Vec<u8>, Reject)> = vec![
        (forged, Reject::BadTag),
        (
            encode(
                &header(1, "tokyo", 11, NOW),
                &tokyo_records(false),
                &other_secret,
            )
            .remove(0),
            Reject::BadTag,
        ),
        // Replayed: the accepted datagram again.
        (tokyo(10, false), Reject::Replayed),
        (tokyo(11, false)[..50].to_vec(), Reject::Truncated),
        (
            [tokyo(11, false), vec![0; MAX_DATAGRAM]].concat(),
            Reject::Oversized,
        ),
        (wrong_version, Reject::BadVersion),
        (bad_magic, Reject::BadMagic),
        (
            encode(&header(9, "tokyo", 11, NOW), &tokyo_records(false), &key(9)).remove(0),
            Reject::UnknownKey,
        ),
        (
            encode(
                &header(1, "tokyo", 11, NOW - 30_001),
                &tokyo_records(false),
                &key(1),
            )
            .remove(0),
            Reject::Stale,
        ),
        (
            encode(
                &header(1, "tokyo", 12, NOW + 30_001),
                &tokyo_records(false),
                &key(1),
            )
            .remove(0),
            Reject::Stale,
        ),
        // Tokyo's key speaking for newyork.
        (
            encode(
                &header(1, "newyork", 13, NOW),
                &[Record::Health {
                    vs: "newyork-www".into(),
                    up: false,
                }],
                &key(1),
            )
            .remove(0),
            Reject::WrongSite,
        ),
        (
            encode(&header(1, "tokyo", 14, NOW), &unknown_vs, &key(1)).remove(0),
            Reject::UnknownVs,
        ),
        // One VS of another site refuses the whole datagram, the good record too.
        (
            encode(&header(3, "tokyo", 15, NOW), &vs_elsewhere, &key(3)).remove(0),
            Reject::UnknownVs,
        ),
        // An unbound key, for a site the EDNS does not know.
        (
            encode(
                &header(3, "osaka", 16, NOW),
                &[Record::Health {
                    vs: "tokyo-www".into(),
                    up: false,
                }],
                &key(3),
            )
            .remove(0),
            Reject::UnknownVs,
        ),
        (reply, Reject::Malformed),
        (
            retag(
                {
                    let mut d = tokyo(17, false);
                    d[6] = 1; // reserved
                    d
                },
                &key(1),
            ),
            Reject::Malformed,
        ),
    ];
    let mut want = IngestCounters {
        accepted: 1,
        ..IngestCounters::default()
    };
    for (i, (bytes, reason)) in cases.iter().enumerate() {
        assert_eq!(e.receive(bytes, NOW), Err(*reason), "case {i}");
        want.rejected[reason.index()] += 1;
        assert_eq!(e.ingest.counters(), &want, "case {i}");
        assert_eq!(e.agents, before, "case {i} changed the agents' metrics");
    }
    assert_eq!(e.agents.metrics(&model(), NOW, TIMEOUT), metrics);
    for r in Reject::ALL {
        assert!(e.ingest.counters().rejected(r) > 0, "{} untested", r.name());
    }
    let names: Vec<_> = e.ingest.counters().by_name().collect();
    assert_eq!(names[0], ("truncated", 1));
    // The next real report still goes through.
    e.receive(&tokyo(18, false), NOW).unwrap();
    assert_eq!(
        e.agents.metrics(&model(), NOW, TIMEOUT).vs[&0].up,
        Some(false)
    );
}

#[test]
fn silent_virtual_servers_go_down_and_come_back() {
    let mut e = Edns::new();
    e.receive(&tokyo(1, true), NOW).unwrap();
    let newyork = encode(
        &header(2, "newyork", 1, NOW + 2000),
        &[Record::Load {
            vs: "newyork-api".into(),
            load: Load {
                connections: Some(5),
                ..Load::default()
            },
        }],
        &key(2),
    )
    .remove(0);
    e.receive(&newyork, NOW + 2000).unwrap();
    let m = e.agents.metrics(&model(), NOW + TIMEOUT, TIMEOUT);
    assert_eq!(m.vs[&0].up, Some(true));
    // Load only: health unknown (up), load known.
    assert_eq!(m.vs[&2].up, None);
    assert_eq!(m.vs[&2].connections, Some(5));
    assert_eq!(m.paths.len(), 1);

    // Past the timeout tokyo-www is down, its load and its path gone; newyork-api is not
    // yet past it.
    let m = e.agents.metrics(&model(), NOW + TIMEOUT + 1, TIMEOUT);
    assert_eq!(
        m.vs[&0],
        VsMetrics {
            up: Some(false),
            ..VsMetrics::default()
        }
    );
    assert_eq!(m.vs[&2].connections, Some(5));
    assert!(m.paths.is_empty());
    assert!(!m.vs.contains_key(&1));
    let m = e
        .agents
        .metrics(&model(), NOW + 2000 + TIMEOUT + 1, TIMEOUT);
    assert_eq!(m.vs[&2].up, Some(false));

    // Expiry keeps the silent VSs down, drops old paths and agents.
    e.agents.expire(&model(), NOW + 100_000, 10 * TIMEOUT);
    assert!(e.agents.agents(NOW + 100_000, TIMEOUT).is_empty());
    let m = e.agents.metrics(&model(), NOW + 100_000, TIMEOUT);
    assert_eq!(m.vs[&0].up, Some(false));
    assert_eq!(m.vs[&2].up, Some(false));

    // A new report brings it back.
    let back = encode(
        &header(1, "tokyo", 2, NOW + 100_000),
        &tokyo_records(true),
        &key(1),
    )
    .remove(0);
    e.receive(&back, NOW + 100_000).unwrap();
    let m = e.agents.metrics(&model(), NOW + 100_000, TIMEOUT);
    assert_eq!(m.vs[&0].up, Some(true));
    assert_eq!(m.vs[&0].connections, Some(120));
    assert_eq!(m.paths.len(), 1);
}

#[test]
fn the_same_datagrams_give_the_same_metrics() {
    let mut datagrams = Vec::new();
    for i in 0..50u64 {
        let recs: Vec<Record> = (0..20u32)
            .map(|j| Record::Path {
                ldns: format!("198.18.{}.0/24", 64 + (i as u32 * 7 + j) % 64)
                    .parse()
                    .unwrap(),
                rtt_us: (i as u32 + 1) * 1000 + j,
                hops: j as u8,
                completion: 0.5,
            })
            .chain([
                Record::Health {
                    vs: "tokyo-www".into(),
                    up: i % 3 != 0,
                },
                Record::Load {
                    vs: "tokyo-www".into(),
                    load: Load {
                        score: Some(i),
                        ..Load::default()
                    },
                },
            ])
            .collect();
        datagrams.extend(encode(
            &header(1, "tokyo", i, NOW + i * 100),
            &recs,
            &key(1),
        ));
    }
    let run = || {
        let mut e = Edns::new();
        for (i, d) in datagrams.iter().enumerate() {
            e.receive(d, NOW + i as u64 * 100).unwrap();
        }
        e
    };
    let (a, b) = (run(), run());
    assert_eq!(a.agents, b.agents);
    let now = NOW + 5000;
    assert_eq!(
        a.agents.metrics(&model(), now, TIMEOUT),
        b.agents.metrics(&model(), now, TIMEOUT)
    );
}

#[test]
fn reports_follow_the_model_across_a_reload() {
    let mut e = Edns::new();
    e.receive(&tokyo(1, false), NOW).unwrap();
    // A model where tokyo-www is the second VS: the report follows the name.
    let mut m2 = model();
    m2.vss.swap(0, 1);
    let m = e.agents.metrics(&m2, NOW, TIMEOUT);
    assert_eq!(m.vs[&1].up, Some(false));
    assert!(!m.vs.contains_key(&0));
    // One where it moved to newyork: tokyo's report no longer speaks for it.
    let mut m3 = model();
    m3.vss[0].site = 1;
    assert!(e.agents.metrics(&m3, NOW, TIMEOUT).vs.is_empty());
    // One without it: expiry forgets it.
    let mut m4 = model();
    m4.vss.remove(0);
    e.agents.expire(&m4, NOW, TIMEOUT);
    assert!(e.agents.metrics(&model(), NOW, TIMEOUT).vs.is_empty());
}

#[test]
fn the_file_wins_field_by_field() {
    let prefix: IpNet = "198.18.64.0/24".parse().unwrap();
    let other: IpNet = "2001:db8:4000::/48".parse().unwrap();
    let p = |rtt_ms| PathMetrics {
        rtt_ms,
        hops: 1,
        completion: 1.0,
    };
    let agent = Metrics {
        vs: [
            (
                0,
                VsMetrics {
                    up: Some(false),
                    connections: Some(10),
                    cpu_percent: Some(50.0),
                    ..VsMetrics::default()
                },
            ),
            (
                1,
                VsMetrics {
                    up: Some(true),
                    ..VsMetrics::default()
                },
            ),
        ]
        .into(),
        paths: [(prefix, [(0, p(10.0)), (1, p(20.0))].into())].into(),
    };
    let file = Metrics {
        vs: [
            (
                0,
                VsMetrics {
                    up: Some(true),
                    score: Some(7),
                    ..VsMetrics::default()
                },
            ),
            (
                2,
                VsMetrics {
                    connections: Some(3),
                    ..VsMetrics::default()
                },
            ),
        ]
        .into(),
        paths: [
            (prefix, [(1, p(99.0))].into()),
            (other, [(0, p(5.0))].into()),
        ]
        .into(),
    };
    let m = overlay(agent.clone(), &file);
    assert_eq!(
        m.vs[&0],
        VsMetrics {
            up: Some(true),
            connections: Some(10),
            cpu_percent: Some(50.0),
            score: Some(7),
            ..VsMetrics::default()
        }
    );
    assert_eq!(m.vs[&1], agent.vs[&1]);
    assert_eq!(m.vs[&2].connections, Some(3));
    assert_eq!(m.paths[&prefix][&0], p(10.0));
    assert_eq!(m.paths[&prefix][&1], p(99.0));
    assert_eq!(m.paths[&other][&0], p(5.0));
    // Either side empty: the other.
    assert_eq!(overlay(agent.clone(), &Metrics::default()), agent);
    assert_eq!(overlay(Metrics::default(), &file), file);
}

#[test]
fn a_reload_keeps_the_replay_state() {
    let mut e = Edns::new();
    e.receive(&tokyo(1, true), NOW).unwrap();
    let c = crate::config::AgentsConfig {
        listen: "198.18.0.2:5300".parse().unwrap(),
        report_timeout_ms: TIMEOUT,
        max_skew_ms: 30_000,
        max_agents: 64,
        keys: vec![crate::config::AgentKey {
            key: key(1),
            site: None,
            secret_file: "k".into(),
        }],
    };
    e.ingest.reconfigure(&c);
    assert_eq!(e.receive(&tokyo(1, true), NOW), Err(Reject::Replayed));
    // Key 2 is gone.
    let ny = encode(&header(2, "newyork", 1, NOW), &[], &key(2)).remove(0);
    assert_eq!(e.receive(&ny, NOW), Err(Reject::UnknownKey));
    assert_eq!(Ingest::from_config(&c).guard().limits(), (30_000, 64));
}

#[test]
fn a_relayed_report_is_checked_like_a_direct_one_and_a_duplicate_is_not_a_refusal() {
    let index = VsIndex::new(&model());
    let mut i = ingest();
    // The agent reports here and a peer relays the same datagram: applied once.
    assert!(i.accept(&tokyo(1, true), NOW, &index).is_ok());
    assert_eq!(
        i.accept_relayed(&tokyo(1, true), NOW, &index),
        Err(Reject::Replayed)
    );
    assert_eq!(i.counters().accepted, 1);
    assert_eq!(
        i.counters().total_rejected(),
        0,
        "a duplicate is not a refusal"
    );
    // A relay of what the agent did not send here first is taken, once.
    assert!(i.accept_relayed(&tokyo(2, true), NOW, &index).is_ok());
    assert_eq!(i.counters().accepted, 2);
    // A forged or stale relay is refused and counted like a direct one.
    let mut forged = tokyo(3, false);
    let at = forged.len() - TAG_LEN - 1;
    forged[at] ^= 1;
    assert_eq!(i.accept_relayed(&forged, NOW, &index), Err(Reject::BadTag));
    assert_eq!(
        i.accept_relayed(&tokyo(4, false), NOW + 60_000, &index),
        Err(Reject::Stale)
    );
    assert_eq!(i.counters().rejected(Reject::BadTag), 1);
    assert_eq!(i.counters().rejected(Reject::Stale), 1);
}

#[test]
fn a_report_that_repeats_what_is_known_says_nothing_moved() {
    let decoded =
        |seq, up| crate::metrics::wire::decode(&tokyo(seq, up), |_| Some(key(1))).unwrap();
    let mut agents = AgentMetrics::new();
    let mut apply = |seq, up, now| agents.apply(&decoded(seq, up), from(), now, TIMEOUT);
    assert!(apply(1, true, NOW), "the first report");
    assert!(!apply(2, true, NOW + 1000), "the same again");
    assert!(apply(3, false, NOW + 2000), "health moved");
    assert!(!apply(4, false, NOW + 3000));
    // Silent past the timeout (so down), then the same values: it counts as up again.
    assert!(apply(5, false, NOW + 3000 + TIMEOUT + 1), "had gone stale");
    // Only a path's value moving is a change too.
    let mut records = tokyo_records(false);
    records[2] = Record::Path {
        ldns: "198.18.64.0/24".parse().unwrap(),
        rtt_us: 99_000,
        hops: 7,
        completion: 0.99,
    };
    let bytes = encode(&header(1, "tokyo", 6, NOW), &records, &key(1)).remove(0);
    let d = crate::metrics::wire::decode(&bytes, |_| Some(key(1))).unwrap();
    assert!(agents.apply(&d, from(), NOW + 3000 + TIMEOUT + 2, TIMEOUT));
    assert!(!agents.apply(&d, from(), NOW + 3000 + TIMEOUT + 3, TIMEOUT));
}
