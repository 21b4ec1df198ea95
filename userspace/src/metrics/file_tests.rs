//! The metrics file: its parser (literal TOML: the text is what is under test), an error per
//! rule naming its key, and the watcher.
use std::{
    fs::File,
    time::{Duration, SystemTime},
};

use super::*;

use crate::metrics::test_model::model;

const GOOD: &str = r#"
[[vs]]
name = "tokyo-www"
up = true
connections = 120
packets_per_second = 1000.4
kilobits_per_second = 5000
cpu_percent = 40.5
capacity = 1000
score = 80

[[vs]]
name = "newyork-api"
up = false

[[path]]
ldns = "198.18.64.0/24"
site = "tokyo"
rtt_ms = 12.5
hops = 7
completion = 0.99

[[path]]
ldns = "198.18.64.0/24"
site = "newyork"
rtt_ms = 150
hops = 15
completion = 1

[[path]]
ldns = "2001:db8::1"
site = "newyork"
rtt_ms = 0
hops = 0
completion = 0
"#;

fn parse(text: &str) -> Result<Metrics, MetricsError> {
    parse_metrics(Path::new("/run/metrics.toml"), text, &model())
}

#[test]
fn a_good_file_resolves_names_to_ids() {
    let m = parse(GOOD).unwrap();
    assert_eq!(m.vs.len(), 2);
    assert_eq!(
        m.vs[&0],
        VsMetrics {
            up: Some(true),
            connections: Some(120),
            packets_per_second: Some(1000),
            kilobits_per_second: Some(5000),
            cpu_percent: Some(40.5),
            capacity: Some(1000),
            score: Some(80),
        }
    );
    assert_eq!(
        m.vs[&2],
        VsMetrics {
            up: Some(false),
            ..VsMetrics::default()
        }
    );
    assert!(!m.vs.contains_key(&1));

    let asia: IpNet = "198.18.64.0/24".parse().unwrap();
    assert_eq!(m.paths.len(), 2);
    assert_eq!(
        m.paths[&asia][&0],
        PathMetrics {
            rtt_ms: 12.5,
            hops: 7,
            completion: 0.99
        }
    );
    assert_eq!(m.paths[&asia][&1].rtt_ms, 150.0);
    let host: IpNet = "2001:db8::1/128".parse().unwrap();
    assert_eq!(m.paths[&host][&1].completion, 0.0);

    assert_eq!(parse("").unwrap(), Metrics::default());
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (
            GOOD.replace("name = \"newyork-api\"", "name = \"x\""),
            "vs[1].name: no virtual server \"x\"",
        ),
        (
            GOOD.replace("name = \"newyork-api\"", "name = \"tokyo-www\""),
            "vs[1].name: \"tokyo-www\" twice (also vs[0])",
        ),
        (
            GOOD.replace("score = 80", "scor = 80"),
            "unknown field `scor`",
        ),
        (
            GOOD.replace(
                "[[path]]\nldns = \"2001:db8::1\"",
                "[[paths]]\nldns = \"2001:db8::1\"",
            ),
            "unknown field `paths`",
        ),
        (
            GOOD.replace("cpu_percent = 40.5", "cpu_percent = 100.5"),
            "vs[0].cpu_percent: 100.5 is not in 0..=100",
        ),
        (
            GOOD.replace("cpu_percent = 40.5", "cpu_percent = -1"),
            "vs[0].cpu_percent",
        ),
        (
            GOOD.replace("cpu_percent = 40.5", "cpu_percent = nan"),
            "vs[0].cpu_percent",
        ),
        (
            GOOD.replace("packets_per_second = 1000.4", "packets_per_second = -1"),
            "vs[0].packets_per_second",
        ),
        (
            GOOD.replace("kilobits_per_second = 5000", "kilobits_per_second = inf"),
            "vs[0].kilobits_per_second",
        ),
        (
            GOOD.replace("connections = 120", "connections = -120"),
            "invalid value",
        ),
        (GOOD.replace("up = false", "up = \"no\""), "invalid type"),
        (
            GOOD.replace(
                "\"198.18.64.0/24\"\nsite = \"tokyo\"",
                "\"198.18.64.0/33\"\nsite = \"tokyo\"",
            ),
            "path[0].ldns: \"198.18.64.0/33\" is not a prefix",
        ),
        (
            GOOD.replace(
                "\"198.18.64.0/24\"\nsite = \"tokyo\"",
                "\"198.18.64.1/24\"\nsite = \"tokyo\"",
            ),
            "path[0].ldns: 198.18.64.1/24 has host bits set",
        ),
        (
            GOOD.replace("site = \"tokyo\"", "site = \"osaka\""),
            "path[0].site: no site \"osaka\"",
        ),
        (
            GOOD.replace("site = \"tokyo\"", "site = \"newyork\""),
            "path[1]: 198.18.64.0/24 from \"newyork\" twice (also path[0])",
        ),
        (
            GOOD.replace("rtt_ms = 12.5", "rtt_ms = -0.5"),
            "path[0].rtt_ms",
        ),
        (
            GOOD.replace("rtt_ms = 12.5", "rtt_ms = inf"),
            "path[0].rtt_ms",
        ),
        (
            GOOD.replace("completion = 0.99", "completion = 1.01"),
            "path[0].completion: 1.01 is not in 0..=1",
        ),
        (
            GOOD.replace("completion = 0.99", "completion = -0.1"),
            "path[0].completion",
        ),
        (
            GOOD.replace("completion = 0.99", ""),
            "missing field `completion`",
        ),
        (
            GOOD.replace("hops = 7", "hops = 7\njitter = 1"),
            "unknown field `jitter`",
        ),
    ];
    for (text, want) in cases {
        let err = match parse(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("/run/metrics.toml: "), "{err}");
        assert!(err.contains(want), "error {err:?} lacks {want:?}");
    }
}

