//! Dispatch against a real balancer without a kernel (no data plane). Read-only commands are
//! answered from the published view even while the balancer thread is not running at all;
//! changes go through it and are seen in the view once their reply comes.
use std::path::{Path, PathBuf};

use super::*;
use crate::{
    control::{
        protocol::{Body, Contact, ShowWhat},
        text,
    },
    daemon::{
        balancer::{Balancer, Outputs, load_zones, tests::config},
        events::Event,
    },
    view::ViewCell,
};

struct TestDaemon {
    view: ViewCell,
    events: crossbeam_channel::Sender<Event>,
    path: PathBuf,
    /// What the peer socket would have counted.
    peer_wire: BTreeMap<String, PeerWire>,
}

impl Daemon for TestDaemon {
    type Error = String;

    fn view(&self) -> Arc<View> {
        self.view.load_full()
    }
    fn ingest_counters(&self) -> Option<IngestCounters> {
        None
    }
    fn udp_counters(&self) -> UdpCounters {
        UdpCounters::default()
    }
    fn peer_socket_counters(&self) -> BTreeMap<String, PeerWire> {
        self.peer_wire.clone()
    }
    fn startup(&self) -> &[String] {
        &[]
    }
    fn admin(&self, command: Admin) -> Result<(), String> {
        let (done, outcome) = crate::daemon::events::reply();
        self.events
            .send(Event::Admin { command, done })
            .map_err(|e| e.to_string())?;
        outcome
            .blocking_recv()
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
    fn reload(&self) -> Result<(), String> {
        Err("not in this test".into())
    }
    fn load_checked(&self) -> Result<Config, String> {
        Config::load(&self.path).map_err(|e| e.to_string())
    }
    fn config_path(&self) -> &Path {
        &self.path
    }
}

/// A daemon whose balancer has published once; the balancer is returned, not run.
fn daemon(dir: &Path) -> (TestDaemon, Balancer, crossbeam_channel::Receiver<Event>) {
    let cfg = config(dir);
    let zones = load_zones(&cfg).unwrap();
    let (balancer, Outputs { view, .. }) =
        Balancer::start(cfg, zones, None, (None, None), Default::default()).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let d = TestDaemon {
        view,
        events,
        path: dir.join("xgslb.toml"),
        peer_wire: BTreeMap::new(),
    };
    (d, balancer, inbox)
}

fn text(r: &Response) -> String {
    match &r.body {
        Body::Message(m) | Body::Error(m) => m.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn read_only_commands_answer_without_the_balancer_thread() {
    let dir = tempfile::tempdir().unwrap();
    // The balancer is never run: a command that needed its thread would wait forever.
    let (d, _balancer, _inbox) = daemon(dir.path());

    let status = dispatch(&d, Command::Status, 0);
    assert_eq!(status.as_status().map(|s| s.generation), Some(1));

    let vs = dispatch(&d, Command::Show { what: ShowWhat::Vs }, 0);
    let rows = vs.as_table().unwrap();
    assert_eq!(rows[0][0], "VS");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[1..].iter().all(|r| r[5] == "yes"), "{rows:?}");

    let e = dispatch(
        &d,
        Command::Explain {
            wideip: "app.example.test".into(),
            client: "198.18.0.1".into(),
            ecs: None,
        },
        0,
    );
    let e = e.as_explain().unwrap();
    assert!(
        e.outcome.starts_with("answer one 50.0%, two 50.0%"),
        "{e:?}"
    );
    assert_eq!(e.a_records.len(), 2);
    assert_eq!(e.ecs, None);
    // With a client subnet: how it was taken and the scope (no regions: 0).
    let e = dispatch(
        &d,
        Command::Explain {
            wideip: "app.example.test".into(),
            client: "198.18.0.1".into(),
            ecs: Some("198.18.77.9/32".into()),
        },
        0,
    );
    let e = e.as_explain().unwrap();
    assert_eq!(
        e.ecs.as_deref(),
        Some("198.18.77.9/32 taken as 198.18.77.0/24; the response's scope is /0"),
        "{e:?}"
    );
    assert!(text::explain(e).contains("client subnet: 198.18.77.9/32 taken as"));

    for (wideip, client, ecs, why) in [
        ("app.example.test", "nowhere", None, "not an IP address"),
        ("other.example.test", "198.18.0.1", None, "is not a wide IP"),
        (
            "app.example.test",
            "198.18.0.1",
            Some("198.18.0.0/33"),
            "is not a prefix",
        ),
    ] {
        let r = dispatch(
            &d,
            Command::Explain {
                wideip: wideip.into(),
                client: client.into(),
                ecs: ecs.map(Into::into),
            },
            0,
        );
        assert!(!r.ok && text(&r).contains(why), "{r:?}");
    }

    // reload --check: the config file without "two" in the pool.
    std::fs::write(
        &d.path,
        crate::daemon::balancer::tests::model(&["one"]).toml(),
    )
    .unwrap();
    let r = dispatch(&d, Command::Reload { check: true }, 0);
    assert!(r.ok, "{r:?}");
    assert!(
        text(&r).ends_with(
            "\n  ~ app.example.test. A [default]: one (198.18.1.1) 50%, two (198.18.1.2) 50% \
             -> one (198.18.1.1) 100%"
        ),
        "{}",
        text(&r)
    );
    // An address moved: same members, same shares, a different answer.
    std::fs::write(
        &d.path,
        crate::daemon::balancer::tests::model(&["one", "two"])
            .toml()
            .replace("198.18.1.2", "198.18.1.9"),
    )
    .unwrap();
    let r = dispatch(&d, Command::Reload { check: true }, 0);
    assert!(
        text(&r).ends_with(
            "\n  ~ app.example.test. A [default]: one (198.18.1.1) 50%, two (198.18.1.2) 50% \
             -> one (198.18.1.1) 50%, two (198.18.1.9) 50%"
        ),
        "{}",
        text(&r)
    );
    // The same config: nothing would change.
    std::fs::write(
        &d.path,
        crate::daemon::balancer::tests::model(&["one", "two"]).toml(),
    )
    .unwrap();
    let r = dispatch(&d, Command::Reload { check: true }, 0);
    assert!(text(&r).ends_with("would change: none"), "{}", text(&r));
    std::fs::write(&d.path, "not = [toml").unwrap();
    let r = dispatch(&d, Command::Reload { check: true }, 0);
    assert!(!r.ok, "{r:?}");
}

#[test]
fn a_change_is_in_the_view_when_its_reply_comes() {
    let dir = tempfile::tempdir().unwrap();
    let (d, balancer, inbox) = daemon(dir.path());
    let thread = std::thread::spawn(move || balancer.run(inbox));

    let r = dispatch(
        &d,
        Command::Disable {
            target: Target::Vs("one".into()),
        },
        0,
    );
    assert_eq!(text(&r), "disabled virtual server one; published");
    let rows = dispatch(&d, Command::Show { what: ShowWhat::Vs }, 0);
    let rows = rows.as_table().unwrap();
    assert_eq!(rows[1][4..6], ["false", "no: disabled"], "{rows:?}");
    let e = dispatch(
        &d,
        Command::Explain {
            wideip: "app.example.test.".into(),
            client: "198.18.0.1".into(),
            ecs: None,
        },
        0,
    );
    let e = e.as_explain().unwrap();
    assert!(
        e.trace.iter().any(|l| l.contains("one out (disabled)")),
        "{e:?}"
    );
    assert!(e.outcome.starts_with("answer two 100.0%"), "{e:?}");

    let r = dispatch(
        &d,
        Command::SetRatio {
            vs: "nope".into(),
            ratio: 2,
        },
        0,
    );
    assert!(!r.ok && text(&r).contains("nope"), "{r:?}");

    d.events.send(Event::Shutdown).unwrap();
    thread.join().unwrap();
}

#[test]
fn without_peering_peers_says_none_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _balancer, _inbox) = daemon(dir.path());
    let r = dispatch(&d, Command::Peers, 0);
    let p = r.as_peers().unwrap();
    assert!(!p.configured, "{p:?}");
    assert_eq!(text::peers(p), "no peers configured ([peering])\n");
    assert_eq!(text::divergent(p), "no peers configured ([peering])\n");
}

