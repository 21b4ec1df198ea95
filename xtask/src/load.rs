//! The load bench's report: scripts/bench-load.sh runs the systems and loads and writes one
//! JSON line per system and load; this turns them into the Markdown table on stdout, the
//! `load` object of target/bench/results.json, the chart target/bench/load.svg and the
//! target checks of the issue.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cmd::Cmd;

/// The systems in the order the script runs them, with the chart's colours.
const SYSTEMS: &[(&str, &str)] = &[
    ("xgslb-xdp", "#d62728"),
    ("xgslb-slow", "#ff7f0e"),
    ("knot-udp", "#1f77b4"),
    ("knot-xdp", "#17becf"),
    ("nsd", "#2ca02c"),
    ("reflector", "#7f7f7f"),
];

/// "Highest rate answered with at most this loss" (percent), from the issue.
const LOSS_OK_PCT: f64 = 0.1;

/// One system under one load, with the derived figures.
struct Run {
    system: String,
    tool: String,
    mix: String,
    /// The rate asked of the generator; None for flat out.
    rate: Option<u64>,
    sent: u64,
    answered: u64,
    duration_s: f64,
    /// Non-idle CPU time of the whole machine (generator included).
    busy_s: f64,
    /// Softirq time of the whole machine: where XDP programs and the socket receive path run,
    /// on both ends of the veth.
    softirq_s: f64,
    /// User and system time of the server's processes.
    proc_s: f64,
    /// For xgslb-xdp: how many answers the XDP program counted.
    xdp_answered: Option<u64>,
}

impl Run {
    fn offered_qps(&self) -> f64 {
        self.sent as f64 / self.duration_s
    }
    fn answered_qps(&self) -> f64 {
        self.answered as f64 / self.duration_s
    }
    fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        self.sent.saturating_sub(self.answered) as f64 * 100.0 / self.sent as f64
    }
    fn per_million(&self, secs: f64) -> Option<f64> {
        (self.answered > 0).then(|| secs * 1e6 / self.answered as f64)
    }
    /// Server CPU: its processes plus all softirq time (an upper bound: the generator's
    /// receive path is softirq too).
    fn server_s(&self) -> f64 {
        self.proc_s + self.softirq_s
    }
    fn load(&self) -> String {
        match self.rate {
            Some(r) => format!("{} {} {}k qps", self.tool, self.mix, r / 1000),
            None => format!("{} {} flat out", self.tool, self.mix),
        }
    }
    fn is_rate_curve(&self) -> bool {
        self.tool == "kxdpgun" && self.mix == "hot"
    }
}

/// A system, or one load of it, that gave no figures, and why.
#[derive(Debug, PartialEq)]
struct NotRun {
    what: String,
    why: String,
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no memory preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn parse(lines: &str) -> Result<(Vec<Run>, Vec<NotRun>)> {
    let tick = ticks_per_s();
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in lines
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("load line {}: {line}", i + 1))?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let t = |k: &str| v[k].as_u64().unwrap_or(0) as f64 / tick;
        if let Some(reason) = v["skipped"].as_str().or(v["error"].as_str()) {
            let what = if v["tool"].is_string() {
                format!("{} ({} {} {})", s("system"), s("tool"), s("mix"), v["rate"])
            } else {
                s("system")
            };
            skipped.push(NotRun {
                what,
                why: reason.to_owned(),
            });
            continue;
        }
        runs.push(Run {
            system: s("system"),
            tool: s("tool"),
            mix: s("mix"),
            rate: v["rate"].as_u64(),
            sent: n("sent"),
            answered: n("answered"),
            duration_s: v["duration_s"].as_f64().unwrap_or(1.0).max(1e-3),
            busy_s: t("cpu_busy_ticks"),
            softirq_s: t("cpu_softirq_ticks"),
            proc_s: t("server_proc_ticks"),
            xdp_answered: v["xdp_answered"].as_u64(),
        });
    }
    Ok((runs, skipped))
}

