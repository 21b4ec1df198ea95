//! The load bench's report: scripts/bench-load.sh runs the systems and loads and writes one
//! JSON line per system and load; this turns them into the Markdown tables on stdout, the
//! `load` object of target/bench/results.json, the chart target/bench/load.svg and the
//! target checks of the issues.
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

/// The systems with response rate limiting on, which the script loads only with the flood
/// (kxdpgun flat out, the hot name, one source address), after the others' order.
const RRL_SYSTEMS: &[&str] = &["xgslb-xdp-rrl", "xgslb-slow-rrl"];

/// The query files (mixes) the script loads every system with, what they hold, and a short
/// title for the chart.
const MIXES: &[(&str, &str, &str)] = &[
    ("hot", "www.example.test A only", "hot: www.example.test A"),
    (
        "gslb",
        "40% A, 30% AAAA, 15% HTTPS of the wide IPs and answer sets, 10% nonexistent names, \
         5% SOA/NS/MX/TXT",
        "gslb: what resolvers send a GSLB zone",
    ),
    (
        "nxflood",
        "nonexistent names only, a new random label each",
        "nxflood: a new nonexistent name each query",
    ),
];

/// The load tools, in the order of the tables.
const TOOLS: &[&str] = &["kxdpgun", "dnsperf"];

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
    /// For xgslb-xdp: how many frames the XDP program saw.
    xdp_received: Option<u64>,
    /// For a system with an XDP program on the server veth: the program's runs during the
    /// load and its mean run time (kernel.bpf_stats_enabled), which on veth is the program's
    /// own cost, apart from the generator's that shares its CPU.
    xdp_prog_runs: Option<u64>,
    xdp_prog_ns: Option<f64>,
    /// For an -rrl system: responses its path sent whole, slipped and dropped by the rate
    /// limit during the load (its counters).
    rrl: Option<Limited>,
}

/// What a path's response rate limit did during one load.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Limited {
    whole: u64,
    slipped: u64,
    dropped: u64,
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
    /// The share of the frames the XDP program saw that it answered itself (xgslb-xdp).
    fn xdp_share(&self) -> Option<f64> {
        match (self.xdp_answered, self.xdp_received) {
            (Some(a), Some(r)) if r > 0 => Some(a as f64 / r as f64),
            _ => None,
        }
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
            xdp_received: v["xdp_received"].as_u64(),
            xdp_prog_runs: v["xdp_prog_runs"].as_u64(),
            xdp_prog_ns: v["xdp_prog_ns_per_packet"].as_f64(),
            rrl: match (
                v["rrl_whole"].as_u64(),
                v["rrl_slipped"].as_u64(),
                v["rrl_dropped"].as_u64(),
            ) {
                (Some(whole), Some(slipped), Some(dropped)) => Some(Limited {
                    whole,
                    slipped,
                    dropped,
                }),
                _ => None,
            },
        });
    }
    Ok((runs, skipped))
}

/// The highest answered rate of a system's runs of `mix` by `tool` with at most 0.1% loss:
/// None if the system has no such run at all, 0 if every run lost more.
fn best_ok(runs: &[Run], system: &str, tool: &str, mix: &str) -> Option<f64> {
    let mut curve = runs
        .iter()
        .filter(|r| r.system == system && r.tool == tool && r.mix == mix)
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

/// A system's flat-out run of `mix` by `tool`.
fn flat<'a>(runs: &'a [Run], system: &str, tool: &str, mix: &str) -> Option<&'a Run> {
    runs.iter()
        .find(|r| r.system == system && r.tool == tool && r.mix == mix && r.rate.is_none())
}

/// How a target compares the measured value with the wanted one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// value >= x, shown as a ratio
    AtLeast(f64),
    /// value > x, shown as a ratio
    MoreThan(f64),
    /// value <= x, shown as a ratio
    AtMost(f64),
    /// value >= x, both shown as percentages of 1
    ShareAtLeast(f64),
}

