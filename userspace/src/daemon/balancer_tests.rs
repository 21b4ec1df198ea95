//! The balancer thread without a kernel (no data plane): events in, what the slow path serves
//! out. Admin changes, metrics and a bad admin command, then shutdown.
use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};

use super::*;
use crate::{
    dns::Transport,
    metrics::wire,
    model::{Metrics, VsMetrics},
    test_model::TestModel,
};

/// The test model with pool `p` of `members` ("one" 198.18.1.1, "two" 198.18.1.2) behind
/// app.example.test.
pub(crate) fn model(members: &[&str]) -> TestModel {
    TestModel::new(&["198.18.0.2:53"])
        .demo_zone()
        .site("a", "lb", &[("one", "198.18.1.1"), ("two", "198.18.1.2")])
        .pool("p", members, "")
        .wideip("app.example.test.", &["p"])
        .with("when_all_down = \"return_to_dns\"")
}

/// The test config (both members) written into `dir` (with its zone file), loaded.
pub(crate) fn config(dir: &Path) -> Config {
    model(&["one", "two"]).load(dir)
}

/// The A addresses the slow path answers for app.example.test over `n` queries, and the
/// rcode of the last.
fn ask(served: &ServedCell, n: usize) -> (Vec<IpAddr>, ResponseCode) {
    let mut q = Message::new(1, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii("app.example.test.").unwrap(),
        RecordType::A,
    ));
    let bytes = q.to_vec().unwrap();
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut addrs = Vec::new();
    let mut rcode = ResponseCode::NoError;
    for _ in 0..n {
        let s = served.load();
        let response = s
            .catalog
            .respond(&bytes, Transport::Udp, client, &s.snapshot)
            .unwrap();
        let m = Message::from_vec(&response).unwrap();
        rcode = m.metadata.response_code;
        addrs.extend(m.answers.iter().filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        }));
    }
    addrs.sort();
    addrs.dedup();
    (addrs, rcode)
}

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

/// Disables or enables `vs` through the balancer's admin event.
fn set_enabled(
    events: &crossbeam_channel::Sender<Event>,
    vs: &str,
    enabled: bool,
) -> Result<(), String> {
    let vs = vs.into();
    admin(events, Admin::SetEnabled { vs, enabled })
}

fn admin(events: &crossbeam_channel::Sender<Event>, command: Admin) -> Result<(), String> {
    let (done, outcome) = crate::daemon::events::reply();
    events.send(Event::Admin { command, done }).unwrap();
    outcome.blocking_recv().unwrap().map_err(|e| e.to_string())
}

#[test]
fn admin_and_metrics_events_change_what_is_served_and_bad_commands_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let two = cfg.model.vss.iter().position(|v| v.name == "two").unwrap();
    let zones = load_zones(&cfg).unwrap();
    let (
        balancer,
        Outputs {
            served, published, ..
        },
    ) = Balancer::start(cfg, zones, None, (None, None), Default::default()).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let thread = std::thread::spawn(move || balancer.run(inbox));

    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1", "198.18.1.2"]));

    set_enabled(&events, "one", false).unwrap();
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.2"]), "one is disabled");

    let before = *published.borrow();
    let err = set_enabled(&events, "three", false).unwrap_err();
    assert!(err.contains("three"), "{err}");
    let err = admin(
        &events,
        Admin::SetRatio {
            vs: "two".into(),
            ratio: 0,
        },
    )
    .unwrap_err();
    assert!(err.contains("ratio"), "{err}");
    assert_eq!(*published.borrow(), before, "a refused command published");
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.2"]));

    // two reported down as well: all down, so the zone's static record (return to DNS).
    let mut metrics = Metrics::default();
    metrics.vs.insert(
        two,
        VsMetrics {
            up: Some(false),
            ..VsMetrics::default()
        },
    );
    events.send(Event::Metrics(metrics)).unwrap();
    // Events are handled in order: an admin command's reply means the metrics are published.
    set_enabled(&events, "one", false).unwrap();
    assert_eq!(
        ask(&served, 2),
        (addrs(&["198.18.0.82"]), ResponseCode::NoError)
    );

    // one back: it answers alone (two is still down).
    set_enabled(&events, "one", true).unwrap();
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1"]));

    events.send(Event::Shutdown).unwrap();
    assert!(
        thread.join().unwrap().is_none(),
        "no data plane to hand back"
    );
}

