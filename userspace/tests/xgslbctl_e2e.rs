//! Every xgslbctl command against a running xgslbd (in-process, loopback, XDP off), in both
//! output forms: text for people and --json for scripts.
use std::{path::Path, process::Command};

use tokio_util::sync::CancellationToken;
use xgslb::test_model::TestModel;

mod support;

/// Two sites with a virtual server each, a region, and a wide IP by ratio; the control
/// socket at `control`.
fn model(control: &Path) -> TestModel {
    TestModel::loopback(control)
        .site("tokyo", "tokyo-lb", &[("tokyo-a", "198.18.1.1")])
        .site("newyork", "newyork-lb", &[("newyork-a", "198.18.3.1")])
        .region("near", &["198.18.0.0/24"])
        .pool("p", &["tokyo-a", "newyork-a"], "ratio")
        .wideip("www2.example.test.", &["p"])
}

fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xgslbctl"))
        .args(args)
        .output()
        .expect("run xgslbctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    // A peer EDNS that never answers (the discard port): `peers` lists it, never heard.
    let key = dir.path().join("newyork.peer.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Its own address: a port free now on 127.0.0.2, where nothing else of the test binds.
    let listen = std::net::UdpSocket::bind("127.0.0.2:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port on 127.0.0.2");
    let config = model(&socket)
        .peering("edns-tokyo", "tokyo", &listen.to_string())
        .peer(
            "edns-newyork",
            "newyork",
            "127.0.0.1:9",
            7,
            "newyork.peer.key",
        )
        .write(dir.path());

    let shutdown = CancellationToken::new();
    let (_handle, daemon) = support::run_in_thread(config.clone(), shutdown.clone());
    let s = socket.to_str().unwrap();
    // No maps pinned there (XDP is off): stats shows the slow path's counters only.
    let no_pins = dir.path().join("pins");

    // Each command: (arguments, a piece of its text output, a piece of its JSON output).
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["status"], "generation", "\"generation\""),
        (
            vec!["explain", "www2.example.test", "--client", "198.18.0.1"],
            "outcome: answer",
            "\"trace\"",
        ),
        (vec!["show", "sites"], "tokyo", "\"table\""),
        (vec!["show", "servers"], "tokyo-lb", "\"table\""),
        (vec!["show", "vs"], "198.18.1.1:80", "\"table\""),
        (vec!["show", "pools"], "tokyo-a:1", "\"table\""),
        (vec!["show", "wideips"], "www2.example.test.", "\"table\""),
        (vec!["show", "regions"], "198.18.0.0/24", "\"table\""),
        (vec!["show", "agents"], "AGENT", "\"table\""),
        (vec!["peers"], "never heard", "\"state\":\"never_heard\""),
        (vec!["drain", "--vs", "tokyo-a"], "draining", "\"message\""),
        (
            vec!["disable", "--site", "newyork"],
            "disabled site newyork",
            "\"ok\":true",
        ),
        (
            vec!["enable", "--site", "newyork"],
            "enabled site newyork",
            "\"ok\":true",
        ),
        (
            vec!["enable", "--vs", "tokyo-a"],
            "enabled virtual server tokyo-a",
            "\"ok\":true",
        ),
        (
            vec!["set-ratio", "--vs", "tokyo-a", "3"],
            "ratio of tokyo-a set to 3",
            "\"ok\":true",
        ),
        (vec!["reload", "--check"], "is valid", "\"ok\":true"),
        (vec!["reload"], "published and serving", "\"ok\":true"),
        (
            vec!["stats", "--pin-dir", no_pins.to_str().unwrap()],
            "udp_received",
            "\"udp_workers\":",
        ),
        (
            vec!["stats", "--pin-dir", no_pins.to_str().unwrap()],
            "xfr_refused",
            "\"notify_acknowledged\":",
        ),
    ];
    for (args, text, json) in cases {
        let mut a = args.clone();
        a.extend(["--socket", s]);
        let (code, out, err) = ctl(&a);
        assert_eq!(code, 0, "{a:?}: {err}");
        assert!(out.contains(text), "{a:?} text lacks {text:?}:\n{out}");
        a.push("--json");
        let (code, out, err) = ctl(&a);
        assert_eq!(code, 0, "{a:?}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{a:?}: not JSON ({e}): {out}"));
        assert!(v.is_object(), "{a:?}");
        assert!(out.contains(json), "{a:?} JSON lacks {json:?}: {out}");
    }
    let (code, out, err) = ctl(&["peers", "--divergent", "--socket", s]);
    assert_eq!(
        (code, out.as_str()),
        (0, "no divergent wide IPs\n"),
        "{err}"
    );
    // A refused command: exit 1, the reason on stderr, and in the JSON.
    let (code, _, err) = ctl(&["drain", "--vs", "nowhere", "--socket", s]);
    assert_eq!(code, 1);
    assert!(err.contains("nowhere"), "{err}");
    let (code, out, _) = ctl(&["drain", "--vs", "nowhere", "--socket", s, "--json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("\"ok\":false") && out.contains("nowhere"),
        "{out}"
    );

    shutdown.cancel();
    daemon.join().unwrap().unwrap();
}
