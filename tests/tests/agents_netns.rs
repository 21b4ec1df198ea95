//! Agents end to end: xgslbd (XDP on a real veth) and two sites on a bridged LAN, each site
//! with a real HTTP server behind its virtual server and an in-process xgslb-agent reporting
//! over the authenticated UDP protocol; newyork sits behind a router (one more hop). An LDNS
//! host answers the agents' probes, slower or lossier per site, and asks xgslbd with dig.
//! Every wait is on xgslbd's publications or counters, bounded; none is a sleep.
use std::{
    net::{SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use xgslb::{daemon::AgentsView, test_model::TestModel};
use xgslb_tests::{
    agents::{Agent, write_key},
    daemon::Daemon,
    lan::{HOST_IF, Host, Lan},
    servers::{HttpServer, Ldns, PathShape, in_ns},
};

const TOKYO_KEY: &str = "0123456789abcdef0123456789abcdef-tokyo";
const NEWYORK_KEY: &str = "fedcba9876543210fedcba9876543210-newyork";
/// Bounds every wait (publications come every 100 ms).
const WAIT: Duration = Duration::from_secs(30);

/// The hosts of one test and their files.
struct World {
    lan: Lan,
    edns: Host,
    /// A second EDNS: agents report to both.
    edns2: Host,
    tokyo: Host,
    newyork: Host,
    ldns: Host,
    dir: tempfile::TempDir,
}

/// Probes answered `ms` late, every `drop_every`-th lost (0: none).
fn late(ms: u64, drop_every: u32) -> PathShape {
    PathShape {
        delay: Duration::from_millis(ms),
        drop_every,
    }
}

impl World {
    /// The LDNS host answering the agents' probes, those from each of `shaped` as its shape
    /// says (the others at once).
    fn ldns_answering(&self, shaped: &[(&Host, PathShape)]) -> Ldns {
        let shaped = shaped
            .iter()
            .map(|(h, shape)| (h.v4.parse().expect("v4"), *shape))
            .collect();
        Ldns::start(&self.ldns.ns, self.ldns.v4.parse().expect("v4"), shaped)
    }

    fn new(tag: &str) -> Self {
        let mut lan = Lan::new(tag);
        let edns = lan.host("edns", 2);
        let edns2 = lan.host("edns2", 3);
        let tokyo = lan.host("tokyo", 11);
        let ldns = lan.host("ldns", 50);
        let newyork = lan.host_behind_router("newyork", 12);
        let dir = tempfile::tempdir().expect("temp dir");
        let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.test.zone");
        std::fs::copy(zone, dir.path().join("example.test.zone")).expect("zone");
        write_key(&dir.path().join("tokyo.key"), TOKYO_KEY);
        write_key(&dir.path().join("newyork.key"), NEWYORK_KEY);
        World {
            lan,
            edns,
            edns2,
            tokyo,
            newyork,
            ldns,
            dir,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// xgslbd's config on `host`: both sites, a pool per method, one wide IP each.
    fn edns_config(&self, host: &Host, name: &str) -> PathBuf {
        let (tokyo, newyork) = (self.tokyo.v4.to_string(), self.newyork.v4.to_string());
        let mut model = TestModel::new(&[&format!("{}:53", host.v4)])
            .set("balancer", "interval_ms = 100")
            .set("balancer", "damping = { max_step = 1.0, hysteresis = 0.0 }")
            .agents(&format!("{}:5300", host.v4))
            .set("agents", "report_timeout_ms = 3000")
            .agent_key(1, "tokyo.key", Some("tokyo"))
            .agent_key(2, "newyork.key", Some("newyork"))
            .demo_zone()
            .site("tokyo", "tokyo-lb", &[("tokyo-www", &tokyo)])
            .site("newyork", "newyork-lb", &[("newyork-www", &newyork)]);
        for (pool, method) in [
            ("ga", "global_availability"),
            ("lc", "least_connections"),
            ("rtt", "round_trip_time"),
            ("cr", "completion_rate"),
            ("hops", "hops"),
        ] {
            model = model
                .pool(pool, &["tokyo-www", "newyork-www"], method)
                .wideip(&format!("{pool}.example.test."), &[pool]);
        }
        let text = model.toml();
        let path = self.path(&format!("{name}.toml"));
        std::fs::write(&path, text).expect("write the config");
        path
    }

    /// An agent's config for `site` at `host`, reporting to every EDNS in `edns`, probing
    /// the LDNS host: from its own list, or (`static_ldns` false) only when an EDNS asks.
    fn agent_config_probing(
        &self,
        site: &str,
        host: &Host,
        key_id: u32,
        edns: &[&Host],
        static_ldns: bool,
    ) -> PathBuf {
        let ldns = if static_ldns {
            format!("\"{}\"", self.ldns.v4)
        } else {
            String::new()
        };
        let mut text = format!(
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
[vs.load]
connections_port = 80

[probes]
ldns = [{ldns}]
interval_ms = 300
count = 4
timeout_ms = 200
"#,
            addr = host.v4,
        );
        for e in edns {
            text.push_str(&format!(
                "\n[[edns]]\naddress = \"{}:5300\"\nkey_id = {key_id}\nsecret_file = \"{site}.key\"\n",
                e.v4
            ));
        }
        let path = self.path(&format!("agent-{site}.toml"));
        std::fs::write(&path, text).expect("write the agent config");
        path
    }

    /// The answers to `n` A queries for `name` asked by the LDNS host of the EDNS at `edns`.
    fn ask(&self, edns: &Host, name: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let out = self.lan.cmd(
                    &self.ldns,
                    &[
                        "dig",
                        &format!("@{}", edns.v4),
                        name,
                        "A",
                        "+short",
                        "+tries=1",
                        "+time=2",
                    ],
                );
                assert!(out.status.success(), "dig {name}: {out:?}");
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            })
            .collect()
    }

    /// How many of `n` answers for `name` are `addr`.
    fn share(&self, edns: &Host, name: &str, addr: &str, n: usize) -> usize {
        self.ask(edns, name, n)
            .iter()
            .filter(|a| *a == addr)
            .count()
    }
}

/// Waits, waking on every publication, until `done` holds of the daemon's agents view and
/// the answers it gives; panics with `what` after `WAIT`.
fn wait_for(d: &Daemon, what: &str, mut done: impl FnMut(&AgentsView) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let view = d.handle().agents().expect("agents configured");
        if done(&view) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {what}; agents: {view:?}"
        );
        next_interval(d);
    }
}

