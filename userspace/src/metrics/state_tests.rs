use std::net::SocketAddr;

use super::*;
use crate::metrics::{
    ingest::{AgentMetrics, Knowledge},
    test_model::model,
    wire::{Datagram, Header, Kind, Load, Record},
};

const TIMEOUT: u64 = 3000;
const T0: u64 = 1_000_000_000_000;

/// tokyo-www reported down and newyork-www up with a load and a path, all at `at_ms`.
fn reported(at_ms: u64) -> AgentMetrics {
    let mut m = AgentMetrics::new();
    for (site, records) in [
        (
            "tokyo",
            vec![Record::Health {
                vs: "tokyo-www".into(),
                up: false,
            }],
        ),
        (
            "newyork",
            vec![
                Record::Health {
                    vs: "newyork-www".into(),
                    up: true,
                },
                Record::Load {
                    vs: "newyork-www".into(),
                    load: Load {
                        connections: Some(40),
                        ..Load::default()
                    },
                },
                Record::Path {
                    ldns: "198.18.7.0/24".parse().unwrap(),
                    rtt_us: 12_000,
                    hops: 3,
                    completion: 1.0,
                },
            ],
        ),
    ] {
        let d = Datagram {
            header: Header {
                kind: Kind::Report,
                key_id: 1,
                sequence: 1,
                timestamp_ms: at_ms,
                agent: format!("{site}-1"),
                site: site.into(),
            },
            records,
        };
        let from: SocketAddr = "198.18.0.9:4000".parse().unwrap();
        m.apply(&d, from, at_ms, TIMEOUT);
    }
    m
}

/// Saved, written, read and restored within the timeout: the same metrics as before.
#[test]
fn round_trip_keeps_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.json");
    let before = reported(T0);
    save(&path, &before.saved(T0 + 10)).unwrap();
    let state = load(&path).unwrap().expect("a state");
    assert_eq!(state.saved_ms, T0 + 10);
    let mut after = AgentMetrics::new();
    assert_eq!(after.restore(&state, T0 + 1000, TIMEOUT), (2, 0));
    let m = model();
    assert_eq!(
        after.metrics(&m, T0 + 1000, TIMEOUT),
        before.metrics(&m, T0 + 1000, TIMEOUT)
    );
    assert_eq!(
        after.knowledge("tokyo-www", T0 + 1000, TIMEOUT, false),
        Knowledge::Restored { age_ms: 1000 }
    );
}

/// A write goes to a temporary file renamed over the old one: nothing else is left in the
/// directory, and the old file stays whole if the write fails.
#[test]
fn writes_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    save(&path, &reported(T0).saved(T0)).unwrap();
    save(&path, &reported(T0 + 5).saved(T0 + 5)).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    assert_eq!(load(&path).unwrap().unwrap().saved_ms, T0 + 5);
    // A target that cannot be replaced (a directory in its place): the write fails and
    // leaves no temporary file behind.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"").unwrap();
    assert!(save(&blocked, &reported(T0).saved(T0)).is_err());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(load(&path).unwrap().unwrap().saved_ms, T0 + 5);
}

/// A corrupt, truncated or foreign file is refused with its path and why; none is no state.
#[test]
fn corrupt_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    assert!(load(&path).unwrap().is_none(), "no file: no state");
    let good = serde_json::to_string(&reported(T0).saved(T0)).unwrap();
    for (bytes, says) in [
        (good[..good.len() / 2].to_owned(), "EOF"),
        ("not json".to_owned(), "expected"),
        (good.replace("\"version\":1", "\"version\":9"), "version 9"),
        (good.replace("\"saved_ms\"", "\"saved\""), "unknown field"),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("ignored"), "{e}");
        assert!(e.contains(says), "{e} should say {says}");
    }
}

/// Restored entries are judged by their age: within the timeout they count (and age on:
/// down once the timeout passes without a report); older ones are unknown, held at their
/// last value only while warming up; a report received here wins.
#[test]
fn age_decides_what_a_restored_report_counts_for() {
    let m = model();
    let state = reported(T0).saved(T0);
    let (tokyo, newyork) = (0, 1);

    // Restored 1 s after: fresh, as if received then.
    let mut fresh = AgentMetrics::new();
    assert_eq!(fresh.restore(&state, T0 + 1000, TIMEOUT), (2, 0));
    let now = fresh.metrics(&m, T0 + 1000, TIMEOUT);
    assert_eq!(now.vs[&tokyo].up, Some(false));
    assert_eq!(now.vs[&newyork].connections, Some(40));
    assert_eq!(now.paths.len(), 1);
    // Not reported again by the timeout: stale, down.
    let later = fresh.metrics(&m, T0 + TIMEOUT + 1, TIMEOUT);
    assert_eq!(later.vs[&newyork].up, Some(false));

    // Restored 10 s after: unknown (absent), paths dropped; held while warming.
    let mut old = AgentMetrics::new();
    assert_eq!(old.restore(&state, T0 + 10_000, TIMEOUT), (0, 2));
    let now = old.metrics(&m, T0 + 10_000, TIMEOUT);
    assert!(now.vs.is_empty() && now.paths.is_empty(), "{now:?}");
    let warming = old.metrics_warming(&m, T0 + 10_000, TIMEOUT);
    assert_eq!(warming.vs[&tokyo].up, Some(false));
    assert_eq!(warming.vs[&newyork].up, Some(true));
    assert_eq!(
        old.knowledge("tokyo-www", T0 + 10_000, TIMEOUT, true),
        Knowledge::Held { age_ms: 10_000 }
    );
    assert_eq!(
        old.knowledge("tokyo-www", T0 + 10_000, TIMEOUT, false),
        Knowledge::Unknown
    );
    assert_eq!(old.restored_names(), ["newyork-www", "tokyo-www"]);
    // A report here replaces what was held.
    let mut newer = reported(T0 + 10_000);
    newer.restore(&state, T0 + 10_000, TIMEOUT);
    assert_eq!(
        newer.knowledge("tokyo-www", T0 + 10_000, TIMEOUT, true),
        Knowledge::Reported { age_ms: 0 }
    );
    old.end_warm_up();
    assert!(
        old.metrics_warming(&m, T0 + 10_000, TIMEOUT).vs.is_empty(),
        "held reports are unknown once warm"
    );
}
