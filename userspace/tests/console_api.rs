//! The web console's page and JSON API (`/api/v1/`) against a running xgslbd (in-process,
//! XDP off, no root): the answers' shapes, a drain seen as `drained` and as events, the
//! 400/404/405 cases, and the token (required off loopback on every request, the page
//! included, as Bearer or as Basic's password; 401 with a Basic challenge without it).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

use tokio_util::sync::CancellationToken;
use xgslb::{
    control::protocol::{Command, Target},
    daemon::DaemonHandle,
    test_model::TestModel,
};

mod support;

const TOKEN: &str = "console-test-token-0123456789";

/// Two sites with a virtual server each, a region, a wide IP by ratio; the HTTP endpoint
/// on `listen`.
fn model(control: &Path, listen: &str) -> TestModel {
    TestModel::loopback(control)
        .set("server", &format!("metrics_listen = \"{listen}\""))
        .site("tokyo", "tokyo-lb", &[("tokyo-a", "198.18.1.1")])
        .site("newyork", "newyork-lb", &[("newyork-a", "198.18.3.1")])
        .region("near", &["198.18.0.0/24"])
        .pool("p", &["tokyo-a", "newyork-a"], "ratio")
        .wideip("www2.example.test.", &["p"])
}

/// An xgslbd running on its own runtime thread until dropped.
struct Running {
    handle: DaemonHandle,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<(), String>>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Starts xgslbd with the HTTP endpoint on `host` (a free port), `token` required if
    /// given; returns it and the address to connect to (on 127.0.0.1).
    fn start(host: &str, token: Option<&str>) -> (Self, SocketAddr) {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind((host, 0))
            .and_then(|l| l.local_addr())
            .expect("a free TCP port")
            .port();
        let mut m = model(&dir.path().join("control.sock"), &format!("{host}:{port}"));
        if let Some(t) = token {
            m = m.http_token(t);
        }
        let config = m.write(dir.path());
        let shutdown = CancellationToken::new();
        let (handle, thread) = support::run_in_thread(config, shutdown.clone());
        let running = Self {
            handle,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        };
        (running, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let outcome = t.join().expect("daemon thread");
            if !std::thread::panicking() {
                outcome.expect("xgslbd stopped cleanly");
            }
        }
    }
}

/// `Authorization: Bearer <token>`'s value.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Authorization: Basic base64(<user>:<password>)`'s value, as a browser sends it.
fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!("Basic {}", data_encoding::BASE64.encode(pair.as_bytes()))
}

/// One HTTP/1.1 exchange, with this `Authorization` if given: (status, headers, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("authorization: {a}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("response");
    let (head, body) = all.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