/// Waits for the balancer's next interval (it announces every one).
fn next_interval(d: &Daemon) {
    let seen = d.handle().published().intervals;
    d.wait_published("the next balancer interval", |p| p.intervals > seen);
}

/// Waits until the A answer for `name` is `addr` on every one of 4 queries.
fn wait_answer(w: &World, d: &Daemon, edns: &Host, name: &str, addr: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let answers = w.ask(edns, name, 4);
        if answers.iter().all(|a| a == addr) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} -> {addr}: {answers:?}"
        );
        next_interval(d);
    }
}

/// The two sites' HTTP servers, xgslbd on `edns` (and `edns2` when `both`), and both agents.
struct Running {
    tokyo_http: HttpServer,
    _newyork_http: HttpServer,
    daemons: Vec<Daemon>,
    tokyo_agent: Option<Agent>,
    newyork_agent: Option<Agent>,
}

fn start(w: &World, both: bool) -> Running {
    start_probing(w, both, true)
}

fn start_probing(w: &World, both: bool, static_ldns: bool) -> Running {
    let http = |h: &Host| HttpServer::start(&h.ns, SocketAddr::new(h.v4.parse().expect("v4"), 80));
    let tokyo_http = http(&w.tokyo);
    let newyork_http = http(&w.newyork);
    let mut edns = vec![&w.edns];
    if both {
        edns.push(&w.edns2);
    }
    let daemons: Vec<Daemon> = edns
        .iter()
        .enumerate()
        .map(|(i, h)| Daemon::start_in(&h.ns, HOST_IF, &w.edns_config(h, &format!("xgslbd{i}"))))
        .collect();
    let tokyo_agent = Agent::start(
        &w.tokyo.ns,
        &w.agent_config_probing("tokyo", &w.tokyo, 1, &edns, static_ldns),
    );
    let newyork_agent = Agent::start(
        &w.newyork.ns,
        &w.agent_config_probing("newyork", &w.newyork, 2, &edns, static_ldns),
    );
    for d in &daemons {
        wait_for(d, "both agents report", |v| {
            v.agents.len() == 2 && v.counters.accepted >= 2
        });
    }
    Running {
        tokyo_http,
        _newyork_http: newyork_http,
        daemons,
        tokyo_agent: Some(tokyo_agent),
        newyork_agent: Some(newyork_agent),
    }
}

