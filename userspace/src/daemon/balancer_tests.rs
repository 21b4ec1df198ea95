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
    ) = Balancer::start(cfg, zones, None, None, None).unwrap();
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
    ) = Balancer::start(cfg.clone(), zones, None, None, None).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let thread = std::thread::spawn(move || balancer.run(inbox));
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1", "198.18.1.2"]));

    // The pool without "two": published before the reply.
    let path = model(&["one"]).write(dir.path());
    let one_only = Config::load(&path).unwrap();
    let zones = load_zones(&one_only).unwrap();
    reload(&events, one_only, zones).unwrap();
    assert_eq!(published.borrow().reloads, 1);
    assert_eq!(ask(&served, 4).0, addrs(&["198.18.1.1"]), "served on reply");

    // The same zone twice: the catalog refuses it when publishing. The reply says so, and
    // the config before serves on.
    let zones = load_zones(&cfg).unwrap();
    let twice = [zones.clone(), zones].concat();
    let err = reload(&events, cfg, twice).unwrap_err();
    assert!(err.contains("given twice"), "{err}");
    assert_eq!(published.borrow().reloads, 1);
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
        Balancer::start(cfg.clone(), zones, None, None, None).unwrap();
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