#[test]
fn load_names_the_file() {
    let err = load_metrics(Path::new("/nonexistent/metrics.toml"), &model()).unwrap_err();
    assert!(matches!(err, MetricsError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/metrics.toml"));
}

#[test]
fn the_example_metrics_file_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let config = crate::config::load_example("example.toml");
    let m = load_metrics(&root.join("metrics.example.toml"), &config.model).unwrap();
    assert!(!m.vs.is_empty());
    assert!(!m.paths.is_empty());
}

/// Writes `text` to `path` and sets its modification time (so that a change shows even on a
/// file system with coarse times).
fn write(path: &Path, text: &str, mtime: SystemTime) {
    std::fs::write(path, text).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn the_watcher_reports_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.toml");
    let model = model();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut w = MetricsWatcher::new(&path);
    assert_eq!(w.path(), path);

    // Missing: one error, then quiet.
    assert!(matches!(
        w.poll(&model),
        Some(Err(MetricsError::Read { .. }))
    ));
    assert!(w.poll(&model).is_none());
    assert!(w.poll(&model).is_none());

    // It appears.
    write(&path, GOOD, t0);
    let m = w.poll(&model).unwrap().unwrap();
    assert_eq!(m.vs.len(), 2);
    assert!(w.poll(&model).is_none());

    // Same length, new time.
    let one = "[[vs]]\nname = \"tokyo-www\"\nup = true\n";
    let two = "[[vs]]\nname = \"tokyo-www\"\nup = fals\n";
    assert_eq!(one.len(), two.len());
    write(&path, one, t0 + Duration::from_secs(1));
    assert_eq!(w.poll(&model).unwrap().unwrap().vs[&0].up, Some(true));
    assert!(w.poll(&model).is_none());

    // Same time, new length.
    write(
        &path,
        "[[vs]]\nname = \"tokyo-www\"\nup = false\n",
        t0 + Duration::from_secs(1),
    );
    assert_eq!(w.poll(&model).unwrap().unwrap().vs[&0].up, Some(false));

    // A bad file is reported once too.
    write(&path, two, t0 + Duration::from_secs(2));
    assert!(matches!(
        w.poll(&model),
        Some(Err(MetricsError::Syntax { .. }))
    ));
    assert!(w.poll(&model).is_none());

    // Invalidated: read again though unchanged.
    w.invalidate();
    assert!(matches!(
        w.poll(&model),
        Some(Err(MetricsError::Syntax { .. }))
    ));

    // Removed: one error; back: read.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        w.poll(&model),
        Some(Err(MetricsError::Read { .. }))
    ));
    assert!(w.poll(&model).is_none());
    write(&path, one, t0 + Duration::from_secs(2));
    assert!(w.poll(&model).unwrap().is_ok());
    assert!(w.poll(&model).is_none());
}

#[test]
fn the_first_poll_of_an_existing_file_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.toml");
    std::fs::write(&path, GOOD).unwrap();
    let mut w = MetricsWatcher::new(path);
    assert!(w.poll(&model()).unwrap().is_ok());
    assert!(w.poll(&model()).is_none());
}