fn reload(
    events: &crossbeam_channel::Sender<Event>,
    config: Config,
    zones: Vec<Zone>,
) -> Result<(), String> {
    let (done, outcome) = crate::daemon::events::reply();
    events
        .send(Event::Reload {
            validated: Box::new((config, zones)),
            done,
        })
        .unwrap();
    outcome.blocking_recv().unwrap().map_err(|e| e.to_string())
}

/// A reload's reply comes once the new config is published (the very next query sees it),
/// and a config whose publication fails gets the error while the old one serves on.
#[test]
fn a_reload_replies_once_published_and_a_failed_one_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let zones = load_zones(&cfg).unwrap();
    let (
        balancer,
        Outputs {
            served, published, ..
        },
    ) = Balancer::start(cfg.clone(), zones, None, (None, None), Default::default()).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let thread = std::thread::spawn(move || balancer.run(inbox));
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1", "198.18.1.2"]));

    // The pool without "two": published before the reply.
    let path = model(&["one"]).write(dir.path());
    let one_only = Config::load(&path).unwrap();
    let zones = load_zones(&one_only).unwrap();
    reload(&events, one_only, zones).unwrap();
    assert_eq!(published.borrow().reloads, 1);
    assert_eq!(published.borrow().publication_failures, 0);
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1"]), "served on reply");

    // The same zone twice: the catalog refuses it when publishing. The reply says so, and
    // the config before serves on.
    let zones = load_zones(&cfg).unwrap();
    let twice = [zones.clone(), zones].concat();
    let err = reload(&events, cfg, twice).unwrap_err();
    assert!(err.contains("given twice"), "{err}");
    assert_eq!(published.borrow().reloads, 1);
    assert_eq!(published.borrow().publication_failures, 1, "counted once");
    assert_eq!(
        ask(&served, 4).0,
        addrs(&["198.18.1.1"]),
        "the old config serves"
    );

    events.send(Event::Shutdown).unwrap();
    assert!(thread.join().unwrap().is_none());
}

/// The SOA serial of `response` (its answer section's SOA).
fn soa_serial(response: &[u8]) -> Option<u32> {
    let m = Message::from_vec(response).ok()?;
    m.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// The serial each path serves for example.test. SOA: the answer table XDP is given (as
/// the UDP workers read it), the slow path's handler, and a zone transfer (AXFR's SOA),
/// with the AXFR's records.
fn served_serials(served: &ServedCell) -> ([Option<u32>; 3], Vec<String>) {
    use crate::udp::Publication as _;
    let s = served.load();
    let mut q = Message::new(3, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        RecordType::SOA,
    ));
    let query = q.to_vec().unwrap();
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut out = [0u8; 1500];
    let planned = match s.plan.answer(&query, client, &mut 0, &mut out) {
        crate::udp::Planned::Answered(n) => soa_serial(&out[..n]),
        _ => None,
    };
    let handler = s.respond(&query, client).as_deref().and_then(soa_serial);
    q.queries[0].set_query_type(RecordType::AXFR);
    let axfr: Vec<Message> = s
        .transfers
        .respond_tcp(&q.to_vec().unwrap(), client)
        .expect("a transfer")
        .map(|m| Message::from_vec(&m).unwrap())
        .collect();
    let records: Vec<String> = axfr
        .iter()
        .flat_map(|m| &m.answers)
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    let transfer = axfr
        .first()
        .and_then(|m| m.to_vec().ok())
        .and_then(|b| soa_serial(&b));
    ([planned, handler, transfer], records)
}