/// The highest answered rate of a system's hot-name runs by `tool` with at most 0.1% loss:
/// None if the system has no such run at all, 0 if every run lost more.
fn best_ok(runs: &[Run], system: &str, tool: &str) -> Option<f64> {
    let mut curve = runs
        .iter()
        .filter(|r| r.system == system && r.tool == tool && r.mix == "hot")
        .peekable();
    curve.peek()?;
    Some(
        curve
            .filter(|r| r.loss_pct() <= LOSS_OK_PCT)
            .map(Run::answered_qps)
            .fold(0.0, f64::max),
    )
}

/// The fixed-rate kxdpgun hot runs of two systems at the highest rate both answered with at
/// most 0.1% loss: the same work, so their CPU per answer compares.
fn common_rate<'a>(runs: &'a [Run], a: &str, b: &str) -> Option<(u64, &'a Run, &'a Run)> {
    let ok = |sys: &str, rate: u64| {
        runs.iter().find(|r| {
            r.system == sys
                && r.is_rate_curve()
                && r.rate == Some(rate)
                && r.loss_pct() <= LOSS_OK_PCT
        })
    };
    runs.iter()
        .filter(|r| r.system == a && r.is_rate_curve())
        .filter_map(|r| r.rate)
        .filter_map(|rate| Some((rate, ok(a, rate)?, ok(b, rate)?)))
        .max_by_key(|(rate, _, _)| *rate)
}

fn version(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output();
    match out {
        Ok(o) => {
            let text = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.lines()
                .find(|l| l.to_ascii_lowercase().contains("version"))
                .unwrap_or("unknown")
                .trim()
                .to_owned()
        }
        Err(_) => "not installed".into(),
    }
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let kernel = Cmd::new("uname", &["-r"])
        .output()
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "kernel": kernel,
        "note": "generator and server share the machine's CPUs",
    })
}