impl Want {
    fn met(self, v: f64) -> bool {
        match self {
            Want::AtLeast(w) | Want::ShareAtLeast(w) => v >= w,
            Want::MoreThan(w) => v > w,
            Want::AtMost(w) => v <= w,
        }
    }
    fn show(self, v: f64) -> String {
        match self {
            Want::ShareAtLeast(_) => format!("{:.2}%", v * 100.0),
            _ => format!("{v:.2}x"),
        }
    }
    fn wanted(self) -> String {
        match self {
            Want::AtLeast(w) => format!(">= {w}x"),
            Want::MoreThan(w) => format!("> {w}x"),
            Want::AtMost(w) => format!("<= {w}x"),
            Want::ShareAtLeast(w) => format!(">= {}%", w * 100.0),
        }
    }
    fn parts(self) -> (&'static str, f64) {
        match self {
            Want::AtLeast(w) | Want::ShareAtLeast(w) => (">=", w),
            Want::MoreThan(w) => (">", w),
            Want::AtMost(w) => ("<=", w),
        }
    }
}

/// A measured value, or why there is none.
type Measured = Result<f64, String>;

/// The verdict of one target and how the value reads.
fn judge(value: &Measured, want: Want) -> (&'static str, String) {
    match value {
        Ok(v) if v.is_infinite() => (
            if want.met(*v) { "MET" } else { "MISSED" },
            "only the first answered without loss".into(),
        ),
        Ok(v) if v.is_nan() => ("NOT MEASURED", "not a number".into()),
        Ok(v) => (if want.met(*v) { "MET" } else { "MISSED" }, want.show(*v)),
        Err(why) => ("NOT MEASURED", why.clone()),
    }
}

/// One target check: the measured value against the wanted one, or why it was not measured.
fn check(out: &mut Vec<Value>, text: &mut String, name: &str, value: Measured, want: Want) {
    let (verdict, shown) = judge(&value, want);
    let _ = writeln!(
        text,
        "- {name}: {shown} (target {}): {verdict}",
        want.wanted()
    );
    let (cmp, wanted) = want.parts();
    out.push(json!({
        "target": name,
        "ratio": value.as_ref().ok().filter(|v| v.is_finite()),
        "comparison": cmp,
        "wanted": wanted,
        "verdict": verdict,
        "why_not_measured": value.err(),
    }));
}

/// a / b of two measured figures of systems `an` and `bn`, or why there is none.
fn ratio_of(a: Option<f64>, an: &str, b: Option<f64>, bn: &str) -> Measured {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Ok(a / b),
        (Some(a), Some(_)) if a > 0.0 => Ok(f64::INFINITY),
        (Some(_), Some(_)) => Err(format!("neither {an} nor {bn} has a figure above 0")),
        (None, None) => Err(format!("no run of {an} nor of {bn}")),
        (None, _) => Err(format!("no run of {an}")),
        (_, None) => Err(format!("no run of {bn}")),
    }
}