/// A reload that changes a zone's records but not its file's serial serves a newer serial
/// on every path (XDP's answer table, the slow path, transfers); one that changes nothing
/// keeps it. Transfers carry the zone file's records of a wide IP, not its GSLB answer.
#[test]
fn a_changed_zone_is_served_with_a_newer_serial_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let model = TestModel::new(&["198.18.0.2:53"])
        .demo_zone()
        .with("allow_transfer = [\"198.18.0.1\"]")
        .site("a", "lb", &[("one", "198.18.1.1")])
        .pool("p", &["one"], "")
        .wideip("app.example.test.", &["p"]);
    let cfg = model.load(dir.path());
    let zones = load_zones(&cfg).unwrap();
    let file_serial = zones[0].serial();
    let (balancer, Outputs { served, .. }) =
        Balancer::start(cfg.clone(), zones, None, (None, None), Default::default()).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let thread = std::thread::spawn(move || balancer.run(inbox));
    let (serials, records) = served_serials(&served);
    assert_eq!(serials, [Some(file_serial); 3]);
    assert!(
        records.contains(&"app.example.test. A 198.18.0.82".to_owned()),
        "{records:?}"
    );
    assert!(
        !records.iter().any(|r| r.contains("198.18.1.1")),
        "{records:?}"
    );

    // The same files again: nothing changed, the serial stays.
    reload(&events, cfg.clone(), load_zones(&cfg).unwrap()).unwrap();
    assert_eq!(served_serials(&served).0, [Some(file_serial); 3]);

    // A record added, the file's serial left as it was.
    let zone_file = dir.path().join("example.test.zone");
    let mut text = std::fs::read_to_string(&zone_file).unwrap();
    text.push_str("added IN A 198.18.0.99\n");
    std::fs::write(&zone_file, text).unwrap();
    reload(&events, cfg.clone(), load_zones(&cfg).unwrap()).unwrap();
    let (serials, records) = served_serials(&served);
    assert_eq!(serials, [Some(file_serial + 1); 3]);
    assert!(records.contains(&"added.example.test. A 198.18.0.99".to_owned()));

    // A refused reload (of changed data) keeps the versions as they were: the next good
    // one, with other data again, is +2, not +3.
    let text = std::fs::read_to_string(&zone_file).unwrap();
    std::fs::write(&zone_file, text.replace("198.18.0.99", "198.18.0.98")).unwrap();
    let zones = load_zones(&cfg).unwrap();
    let err = reload(&events, cfg.clone(), [zones.clone(), zones].concat()).unwrap_err();
    assert!(err.contains("given twice"), "{err}");
    assert_eq!(served_serials(&served).0, [Some(file_serial + 1); 3]);
    std::fs::write(&zone_file, text.replace("198.18.0.99", "198.18.0.97")).unwrap();
    reload(&events, cfg.clone(), load_zones(&cfg).unwrap()).unwrap();
    assert_eq!(served_serials(&served).0, [Some(file_serial + 2); 3]);

    events.send(Event::Shutdown).unwrap();
    assert!(thread.join().unwrap().is_none());
}

/// The test config with `[agents]` (one key, `agents.key` in `dir`), pool `p` balanced by
/// `method`.
fn with_agents(dir: &Path, method: &str) -> Config {
    let key = dir.join("agents.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    TestModel::new(&["198.18.0.2:53"])
        .demo_zone()
        .site("a", "lb", &[("one", "198.18.1.1"), ("two", "198.18.1.2")])
        .pool("p", &["one", "two"], method)
        .wideip("app.example.test.", &["p"])
        .agents("198.18.0.2:5300")
        .agent_key(1, "agents.key", None)
        .load(dir)
}

/// An agent's report of `vs`'s health (and connections, if any) received at `at_ms`.
fn report(sequence: u64, vs: &str, up: bool, connections: Option<u64>, at_ms: u64) -> Event {
    let mut records = vec![wire::Record::Health { vs: vs.into(), up }];
    if let Some(c) = connections {
        let load = wire::Load {
            connections: Some(c),
            ..wire::Load::default()
        };
        records.push(wire::Record::Load {
            vs: vs.into(),
            load,
        });
    }
    Event::Report {
        datagram: wire::Datagram {
            header: Header {
                kind: Kind::Report,
                key_id: 1,
                sequence,
                timestamp_ms: at_ms,
                agent: "agent-a".into(),
                site: "a".into(),
            },
            records,
        },
        from: "198.18.0.9:40000".parse().unwrap(),
        at_ms,
    }
}

/// Reports that repeat what is known change no metric and are not published; a changed
/// health, a report gone stale, or a moved load is. With nothing moving by itself (no damped
/// weights), an interval computes nothing; with damped weights it does.
#[test]
fn only_reports_that_move_a_metric_are_published_and_a_still_interval_computes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_agents(dir.path(), "round_robin");
    let zones = load_zones(&cfg).unwrap();
    let (mut b, Outputs { served, .. }) =
        Balancer::start(cfg, zones, None, (None, None), Default::default()).unwrap();
    let now = now_ms();
    assert!(b.at_rest(), "nothing reported, nothing damped");

    // The first report of a health is news (unknown before).
    assert!(matches!(
        b.handle(report(1, "one", true, None, now)),
        Handled::Reported
    ));
    assert!(b.metrics_moved());
    b.publish_or_log(false);
    assert!(!b.metrics_moved() && b.at_rest());
    // The same again: nothing moved.
    b.handle(report(2, "one", true, None, now));
    assert!(!b.metrics_moved());
    // Down: moved, and once published "two" answers alone.
    b.handle(report(3, "one", false, None, now));
    assert!(b.metrics_moved());
    b.publish_or_log(false);
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.2"]));
    // A report long past the timeout: "one" is stale now, which is news too.
    b.handle(report(4, "one", true, None, now - 60_000));
    b.publish_or_log(false);
    b.handle(report(5, "one", true, None, now - 59_000));
    assert!(!b.metrics_moved(), "one is as stale as published");
    assert!(b.at_rest());

    // least_connections damps: an interval steps the weights even when no metric moves.
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_agents(dir.path(), "least_connections");
    let zones = load_zones(&cfg).unwrap();
    let (mut b, _) = Balancer::start(cfg, zones, None, (None, None), Default::default()).unwrap();
    b.handle(report(1, "one", true, Some(10), now_ms()));
    b.handle(report(2, "two", true, Some(500), now_ms()));
    assert!(b.metrics_moved());
    b.publish_or_log(false);
    b.handle(report(3, "two", true, Some(500), now_ms()));
    assert!(!b.metrics_moved(), "the same load");
    b.handle(report(4, "two", true, Some(900), now_ms()));
    assert!(b.metrics_moved(), "a new load");
    b.publish_or_log(false);
    assert!(!b.damper.is_empty());
    assert!(!b.at_rest(), "damped weights move by themselves");
}