#[test]
fn health_follows_the_servers_and_the_agents_and_two_edns_answer_alike() {
    let w = World::new("health");
    // The LDNS answers the agents' probes: tokyo's a little later than newyork's.
    let _ldns = w.ldns_answering(&[(&w.tokyo, late(20, 0))]);
    let mut r = start(&w, true);
    let (tokyo, newyork) = (w.tokyo.v4.as_str(), w.newyork.v4.as_str());
    let edns = [&w.edns, &w.edns2];
    for (d, e) in r.daemons.iter().zip(edns) {
        wait_answer(&w, d, e, "ga.example.test", tokyo);
    }
    // `xgslbctl status` (its client, over the control socket) lists both agents.
    let status = xgslb::control::client::command(
        r.daemons[0].control_socket(),
        xgslb::control::protocol::Command::Status,
    )
    .expect("status over the control socket");
    let st = status.as_status().cloned().expect("a status");
    let mut seen: Vec<(String, String, String)> = st
        .agents
        .iter()
        .map(|a| (a.agent.clone(), a.site.clone(), a.state.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("newyork-1".into(), "newyork".into(), "up".into()),
            ("tokyo-1".into(), "tokyo".into(), "up".into()),
        ]
    );
    assert!(st.agents.iter().any(|a| a.address.starts_with(&w.tokyo.v4)));
    assert!(st.ingest_accepted > 0 && st.reports > 0, "{st:?}");

    // tokyo's server stops: after `fall` failed checks, both EDNSs answer newyork.
    r.tokyo_http.stop();
    for (d, e) in r.daemons.iter().zip(edns) {
        wait_answer(&w, d, e, "ga.example.test", newyork);
    }
    // It starts again: after `rise` good checks, tokyo again.
    r.tokyo_http = HttpServer::start(
        &w.tokyo.ns,
        SocketAddr::new(w.tokyo.v4.parse().expect("v4"), 80),
    );
    for (d, e) in r.daemons.iter().zip(edns) {
        wait_answer(&w, d, e, "ga.example.test", tokyo);
    }

    // tokyo's agent dies: its reports stop, and after the timeout its VS is down.
    if let Some(a) = r.tokyo_agent.take() {
        a.stop();
    }
    for (d, e) in r.daemons.iter().zip(edns) {
        wait_answer(&w, d, e, "ga.example.test", newyork);
        let view = d.handle().agents().expect("agents");
        let t = view
            .agents
            .iter()
            .find(|a| a.agent == "tokyo-1")
            .expect("tokyo's agent is listed");
        assert_eq!(t.liveness.name(), "stale", "{view:?}");
        assert_eq!(t.state.address.ip().to_string(), tokyo, "{view:?}");
    }
    // A new agent process (its sequence numbers start from the clock, past the old ones).
    r.tokyo_agent = Some(Agent::start(&w.tokyo.ns, &w.path("agent-tokyo.toml")));
    for (d, e) in r.daemons.iter().zip(edns) {
        wait_answer(&w, d, e, "ga.example.test", tokyo);
        let view = d.handle().agents().expect("agents");
        assert_eq!(view.counters.total_rejected(), 0, "{view:?}");
    }
    // Fed the same reports, the two EDNSs publish the same selections for every method:
    // with the agents stopped, once both have applied every report (and well within the
    // report timeout), the answer for each pick of the round-robin counter is the same on
    // both.
    drop(r.tokyo_agent.take());
    drop(r.newyork_agent.take());
    let deadline = Instant::now() + WAIT;
    loop {
        let (a, b) = (
            r.daemons[0].handle().published().reports,
            r.daemons[1].handle().published().reports,
        );
        if a == b {
            break;
        }
        assert!(Instant::now() < deadline, "reports applied: {a} and {b}");
        next_interval(&r.daemons[0]);
    }
    let ldns: std::net::IpAddr = w.ldns.v4.parse().expect("v4");
    for name in ["ga", "lc", "rtt", "cr", "hops"] {
        let q = format!("{name}.example.test.");
        let picks = |d: &Daemon| -> Vec<String> {
            (0..xgslb_common::SLOTS as u32)
                .map(|pick| format!("{:?}", d.handle().answer(&q, ldns, pick)))
                .collect()
        };
        assert_eq!(picks(&r.daemons[0]), picks(&r.daemons[1]), "{q}");
    }
}

