//! xgslbctl's own behaviour, without a daemon: completions, and the exit codes scripts rely
//! on when xgslbd cannot be reached (2).
use std::process::Command;

fn ctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xgslbctl"))
        .args(args)
        .output()
        .expect("run xgslbctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = ctl(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {err}");
        for command in [
            "status", "explain", "drain", "reload", "show", "stats", "maps", "peers",
        ] {
            assert!(out.contains(command), "{shell} completions lack {command}");
        }
    }
}

#[test]
fn an_unreachable_daemon_exits_2_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let socket = socket.to_str().unwrap();
    let pins = dir.path().join("no-pins");
    let pins = pins.to_str().unwrap();
    for args in [
        vec!["status", "--socket", socket],
        vec!["drain", "--vs", "x", "--socket", socket],
        vec!["peers", "--socket", socket],
        vec!["peers", "--divergent", "--socket", socket],
        vec!["stats", "--pin-dir", pins],
        vec!["maps", "--pin-dir", pins],
    ] {
        let (code, _, err) = ctl(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("none.sock") || err.contains("no-pins"),
            "{args:?}: {err}"
        );
    }
    // A command line clap refuses: its usual exit code.
    let (code, _, _) = ctl(&["drain"]);
    assert_eq!(code, Some(2));
    let (code, _, err) = ctl(&["peers", "--divergent", "--json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot be used with"), "{err}");
}