/// What peers compare us by follows the model: an operator's change and a reload make its
/// fingerprint again (it is kept between publications, as it costs a hash of the model).
#[test]
fn the_model_fingerprint_told_to_peers_follows_admin_changes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("peer.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let peered = |members: &[&str]| {
        model(members)
            .peering("edns-a", "a", "127.0.0.1:5301")
            .peer("edns-b", "a", "127.0.0.1:9", 7, "peer.key")
            .load(dir.path())
    };
    let cfg = peered(&["one", "two"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _rt = rt.enter();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = tokio::net::UdpSocket::from_std(socket).unwrap();
    let shared = Arc::new(PeerShared::new(socket, cfg.peering.as_ref().unwrap()));
    let zones = load_zones(&cfg).unwrap();
    let (mut b, _) =
        Balancer::start(cfg, zones, None, (None, Some(shared)), Default::default()).unwrap();
    let told = |b: &Balancer| b.peering.as_ref().unwrap().table.own.inputs.config;
    let start = told(&b);
    assert_eq!(start, fingerprint::config(&b.config.model));

    b.admin(&Admin::SetEnabled {
        vs: "one".into(),
        enabled: false,
    })
    .unwrap();
    b.publish_or_log(false);
    assert_ne!(told(&b), start);
    assert_eq!(told(&b), fingerprint::config(&b.config.model));

    let one_only = peered(&["one"]);
    let zones = load_zones(&one_only).unwrap();
    b.reload(one_only, zones).unwrap();
    assert_eq!(told(&b), fingerprint::config(&b.config.model));
    assert_ne!(told(&b), start);
}

/// The events already queued are taken in one batch (what a tick does before its own work,
/// so that it never judges staleness on an older state), published once.
#[test]
fn queued_reports_are_taken_in_one_batch_and_published_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_agents(dir.path(), "round_robin");
    let zones = load_zones(&cfg).unwrap();
    let (
        mut b,
        Outputs {
            served, published, ..
        },
    ) = Balancer::start(cfg, zones, None, (None, None), Default::default()).unwrap();
    let now = now_ms();
    // "one" last heard long ago: stale, so out.
    b.handle(report(1, "one", true, None, now - 60_000));
    b.publish_or_log(false);
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.2"]));
    let before = published.borrow().generation;
    // Its fresh report and one taking "two" down wait in the queue.
    let (events, inbox) = crossbeam_channel::unbounded();
    events.send(report(2, "one", true, None, now)).unwrap();
    events.send(report(3, "two", false, None, now)).unwrap();
    assert!(!b.take_events(None, &inbox), "no stop");
    assert!(inbox.is_empty());
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1"]));
    assert_eq!(published.borrow().generation, before + 1, "one publication");
    // Nothing moved since: an interval computes nothing.
    assert!(b.at_rest());
    events.send(Event::Shutdown).unwrap();
    assert!(b.take_events(None, &inbox), "stop");
}