/// The test model as EDNS "edns-a" at site a, with peer "edns-b" at a second site b (key 7,
/// its secret in `dir`), heartbeats every 100 ms.
fn peered_config(dir: &Path) -> Config {
    let key = dir.join("b.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    crate::daemon::balancer::tests::model(&["one", "two"])
        .site("b", "lb2", &[("three", "198.18.2.1")])
        .peering("edns-a", "a", "198.18.0.2:5301")
        .set("peering", "heartbeat_ms = 100")
        .peer("edns-b", "b", "198.18.0.3:5301", 7, "b.key")
        .load(dir)
}

#[test]
fn peers_come_from_the_balancers_table_and_the_peer_socket() {
    use crate::{
        metrics::wire::{Datagram, Header, Kind, PeerRecord, Record},
        peers::fingerprint,
    };

    let dir = tempfile::tempdir().unwrap();
    let cfg = peered_config(dir.path());
    let peering = cfg.peering.clone().unwrap();
    // The peer socket the balancer sends from: on loopback, so that nothing it sends to the
    // configured peer addresses leaves the host.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let socket = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .unwrap();
    let shared = Arc::new(crate::daemon::peer_socket::PeerShared::new(
        socket, &peering,
    ));
    // The peer's hello says it decides from our inputs (the model, no agents) and holds one
    // fingerprint, which differs from ours.
    let inputs = fingerprint::inputs(&cfg.model, &crate::model::Metrics::default());
    let wideip = "app.example.test.";
    let theirs = std::collections::BTreeMap::from([(wideip.to_owned(), 1u64)]);
    let records = vec![
        Record::Peer(PeerRecord::Hello {
            inputs,
            digest: fingerprint::digest(&theirs),
            wideips: 1,
            held: 0,
        }),
        Record::Peer(PeerRecord::Fingerprint {
            inputs,
            wideip: wideip.into(),
            fingerprint: 1,
        }),
    ];
    let zones = load_zones(&cfg).unwrap();
    let (balancer, Outputs { view, .. }) =
        Balancer::start(cfg, zones, None, (None, Some(shared)), Default::default()).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let mut wire = PeerWire {
        accepted: 3,
        relayed_in: 4,
        relay_duplicates: 1,
        relayed_out: 6,
        ..PeerWire::default()
    };
    wire.rejected.insert("bad_tag".into(), 2);
    let mut unknown = PeerWire::default();
    unknown.rejected.insert("unknown_key".into(), 5);
    let d = TestDaemon {
        view,
        events,
        path: dir.path().join("xgslb.toml"),
        peer_wire: BTreeMap::from([("edns-b".to_owned(), wire), (String::new(), unknown)]),
    };

    // Before it is heard: listed, never heard, nothing to compare.
    let r = dispatch(&d, Command::Peers, 1_000);
    let p = r.as_peers().unwrap();
    assert!(p.configured);
    assert_eq!((p.name.as_str(), p.site.as_str()), ("edns-a", "a"));
    assert_eq!(p.peers.len(), 1, "{p:?}");
    let b = &p.peers[0];
    assert_eq!(
        (b.name.as_str(), b.site.as_str(), b.address.as_str()),
        ("edns-b", "b", "198.18.0.3:5301")
    );
    assert_eq!(b.state, Contact::NeverHeard);
    assert_eq!(b.last_contact_age_ms, None);
    assert!(!b.comparable);
    assert_eq!(text::divergent(p), "no divergent wide IPs\n");
    let table = text::peers(p);
    assert!(table.contains("never heard  never"), "{table}");

    let thread = std::thread::spawn(move || balancer.run(inbox));
    let at_ms = crate::daemon::ingest::now_ms();
    let header = Header {
        kind: Kind::Peer,
        key_id: 7,
        sequence: 1,
        timestamp_ms: at_ms,
        agent: "edns-b".into(),
        site: "b".into(),
    };
    d.events
        .send(Event::Peer {
            peer: "edns-b".into(),
            datagram: Datagram { header, records },
            at_ms,
        })
        .unwrap();
    // Published once the balancer took it (bounded: heartbeats republish every 100 ms).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while d.view().peers.first().and_then(|p| p.last_contact_ms) != Some(at_ms) {
        assert!(std::time::Instant::now() < deadline, "{:?}", d.view().peers);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let r = dispatch(&d, Command::Peers, at_ms + 1_500);
    let p = r.as_peers().unwrap();
    let b = &p.peers[0];
    assert_eq!(b.state, Contact::Up);
    assert_eq!(b.last_contact_age_ms, Some(1_500));
    assert!(b.comparable, "{b:?}");
    assert_eq!(b.divergent, [wideip]);
    assert_eq!(b.messages, 1);
    assert_eq!(b.wire.accepted, 3);
    assert_eq!(text::divergent(p), "edns-b app.example.test.\n");
    let table = text::peers(p);
    let row = table.lines().find(|l| l.starts_with("edns-b")).unwrap();
    let cells: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "edns-b",
            "b",
            "198.18.0.3:5301",
            "up",
            "1.5 s ago",
            "1",
            "2",
            "4/1/6",
            "0/0",
            "0",
            "yes",
            "1"
        ],
        "{table}"
    );
    assert!(
        table.ends_with("refused from no configured peer: unknown_key 5\n"),
        "{table}"
    );
    // The JSON a script reads: stable names, reasons by name.
    let json = serde_json::to_value(&r).unwrap();
    let peer = &json["peers"]["peers"][0];
    assert_eq!(peer["state"], "up");
    assert_eq!(peer["last_contact_ms"], at_ms);
    assert_eq!(peer["divergent"][0], wideip);
    assert_eq!(peer["wire"]["rejected"]["bad_tag"], 2);
    assert_eq!(peer["wire"]["rejected"]["stale"], 0);
    assert_eq!(
        json["peers"]["unknown_senders"]["rejected"]["unknown_key"],
        5
    );

    // Unheard past silent_after_ms (3 s by default): silent, as of the answer.
    let r = dispatch(&d, Command::Peers, at_ms + 3_001);
    assert_eq!(r.as_peers().unwrap().peers[0].state, Contact::Silent);

    d.events.send(Event::Shutdown).unwrap();
    thread.join().unwrap();
}