fn versions() -> Value {
    json!({
        "knotd": version("knotd", &["-V"]),
        "nsd": version("nsd", &["-v"]),
        "kxdpgun": version("kxdpgun", &["-V"]),
        "dnsperf": version("dnsperf", &["-h"]),
    })
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

/// One target check: the measured ratio against the wanted one, or why it was not measured.
fn check(out: &mut Vec<Value>, text: &mut String, name: &str, ratio: Option<f64>, want: f64) {
    let (verdict, shown) = match ratio {
        Some(r) if r.is_infinite() => ("MET", "only the first answered without loss".into()),
        Some(r) if r >= want => ("MET", format!("{r:.2}x")),
        Some(r) => ("MISSED", format!("{r:.2}x")),
        None => ("NOT MEASURED", "n/a".into()),
    };
    let _ = writeln!(text, "- {name}: {shown} (target >= {want}x): {verdict}");
    out.push(json!({ "target": name, "ratio": ratio, "wanted": want, "verdict": verdict }));
}

/// Reads the script's lines, prints the report, adds `load` to results.json, writes the chart.
pub fn report(lines_path: &Path, results: &Path, svg: &Path, smoke: bool) -> Result<()> {
    let lines = std::fs::read_to_string(lines_path)
        .with_context(|| format!("cannot read {}", lines_path.display()))?;
    let (mut runs, skipped) = parse(&lines)?;
    runs.sort_by_key(|r| SYSTEMS.iter().position(|(s, _)| *s == r.system));

    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Load: generator and server namespaces over veth{}\n",
        if smoke {
            " (smoke: figures mean little)"
        } else {
            ""
        }
    );
    md.push_str(
        "| system | load | offered qps | answered qps | loss % | server CPU s/M answers | \
         all CPU s/M answers | answered by XDP % |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &runs {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
            r.system,
            r.load(),
            r.offered_qps(),
            r.answered_qps(),
            r.loss_pct(),
            fmt_opt(r.per_million(r.server_s()), 2),
            fmt_opt(r.per_million(r.busy_s), 2),
            r.xdp_answered.map_or(String::new(), |n| format!(
                "{:.1}",
                n as f64 * 100.0 / r.answered.max(1) as f64
            )),
        );
    }
    for NotRun { what, why } in &skipped {
        let _ = writeln!(md, "| {what} | not run: {why} | | | | | | |");
    }
    md.push_str(
        "\nServer CPU = the server processes' user+system time plus all softirq time (XDP \
         programs and socket receive run there, on both ends of the veth, so it is an upper \
         bound); all CPU = every CPU's non-idle time, generator included. Both share 2 vCPUs.\n",
    );

    let mut best = Vec::new();
    for tool in ["kxdpgun", "dnsperf"] {
        let _ = writeln!(
            md,
            "\nHighest rate answered with at most {LOSS_OK_PCT}% loss ({tool}, hot name):"
        );
        for (sys, _) in SYSTEMS {
            let b = best_ok(&runs, sys, tool);
            let steps_all_ok = runs
                .iter()
                .filter(|r| r.system == *sys && r.tool == tool && r.mix == "hot")
                .all(|r| r.loss_pct() <= LOSS_OK_PCT);
            let _ = writeln!(
                md,
                "- {sys}: {}{}",
                match b {
                    Some(0.0) => "none: every run lost more".into(),
                    b => fmt_opt(b, 0),
                },
                if b.is_some() && steps_all_ok {
                    " (no run lost more: a lower bound, set by the rates tried or the generator)"
                } else {
                    ""
                }
            );
            best.push(json!({
                "system": sys,
                "tool": tool,
                "qps": b,
                "lower_bound": b.is_some() && steps_all_ok,
            }));
        }
    }

    // A system whose every run lost more than 0.1% counts as 0.
    let ratio =
        |a: &str, b: &str| match (best_ok(&runs, a, "kxdpgun"), best_ok(&runs, b, "kxdpgun")) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            (Some(a), Some(_)) if a > 0.0 => Some(f64::INFINITY),
            _ => None,
        };
    let mut targets = Vec::new();
    let mut t = String::new();
    check(
        &mut targets,
        &mut t,
        "xgslb XDP vs reflector (highest rate <= 0.1% loss)",
        ratio("xgslb-xdp", "reflector"),
        0.95,
    );
    check(
        &mut targets,
        &mut t,
        "xgslb XDP vs Knot XDP",
        ratio("xgslb-xdp", "knot-xdp"),
        1.5,
    );
    check(
        &mut targets,
        &mut t,
        "xgslb XDP vs Knot UDP",
        ratio("xgslb-xdp", "knot-udp"),
        2.5,
    );
    check(
        &mut targets,
        &mut t,
        "xgslb slow path vs Knot UDP",
        ratio("xgslb-slow", "knot-udp"),
        1.0,
    );
    // Knot XDP's CPU per answer over xgslb's must be at least 4, compared at the highest
    // rate both answered with at most 0.1% loss.
    let (cpu_name, cpu_ratio) = match common_rate(&runs, "xgslb-xdp", "knot-xdp") {
        Some((rate, x, k)) => {
            let (xs, ks) = (x.per_million(x.server_s()), k.per_million(k.server_s()));
            let (xa, ka) = (x.per_million(x.busy_s), k.per_million(k.busy_s));
            let _ = writeln!(
                md,
                "\nCPU s per million answers at {}k qps (both without loss): xgslb XDP {} \
                 server / {} all, Knot XDP {} server / {} all.",
                rate / 1000,
                fmt_opt(xs, 2),
                fmt_opt(xa, 2),
                fmt_opt(ks, 2),
                fmt_opt(ka, 2),
            );
            let r = match (ks, xs) {
                (Some(k), Some(x)) if x > 0.0 => Some(k / x),
                _ => None,
            };
            (
                format!(
                    "server CPU per answer at {}k qps: Knot XDP over xgslb XDP",
                    rate / 1000
                ),
                r,
            )
        }
        None => (
            "server CPU per answer: Knot XDP over xgslb XDP (no common loss-free rate)".into(),
            None,
        ),
    };
    check(&mut targets, &mut t, &cpu_name, cpu_ratio, 4.0);
    let _ = writeln!(
        md,
        "\nTargets (the load part; in-kernel figures above):\n{t}{}",
        if smoke {
            "(smoke run: too short to judge the targets)\n"
        } else {
            ""
        }
    );
    print!("{md}");

    let load = json!({
        "smoke": smoke,
        "machine": machine(),
        "versions": versions(),
        "loss_ok_pct": LOSS_OK_PCT,
        "runs": runs.iter().map(|r| json!({
            "system": r.system,
            "tool": r.tool,
            "mix": r.mix,
            "load": r.load(),
            "rate_asked_qps": r.rate,
            "duration_s": r.duration_s,
            "sent": r.sent,
            "answered": r.answered,
            "offered_qps": r.offered_qps(),
            "answered_qps": r.answered_qps(),
            "loss_pct": r.loss_pct(),
            "server_cpu_s_per_million": r.per_million(r.server_s()),
            "server_proc_cpu_s": r.proc_s,
            "softirq_cpu_s": r.softirq_s,
            "all_cpu_s_per_million": r.per_million(r.busy_s),
            "all_cpu_s": r.busy_s,
            "xdp_answered": r.xdp_answered,
        })).collect::<Vec<_>>(),
        "not_run": skipped.iter().map(|n| json!({ "what": n.what, "why": n.why }))
            .collect::<Vec<_>>(),
        "highest_rate_loss_ok": best,
        "targets": targets,
    });
    let mut doc: Value = match std::fs::read_to_string(results) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", results.display()))?,
        Err(_) => json!({}),
    };
    doc["load"] = load;
    std::fs::write(results, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("cannot write {}", results.display()))?;
    std::fs::write(svg, chart(&runs, smoke))
        .with_context(|| format!("cannot write {}", svg.display()))?;
    println!(
        "Wrote {} (key `load`) and {}.",
        results.display(),
        svg.display()
    );
    Ok(())
}

