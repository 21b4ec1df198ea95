//! Zone transfers to a real secondary: xgslbd (XDP on) in one namespace, Knot DNS's `knotd`
//! as a plain secondary of example.test in another, both with one TSIG key. knotd takes the
//! zone by AXFR (several messages, each signed) and answers it (a wide IP with its zone-file
//! record, not a GSLB answer);
//! after a reload that adds a record without touching the file's serial, xgslbd serves the
//! serial plus one and NOTIFYs knotd, which takes the change by IXFR and answers it.
//! Transfers without the key, from an address not allowed, or with a wrong secret are
//! refused and counted. The counters come from xgslbd's Prometheus endpoint.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xgslb::config::XdpModeSetting;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_model},
    metrics::{sample, scrape},
    netns::{CLIENT_V4, NetnsPair, SERVER_V4},
};

/// The key both servers share: 32 bytes, base64.
const SECRET: &str = "eGdzbGIgem9uZSB0cmFuc2ZlciB0ZXN0IGtleSAzMmI=";
/// The same name with another secret.
const WRONG_SECRET: &str = "bm90IHRoZSBzZWNyZXQgdGhlIHNlY3JldCBpcyBub3Qh";
const KEY: &str = "xfr-key.";
/// An address of the client namespace that may not transfer.
const OTHER_V4: &str = "198.18.0.3";
/// How long knotd may take to transfer and answer (NOTIFY, SOA query, transfer).
const DEADLINE: Duration = Duration::from_secs(30);
const METRICS: &str = "198.18.0.2:9153";

/// knotd in the client namespace, killed (and its directory removed) when dropped.
struct Knot {
    child: Child,
    dir: tempfile::TempDir,
}

