//! Several EDNSs as one system, end to end: three sites on a bridged LAN, each with a real
//! HTTP server behind its virtual server and an xgslb-agent that reports only to its local
//! EDNS (tokyo and london to EDNS A, newyork to EDNS B); two xgslbd with XDP on real veths,
//! peered. Relay makes both publish the same decisions; B defers one wide IP to A and
//! serves A's decision over both families, then each `when_peer_silent` policy once A
//! stops, then A again once it returns; forged, replayed and unknown-key peer datagrams
//! are refused, counted and change nothing; a local metrics override on B is flagged as
//! divergence for exactly the wide IPs it changes. Waits are on publications, bounded.
use std::{
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use xgslb::{
    control::dispatch::Admin,
    metrics::wire::{self, Header, Key, Kind, PeerRecord, Record, peer::ClassKeys},
    model::{Metrics, VsMetrics},
    peers::table::PeerStatus,
    test_model::TestModel,
};
use xgslb_tests::{
    agents::{Agent, write_key},
    daemon::Daemon,
    lan::{HOST_IF, Host, Lan},
    servers::{HttpServer, in_ns},
};

const AGENT_KEY: &str = "0123456789abcdef0123456789abcdef-agents";
const PEER_KEY: &str = "fedcba9876543210fedcba9876543210-peers";
const PEER_KEY_ID: u32 = 9;
const WAIT: Duration = Duration::from_secs(30);

struct World {
    lan: Lan,
    a: Host,
    b: Host,
    tokyo: Host,
    newyork: Host,
    london: Host,
    /// The client in region "near" (and the sender of forged datagrams).
    near: Host,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let mut lan = Lan::new("peers");
        let a = lan.host("edns-a", 2);
        let b = lan.host("edns-b", 3);
        let tokyo = lan.host("tokyo", 11);
        let newyork = lan.host("newyork", 12);
        let london = lan.host("london", 13);
        let near = lan.host("near", 50);
        let dir = tempfile::tempdir().expect("temp dir");
        let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.test.zone");
        std::fs::copy(zone, dir.path().join("example.test.zone")).expect("zone");
        write_key(&dir.path().join("agents.key"), AGENT_KEY);
        write_key(&dir.path().join("peer.key"), PEER_KEY);
        World {
            lan,
            a,
            b,
            tokyo,
            newyork,
            london,
            near,
            dir,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The config of the EDNS on `me` (named `name`, at `site`), peered with `other`;
    /// `defer`: failover.example.test is decided by the other, with this policy.
    fn edns_config(
        &self,
        me: &Host,
        name: &str,
        site: &str,
        other: (&Host, &str, &str),
        defer: Option<&str>,
    ) -> PathBuf {
        let (o_host, o_name, o_site) = other;
        let v6 = |h: &Host| h.v6.clone();
        let mut t = TestModel::new(&[&format!("{}:53", me.v4)])
            .set("balancer", "interval_ms = 100")
            .agents(&format!("{}:5300", me.v4))
            .set("agents", "report_timeout_ms = 2000")
            .agent_key(1, "agents.key", None)
            .peering(name, site, &format!("{}:5301", me.v4))
            .set("peering", "heartbeat_ms = 200")
            .set("peering", "silent_after_ms = 600")
            .peer(
                o_name,
                o_site,
                &format!("{}:5301", o_host.v4),
                PEER_KEY_ID,
                "peer.key",
            )
            .demo_zone()
            .site(
                "tokyo",
                "tokyo-lb",
                &[
                    ("tokyo-www", &self.tokyo.v4),
                    ("tokyo-www6", &v6(&self.tokyo)),
                ],
            )
            .site(
                "newyork",
                "newyork-lb",
                &[
                    ("newyork-www", &self.newyork.v4),
                    ("newyork-www6", &v6(&self.newyork)),
                ],
            )
            .site("london", "london-lb", &[("london-www", &self.london.v4)])
            .region(
                "near",
                &[
                    &format!("{}/32", self.near.v4),
                    &format!("{}/128", self.near.v6),
                ],
            )
            .region(
                "far",
                &[
                    &format!("{}/32", self.london.v4),
                    &format!("{}/128", self.london.v6),
                ],
            )
            .topology("near", "tokyo", 100)
            .topology("near", "newyork", 10)
            .topology("far", "newyork", 100)
            .topology("far", "tokyo", 10)
            .pool(
                "ga",
                &["tokyo-www", "newyork-www", "london-www"],
                "global_availability",
            )
            .wideip("ga.example.test.", &["ga"])
            .pool(
                "rr",
                &["tokyo-www", "newyork-www", "london-www"],
                "round_robin",
            )
            .wideip("rr.example.test.", &["rr"])
            .pool(
                "topo",
                &["tokyo-www", "newyork-www", "tokyo-www6", "newyork-www6"],
                "topology",
            )
            .wideip("failover.example.test.", &["topo"]);
        if let Some(when) = defer {
            t = t
                .with(&format!("decided_by = \"{o_name}\""))
                .with(&format!("when_peer_silent = \"{when}\""));
        }
        let path = self.path(&format!("{name}.toml"));
        std::fs::write(&path, t.toml()).expect("write the config");
        path
    }

    fn a_config(&self) -> PathBuf {
        self.edns_config(
            &self.a,
            "edns-a",
            "tokyo",
            (&self.b, "edns-b", "newyork"),
            None,
        )
    }

    fn b_config(&self, when: &str) -> PathBuf {
        self.edns_config(
            &self.b,
            "edns-b",
            "newyork",
            (&self.a, "edns-a", "tokyo"),
            Some(when),
        )
    }

    /// An agent at `site` (`host`), checking its v4 server, reporting to `edns` only.
    fn agent(&self, site: &str, host: &Host, edns: &Host) -> Agent {
        let text = format!(
            r#"
agent_id = "{site}-1"
site = "{site}"
interval_ms = 100

[[vs]]
name = "{site}-www"
[vs.check]
kind = "http"
url = "http://{addr}/health"
interval_ms = 100
timeout_ms = 100
rise = 1
fall = 2

[[edns]]
address = "{edns}:5300"
key_id = 1
secret_file = "agents.key"
"#,
            addr = host.v4,
            edns = edns.v4,
        );
        let path = self.path(&format!("agent-{site}.toml"));
        std::fs::write(&path, text).expect("write the agent config");
        Agent::start(&host.ns, &path)
    }

    /// The answer to one `rtype` query for `name` asked of `edns` by `client`.
    fn ask(&self, client: &Host, edns: &Host, name: &str, rtype: &str) -> String {
        let out = self.lan.cmd(
            client,
            &[
                "dig",
                &format!("@{}", edns.v4),
                name,
                rtype,
                "+short",
                "+tries=1",
                "+time=2",
            ],
        );
        assert!(out.status.success(), "dig {name} {rtype}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Waits, waking on each publication of `d`, until `done`; panics naming `what`.
fn wait_until(d: &Daemon, what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let why = match done() {
            Ok(()) => return,
            Err(why) => why,
        };
        assert!(Instant::now() < deadline, "timed out: {what}: {why}");
        let seen = d.handle().published().intervals;
        d.wait_published("the next balancer interval", |p| p.intervals > seen);
    }
}

/// Waits until `client` gets `want` for `name` `rtype` from `edns` (4 times in a row).
fn wait_answer(
    w: &World,
    d: &Daemon,
    client: &Host,
    edns: &Host,
    name: &str,
    rtype: &str,
    want: &str,
) {
    wait_until(d, &format!("{name} {rtype} -> {want}"), || {
        let got: Vec<String> = (0..4).map(|_| w.ask(client, edns, name, rtype)).collect();
        if got.iter().all(|a| a == want) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

fn peer_status(d: &Daemon) -> PeerStatus {
    use xgslb::control::dispatch::Daemon as _;
    d.handle().view().peers.first().cloned().expect("one peer")
}

/// Sends `datagram` to `to` from the host `from`.
fn send_from(from: &Host, to: SocketAddr, datagram: Vec<u8>) {
    let bind: SocketAddr = format!("{}:0", from.v4).parse().expect("address");
    in_ns(&from.ns, move || {
        let s = UdpSocket::bind(bind).expect("bind");
        s.send_to(&datagram, to).expect("send");
    })
    .join()
    .expect("send thread");
}

/// A peer datagram "from edns-a" carrying a decision for failover that would answer
/// london's address, under `key` with `sequence`.
fn forged(key: &Key, sequence: u64) -> Vec<u8> {
    let now = xgslb::daemon::ingest::now_ms();
    let header = Header {
        kind: Kind::Peer,
        key_id: key.id,
        sequence,
        timestamp_ms: now,
        agent: "edns-a".into(),
        site: "tokyo".into(),
    };
    let default = ClassKeys {
        class: xgslb::model::stable_key("default"),
        region: xgslb::model::stable_key("default"),
    };
    let records = vec![
        Record::Peer(PeerRecord::DecisionSet {
            wideip: "failover.example.test.".into(),
            generation: u64::MAX,
            parts: 1,
        }),
        Record::Peer(PeerRecord::Decision {
            wideip: "failover.example.test.".into(),
            generation: u64::MAX,
            class: default,
            v6: false,
            outcome: xgslb::balance::Outcome::Answer {
                members: vec![("london-www".into(), 1)],
                ttl: 30,
                records: 1,
                persist: false,
            },
        }),
    ];
    wire::encode(&header, &records, key).remove(0)
}

fn rejected(d: &Daemon, peer: &str, reason: wire::Reject) -> u64 {
    d.handle()
        .peer_counters()
        .get(peer)
        .map_or(0, |c| c.rejected[reason.index()])
}

#[test]
fn two_ednss_relay_defer_and_agree() {
    let w = World::new();
    let http = |h: &Host| HttpServer::start(&h.ns, SocketAddr::new(h.v4.parse().expect("v4"), 80));
    let mut tokyo_http = http(&w.tokyo);
    let _newyork_http = http(&w.newyork);
    let _london_http = http(&w.london);
    let mut a = Daemon::start_in(&w.a.ns, HOST_IF, &w.a_config());
    let b_config = w.b_config("decide_locally");
    let b = Daemon::start_in(&w.b.ns, HOST_IF, &b_config);
    let _tokyo_agent = w.agent("tokyo", &w.tokyo, &w.a);
    let _london_agent = w.agent("london", &w.london, &w.a);
    let _newyork_agent = w.agent("newyork", &w.newyork, &w.b);
    let (near, far) = (&w.near, &w.london);

    // Relay: every agent reaches both EDNSs, though each reports to one.
    for d in [&a, &b] {
        wait_until(d, "three agents, one of them direct or two", || {
            let n = d.handle().agents().map_or(0, |v| v.agents.len());
            if n == 3 {
                Ok(())
            } else {
                Err(format!("{n} agents"))
            }
        });
    }
    assert!(
        b.handle()
            .peer_counters()
            .get("edns-a")
            .is_some_and(|c| c.relayed_in > 0)
    );
    assert!(
        a.handle()
            .peer_counters()
            .get("edns-b")
            .is_some_and(|c| c.relayed_out > 0)
    );
    // Same inputs, same decisions: comparable and nothing divergent, both ways.
    for d in [&a, &b] {
        wait_until(d, "the peers agree", || {
            let p = peer_status(d);
            if p.comparable && p.divergent.is_empty() {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        });
    }
    // B serves A's decision of failover: each region its own site, both families.
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "A",
        &w.tokyo.v4,
    );
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "AAAA",
        &w.tokyo.v6,
    );
    wait_answer(
        &w,
        &b,
        far,
        &w.b,
        "failover.example.test",
        "A",
        &w.newyork.v4,
    );
    wait_answer(
        &w,
        &b,
        far,
        &w.b,
        "failover.example.test",
        "AAAA",
        &w.newyork.v6,
    );

    // Forged, replayed and unknown-key peer datagrams: refused, counted, nothing changes.
    let peer_addr: SocketAddr = format!("{}:5301", w.b.v4).parse().expect("address");
    let key = Key {
        id: PEER_KEY_ID,
        secret: PEER_KEY.as_bytes().to_vec(),
    };
    let wrong = Key {
        id: PEER_KEY_ID,
        secret: b"not-the-pair-secret-0123456789".to_vec(),
    };
    let unknown = Key {
        id: 4242,
        secret: PEER_KEY.as_bytes().to_vec(),
    };
    let before = (
        rejected(&b, "edns-a", wire::Reject::BadTag),
        rejected(&b, "edns-a", wire::Reject::Replayed),
        rejected(&b, "", wire::Reject::UnknownKey),
    );
    send_from(near, peer_addr, forged(&wrong, u64::MAX / 2));
    send_from(near, peer_addr, forged(&key, 1)); // far below A's window: a replay
    send_from(near, peer_addr, forged(&unknown, u64::MAX / 2));
    wait_until(&b, "the three refusals counted", || {
        let now = (
            rejected(&b, "edns-a", wire::Reject::BadTag),
            rejected(&b, "edns-a", wire::Reject::Replayed),
            rejected(&b, "", wire::Reject::UnknownKey),
        );
        if now.0 > before.0 && now.1 > before.1 && now.2 > before.2 {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    assert_eq!(w.ask(far, &w.b, "failover.example.test", "A"), w.newyork.v4);

    // Divergence: a metrics override on B (newyork down) changes rr and nothing else B
    // decides itself (failover is A's decision; ga answers tokyo either way).
    let model = {
        use xgslb::control::dispatch::Daemon as _;
        b.handle().view().config.model.clone()
    };
    let newyork = model
        .vss
        .iter()
        .position(|v| v.name == "newyork-www")
        .expect("newyork-www");
    let mut down = Metrics::default();
    down.vs.insert(
        newyork,
        VsMetrics {
            up: Some(false),
            ..VsMetrics::default()
        },
    );
    b.handle().set_metrics(down).expect("set metrics");
    wait_until(&b, "rr flagged divergent", || {
        let p = peer_status(&b);
        if p.divergent == ["rr.example.test."] {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });
    b.handle()
        .set_metrics(Metrics::default())
        .expect("clear metrics");
    wait_until(&b, "no divergence once the override is gone", || {
        let p = peer_status(&b);
        if p.comparable && p.divergent.is_empty() {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });

    // A's decision changes (tokyo drained on A only): B follows, though B would not.
    a.handle()
        .admin(Admin::SetSiteEnabled {
            site: "tokyo".into(),
            enabled: false,
        })
        .expect("drain tokyo on A");
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "A",
        &w.newyork.v4,
    );
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "AAAA",
        &w.newyork.v6,
    );

    // Relay: tokyo's server stops; its agent tells A only, and both EDNSs move ga.
    tokyo_http.stop();
    wait_answer(&w, &a, near, &w.a, "ga.example.test", "A", &w.newyork.v4);
    wait_answer(&w, &b, near, &w.b, "ga.example.test", "A", &w.newyork.v4);

    // A stops: each policy in turn (B reloaded with it).
    a.stop().expect("stop A");
    wait_until(&b, "A silent", || {
        let p = peer_status(&b);
        if p.silent {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });
    // decide_locally: B's own view (tokyo is down by relay, so topology gives newyork
    // for near; far likewise) -- told apart by the trace, and then by the other policies.
    let explain = |d: &Daemon| {
        xgslb::control::client::command(
            d.control_socket(),
            xgslb::control::protocol::Command::Explain {
                wideip: "failover.example.test".into(),
                client: w.near.v4.clone(),
                ecs: None,
            },
        )
        .expect("explain")
    };
    let text = format!("{:?}", explain(&b));
    assert!(
        text.contains("peer edns-a is silent") && text.contains("decided locally"),
        "{text}"
    );
    // B's own decision: tokyo's IPv6 server was never reported down, and B has tokyo enabled.
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "AAAA",
        &w.tokyo.v6,
    );
    std::fs::write(
        &b_config,
        std::fs::read_to_string(w.b_config("keep_last")).expect("read"),
    )
    .expect("write");
    b.handle().reload().expect("reload B with keep_last");
    let text = format!("{:?}", explain(&b));
    assert!(text.contains("its last decision kept"), "{text}");
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "AAAA",
        &w.newyork.v6,
    );
    std::fs::write(
        &b_config,
        std::fs::read_to_string(w.b_config("all_down")).expect("read"),
    )
    .expect("write");
    b.handle().reload().expect("reload B with all_down");
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "A",
        "198.18.0.83",
    );
    wait_answer(
        &w,
        &b,
        far,
        &w.b,
        "failover.example.test",
        "A",
        "198.18.0.83",
    );

    // A returns (tokyo enabled again, its server still down): B follows A again.
    a = Daemon::start_in(&w.a.ns, HOST_IF, &w.a_config());
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "A",
        &w.newyork.v4,
    );
    wait_answer(
        &w,
        &b,
        near,
        &w.b,
        "failover.example.test",
        "AAAA",
        &w.tokyo.v6,
    );
    let p = peer_status(&b);
    assert!(p.went_silent >= 1 && p.came_back >= 1, "{p:?}");
    a.stop().expect("stop A");
    b.stop().expect("stop B");
}
