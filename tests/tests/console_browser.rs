//! The web console in a real headless browser (Debian's chromium, driven over WebDriver by
//! chromedriver): xgslbd in a namespace with the three demo sites and XDP attached, queries
//! answered from XDP meanwhile; the page loads with no console errors, shows the three sites
//! and their virtual servers and the wide IP's chart, shows a drain within seconds (and the
//! drained VS's share of answers falls to nothing), lists it as an event, and explains a
//! decision. A screenshot is left in `<target>/artifacts/console.png`.
//!
//! Off loopback, the page itself needs the token: a plain visit gets 401 (a Basic challenge,
//! no data), and a visit with the token as Basic's password shows the sites (the browser
//! sends it with the page's fetches).
//!
//! Needs root (netns, XDP) and chromium + chromium-driver: fails loudly without them.
use std::{
    io::{Read, Write},
    net::{TcpStream, UdpSocket},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use xgslb::config::XdpModeSetting;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon},
    gslb::three_sites,
    metrics::HTTP_TOKEN,
    netns::{NetnsPair, SERVER_V4},
    servers::in_ns,
    webdriver::Browser,
};

/// One browser at a time: two would share two cores with xgslbd and the traffic.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The console's address, on loopback in the server namespace (no token needed there).
const CONSOLE: &str = "127.0.0.1:9155";
const WIDEIP: &str = "app.example.test.";

/// A GET of `path` on the console from the server namespace, as JSON.
fn api(ns: &str, path: &str) -> Value {
    let path = path.to_owned();
    in_ns(ns, move || {
        let mut s = TcpStream::connect(CONSOLE).expect("connect to the console");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).expect("response");
        let (_, body) = all.split_once("\r\n\r\n").expect("an HTTP response");
        serde_json::from_str(body).expect("JSON")
    })
    .join()
    .expect("api thread")
}

/// A query for `WIDEIP` A, with id `id`.
fn query(id: u16) -> Vec<u8> {
    use hickory_proto::{
        op::{Message, Query},
        rr::{Name, RecordType},
    };
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(WIDEIP).expect("name"),
        RecordType::A,
    ));
    m.to_vec().expect("query bytes")
}

