//! Dispatch against a real balancer without a kernel (no data plane). Read-only commands are
//! answered from the published view even while the balancer thread is not running at all;
//! changes go through it and are seen in the view once their reply comes.
use std::path::{Path, PathBuf};

use super::*;
use crate::{
    control::protocol::{Body, ShowWhat},
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
    let (balancer, Outputs { view, .. }) = Balancer::start(cfg, zones, None, None, None).unwrap();
    let (events, inbox) = crossbeam_channel::unbounded();
    let d = TestDaemon {
        view,
        events,
        path: dir.join("xgslb.toml"),
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
        },
        0,
    );
    let e = e.as_explain().unwrap();
    assert!(
        e.outcome.starts_with("answer one 50.0%, two 50.0%"),
        "{e:?}"
    );
    assert_eq!(e.a_records.len(), 2);

    for (wideip, client, why) in [
        ("app.example.test", "nowhere", "not an IP address"),
        ("other.example.test", "198.18.0.1", "is not a wide IP"),
    ] {
        let r = dispatch(
            &d,
            Command::Explain {
                wideip: wideip.into(),
                client: client.into(),
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
