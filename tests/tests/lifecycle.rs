//! The daemon's life around its pinned program: with --leave-serving the XDP program keeps
//! answering after xgslbd exits; a new xgslbd adopts the pinned link and maps; a normal
//! shutdown detaches the program and removes the pins.
use xgslb::{config::XdpModeSetting, daemon::Options, test_model::TestModel};
use xgslb_common::Counter;
use xgslb_tests::{
    daemon::{ConfigDir, Daemon, LISTEN, test_model},
    netns::{NetnsPair, SERVER_IF, SERVER_V4},
    pins::PinDir,
};

/// One static answer set, www, on the demo zone.
fn model() -> TestModel {
    test_model().answer("www.example.test.", 30, &[("198.18.1.10", 1)])
}

/// A daemon on the server side of the pair, its pins in `pins`.
fn opts(pins: &PinDir, xdp_mode: XdpModeSetting, leave_serving: bool) -> Options {
    Options {
        iface: Some(SERVER_IF.into()),
        xdp_mode: Some(xdp_mode),
        pin_dir: Some(pins.path().to_owned()),
        leave_serving,
        control_socket: None,
        replace: false,
    }
}

fn dig_www(pair: &NetnsPair) -> String {
    let at = format!("@{SERVER_V4}");
    let out = pair.client_cmd(&[
        "dig",
        &at,
        "www.example.test",
        "A",
        "+short",
        "+tries=1",
        "+time=3",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn leave_serving_keeps_answering_and_a_restart_adopts_the_pins() {
    let pair = NetnsPair::new("life");
    let cfg = ConfigDir::new(&model());
    let pins = PinDir::new("life");

    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&pins, XdpModeSetting::Native, true),
    );
    assert_eq!(dig_www(&pair), "198.18.1.10");
    let answered = d.stats()[Counter::Answered as usize];
    d.stop().expect("clean exit");

    // No daemon: the pinned program answers alone, and counts in the pinned map.
    assert!(pair.xdp_attached());
    assert_eq!(dig_www(&pair), "198.18.1.10");
    let stats = xgslb::maps::dataplane::read_pinned_stats(pins.path()).expect("pinned stats");
    assert_eq!(stats[Counter::Answered as usize], answered + 1);

    // A new daemon adopts the link and the maps (counters carry on), then detaches on exit.
    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&pins, XdpModeSetting::Native, false),
    );
    assert_eq!(dig_www(&pair), "198.18.1.10");
    assert_eq!(d.stats()[Counter::Answered as usize], answered + 2);
    d.stop().expect("clean exit");
    assert!(
        !pair.xdp_attached(),
        "a normal shutdown must detach the program"
    );
    assert!(!pins.path().exists(), "a normal shutdown removes the pins");
}

/// A program an earlier xgslbd left attached (killed, or stopped with --leave-serving) is
/// never left answering from a config nobody updates: a new xgslbd with XDP off detaches it,
/// removes its pins, says so in `status`, and answers from the slow path.
#[test]
fn xdp_off_detaches_a_program_left_serving_and_says_so() {
    let pair = NetnsPair::new("lorph");
    let cfg = ConfigDir::new(&model());
    let pins = PinDir::new("lorph");
    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&pins, XdpModeSetting::Native, true),
    );
    assert_eq!(dig_www(&pair), "198.18.1.10");
    d.stop().expect("clean exit");
    assert!(pair.xdp_attached(), "left serving, as after kill -9");

    let d = Daemon::start_with(&pair, &cfg.path(), opts(&pins, XdpModeSetting::Off, false));
    assert!(!pair.xdp_attached(), "the frozen program still serves");
    assert!(!pins.path().exists(), "its pins are still there");
    let startup = d.handle().status().startup;
    assert!(
        startup
            .iter()
            .any(|l| l.starts_with("detached the XDP program") && l.contains(SERVER_IF)),
        "{startup:?}"
    );
    assert_eq!(dig_www(&pair), "198.18.1.10", "the slow path answers");
    d.stop().expect("clean exit");
}

