//! What an operator installs beside the binaries (contrib/): the Prometheus alert rules
//! pass `promtool check rules` and their `promtool test rules` cases; the Grafana dashboard
//! is dashboard JSON whose every query, and every rule's, names metrics a live xgslbd serves
//! (XDP attached, agents, peers); the systemd units pass `systemd-analyze verify` and grant
//! xgslbd exactly the capabilities it needs.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use xgslb::{config::XdpModeSetting, control::dispatch::Admin};
use xgslb_tests::{
    agents::{Agent, write_key},
    daemon::{ConfigDir, Daemon},
    gslb::three_sites,
    metrics::scrape,
    netns::{NetnsPair, SERVER_V4},
    servers::HttpServer,
};

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib")
        .join(path)
}

/// Runs `program` with `args` in `dir`; panics naming the Debian package when it is missing.
fn tool(program: &str, package: &str, args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install Debian's {package} (cargo xtask setup)")
        })
}

/// Every `xgslb_...` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("xgslb_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_alert_rules_pass_promtool_check_and_a_test_per_alert() {
    let dir = contrib("prometheus");
    let check = tool(
        "promtool",
        "prometheus",
        &["check", "rules", "xgslb.rules.yml"],
        &dir,
    );
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let test = tool(
        "promtool",
        "prometheus",
        &["test", "rules", "xgslb.rules.test.yml"],
        &dir,
    );
    let result = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(test.status.success(), "{result}");
    assert!(result.contains("SUCCESS"), "{result}");
    // A case for every alert: each alertname of the rules appears in the tests.
    let rules = std::fs::read_to_string(dir.join("xgslb.rules.yml")).expect("read the rules");
    let tests = std::fs::read_to_string(dir.join("xgslb.rules.test.yml")).expect("read");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 9, "{alerts:?}");
    for alert in alerts {
        let firing = tests
            .split("alertname: ")
            .skip(1)
            .filter(|case| case.starts_with(alert))
            .collect::<Vec<_>>();
        assert!(
            firing.iter().any(|c| c.contains("exp_labels"))
                && firing.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert}: no case where it fires and one where it does not"
        );
    }
}

/// The dashboard's queries, each with its panel's title.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            out.push((title, expr.to_owned()));
        }
    }
    out
}

#[test]
fn the_dashboard_is_grafana_json_on_a_prometheus_data_source_variable() {
    let text = std::fs::read_to_string(contrib("grafana/xgslb.json")).expect("read");
    let d: serde_json::Value = serde_json::from_str(&text).expect("the dashboard parses");
    assert_eq!(d["uid"], "xgslb");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_u64().expect("id")), "ids unique");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(!p["targets"].as_array().expect("targets").is_empty());
        }
    }
    let queries = dashboard_queries(&d);
    let titles: BTreeSet<&str> = queries.iter().map(|(t, _)| t.as_str()).collect();
    for wanted in [
        "Answers per wide IP by virtual server",
        "Answers per wide IP by region",
        "XDP packets by outcome",
        "Slow path responses by rcode",
        "Virtual server availability",
        "Agents up",
        "Peers up",
        "Publications",
        "ECS answers by scope",
    ] {
        assert!(titles.contains(wanted), "no panel {wanted:?}: {titles:?}");
    }
}