/// Sends queries from the client namespace (~200/s) until `stop`.
fn traffic(ns: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    in_ns(ns, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("client socket");
        sock.set_read_timeout(Some(Duration::from_millis(5))).ok();
        let mut buf = [0u8; 512];
        let mut id = 0u16;
        while !stop.load(Ordering::Relaxed) {
            id = id.wrapping_add(1);
            let _ = sock.send_to(&query(id), (SERVER_V4, 53));
            let _ = sock.recv(&mut buf);
            // A pace, not a wait for anything: ~200 queries a second is plenty to chart.
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// The answers a `/api/v1/wideips` sample gave per VS for `WIDEIP`, newest sample last.
fn samples(w: &Value) -> Vec<(u64, u64)> {
    let wideip = w["wideips"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == WIDEIP)
        .expect("the wide IP");
    let n = wideip["at_ms"].as_array().map_or(0, Vec::len);
    (0..n)
        .map(|i| {
            let of = |vs: &str| wideip["answers"][vs][i].as_u64().unwrap_or(0);
            let total = ["tokyo-a", "frankfurt-a", "newyork-a"]
                .iter()
                .map(|v| of(v))
                .sum();
            (of("tokyo-a"), total)
        })
        .collect()
}

/// What the page says and logged, for a failure's message.
fn page_state(b: &Browser) -> String {
    let text = b.script("return document.location.href + '\\n' + document.body.innerText");
    format!(
        "{}\nconsole: {:?}",
        text.as_str().unwrap_or_default(),
        b.console_log()
    )
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[test]
fn the_console_shows_sites_answers_and_a_drain_in_a_browser() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let pair = NetnsPair::new("console");
    let cfg = ConfigDir::new(
        &three_sites()
            .set("server", &format!("metrics_listen = \"{CONSOLE}\""))
            .pool(
                "all",
                &["tokyo-a", "frankfurt-a", "newyork-a"],
                "round_robin",
            )
            .wideip(WIDEIP, &["all"]),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(&pair.client, stop.clone());

    let b = Browser::launch(&pair.server, 9515);
    b.goto(&format!("http://{CONSOLE}/"));
    // Read in one script each: the page redraws every refresh, so element references
    // go stale between two commands.
    let site_names = |b: &Browser| -> Vec<String> {
        let v = b.script("return [...document.querySelectorAll('.site')].map(e => e.dataset.site)");
        serde_json::from_value(v).unwrap_or_default()
    };
    assert!(
        b.wait_for(Duration::from_secs(10), |b| site_names(b).len() == 3),
        "the three sites never showed: {:?}\n{}",
        site_names(&b),
        page_state(&b)
    );
    assert_eq!(site_names(&b), ["tokyo", "frankfurt", "newyork"]);
    let vs_state = |b: &Browser, vs: &str| -> Option<(String, String)> {
        let v = b.script(&format!(
            "const e = document.querySelector(\".vs[data-vs='{vs}']\"); \
             return e ? [e.dataset.state, e.innerText] : null"
        ));
        serde_json::from_value(v).ok()
    };
    let count = |b: &Browser, selector: &str| -> u64 {
        b.script(&format!(
            "return document.querySelectorAll(\"{selector}\").length"
        ))
        .as_u64()
        .unwrap_or(0)
    };
    for vs in ["tokyo-a", "frankfurt-a", "newyork-a"] {
        let (state, text) = vs_state(&b, vs).unwrap_or_else(|| panic!("no {vs} on the page"));
        assert_eq!(state, "up", "{vs}: {text}");
        assert!(text.contains("in rotation"), "{vs}: {text}");
    }
    // The chart draws once the sampler has two samples with answers.
    let chart = format!("[data-wideip='{WIDEIP}'] svg polygon");
    assert!(
        b.wait_for(Duration::from_secs(20), |b| count(b, &chart) == 3),
        "no chart of three VSs for {WIDEIP}: {}",
        api(&pair.server, "/api/v1/wideips")
    );

    // Drained through the control socket, as `xgslbctl drain --vs tokyo-a` does.
    let r = xgslb::control::client::command(
        d.control_socket(),
        xgslb::control::protocol::Command::Drain {
            target: xgslb::control::protocol::Target::Vs("tokyo-a".into()),
        },
    )
    .expect("the control socket answers");
    assert!(r.ok, "{r:?}");
    assert!(
        b.wait_for(Duration::from_secs(5), |b| {
            vs_state(b, "tokyo-a").is_some_and(|(s, t)| s == "drained" && t.contains("drained"))
        }),
        "tokyo-a never showed drained: {:?}",
        vs_state(&b, "tokyo-a")
    );
    assert_eq!(
        vs_state(&b, "newyork-a").map(|s| s.0).as_deref(),
        Some("up")
    );
    assert!(
        b.wait_for(Duration::from_secs(5), |b| count(
            b,
            "#events [data-kind='drain']"
        ) > 0),
        "the drain is not in the events"
    );
    // Its share falls: a sample after the drain with answers, none of them tokyo-a's.
    let mut last = Vec::new();
    assert!(
        b.wait_for(Duration::from_secs(15), |_| {
            last = samples(&api(&pair.server, "/api/v1/wideips"));
            let had = last.iter().any(|&(t, _)| t > 0);
            let now = last.last().is_some_and(|&(t, total)| t == 0 && total > 0);
            had && now
        }),
        "tokyo-a's answers never fell to nothing: {last:?}"
    );

    // The explain form.
    let field = |name: &str| {
        b.find_all(&format!("#explain input[name='{name}']"))
            .pop()
            .unwrap_or_else(|| panic!("no {name} field"))
    };
    b.type_into(&field("wideip"), WIDEIP);
    b.type_into(&field("client"), "198.18.0.1");
    let button = b.find_all("#explain button").pop().expect("explain button");
    b.click(&button);
    let explained = || {
        b.script("return document.getElementById('explained').textContent")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        b.wait_for(Duration::from_secs(5), |_| explained().contains("answer")),
        "explain said: {}",
        explained()
    );
    assert!(explained().contains("tokyo-a"), "{}", explained());

    // Two more refreshes (the chart then holds the sample without tokyo-a), then the picture.
    let live = |b: &Browser| {
        b.script("return document.getElementById('live').textContent")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for _ in 0..2 {
        let before = live(&b);
        assert!(
            b.wait_for(Duration::from_secs(5), |b| {
                let now = live(b);
                now != before && now.starts_with("updated")
            }),
            "the page stopped refreshing: {}",
            live(&b)
        );
    }
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = artifacts().join("console.png");
    std::fs::write(&path, &png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());

    let errors: Vec<_> = b
        .console_log()
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    stop.store(true, Ordering::Relaxed);
    sender.join().expect("traffic thread");
    drop(b);
    d.stop().expect("xgslbd stopped cleanly");
}

/// A GET of `path` at `addr` from namespace `ns` without credentials: (status, head).
fn unauthenticated(ns: &str, addr: &str, path: &str) -> (u16, String) {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    in_ns(ns, move || {
        let mut s = TcpStream::connect(&addr).expect("connect to the console");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).expect("response");
        let (head, _) = all.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
        (status.expect("a status code"), head.to_lowercase())
    })
    .join()
    .expect("request thread")
}

#[test]
fn off_loopback_the_page_needs_the_token_and_then_shows_the_sites() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let pair = NetnsPair::new("consauth");
    let listen = format!("{SERVER_V4}:9156");
    let cfg = ConfigDir::new(
        &three_sites()
            .set("server", &format!("metrics_listen = \"{listen}\""))
            .http_token(HTTP_TOKEN)
            .pool(
                "all",
                &["tokyo-a", "frankfurt-a", "newyork-a"],
                "round_robin",
            )
            .wideip(WIDEIP, &["all"]),
    );
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    // From the client namespace: across the veth, not loopback.
    for path in ["/", "/api/v1/sites"] {
        let (status, head) = unauthenticated(&pair.client, &listen, path);
        assert_eq!(status, 401, "{path}: {head}");
        assert!(
            head.contains("www-authenticate: basic realm=\"xgslb\""),
            "{path}: {head}"
        );
    }
    let b = Browser::launch(&pair.client, 9515);
    let sites = |b: &Browser| {
        b.script("return document.querySelectorAll('.site').length")
            .as_u64()
            .unwrap_or(0)
    };
    // A plain visit: refused (headless, nobody to ask: the browser shows its error page),
    // not the console.
    b.goto(&format!("http://{listen}/"));
    let console_page = |b: &Browser| {
        b.script("return document.getElementById('sites') !== null")
            .as_bool()
            .unwrap_or(false)
    };
    assert!(!console_page(&b), "the console without the token");
    assert_eq!(sites(&b), 0, "data shown without the token");
    let log = b.console_log();
    assert!(
        log.iter().any(|(_, m)| m.contains("status of 401")),
        "no 401: {log:?}"
    );
    // The token as the password, as a user gives it when the browser asks.
    b.goto(&format!("http://xgslb:{HTTP_TOKEN}@{listen}/"));
    assert!(
        b.wait_for(Duration::from_secs(10), |b| sites(b) == 3),
        "no sites with the token: {}",
        page_state(&b)
    );
    // And the page's fetches keep carrying it: it refreshes.
    let live = |b: &Browser| {
        b.script("return document.getElementById('live').textContent")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let before = live(&b);
    assert!(
        b.wait_for(Duration::from_secs(5), |b| {
            let now = live(b);
            now != before && now.starts_with("updated")
        }),
        "the page stopped refreshing: {}",
        page_state(&b)
    );
    // No errors since the plain visit's 401 (read above).
    let errors: Vec<_> = b
        .console_log()
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(b);
    d.stop().expect("xgslbd stopped cleanly");
}