#[test]
fn connections_to_a_server_shift_least_connections_answers() {
    let w = World::new("lc");
    let r = start(&w, false);
    let d = &r.daemons[0];
    let (tokyo, newyork) = (w.tokyo.v4.clone(), w.newyork.v4.clone());
    // No connections anywhere: an even split.
    let even = w.share(&w.edns, "lc.example.test", &tokyo, 40);
    assert!(
        (12..=28).contains(&even),
        "tokyo got {even} of 40 with no load"
    );
    // 30 connections held open to tokyo's server: 1/31 against 1/1, newyork gets ~97%.
    let target = SocketAddr::new(tokyo.parse().expect("v4"), 80);
    let held = in_ns(&w.ldns.ns, move || {
        (0..30)
            .map(|_| TcpStream::connect_timeout(&target, Duration::from_secs(2)))
            .collect::<Result<Vec<_>, _>>()
    })
    .join()
    .expect("connect thread")
    .expect("connections to tokyo");
    let deadline = Instant::now() + WAIT;
    loop {
        let n = w.share(&w.edns, "lc.example.test", &newyork, 20);
        if n >= 18 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "newyork got {n} of 20 with tokyo loaded"
        );
        next_interval(d);
    }
    drop(held);
}

#[test]
fn path_probes_rank_sites_by_rtt_completion_and_hops() {
    let w = World::new("paths");
    // Seen from the LDNS: tokyo's probes answered 60 ms late and one in two lost; newyork's
    // at once, but newyork is behind a router (2 hops against 1).
    let _ldns = w.ldns_answering(&[(&w.tokyo, late(60, 2)), (&w.newyork, late(0, 0))]);
    let r = start(&w, false);
    let d = &r.daemons[0];
    let (tokyo, newyork) = (w.tokyo.v4.clone(), w.newyork.v4.clone());
    // Round trip time: newyork (about 1/(1+1) against 1/(60+1)); completion rate: newyork
    // (1.0 against 0.5, 2:1); hops: tokyo (1/(1+1) against 1/(2+1), 3:2).
    let cases = [
        ("rtt.example.test", &newyork, 36),
        ("cr.example.test", &newyork, 23),
        ("hops.example.test", &tokyo, 21),
    ];
    for (name, winner, at_least) in cases {
        let deadline = Instant::now() + WAIT;
        loop {
            let n = w.share(&w.edns, name, winner, 40);
            if n >= at_least {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {winner} got {n} of 40 answers, want at least {at_least}"
            );
            next_interval(d);
        }
    }
}