/// A live xgslbd with every part that has metrics: XDP attached, an agent reporting, a
/// peer configured (never heard), a wide IP answered by XDP and an ECS query. Its scrape
/// must hold every metric the dashboard and the rules query.
#[test]
fn every_metric_the_dashboard_and_rules_query_is_on_a_live_metrics_endpoint() {
    let pair = NetnsPair::new("ops");
    let model = three_sites()
        .set("server", &format!("metrics_listen = \"{SERVER_V4}:9153\""))
        .http_token(xgslb_tests::metrics::HTTP_TOKEN)
        .pool("one", &["tokyo-a"], "")
        .wideip("app.example.test.", &["one"])
        .agents(&format!("{SERVER_V4}:5300"))
        .set("agents", "report_timeout_ms = 2000")
        .agent_key(1, "agent.key", Some("tokyo"))
        .peering("edns-tokyo", "tokyo", &format!("{SERVER_V4}:5301"))
        .peer(
            "edns-newyork",
            "newyork",
            "198.18.0.9:5301",
            101,
            "peer.key",
        );
    let cfg = ConfigDir::new(&model);
    let dir = cfg.path().parent().expect("config dir").to_owned();
    write_key(&dir.join("agent.key"), "tokyo-agent-secret-0123456789");
    write_key(&dir.join("peer.key"), "tokyo-newyork-peer-secret-0123");
    let agent_config = dir.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "agent_id = \"tokyo-1\"\nsite = \"tokyo\"\ninterval_ms = 200\n\n\
             [[edns]]\naddress = \"{SERVER_V4}:5300\"\nkey_id = 1\nsecret_file = \"agent.key\"\n\n\
             [[vs]]\nname = \"tokyo-a\"\n[vs.check]\nkind = \"tcp\"\naddress = \"198.18.1.1:80\"\n\
             interval_ms = 200\ntimeout_ms = 100\nrise = 1\nfall = 1\n"
        ),
    )
    .expect("write the agent config");
    // tokyo-a's server, in the server namespace: the agent's check finds it up.
    xgslb_tests::netns::run(&[
        "ip",
        "-n",
        &pair.server,
        "addr",
        "add",
        "198.18.1.1/32",
        "dev",
        "lo",
    ]);
    let _server = HttpServer::start(&pair.server, "198.18.1.1:80".parse().expect("addr"));
    let d = Daemon::start(&pair, &cfg.path(), XdpModeSetting::Native);
    let _agent = Agent::start(&pair.server, &agent_config);
    // One VS out of rotation, so that xgslb_vs_unavailable has a sample.
    d.handle()
        .admin(Admin::SetEnabled {
            vs: "newyork-a".into(),
            enabled: false,
        })
        .expect("disable newyork-a");
    let addr = format!("{SERVER_V4}:9153");
    // The agent's first report, and its VS up: the wide IP answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let up = |s: &prometheus_parse::Scrape, name: &str, label: (&str, &str)| {
        s.samples.iter().any(|x| {
            x.metric == name
                && x.labels.get(label.0) == Some(label.1)
                && matches!(x.value, prometheus_parse::Value::Gauge(v) if v == 1.0)
        })
    };
    loop {
        let s = scrape(&pair, &addr);
        if up(&s, "xgslb_agent_up", ("agent", "tokyo-1"))
            && up(&s, "xgslb_vs_available", ("vs", "tokyo-a"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "tokyo-a not reported up in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [
        vec!["app.example.test", "A"],
        vec!["app.example.test", "A", "+subnet=198.18.77.0/24"],
    ] {
        let at = format!("@{SERVER_V4}");
        let mut dig = vec!["dig", &at, "+tries=1", "+time=2"];
        dig.extend(args);
        let out = pair.client_cmd(&dig);
        assert!(out.status.success(), "{dig:?}");
    }
    let s = scrape(&pair, &addr);
    drop(d);

    let served: BTreeSet<String> = s.samples.iter().map(|x| x.metric.clone()).collect();
    // A family without samples still writes its # HELP line; only these may be empty here,
    // each for a reason of this set-up, and must then at least be described.
    let may_be_empty = [
        // The peer is never heard: no contact time to give.
        "xgslb_peer_last_contact_seconds",
    ];
    let text = std::fs::read_to_string(contrib("grafana/xgslb.json")).expect("read");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let mut queried: Vec<(String, String)> = dashboard_queries(&dashboard)
        .into_iter()
        .flat_map(|(title, expr)| {
            metric_names(&expr)
                .into_iter()
                .map(move |m| (format!("panel {title:?}"), m))
        })
        .collect();
    let rules = std::fs::read_to_string(contrib("prometheus/xgslb.rules.yml")).expect("read");
    queried.extend(
        metric_names(&rules)
            .into_iter()
            .map(|m| ("the alert rules".to_owned(), m)),
    );
    assert!(queried.len() > 25, "{queried:?}");
    for (whose, metric) in &queried {
        if served.contains(metric) {
            continue;
        }
        let family = metric.strip_suffix("_total").unwrap_or(metric);
        let described = s.docs.contains_key(metric) || s.docs.contains_key(family);
        assert!(
            may_be_empty.contains(&metric.as_str()) && described,
            "{whose} queries {metric}, which the live endpoint does not serve; it serves {served:?}"
        );
    }
    // The attachment as the kernel reports it.
    let attached = s
        .samples
        .iter()
        .find(|x| x.metric == "xgslb_xdp_attached")
        .expect("xgslb_xdp_attached");
    assert_eq!(attached.labels.get("mode"), Some("native"), "{attached:?}");
    assert!(matches!(attached.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
}

/// A throwaway root for `systemd-analyze verify --root`: systemd's own units (the targets
/// the units name), the units under test, and an executable at every path they run.
fn unit_root(units: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let system = root.path().join("lib/systemd/system");
    std::fs::create_dir_all(root.path().join("lib/systemd")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("usr/bin")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("bin")).expect("mkdir");
    let copy = Command::new("cp")
        .args(["-r", "/lib/systemd/system"])
        .arg(root.path().join("lib/systemd"))
        .status()
        .expect("cp");
    assert!(
        copy.success(),
        "copy systemd's units (is systemd installed?)"
    );
    for unit in units {
        std::fs::copy(contrib(&format!("systemd/{unit}")), system.join(unit)).expect("copy");
    }
    for exe in [
        "usr/bin/xgslbd",
        "usr/bin/xgslb-agent",
        "usr/bin/install",
        "bin/kill",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let path = root.path().join(exe);
        std::fs::write(&path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    root
}

/// The space-separated values of `key=` in `unit`.
fn unit_values(unit: &str, key: &str) -> BTreeSet<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

#[test]
fn the_systemd_units_verify_and_grant_xgslbd_exactly_its_capabilities() {
    let units = ["xgslbd.service", "xgslb-agent.service"];
    let root = unit_root(&units);
    let root_arg = format!("--root={}", root.path().display());
    let mut args = vec!["verify", root_arg.as_str()];
    args.extend(units);
    let out = tool("systemd-analyze", "systemd", &args, root.path());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A warning (an unknown key, a missing binary) is a failure too.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let xgslbd = std::fs::read_to_string(contrib("systemd/xgslbd.service")).expect("read");
    let needed: BTreeSet<String> = xgslb::privileges::XGSLBD
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(unit_values(&xgslbd, "AmbientCapabilities"), needed);
    assert_eq!(unit_values(&xgslbd, "CapabilityBoundingSet"), needed);
    let agent = std::fs::read_to_string(contrib("systemd/xgslb-agent.service")).expect("read");
    assert!(unit_values(&agent, "AmbientCapabilities").is_empty());
    assert!(unit_values(&agent, "CapabilityBoundingSet").is_empty());
    for unit in [&xgslbd, &agent] {
        for line in [
            "User=xgslb",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "Restart=on-failure",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing");
        }
    }
    assert!(xgslbd.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
    // The in-place upgrade (SIGUSR2, `xgslbd_upgrade.rs`): the successor says READY and
    // MAINPID from a process systemd did not start.
    assert!(xgslbd.contains("\nType=notify\nNotifyAccess=all\n"));
    assert!(xgslbd.contains("\nRuntimeDirectory=xgslb\n"));
    assert!(xgslbd.contains("\nReadWritePaths=/sys/fs/bpf/xgslb\n"));
}