/// GET `path` as JSON, asserting the status.
fn get_json(addr: SocketAddr, path: &str, authorization: Option<&str>, status: u16) -> Value {
    let (got, head, body) = http(addr, "GET", path, authorization);
    assert_eq!(got, status, "{path}: {head}\n{body}");
    assert!(head.contains("application/json"), "{path}: {head}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The virtual server `vs` in a `/api/v1/sites` answer.
fn vs<'a>(sites: &'a Value, vs: &str) -> &'a Value {
    sites["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["virtual_servers"].as_array().into_iter().flatten())
        .find(|v| v["name"] == vs)
        .unwrap_or_else(|| panic!("no {vs} in {sites}"))
}

#[test]
fn the_api_answers_in_json_and_sees_a_drain() {
    let (d, addr) = Running::start("127.0.0.1", None);

    let (status, head, page) = http(addr, "GET", "/", None);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains("<title>xgslb console</title>"), "{page}");
    assert!(!page.contains("http://") || page.contains("http://www.w3.org/2000/svg"));

    let sites = get_json(addr, "/api/v1/sites", None, 200);
    let names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tokyo", "newyork"]);
    let tokyo = vs(&sites, "tokyo-a");
    assert_eq!(tokyo["available"], true, "{tokyo}");
    assert_eq!(tokyo["address"], "198.18.1.1:80");
    assert_eq!(tokyo["server"], "tokyo-lb");
    assert!(tokyo.get("reason").is_none(), "{tokyo}");

    let wideips = get_json(addr, "/api/v1/wideips", None, 200);
    assert_eq!(wideips["keep_s"], 900);
    assert_eq!(wideips["xdp_counters"], false, "XDP is off");
    let w = &wideips["wideips"][0];
    assert_eq!(w["name"], "www2.example.test.");
    assert_eq!(w["pools"][0]["name"], "p");
    assert_eq!(w["pools"][0]["tiers"][0], "ratio");
    assert_eq!(w["pools"][0]["members"][1]["vs"], "newyork-a");
    assert_eq!(w["pools"][0]["members"][1]["site"], "newyork");
    assert!(w["at_ms"].is_array() && w["answers"].is_object(), "{w}");

    let agents = get_json(addr, "/api/v1/agents", None, 200);
    assert_eq!(agents["configured"], false);
    assert!(agents["agents"].as_array().unwrap().is_empty());
    let peers = get_json(addr, "/api/v1/peers", None, 200);
    assert_eq!(peers["configured"], false);
    let counters = get_json(addr, "/api/v1/counters", None, 200);
    assert!(counters["publication"]["generation"].as_u64().unwrap() >= 1);
    assert!(
        counters["xdp"].as_object().unwrap().is_empty(),
        "XDP is off"
    );
    assert!(counters["slow_path_udp"]["received"].is_u64(), "{counters}");

    let e = get_json(
        addr,
        "/api/v1/explain?wideip=www2.example.test&client=198.18.0.1",
        None,
        200,
    );
    assert_eq!(e["wideip"], "www2.example.test.");
    assert!(e["outcome"].as_str().unwrap().starts_with("answer"), "{e}");
    assert!(!e["trace"].as_array().unwrap().is_empty(), "{e}");
    let e = get_json(
        addr,
        "/api/v1/explain?wideip=www2.example.test&client=198.18.0.1&ecs=198.18.0.0%2F24",
        None,
        200,
    );
    assert!(e["ecs"].is_string(), "{e}");

    // The drain, through the control command xgslbctl sends.
    let r = d.handle.command(Command::Drain {
        target: Target::Vs("tokyo-a".into()),
    });
    assert!(r.ok, "{r:?}");
    let sites = get_json(addr, "/api/v1/sites", None, 200);
    let tokyo = vs(&sites, "tokyo-a");
    assert_eq!(tokyo["available"], false, "{tokyo}");
    assert_eq!(tokyo["reason"], "drained", "{tokyo}");
    assert_eq!(tokyo["detail"], "disabled", "{tokyo}");
    assert_eq!(vs(&sites, "newyork-a")["available"], true);
    // The drain is an event at once; the sampler adds the VS leaving rotation.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let ev = get_json(addr, "/api/v1/events", None, 200);
        let kinds: Vec<&str> = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        if kinds.contains(&"drain") && kinds.contains(&"vs_out") {
            break ev;
        }
        assert!(Instant::now() < deadline, "no drain and vs_out in {ev}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let drain = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "drain")
        .unwrap();
    assert_eq!(drain["target"], "tokyo-a");
    let seq = drain["seq"].as_u64().unwrap();
    let after = get_json(addr, &format!("/api/v1/events?after={seq}"), None, 200);
    assert!(
        after["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() > seq),
        "{after}"
    );
    // Enabled again: in rotation, no reason.
    let r = d.handle.command(Command::Enable {
        target: Target::Vs("tokyo-a".into()),
    });
    assert!(r.ok, "{r:?}");
    let sites = get_json(addr, "/api/v1/sites", None, 200);
    assert_eq!(vs(&sites, "tokyo-a")["available"], true);

    // Bad questions: JSON errors with 4xx.
    for (path, status) in [
        ("/api/v1/explain?wideip=www2.example.test&client=nope", 400),
        ("/api/v1/explain?wideip=www2.example.test", 400),
        (
            "/api/v1/explain?wideip=www2.example.test&client=198.18.0.1&ecs=x",
            400,
        ),
        (
            "/api/v1/explain?wideip=nothere.example.test&client=198.18.0.1",
            404,
        ),
        ("/api/v1/events?after=soon", 400),
        ("/api/v1/nothing", 404),
        ("/api/v2/sites", 404),
    ] {
        let err = get_json(addr, path, None, status);
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {err}"
        );
    }
    let (status, _, body) = http(addr, "POST", "/api/v1/sites", None);
    assert_eq!(status, 405, "{body}");
    let (status, _, _) = http(addr, "GET", "/elsewhere", None);
    assert_eq!(status, 404);
    // /metrics is served on the same endpoint.
    let (status, _, body) = http(addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(body.contains("xgslb_vs_available"), "{body}");
}

#[test]
fn off_loopback_every_request_needs_the_token_as_bearer_or_basic() {
    // All interfaces: not loopback, so the token is required (and connected to on 127.0.0.1).
    let (_d, addr) = Running::start("0.0.0.0", Some(TOKEN));
    let refusals = [
        (None, "no credentials"),
        (Some(bearer("wrong-token-0123456789")), "wrong token"),
        (
            Some(basic("xgslb", "wrong-token-0123456789")),
            "wrong token",
        ),
        // The token as the user, not the password.
        (Some(basic(TOKEN, "")), "wrong token"),
        (Some("Basic !!not-base64!!".to_owned()), "not base64"),
        (
            Some(format!(
                "Basic {}",
                data_encoding::BASE64.encode(TOKEN.as_bytes())
            )),
            "no ':'",
        ),
        (Some(format!("Digest {TOKEN}")), "neither Bearer nor Basic"),
        (Some(TOKEN.to_owned()), "neither Bearer nor Basic"),
    ];
    for path in [
        "/",
        "/index.html",
        "/api/v1/sites",
        "/api/v1/events",
        "/metrics",
        "/elsewhere",
    ] {
        for (bad, why) in &refusals {
            let (status, head, body) = http(addr, "GET", path, bad.as_deref());
            assert_eq!(status, 401, "{path} with {bad:?}: {head}\n{body}");
            // A browser prompts for Basic credentials; API clients see Bearer named too.
            let head = head.to_lowercase();
            assert!(
                head.contains("www-authenticate: basic realm=\"xgslb\", charset=\"utf-8\"")
                    && head.contains("www-authenticate: bearer"),
                "{head}"
            );
            let err: Value = serde_json::from_str(&body).expect("a JSON error");
            let err = err["error"].as_str().unwrap_or_default();
            assert!(err.contains(why), "{path} with {bad:?}: {err}");
        }
    }
    // Without the token even a POST is only refused for that.
    let (status, _, _) = http(addr, "POST", "/api/v1/sites", None);
    assert_eq!(status, 401);

    // The token as Basic's password (any user; what a browser sends) or as Bearer.
    for good in [
        basic("xgslb", TOKEN),
        basic("", TOKEN),
        bearer(TOKEN),
        format!("bearer {TOKEN}"),
    ] {
        let (status, head, page) = http(addr, "GET", "/", Some(&good));
        assert_eq!(status, 200, "{good}: {head}");
        assert!(page.contains("<title>xgslb console</title>"));
        let sites = get_json(addr, "/api/v1/sites", Some(&good), 200);
        assert_eq!(sites["sites"][0]["name"], "tokyo");
        let (status, _, body) = http(addr, "GET", "/metrics", Some(&good));
        assert_eq!(status, 200, "{good}");
        assert!(body.contains("xgslb_vs_available"));
    }
    // Past the token, the usual answers.
    let (status, _, _) = http(addr, "POST", "/api/v1/sites", Some(&bearer(TOKEN)));
    assert_eq!(status, 405);
    let (status, _, _) = http(addr, "GET", "/elsewhere", Some(&basic("x", TOKEN)));
    assert_eq!(status, 404);
}

#[test]
fn a_listener_off_loopback_without_a_token_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = model(&dir.path().join("control.sock"), "0.0.0.0:9153").write(dir.path());
    let e = xgslb::config::Config::load(&path)
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("server.metrics_listen") && e.contains("http_token_file"),
        "{e}"
    );
    // A token file that is not owner-only is refused like any secret.
    let dir = tempfile::tempdir().unwrap();
    let path = model(&dir.path().join("control.sock"), "0.0.0.0:9153")
        .http_token(TOKEN)
        .write(dir.path());
    std::fs::set_permissions(
        dir.path().join("http.token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let e = xgslb::config::Config::load(&path)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("server.http_token_file"), "{e}");
}
