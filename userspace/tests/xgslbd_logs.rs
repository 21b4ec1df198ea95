//! The real xgslbd binary, on loopback, XDP off: its logs in JSON (`--log-format json`, every
//! line an object with a level and a message, for log collectors), and a SIGHUP that comes
//! during start-up (and is listed among the console's events once it has reloaded).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::mpsc,
    time::Duration,
};

use xgslb::test_model::TestModel;

mod support;

/// xgslbd started on a minimal config in `dir`, JSON logs, and its log lines as they come.
fn start(dir: &Path) -> (std::process::Child, mpsc::Receiver<String>, SocketAddr) {
    // A free port for the HTTP endpoint: taken by the kernel, then left to xgslbd.
    let http = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let config = TestModel::loopback(&dir.join("control.sock"))
        .set("server", &format!("metrics_listen = \"{http}\""))
        .write(dir);
    let (child, rx) = support::start(support::xgslbd(&config));
    (child, rx, http)
}

/// The body of `GET /api/v1/events` on the HTTP endpoint at `addr` (loopback: no token).
fn events(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The message of a JSON log line.
fn message(line: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    v["fields"]["message"].as_str().unwrap_or("").to_owned()
}

/// Stops xgslbd with SIGTERM; it must exit cleanly.
fn stop(mut child: std::process::Child) {
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A SIGHUP that arrives while xgslbd starts (its handler installed, before it serves) does
/// not end it: it is held, and reloads the config once xgslbd serves.
#[test]
fn a_sighup_during_start_up_is_held_and_reloads_once_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (child, rx, http) = start(dir.path());
    let pid = child.id();
    // The moment the process catches SIGHUP (SigCgt bit 0): from then on it must be held.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|mask| mask & 1 != 0);
        if caught {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "xgslbd never caught SIGHUP"
        );
        std::thread::yield_now();
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let m = message(&line);
                seen.push(m.clone());
                if m == "SIGHUP: config reloaded and serving" {
                    break;
                }
            }
            Err(_) => panic!("no reload after the early SIGHUP; saw {seen:?}"),
        }
    }
    assert!(
        seen.iter().any(|m| m.starts_with("serving")),
        "reloaded before serving: {seen:?}"
    );
    // The console lists the reload among its events, as it lists `xgslbctl reload`.
    let listed = events(http);
    assert!(
        listed.contains(r#""kind":"reload""#),
        "no reload event: {listed}"
    );
    stop(child);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (child, rx, _) = start(dir.path());
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
    stop(child);
}