/// The load's targets (issue "Bench additions" and the ones before it): one line each in
/// `text`, one object each in the returned list.
fn targets(runs: &[Run], text: &mut String) -> Vec<Value> {
    let mut targets = Vec::new();
    let t = text;
    // A system whose every run lost more than 0.1% counts as 0.
    let best = |a: &str, b: &str| {
        ratio_of(
            best_ok(runs, a, "kxdpgun", "hot"),
            a,
            best_ok(runs, b, "kxdpgun", "hot"),
            b,
        )
    };
    check(
        &mut targets,
        t,
        "hot name: xgslb XDP vs reflector (highest rate <= 0.1% loss, kxdpgun)",
        best("xgslb-xdp", "reflector"),
        Want::AtLeast(0.95),
    );
    check(
        &mut targets,
        t,
        "hot name: xgslb XDP vs Knot XDP (highest rate <= 0.1% loss, kxdpgun)",
        best("xgslb-xdp", "knot-xdp"),
        Want::AtLeast(1.5),
    );
    check(
        &mut targets,
        t,
        "hot name: xgslb XDP vs Knot UDP (highest rate <= 0.1% loss, kxdpgun)",
        best("xgslb-xdp", "knot-udp"),
        Want::AtLeast(2.5),
    );
    check(
        &mut targets,
        t,
        "hot name: xgslb slow path vs Knot UDP (highest rate <= 0.1% loss, kxdpgun)",
        best("xgslb-slow", "knot-udp"),
        Want::AtLeast(1.0),
    );
    let best_gslb = |sys: &str| best_ok(runs, sys, "kxdpgun", "gslb");
    check(
        &mut targets,
        t,
        "gslb mix: xgslb slow path vs Knot UDP (highest rate <= 0.1% loss, kxdpgun)",
        ratio_of(
            best_gslb("xgslb-slow"),
            "xgslb-slow",
            best_gslb("knot-udp"),
            "knot-udp",
        ),
        Want::AtLeast(1.0),
    );
    // Knot XDP's CPU per answer over xgslb's must be at least 4, compared at the highest
    // rate both answered with at most 0.1% loss.
    let (cpu_name, cpu_ratio) = match common_rate(runs, "xgslb-xdp", "knot-xdp") {
        Some((rate, x, k)) => (
            format!(
                "hot name: server CPU per answer at {}k qps, Knot XDP over xgslb XDP",
                rate / 1000
            ),
            match (k.per_million(k.server_s()), x.per_million(x.server_s())) {
                (Some(k), Some(x)) if x > 0.0 => Ok(k / x),
                _ => Err("no CPU time counted for xgslb XDP".to_owned()),
            },
        ),
        None => (
            "hot name: server CPU per answer, Knot XDP over xgslb XDP".into(),
            Err("no kxdpgun rate both answered with at most 0.1% loss".into()),
        ),
    };
    check(&mut targets, t, &cpu_name, cpu_ratio, Want::AtLeast(4.0));

    // The XDP program's own cost per packet under the gslb mix, against the reflector's under
    // the same load (both kxdpgun flat out).
    let ns = |sys: &str| flat(runs, sys, "kxdpgun", "gslb").and_then(|r| r.xdp_prog_ns);
    check(
        &mut targets,
        t,
        "gslb mix, live: xgslb XDP program ns per packet vs the reflector's (kxdpgun flat out)",
        ratio_of(ns("xgslb-xdp"), "xgslb-xdp", ns("reflector"), "reflector"),
        Want::AtMost(3.5),
    );
    for mix in ["gslb", "nxflood"] {
        let answered = |sys: &str| flat(runs, sys, "kxdpgun", mix).map(Run::answered_qps);
        check(
            &mut targets,
            t,
            &format!("{mix}: xgslb XDP vs reflector, answered flat out (kxdpgun)"),
            ratio_of(
                answered("xgslb-xdp"),
                "xgslb-xdp",
                answered("reflector"),
                "reflector",
            ),
            Want::AtLeast(0.95),
        );
        check(
            &mut targets,
            t,
            &format!("{mix}: xgslb XDP vs Knot XDP, answered flat out (kxdpgun)"),
            ratio_of(
                answered("xgslb-xdp"),
                "xgslb-xdp",
                answered("knot-xdp"),
                "knot-xdp",
            ),
            Want::MoreThan(1.0),
        );
    }
    check(
        &mut targets,
        t,
        "gslb mix: XDP's share (queries the XDP program answered itself, of those it saw; \
         xgslb-xdp, all gslb runs)",
        gslb_share(runs),
        Want::ShareAtLeast(0.99),
    );
    targets
}

/// XDP's share of the gslb mix on xgslb-xdp: the XDP program's answers over the frames it
/// saw, summed over every gslb run (either tool). Loss on the way back does not bend it, as
/// it would answers over the generator's count of replies.
fn gslb_share(runs: &[Run]) -> Measured {
    let (a, r) = runs
        .iter()
        .filter(|r| r.system == "xgslb-xdp" && r.mix == "gslb")
        .filter_map(|r| Some((r.xdp_answered?, r.xdp_received?)))
        .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    if r == 0 {
        return Err("no gslb run of xgslb-xdp with the XDP counters".into());
    }
    Ok(a as f64 / r as f64)
}

/// "answered (loss%)" of a flat-out run, or "n/a".
fn fmt_flat(r: Option<&Run>) -> String {
    r.map_or("n/a".into(), |r| {
        format!("{:.0}k ({:.1}%)", r.answered_qps() / 1000.0, r.loss_pct())
    })
}