#[test]
fn bad_datagrams_are_refused_counted_and_change_nothing() {
    use xgslb::metrics::wire::{self, Header, Key, Kind, Record, Reject};
    let w = World::new("forged");
    let r = start(&w, false);
    let d = &r.daemons[0];
    let tokyo = w.tokyo.v4.clone();
    wait_answer(&w, d, &w.edns, "ga.example.test", &tokyo);

    // Every datagram claims tokyo's server is down: accepted, it would move ga to newyork.
    let now = xgslb::daemon::ingest::now_ms();
    let header = |seq: u64, ts: u64, key_id: u32| Header {
        kind: Kind::Report,
        key_id,
        sequence: seq,
        timestamp_ms: ts,
        agent: "intruder".into(),
        site: "tokyo".into(),
    };
    let down = [Record::Health {
        vs: "tokyo-www".into(),
        up: false,
    }];
    let good_key = Key {
        id: 1,
        secret: TOKYO_KEY.as_bytes().to_vec(),
    };
    let wrong_secret = Key {
        id: 1,
        secret: b"not the shared secret at all....".to_vec(),
    };
    let one = |h: &Header, k: &Key| wire::encode(h, &down, k).remove(0);
    let forged = one(&header(now, now, 1), &wrong_secret);
    let unknown_key = one(
        &header(now, now, 9),
        &Key {
            id: 9,
            secret: TOKYO_KEY.as_bytes().to_vec(),
        },
    );
    let stale = one(&header(now, now - 3_600_000, 1), &good_key);
    let mut wrong_version = one(&header(now + 1, now, 1), &good_key);
    wrong_version[4] = 2;
    let truncated = one(&header(now + 2, now, 1), &good_key)[..40].to_vec();
    let oversized = vec![0u8; wire::MAX_DATAGRAM + 1];
    // Replayed: a genuine datagram of tokyo's key, sent twice; tokyo's real agent keeps
    // reporting it up, so even the first copy's "down" is overwritten at once - the second
    // copy must be refused as a replay.
    let genuine = wire::encode(
        &header(now + 10, now, 1),
        &[Record::Health {
            vs: "tokyo-www".into(),
            up: true,
        }],
        &good_key,
    )
    .remove(0);
    let before = d.handle().agents().expect("agents").counters;
    let to: SocketAddr = format!("{}:5300", w.edns.v4).parse().expect("addr");
    let sends = vec![
        forged,
        unknown_key,
        stale,
        wrong_version,
        truncated,
        oversized,
        genuine.clone(),
        genuine,
    ];
    in_ns(&w.ldns.ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("socket");
        for d in sends {
            s.send_to(&d, to).expect("send");
        }
    })
    .join()
    .expect("sender");
    let want = [
        (Reject::BadTag, 1),
        (Reject::UnknownKey, 1),
        (Reject::Stale, 1),
        (Reject::BadVersion, 1),
        (Reject::Truncated, 1),
        (Reject::Oversized, 1),
        (Reject::Replayed, 1),
    ];
    wait_for(d, "every bad datagram counted", |v| {
        want.iter()
            .all(|(r, n)| v.counters.rejected(*r) >= before.rejected(*r) + n)
    });
    // No decision changed: tokyo still answers, two balancer intervals later.
    next_interval(d);
    next_interval(d);
    assert!(
        w.ask(&w.edns, "ga.example.test", 4)
            .iter()
            .all(|a| *a == tokyo),
        "a refused datagram changed the answer"
    );
}

#[test]
fn agents_probe_the_ldns_that_xgslbd_sees_asking() {
    let w = World::new("asked");
    let _ldns = w.ldns_answering(&[(&w.tokyo, late(60, 0))]);
    // The agents know no LDNS: they probe only what xgslbd's replies ask for.
    let r = start_probing(&w, false, false);
    let d = &r.daemons[0];
    let newyork = w.newyork.v4.clone();
    // Without path metrics for the LDNS, round trip time has nothing to go on: the pool
    // falls through its tiers and the wide IP returns to DNS (no record for rtt.: NODATA).
    assert!(w.ask(&w.edns, "rtt.example.test", 1)[0].is_empty());
    // The LDNS asks (XDP samples 1 query in 16), xgslbd ranks it among the busiest and
    // tells the agents, they probe it, and round trip time picks the nearer site.
    let deadline = Instant::now() + WAIT;
    loop {
        let answers = w.ask(&w.edns, "rtt.example.test", 32);
        let n = answers.iter().filter(|a| **a == newyork).count();
        if n >= 28 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "newyork got {n} of 32 rtt answers: {answers:?}"
        );
        next_interval(d);
    }
}
