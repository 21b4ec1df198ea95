//! xgslbd's logs in JSON (`--log-format json`): every line an object with a level and a
//! message, for log collectors. The real binary, on loopback, XDP off.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use xgslb::test_model::TestModel;

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = TestModel::loopback(&dir.path().join("control.sock")).write(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_xgslbd"))
        .args(["--config", config.to_str().unwrap(), "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xgslbd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Bounded: the first lines come as soon as it serves.
    let mut seen = Vec::new();
    let serving = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                let message = v["fields"]["message"].as_str().unwrap_or("").to_owned();
                assert!(v["level"].is_string(), "{line}");
                seen.push(message.clone());
                if message.starts_with("serving") {
                    break v;
                }
            }
            Err(_) => panic!("xgslbd logged no \"serving\" line; saw {seen:?}"),
        }
    };
    assert_eq!(serving["level"], "INFO", "{serving}");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