/// "highest rate <= 0.1% loss" of a system, tool and mix, for the summary table.
fn fmt_best(runs: &[Run], sys: &str, tool: &str, mix: &str) -> String {
    let all_ok = runs
        .iter()
        .filter(|r| r.system == sys && r.tool == tool && r.mix == mix)
        .all(|r| r.loss_pct() <= LOSS_OK_PCT);
    match best_ok(runs, sys, tool, mix) {
        None => "n/a".into(),
        Some(0.0) => "none".into(),
        Some(b) if all_ok => format!("{:.0}k (lost none)", b / 1000.0),
        Some(b) => format!("{:.0}k", b / 1000.0),
    }
}

/// Reads the script's lines, prints the report, adds `load` to results.json, writes the chart.
pub fn report(lines_path: &Path, results: &Path, svg: &Path, smoke: bool) -> Result<()> {
    let lines = std::fs::read_to_string(lines_path)
        .with_context(|| format!("cannot read {}", lines_path.display()))?;
    let (mut runs, skipped) = parse(&lines)?;
    // Stable: within a system the script's order (tool, mix, rates up, flat out) stays.
    runs.sort_by_key(|r| {
        SYSTEMS
            .iter()
            .map(|(s, _)| *s)
            .chain(RRL_SYSTEMS.iter().copied())
            .position(|s| s == r.system)
    });

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
    md.push_str("Query files (mixes):\n");
    for (mix, what, _) in MIXES {
        let _ = writeln!(md, "- {mix}: {what}");
    }
    md.push_str(
        "\n| system | load | offered qps | answered qps | loss % | server CPU s/M answers | \
         all CPU s/M answers | XDP answered % of seen | XDP program ns/packet |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &runs {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} |",
            r.system,
            r.load(),
            r.offered_qps(),
            r.answered_qps(),
            r.loss_pct(),
            fmt_opt(r.per_million(r.server_s()), 2),
            fmt_opt(r.per_million(r.busy_s), 2),
            r.xdp_share()
                .map_or(String::new(), |s| format!("{:.1}", s * 100.0)),
            r.xdp_prog_ns.map_or(String::new(), |n| format!("{n:.1}")),
        );
    }
    for NotRun { what, why } in &skipped {
        let _ = writeln!(md, "| {what} | not run: {why} | | | | | | | |");
    }
    md.push_str(
        "\nServer CPU = the server processes' user+system time plus all softirq time (XDP \
         programs and socket receive run there, on both ends of the veth, so it is an upper \
         bound); all CPU = every CPU's non-idle time, generator included. Both share 2 vCPUs. \
         XDP answered % of seen: the frames xgslb's XDP program answered over those it saw \
         (the rest went to the slow path). XDP program ns/packet: run_time_ns / run_cnt of \
         the program on the server veth (kernel.bpf_stats_enabled, on for every system); on \
         veth it runs on the generator's CPU, so flat-out rates stop at what generator and \
         program do together, and this is the program's own share.\n",
    );

    md.push_str(&rrl_table(&runs));

    // Per mix: the highest loss-free rate and the flat-out run of each tool.
    let mut best = Vec::new();
    for (mix, what, _) in MIXES {
        let _ = writeln!(
            md,
            "\n### {mix} ({what})\n\n| system | kxdpgun: highest rate <= {LOSS_OK_PCT}% loss | \
             kxdpgun flat out: answered (loss) | XDP program ns/packet (kxdpgun flat out) | \
             dnsperf: highest rate <= {LOSS_OK_PCT}% loss | dnsperf flat out: answered (loss) |\n\
             |---|---:|---:|---:|---:|---:|"
        );
        for (sys, _) in SYSTEMS {
            if !runs.iter().any(|r| r.system == *sys && r.mix == *mix) {
                continue;
            }
            let kflat = flat(&runs, sys, "kxdpgun", mix);
            let _ = writeln!(
                md,
                "| {sys} | {} | {} | {} | {} | {} |",
                fmt_best(&runs, sys, "kxdpgun", mix),
                fmt_flat(kflat),
                fmt_opt(kflat.and_then(|r| r.xdp_prog_ns), 1),
                fmt_best(&runs, sys, "dnsperf", mix),
                fmt_flat(flat(&runs, sys, "dnsperf", mix)),
            );
        }
        for tool in TOOLS {
            for (sys, _) in SYSTEMS {
                let b = best_ok(&runs, sys, tool, mix);
                let all_ok = runs
                    .iter()
                    .filter(|r| r.system == *sys && r.tool == *tool && r.mix == *mix)
                    .all(|r| r.loss_pct() <= LOSS_OK_PCT);
                best.push(json!({
                    "system": sys,
                    "tool": tool,
                    "mix": mix,
                    "qps": b,
                    "lower_bound": b.is_some() && all_ok,
                }));
            }
        }
    }
    let _ = writeln!(
        md,
        "\n\"lost none\": no run of that tool and mix lost more than {LOSS_OK_PCT}%, so the \
         figure is a lower bound, set by the rates tried or the generator; \"none\": every \
         run lost more."
    );

    if let Some((rate, x, k)) = common_rate(&runs, "xgslb-xdp", "knot-xdp") {
        let _ = writeln!(
            md,
            "\nCPU s per million answers at {}k qps (hot name, both without loss): xgslb XDP \
             {} server / {} all, Knot XDP {} server / {} all.",
            rate / 1000,
            fmt_opt(x.per_million(x.server_s()), 2),
            fmt_opt(x.per_million(x.busy_s), 2),
            fmt_opt(k.per_million(k.server_s()), 2),
            fmt_opt(k.per_million(k.busy_s), 2),
        );
    }

    // The slow path's CPU beside the socket servers', each at the highest rate both answered.
    for other in ["knot-udp", "nsd"] {
        if let Some((rate, x, o)) = common_rate(&runs, "xgslb-slow", other) {
            let _ = writeln!(
                md,
                "\nCPU s per million answers at {}k qps (hot name, both without loss): xgslb \
                 slow path {} server / {} all, {other} {} server / {} all.",
                rate / 1000,
                fmt_opt(x.per_million(x.server_s()), 2),
                fmt_opt(x.per_million(x.busy_s), 2),
                fmt_opt(o.per_million(o.server_s()), 2),
                fmt_opt(o.per_million(o.busy_s), 2),
            );
        }
    }

    let mut t = String::new();
    let targets = targets(&runs, &mut t);
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
        "mixes": MIXES.iter().map(|(m, what, _)| json!({ "mix": m, "queries": what }))
            .collect::<Vec<_>>(),
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
            "xdp_received": r.xdp_received,
            "xdp_share": r.xdp_share(),
            "xdp_prog_runs": r.xdp_prog_runs,
            "xdp_prog_ns_per_packet": r.xdp_prog_ns,
            "rrl_per_s": r.rrl.map(|l| json!({
                "whole": l.whole as f64 / r.duration_s,
                "slipped": l.slipped as f64 / r.duration_s,
                "dropped": l.dropped as f64 / r.duration_s,
            })),
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