/// Answered against offered qps of the kxdpgun hot runs, a line per system, as a small SVG.
fn chart(runs: &[Run], smoke: bool) -> String {
    const W: f64 = 720.0;
    const H: f64 = 440.0;
    const L: f64 = 80.0; // left margin
    const B: f64 = 50.0; // bottom margin
    const T: f64 = 40.0; // top margin
    const R: f64 = 150.0; // right margin (legend)
    let curve: Vec<&Run> = runs.iter().filter(|r| r.is_rate_curve()).collect();
    let max = curve
        .iter()
        .flat_map(|r| [r.offered_qps(), r.answered_qps()])
        .fold(1.0_f64, f64::max);
    // A round axis maximum: 1, 2 or 5 times a power of ten.
    let mag = 10f64.powf(max.log10().floor());
    let top = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * mag);
    let x = |q: f64| L + q / top * (W - L - R);
    let y = |q: f64| H - B - q / top * (H - B - T);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">Answered vs offered qps (kxdpgun, hot A name){}</text>"#,
        (W - R + L) / 2.0,
        if smoke { ", smoke run" } else { "" }
    );
    for i in 0..=5 {
        let q = top * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{yq}" x2="{x1}" y2="{yq}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{k}k</text>"##,
            x0 = L,
            x1 = W - R,
            yq = y(q),
            tx = L - 6.0,
            ty = y(q) + 4.0,
            k = q / 1000.0
        );
        let _ = writeln!(
            s,
            r##"<line x1="{xq}" y1="{y0}" x2="{xq}" y2="{y1}" stroke="#ddd"/><text x="{xq}" y="{ty}" text-anchor="middle">{k}k</text>"##,
            xq = x(q),
            y0 = y(0.0),
            y1 = T,
            ty = H - B + 16.0,
            k = q / 1000.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 4"/>"##,
        x(0.0),
        y(0.0),
        x(top),
        y(top)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">offered qps</text>"#,
        (W - R + L) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">answered qps</text>"#,
        (H - B + T) / 2.0,
        (H - B + T) / 2.0
    );
    for (i, (sys, colour)) in SYSTEMS.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = curve
            .iter()
            .filter(|r| r.system == *sys)
            .map(|r| (r.offered_qps(), r.answered_qps()))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ly = T + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{sys}{}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 36.0,
            ly + 4.0,
            if pts.is_empty() { " (not run)" } else { "" }
        );
        if pts.is_empty() {
            continue;
        }
        let path: Vec<String> = pts
            .iter()
            .map(|(o, a)| format!("{:.1},{:.1}", x(*o), y(*a)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (o, a) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(o),
                y(a)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"hot","rate":100000,"duration_s":3,"sent":300000,"answered":300000,"cpu_busy_ticks":150,"cpu_softirq_ticks":60,"server_proc_ticks":0,"xdp_answered":300000}
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"hot","rate":200000,"duration_s":3,"sent":600000,"answered":600000,"cpu_busy_ticks":300,"cpu_softirq_ticks":120,"server_proc_ticks":0,"xdp_answered":600000}
{"system":"knot-xdp","tool":"kxdpgun","mix":"hot","rate":100000,"duration_s":3,"sent":300000,"answered":300000,"cpu_busy_ticks":450,"cpu_softirq_ticks":100,"server_proc_ticks":200,"xdp_answered":null}
{"system":"knot-xdp","tool":"kxdpgun","mix":"hot","rate":200000,"duration_s":3,"sent":600000,"answered":540000,"cpu_busy_ticks":600,"cpu_softirq_ticks":100,"server_proc_ticks":400,"xdp_answered":null}
{"system":"knot-xdp","tool":"dnsperf","mix":"mix","rate":null,"duration_s":4,"sent":400000,"answered":400000,"cpu_busy_ticks":600,"cpu_softirq_ticks":100,"server_proc_ticks":400,"xdp_answered":null}
{"system":"xgslb-slow","tool":"kxdpgun","mix":"hot","rate":10000,"duration_s":3,"sent":30000,"answered":20000,"cpu_busy_ticks":60,"cpu_softirq_ticks":10,"server_proc_ticks":40,"xdp_answered":null}
{"system":"nsd","skipped":"did not start"}
"#;

    #[test]
    fn highest_loss_free_rate_and_common_rate() {
        let (runs, skipped) = parse(LINES).expect("sample lines parse");
        assert_eq!(runs.len(), 6);
        assert_eq!(
            skipped,
            vec![NotRun {
                what: "nsd".into(),
                why: "did not start".into()
            }]
        );
        assert_eq!(best_ok(&runs, "xgslb-xdp", "kxdpgun"), Some(200000.0));
        // The 200k run lost 10%; the dnsperf run is another tool and another mix.
        assert_eq!(best_ok(&runs, "knot-xdp", "kxdpgun"), Some(100000.0));
        assert_eq!(best_ok(&runs, "knot-xdp", "dnsperf"), None);
        assert_eq!(best_ok(&runs, "xgslb-slow", "kxdpgun"), Some(0.0));
        assert_eq!(best_ok(&runs, "reflector", "kxdpgun"), None);
        let (rate, x, k) = common_rate(&runs, "xgslb-xdp", "knot-xdp").expect("100k is common");
        assert_eq!(rate, 100000);
        assert_eq!(
            (x.system.as_str(), k.system.as_str()),
            ("xgslb-xdp", "knot-xdp")
        );
    }

    #[test]
    fn chart_has_a_line_per_system_run() {
        let (runs, _) = parse(LINES).expect("sample lines parse");
        let svg = chart(&runs, false);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("nsd (not run)"));
    }
}