impl Knot {
    /// A secondary of example.test on the client's address, taking it from xgslbd with the
    /// key and accepting NOTIFY from it with the key.
    fn start(pair: &NetnsPair) -> Knot {
        let dir = tempfile::tempdir().expect("knot dir");
        let d = dir.path().display();
        let conf = format!(
            "server:\n    listen: {CLIENT_V4}@53\n    rundir: {d}\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: {d}\n\
             key:\n  - id: {KEY}\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             remote:\n  - id: xgslbd\n    address: {SERVER_V4}@53\n    key: {KEY}\n\
             acl:\n  - id: notify-from-xgslbd\n    address: {SERVER_V4}\n    key: {KEY}\n    action: notify\n\
             zone:\n  - domain: example.test\n    storage: {d}\n    master: xgslbd\n    acl: notify-from-xgslbd\n"
        );
        let conf_file = dir.path().join("knot.conf");
        std::fs::write(&conf_file, conf).expect("knot conf");
        let log = std::fs::File::create(dir.path().join("knotd.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &pair.client, "knotd", "-c"])
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start knotd (is knot installed?): {e}"));
        Knot { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// kdig's output (stdout and stderr) for `args` in the client namespace.
fn kdig(pair: &NetnsPair, args: &[&str]) -> String {
    let mut all = vec!["kdig", "+retry=0", "+time=2"];
    all.extend_from_slice(args);
    let out = pair.client_cmd(&all);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What knotd answers for `name` `qtype`, `+short`.
fn knot_answer(pair: &NetnsPair, name: &str, qtype: &str) -> String {
    kdig(pair, &[&format!("@{CLIENT_V4}"), "+short", name, qtype])
        .trim()
        .to_owned()
}

/// The SOA serial knotd serves, if it serves the zone.
fn knot_serial(pair: &NetnsPair) -> Option<u32> {
    knot_answer(pair, "example.test", "SOA")
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Polls `check` every 100 ms until it holds or `DEADLINE` passes (then panics with
/// knotd's log).
fn wait_for(what: &str, knot: &Knot, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; knotd's log:\n{}", knot.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The zone file's serial.
fn file_serial(zone: &Path) -> u32 {
    let text = std::fs::read_to_string(zone).expect("zone file");
    let soa = text.split("SOA").nth(1).expect("an SOA");
    let numbers = soa.split('(').nth(1).expect("SOA numbers in parentheses");
    numbers
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a serial")
}

/// A counter sample from the metrics endpoint.
fn counter(pair: &NetnsPair, name: &str, label: (&str, &str)) -> f64 {
    let s = scrape(pair, METRICS);
    let found = s
        .samples
        .iter()
        .any(|x| x.metric == name && x.labels.get(label.0) == Some(label.1));
    if found { sample(&s, name, label) } else { 0.0 }
}

/// TXT records added to the demo zone: enough that its AXFR takes several messages.
const BULK: usize = 300;

/// The config: the demo zone (and `BULK` TXT records) transferable from the client's
/// address with the key, NOTIFY to the client, a wide IP over the demo zone's static `app`.
fn config() -> (ConfigDir, PathBuf) {
    let model = test_model()
        .with(&format!("allow_transfer = [\"{CLIENT_V4}/32\"]"))
        .with(&format!("transfer_keys = [\"{KEY}\"]"))
        .with(&format!("notify = [\"{CLIENT_V4}:53\"]"))
        .with(&format!("notify_key = \"{KEY}\""))
        .section(&format!(
            "[[tsig_key]]\nname = \"{KEY}\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"xfr.key\""
        ))
        .set("server", &format!("metrics_listen = \"{METRICS}\""))
        .http_token(xgslb_tests::metrics::HTTP_TOKEN)
        .site("a", "lb", &[("one", "198.18.1.1")])
        .pool("p", &["one"], "")
        .wideip("app.example.test.", &["p"]);
    let cfg = ConfigDir::new(&model);
    let dir = cfg.path().parent().expect("config dir").to_owned();
    let key = dir.join("xfr.key");
    std::fs::write(&key, format!("{SECRET}\n")).expect("key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("key mode");
    let zone = dir.join("example.test.zone");
    let mut text = std::fs::read_to_string(&zone).expect("zone file");
    for i in 0..BULK {
        text.push_str(&format!("bulk{i} IN TXT \"{i:0100}\"\n"));
    }
    std::fs::write(&zone, text).expect("zone file");
    (cfg, zone)
}

#[test]
fn knotd_transfers_by_axfr_then_ixfr_after_notify_and_others_are_refused() {
    let pair = NetnsPair::new("xfr");
    pair.add_client_address(&format!("{OTHER_V4}/24"));
    let (cfg, zone_file) = config();
    let serial = file_serial(&zone_file);
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let knot = Knot::start(&pair);

    // The first transfer: AXFR. knotd answers the wide IP with its zone-file record.
    wait_for("knotd to load the zone", &knot, || {
        knot_serial(&pair) == Some(serial)
    });
    assert_eq!(knot_answer(&pair, "app.example.test", "A"), "198.18.0.82");
    assert_eq!(
        knot_answer(&pair, "www.example.test", "AAAA"),
        "2001:db8:10::10"
    );
    let last = format!("bulk{}.example.test", BULK - 1);
    assert_eq!(
        knot_answer(&pair, &last, "TXT"),
        format!("\"{:0100}\"", BULK - 1)
    );
    let log = knot.log();
    let messages: Option<u32> = log
        .lines()
        .find(|l| l.contains("AXFR, incoming") && l.contains("finished"))
        .and_then(|l| {
            l.split(" messages")
                .next()?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        });
    assert!(
        messages.is_some_and(|n| n > 1),
        "one signed message each: {log}"
    );
    let axfr = ("kind", "axfr");
    assert_eq!(counter(&pair, "xgslb_zone_transfers_total", axfr), 1.0);

    // A record added, the serial left alone: xgslbd serves serial + 1 and NOTIFYs knotd,
    // which takes the difference by IXFR.
    let text = std::fs::read_to_string(&zone_file).expect("zone file");
    std::fs::write(&zone_file, format!("{text}added IN A 198.18.0.99\n")).expect("zone file");
    d.handle().reload().expect("reload");
    let soa = kdig(
        &pair,
        &[&format!("@{SERVER_V4}"), "+short", "example.test", "SOA"],
    );
    assert_eq!(
        soa.split_whitespace().nth(2),
        Some((serial + 1).to_string().as_str()),
        "xgslbd serves the next serial: {soa}"
    );
    wait_for("knotd to take the change", &knot, || {
        knot_answer(&pair, "added.example.test", "A") == "198.18.0.99"
    });
    assert_eq!(knot_serial(&pair), Some(serial + 1));
    assert_eq!(
        counter(&pair, "xgslb_zone_transfers_total", ("kind", "ixfr")),
        1.0,
        "knotd's log:\n{}",
        knot.log()
    );
    assert_eq!(counter(&pair, "xgslb_zone_transfers_total", axfr), 1.0);
    assert!(counter(&pair, "xgslb_notify_total", ("outcome", "acknowledged")) >= 1.0);
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());

    // With the key from the allowed address, kdig gets the zone file's data.
    let with_key = format!("hmac-sha256:{KEY}:{SECRET}");
    let server = format!("@{SERVER_V4}");
    let zone = kdig(&pair, &["-y", &with_key, &server, "example.test", "AXFR"]);
    assert!(
        zone.contains("198.18.0.99") && zone.contains("198.18.0.82"),
        "{zone}"
    );
    assert!(
        !zone.contains("198.18.1.1"),
        "no GSLB answer is transferred: {zone}"
    );

    // Refused: no key; the key from another address; a wrong secret.
    let refused = |reason| {
        counter(
            &pair,
            "xgslb_zone_transfers_refused_total",
            ("reason", reason),
        )
    };
    let unsigned = kdig(&pair, &[&server, "example.test", "AXFR"]);
    assert!(unsigned.contains("'REFUSED'"), "{unsigned}");
    let elsewhere = kdig(
        &pair,
        &[
            "-b",
            OTHER_V4,
            "-y",
            &with_key,
            &server,
            "example.test",
            "AXFR",
        ],
    );
    assert!(elsewhere.contains("'REFUSED'"), "{elsewhere}");
    let wrong = format!("hmac-sha256:{KEY}:{WRONG_SECRET}");
    let forged = kdig(&pair, &["-y", &wrong, &server, "example.test", "IXFR=1"]);
    assert!(
        forged.contains("'BADSIG'") || forged.contains("'NOTAUTH'"),
        "{forged}"
    );
    assert_eq!(refused("key_required"), 1.0);
    assert_eq!(refused("not_allowed"), 1.0);
    assert_eq!(refused("bad_signature"), 1.0);
    // What `xgslbctl stats` prints: knotd's AXFR and kdig's, knotd's IXFR, three refused.
    let t = d.handle().status().transfers;
    assert_eq!(
        (t.axfr, t.ixfr, t.ixfr_full, t.refused),
        (2, 1, 0, 3),
        "{t:?}"
    );

    drop(knot);
    d.stop().expect("clean shutdown");
}