/// Answered against offered qps of the kxdpgun runs (fixed rates and flat out), one panel
/// per mix and a line per system in each, as a small SVG.
/// The flood runs of the -rrl systems: what each path's rate limit sent whole, slipped and
/// dropped per second, beside what the generator offered and got back.
fn rrl_table(runs: &[Run]) -> String {
    let mut md = String::from(
        "\n### Response rate limiting: a flood from one prefix\n\n\
         kxdpgun flat out, www.example.test A from one address, at xgslb with `[rrl]` on \
         (the rate is the script's RRL_RATE per second, slip 2); per second, from the \
         path's own counters.\n\n\
         | system | offered qps | replies received/s | answered whole/s | slipped/s | \
         dropped/s | XDP program ns/packet |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut any = false;
    for r in runs {
        let Some(l) = r.rrl else { continue };
        any = true;
        let per_s = |n: u64| n as f64 / r.duration_s;
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            r.system,
            r.offered_qps(),
            r.answered_qps(),
            per_s(l.whole),
            per_s(l.slipped),
            per_s(l.dropped),
            fmt_opt(r.xdp_prog_ns, 1),
        );
    }
    if any { md } else { String::new() }
}

fn chart(runs: &[Run], smoke: bool) -> String {
    const W: f64 = 720.0;
    const PANEL: f64 = 400.0; // height of one panel
    const TITLE: f64 = 30.0; // the chart's title above the panels
    let mut s = String::new();
    let h = TITLE + PANEL * MIXES.len() as f64;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="15">Answered vs offered qps, kxdpgun (fixed rates, then flat out){}</text>"#,
        W / 2.0,
        if smoke { ", smoke run" } else { "" }
    );
    for (i, (mix, _, title)) in MIXES.iter().enumerate() {
        panel(&mut s, runs, mix, title, TITLE + PANEL * i as f64, W, PANEL);
    }
    s.push_str("</svg>\n");
    s
}

