//! DNS cookies end to end with kdig on a real veth: a client cookie alone gets a server
//! cookie back, and kdig sending that pair again (`+cookie=CLIENT+SERVER`) gets it echoed,
//! on each path and across them: XDP (UDP) issues, the full handler (TCP) validates, and the
//! other way round; then, with XDP off, the slow path's UDP workers validate a cookie XDP
//! issued (the EDNSs share the secret through `[cookies] secret_file`). The counters say
//! which path saw which kind.
use std::path::Path;

use xgslb::config::XdpModeSetting;
use xgslb_common::{CookieSeen, Counter};
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, test_model},
    netns::{NetnsPair, SERVER_V4, SERVER_V6},
};

const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

/// The COOKIE kdig printed (client cookie and server cookie, hex, as one string), and the
/// line it printed it on.
fn kdig_cookie(pair: &NetnsPair, server: &str, extra: &[&str]) -> (String, String) {
    let at = format!("@{server}");
    let mut args = vec![
        "kdig",
        at.as_str(),
        "www.example.test",
        "A",
        "+retry=0",
        "+time=3",
    ];
    args.extend_from_slice(extra);
    let out = pair.client_cmd(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
    // kdig checks the client cookie it gets back, and warns when it is not its own.
    assert!(
        out.status.success() && text.contains("198.18.1.10") && warnings.is_empty(),
        "{args:?}: {text}{warnings}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("COOKIE:"))
        .unwrap_or_else(|| panic!("{args:?}: no COOKIE in the response: {text}"));
    let cookie = line
        .split("COOKIE:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_ascii_lowercase();
    (cookie, line.to_owned())
}

/// The slow paths' cookie counts and XDP's.
fn counts(d: &Daemon) -> ([u64; 4], [u64; 4]) {
    let xdp = xgslb::maps::dataplane::PinnedCounters::open(d.pin_dir())
        .and_then(|c| c.cookie_stats())
        .unwrap_or_default();
    (d.handle().cookie_counts(), xdp)
}

/// A round trip: a client cookie alone over `first`, then the pair it got back over
/// `second`; the second's response must echo the pair (a valid, young server cookie).
fn round_trip(pair: &NetnsPair, server: &str, first: &[&str], second: &[&str]) -> String {
    let client = "0123456789abcdef";
    let c = format!("+cookie={client}");
    let (got, line) = kdig_cookie(pair, server, &[&[c.as_str()], first].concat());
    assert!(
        got.len() == 48 && got.starts_with(client),
        "{server} {first:?}: the client cookie and a 16-byte server cookie: {line}"
    );
    let again = format!("+cookie={got}");
    let (echoed, line) = kdig_cookie(pair, server, &[&[again.as_str()], second].concat());
    assert_eq!(echoed, got, "{server} {second:?}: echoed as sent: {line}");
    got
}

fn config(dir: &Path) {
    std::fs::write(dir.join("cookie.secret"), format!("{SECRET}\n")).expect("the secret");
}

#[test]
fn kdig_cookies_round_trip_through_xdp_and_the_slow_path() {
    let pair = NetnsPair::new("cookies");
    let model = test_model()
        .answer("www.example.test.", 30, &[("198.18.1.10", 1)])
        .set("cookies", "secret_file = \"cookie.secret\"");
    let cfg = ConfigDir::new(&model);
    config(cfg.path().parent().expect("the config's directory"));
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let v6 = SERVER_V6.to_string();
    for server in [SERVER_V4, v6.as_str()] {
        // XDP issues (client only) and validates (echoes); both count in XDP.
        let (before, xdp_before) = (d.stats(), counts(&d).1);
        round_trip(&pair, server, &[], &[]);
        let (after, xdp_after) = (d.stats(), counts(&d).1);
        assert_eq!(
            after[Counter::Answered as usize] - before[Counter::Answered as usize],
            2,
            "{server}: both answered by XDP"
        );
        let grew = |c: CookieSeen| xdp_after[c as usize] - xdp_before[c as usize];
        assert_eq!(
            (grew(CookieSeen::ClientOnly), grew(CookieSeen::Valid)),
            (1, 1),
            "{server}: XDP's cookie counters"
        );
        // XDP issues, the full handler (TCP) validates; and the other way round.
        let (slow_before, _) = counts(&d);
        round_trip(&pair, server, &[], &["+tcp"]);
        round_trip(&pair, server, &["+tcp"], &[]);
        let (slow_after, _) = counts(&d);
        let grew = |c: CookieSeen| slow_after[c as usize] - slow_before[c as usize];
        assert_eq!(
            (grew(CookieSeen::ClientOnly), grew(CookieSeen::Valid)),
            (1, 1),
            "{server}: the slow path's cookie counters"
        );
    }
    // A server cookie XDP issued, validated by the UDP workers of an xgslbd without XDP
    // that shares the secret.
    let (issued, _) = kdig_cookie(&pair, SERVER_V4, &["+cookie=0123456789abcdef"]);
    d.stop().expect("the first xgslbd stops");
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Off);
    let again = format!("+cookie={issued}");
    let (echoed, line) = kdig_cookie(&pair, SERVER_V4, &[again.as_str()]);
    assert_eq!(echoed, issued, "the slow path echoes XDP's cookie: {line}");
    assert_eq!(counts(&d).0[CookieSeen::Valid as usize], 1);
}