/// A config that cannot serve (a missing zone file) stops xgslbd before it touches anything:
/// no pins, no control socket; and a second xgslbd on the pin directory of a running one is
/// refused before it writes a map, so the running one keeps answering from XDP.
#[test]
fn a_bad_config_or_a_busy_pin_directory_changes_nothing() {
    let pair = NetnsPair::new("lbad");
    let other = NetnsPair::new("lbad2");
    let pins = PinDir::new("lbad");

    let broken = ConfigDir::new(&TestModel::new(&LISTEN).zone("example.test.", "nothere.zone"));
    let err = match Daemon::try_start_ns(
        &pair.server,
        &broken.path(),
        opts(&pins, XdpModeSetting::Native, false),
    ) {
        Err(e) => e,
        Ok(_) => panic!("a config without its zone file started"),
    };
    assert!(err.contains("nothere.zone"), "{err}");
    assert!(
        !pins.path().exists(),
        "pins were made for a config that cannot serve"
    );
    let socket = format!(
        "/tmp/{}.control.sock",
        pins.path().file_name().expect("name").to_string_lossy()
    );
    assert!(
        !std::path::Path::new(&socket).exists(),
        "a control socket was left"
    );

    let cfg = ConfigDir::new(&model());
    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&pins, XdpModeSetting::Native, false),
    );
    assert_eq!(dig_www(&pair), "198.18.1.10");
    // Another namespace (so its addresses are free), the same pins: refused.
    let err = match Daemon::try_start_ns(
        &other.server,
        &cfg.path(),
        opts(&pins, XdpModeSetting::Native, false),
    ) {
        Err(e) => e,
        Ok(_) => panic!("a second xgslbd took a pin directory in use"),
    };
    assert!(err.contains("in use by another xgslbd"), "{err}");
    // Its control socket too is the running one's still.
    let status = xgslb::control::client::command(
        d.control_socket(),
        xgslb::control::protocol::Command::Status,
    )
    .expect("the running xgslbd's control socket answers");
    assert!(status.ok);
    let before = d.stats();
    assert_eq!(dig_www(&pair), "198.18.1.10");
    let after = d.stats();
    assert_eq!(
        after[Counter::Answered as usize],
        before[Counter::Answered as usize] + 1,
        "XDP answers on"
    );
    assert_eq!(
        after[Counter::PassNotListener as usize],
        before[Counter::PassNotListener as usize]
    );
    d.stop().expect("clean exit");
}

/// A program a killed xgslbd left attached is found even by an xgslbd with another pin
/// directory (which knows nothing of its pins): with XDP off it is detached and `status`
/// says so, the slow path answering; with XDP on it is replaced by the new program. The
/// first pin directory's link, detached behind its pin, is attached afresh when an xgslbd
/// starts on it again.
#[test]
fn a_frozen_program_of_another_pin_directory_is_detached() {
    let pair = NetnsPair::new("lfroz");
    let cfg = ConfigDir::new(&model());
    let (first, second) = (PinDir::new("lfroza"), PinDir::new("lfrozb"));
    let frozen = |what: &str| {
        let d = Daemon::start_with(
            &pair,
            &cfg.path(),
            opts(&first, XdpModeSetting::Native, true),
        );
        assert_eq!(dig_www(&pair), "198.18.1.10");
        d.stop().expect("clean exit");
        assert!(
            pair.xdp_attached(),
            "left serving, as after kill -9 ({what})"
        );
    };
    let detached = |d: &Daemon| {
        let startup = d.handle().status().startup;
        assert!(
            startup
                .iter()
                .any(|l| l.starts_with("detached the frozen XDP program") && l.contains(SERVER_IF)),
            "{startup:?}"
        );
    };

    frozen("then XDP off");
    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&second, XdpModeSetting::Off, false),
    );
    assert!(!pair.xdp_attached(), "the frozen program still serves");
    detached(&d);
    assert_eq!(dig_www(&pair), "198.18.1.10", "the slow path answers");
    d.stop().expect("clean exit");

    frozen("then XDP on");
    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&second, XdpModeSetting::Native, false),
    );
    detached(&d);
    let before = d.stats()[Counter::Answered as usize];
    assert_eq!(dig_www(&pair), "198.18.1.10");
    assert_eq!(
        d.stats()[Counter::Answered as usize],
        before + 1,
        "the new program answers"
    );
    d.stop().expect("clean exit");
    assert!(!pair.xdp_attached());

    // The first pin directory still holds its detached link: a start there attaches anew.
    let d = Daemon::start_with(
        &pair,
        &cfg.path(),
        opts(&first, XdpModeSetting::Native, false),
    );
    let before = d.stats()[Counter::Answered as usize];
    assert_eq!(dig_www(&pair), "198.18.1.10");
    assert_eq!(d.stats()[Counter::Answered as usize], before + 1);
    d.stop().expect("clean exit");
}