/// One panel of the chart: the kxdpgun runs of `mix`, titled `title`, at vertical offset
/// `top`.
fn panel(s: &mut String, runs: &[Run], mix: &str, title: &str, top: f64, w: f64, h: f64) {
    const L: f64 = 80.0; // left margin
    const B: f64 = 50.0; // bottom margin
    const T: f64 = 40.0; // top margin
    const R: f64 = 150.0; // right margin (legend)
    let curve: Vec<&Run> = runs
        .iter()
        .filter(|r| r.tool == "kxdpgun" && r.mix == mix)
        .collect();
    let max = curve
        .iter()
        .flat_map(|r| [r.offered_qps(), r.answered_qps()])
        .fold(1.0_f64, f64::max);
    // A round axis maximum: 1, 2 or 5 times a power of ten.
    let mag = 10f64.powf(max.log10().floor());
    let axis = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * mag);
    let x = |q: f64| L + q / axis * (w - L - R);
    let y = |q: f64| top + h - B - q / axis * (h - B - T);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{title}</text>"#,
        (w - R + L) / 2.0,
        top + 24.0,
    );
    for i in 0..=5 {
        let q = axis * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{yq}" x2="{x1}" y2="{yq}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{k}k</text>"##,
            x0 = L,
            x1 = w - R,
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
            y1 = top + T,
            ty = top + h - B + 16.0,
            k = q / 1000.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 4"/>"##,
        x(0.0),
        y(0.0),
        x(axis),
        y(axis)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">offered qps</text>"#,
        (w - R + L) / 2.0,
        top + h - 14.0
    );
    let mid = top + (h - B + T) / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="18" y="{mid}" text-anchor="middle" transform="rotate(-90 18 {mid})">answered qps</text>"#,
    );
    for (i, (sys, colour)) in SYSTEMS.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = curve
            .iter()
            .filter(|r| r.system == *sys)
            .map(|r| (r.offered_qps(), r.answered_qps()))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ly = top + T + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{sys}{}</text>"#,
            w - R + 10.0,
            w - R + 30.0,
            w - R + 36.0,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"hot","rate":100000,"duration_s":3,"sent":300000,"answered":300000,"cpu_busy_ticks":150,"cpu_softirq_ticks":60,"server_proc_ticks":0,"xdp_answered":300000}
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"hot","rate":200000,"duration_s":3,"sent":600000,"answered":600000,"cpu_busy_ticks":300,"cpu_softirq_ticks":120,"server_proc_ticks":0,"xdp_answered":600000}
{"system":"knot-xdp","tool":"kxdpgun","mix":"hot","rate":100000,"duration_s":3,"sent":300000,"answered":300000,"cpu_busy_ticks":450,"cpu_softirq_ticks":100,"server_proc_ticks":200,"xdp_answered":null}
{"system":"knot-xdp","tool":"kxdpgun","mix":"hot","rate":200000,"duration_s":3,"sent":600000,"answered":540000,"cpu_busy_ticks":600,"cpu_softirq_ticks":100,"server_proc_ticks":400,"xdp_answered":null}
{"system":"knot-xdp","tool":"dnsperf","mix":"gslb","rate":null,"duration_s":4,"sent":400000,"answered":400000,"cpu_busy_ticks":600,"cpu_softirq_ticks":100,"server_proc_ticks":400,"xdp_answered":null}
{"system":"xgslb-slow","tool":"kxdpgun","mix":"hot","rate":10000,"duration_s":3,"sent":30000,"answered":20000,"cpu_busy_ticks":60,"cpu_softirq_ticks":10,"server_proc_ticks":40,"xdp_answered":null}
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"gslb","rate":100000,"duration_s":3,"sent":300000,"answered":300000,"cpu_busy_ticks":150,"cpu_softirq_ticks":60,"server_proc_ticks":10,"xdp_answered":298000,"xdp_received":300000,"xdp_prog_runs":300000,"xdp_prog_ns_per_packet":190.0}
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"gslb","rate":null,"duration_s":4,"sent":1200000,"answered":1000000,"cpu_busy_ticks":800,"cpu_softirq_ticks":300,"server_proc_ticks":20,"xdp_answered":1190000,"xdp_received":1200000,"xdp_prog_runs":1200000,"xdp_prog_ns_per_packet":200.0}
{"system":"reflector","tool":"kxdpgun","mix":"gslb","rate":null,"duration_s":4,"sent":1600000,"answered":1040000,"cpu_busy_ticks":800,"cpu_softirq_ticks":300,"server_proc_ticks":0,"xdp_answered":null,"xdp_received":null,"xdp_prog_runs":1600000,"xdp_prog_ns_per_packet":50.0}
{"system":"knot-xdp","tool":"kxdpgun","mix":"gslb","rate":null,"duration_s":4,"sent":1600000,"answered":800000,"cpu_busy_ticks":800,"cpu_softirq_ticks":300,"server_proc_ticks":500,"xdp_answered":null,"xdp_received":null,"xdp_prog_runs":1600000,"xdp_prog_ns_per_packet":30.0}
{"system":"xgslb-xdp","tool":"kxdpgun","mix":"nxflood","rate":null,"duration_s":4,"sent":1200000,"answered":1200000,"cpu_busy_ticks":800,"cpu_softirq_ticks":300,"server_proc_ticks":0,"xdp_answered":1200000,"xdp_received":1200000,"xdp_prog_runs":1200000,"xdp_prog_ns_per_packet":150.0}
{"system":"reflector","tool":"kxdpgun","mix":"nxflood","rate":null,"duration_s":4,"sent":1600000,"answered":1600000,"cpu_busy_ticks":800,"cpu_softirq_ticks":300,"server_proc_ticks":0,"xdp_answered":null,"xdp_received":null,"xdp_prog_runs":1600000,"xdp_prog_ns_per_packet":50.0}
{"system":"nsd","skipped":"did not start"}
{"system":"xgslb-xdp-rrl","tool":"kxdpgun","mix":"flood","rate":null,"duration_s":4,"sent":4000000,"answered":2002000,"cpu_busy_ticks":800,"cpu_softirq_ticks":300,"server_proc_ticks":0,"xdp_answered":4000,"xdp_received":4000000,"xdp_prog_runs":4000000,"xdp_prog_ns_per_packet":120.0,"rrl_whole":4000,"rrl_slipped":1998000,"rrl_dropped":1998000}
"#;

    #[test]
    fn highest_loss_free_rate_and_common_rate() {
        let (runs, skipped) = parse(LINES).expect("sample lines parse");
        assert_eq!(runs.len(), 13);
        assert_eq!(
            skipped,
            vec![NotRun {
                what: "nsd".into(),
                why: "did not start".into()
            }]
        );
        assert_eq!(
            best_ok(&runs, "xgslb-xdp", "kxdpgun", "hot"),
            Some(200000.0)
        );
        // The 200k run lost 10%; the dnsperf run is another tool and another mix.
        assert_eq!(best_ok(&runs, "knot-xdp", "kxdpgun", "hot"), Some(100000.0));
        assert_eq!(best_ok(&runs, "knot-xdp", "dnsperf", "hot"), None);
        assert_eq!(
            best_ok(&runs, "knot-xdp", "dnsperf", "gslb"),
            Some(100000.0)
        );
        assert_eq!(best_ok(&runs, "xgslb-slow", "kxdpgun", "hot"), Some(0.0));
        assert_eq!(best_ok(&runs, "reflector", "kxdpgun", "hot"), None);
        // The gslb step at 100k lost nothing; the flat run lost 17%.
        assert_eq!(
            best_ok(&runs, "xgslb-xdp", "kxdpgun", "gslb"),
            Some(100000.0)
        );
        let (rate, x, k) = common_rate(&runs, "xgslb-xdp", "knot-xdp").expect("100k is common");
        assert_eq!(rate, 100000);
        assert_eq!(
            (x.system.as_str(), k.system.as_str()),
            ("xgslb-xdp", "knot-xdp")
        );
    }

    #[test]
    fn targets_of_the_mixes() {
        let (runs, _) = parse(LINES).expect("sample lines parse");
        let mut text = String::new();
        let t = targets(&runs, &mut text);
        let verdict = |prefix: &str| -> (&str, Option<f64>) {
            let v = t
                .iter()
                .find(|v| v["target"].as_str().unwrap().starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}"));
            (v["verdict"].as_str().unwrap(), v["ratio"].as_f64())
        };
        // 200 ns against 50: 4x, over 3.5x.
        assert_eq!(
            verdict("gslb mix, live: xgslb XDP program ns"),
            ("MISSED", Some(4.0))
        );
        // Flat out, gslb: 250k against the reflector's 260k (0.96x) and Knot's 200k.
        let (v, r) = verdict("gslb: xgslb XDP vs reflector");
        assert_eq!(v, "MET");
        assert!((r.unwrap() - 250.0 / 260.0).abs() < 1e-9);
        assert_eq!(verdict("gslb: xgslb XDP vs Knot XDP"), ("MET", Some(1.25)));
        // nxflood: 300k against 400k; Knot XDP has no nxflood run.
        assert_eq!(
            verdict("nxflood: xgslb XDP vs reflector"),
            ("MISSED", Some(0.75))
        );
        assert_eq!(
            verdict("nxflood: xgslb XDP vs Knot XDP"),
            ("NOT MEASURED", None)
        );
        assert!(text.contains("nxflood: xgslb XDP vs Knot XDP, answered flat out (kxdpgun): no run of knot-xdp (target > 1x): NOT MEASURED"));
        // (298k + 1,190k) / (300k + 1,200k) = 99.2%.
        let (v, r) = verdict("gslb mix: XDP's share");
        assert_eq!(v, "MET");
        assert!((r.unwrap() - 1_488_000.0 / 1_500_000.0).abs() < 1e-9);
        // Every target has a line and a verdict.
        assert_eq!(text.lines().count(), t.len());
        assert!(t.iter().all(|v| v["verdict"].is_string()));
    }

    #[test]
    fn the_flood_table_shows_what_the_limit_did_per_second() {
        let (runs, _) = parse(LINES).expect("sample lines parse");
        let table = rrl_table(&runs);
        assert!(
            table.contains("| xgslb-xdp-rrl | 1000000 | 500500 | 1000 | 499500 | 499500 | 120.0 |"),
            "{table}"
        );
        assert_eq!(table.matches("| xgslb-").count(), 1, "{table}");
        assert!(rrl_table(&runs[..1]).is_empty());
    }

    #[test]
    fn wants_compare_and_show() {
        assert!(Want::AtMost(3.5).met(3.5) && !Want::AtMost(3.5).met(3.6));
        assert!(!Want::MoreThan(1.0).met(1.0) && Want::MoreThan(1.0).met(1.01));
        assert_eq!(Want::ShareAtLeast(0.99).wanted(), ">= 99%");
        assert_eq!(Want::ShareAtLeast(0.99).show(0.98765), "98.77%");
        assert_eq!(
            judge(&Ok(f64::INFINITY), Want::AtLeast(0.95)).0,
            "MET",
            "the other system lost more at every rate"
        );
        assert_eq!(
            judge(&Err("no run".into()), Want::AtMost(3.5)),
            ("NOT MEASURED", "no run".to_owned())
        );
    }

    #[test]
    fn chart_has_a_line_per_system_and_mix_run() {
        let (runs, _) = parse(LINES).expect("sample lines parse");
        let svg = chart(&runs, false);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // hot: xgslb-xdp, xgslb-slow, knot-xdp; gslb: xgslb-xdp, knot-xdp, reflector;
        // nxflood: xgslb-xdp, reflector.
        assert_eq!(svg.matches("<polyline").count(), 8);
        assert_eq!(svg.matches("nsd (not run)").count(), 3);
    }
}
