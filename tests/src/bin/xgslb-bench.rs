//! xgslb-bench: nanoseconds per packet of the XDP program, run by the kernel through
//! BPF_PROG_TEST_RUN, against the reflector (the least an XDP_TX program does: swap and
//! send back). `cargo xtask bench` builds and runs it; it prints a Markdown table and writes
//! the figures as JSON.
//!
//! # Method
//! The kernel times a test run itself (in-program time, no syscall cost) and reports the
//! total divided by the repeat count, in whole nanoseconds. Two ways to use it:
//!
//! - repeat=N in one run: precise, but the kernel runs the program N times on the same
//!   buffer, so from the second run on the program sees its own output. That only measures
//!   the intended path when the output takes the same path again:
//!   - the miss (XDP_PASS) leaves the frame as it was: every run is the same miss;
//!   - the reflector swaps MACs, addresses and ports and sets QR. It reflects only frames to
//!     port 53, so the query is sent *from* port 53 too: the swapped frame is again a frame
//!     to port 53 and takes the same path (setting QR again changes nothing, the checksum
//!     update is a no-op). After an even number of runs the frame is the query with QR set.
//!   - an A hit cannot: its output is a response (QR=1), which the program passes
//!     (pass_not_query), so runs 2..N would time a cheap PASS instead of an answer.
//! - repeat=1, many runs, summing the kernel's durations: every run starts from the
//!   query. Each run's reply is compared with one built independently (tests/src/frame.rs),
//!   and each batch checks that `answered` (or the pass reason) grew by exactly its runs.
//!   The kernel's time for repeat=1 also holds the cost of reading the clock and of the
//!   run loop once per call: that overhead is measured as reflector(repeat=1) minus
//!   reflector(repeat=N) and taken off every repeat=1 figure.
//!
//! The miss is measured both ways. Its repeat=1 figure, less that overhead, stays above its
//! repeat=N one: a repeat=1 run starts cold (the syscall around it evicts the program from
//! the L1 caches and branch predictors), where repeat=N runs it hot, as a busy NIC queue
//! does (NAPI runs the program on up to 64 frames in a row). The reflector is too small to
//! notice. That difference, the miss's cold start, is reported and taken off the A hits as
//! an *estimate* of their warm cost. The target is judged on the measured figure (repeat=1
//! less the overhead): the estimate is shown beside it, not used for the verdict.
//!
//! Each figure is the median of several batches; the batches of all cases are interleaved so
//! that a slow moment of the machine touches them all alike. The thread is pinned to one CPU.
#[path = "xgslb-bench/fleet/mod.rs"]
mod fleet;
#[path = "xgslb-bench/ingest.rs"]
mod ingest;
#[path = "xgslb-bench/scale.rs"]
mod scale;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail, ensure};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use clap::Parser;
use hickory_proto::rr::{Name, RecordType};
use serde_json::json;
use xgslb::{
    config::RrlPolicy,
    dns::{CookieSecret, Cookies, cookies::unix_now},
    maps::{DataPlane, publish::publish_listeners},
    plan::slots::slot_table,
};
use xgslb_common::{AnswerSet, Counter, ListenerKey, MAX_ADDRS, PickMode, qtype};
use xgslb_tests::{
    frame::{
        CLIENT_MAC, CLIENT4, CLIENT6, Opt, SERVER_MAC, SERVER4, SERVER6, Udp, XDP_PASS, XDP_TX,
        dns_a_reply, dns_aaaa_reply, dns_query, ecs_data, wire_name, with_ecs, with_options,
    },
    pins::PinDir,
    zone,
};

const HIT: &str = "www.example.test";
/// A wide IP whose answer differs by client class: its hits work out the class.
const GEO: &str = "geo.example.test";
const MISS: &str = "www.example.org";
const NX: &str = "nope.example.test";
const HIT_ADDR: [u8; 4] = [198, 18, 1, 10];
const GEO_ADDR: [u8; 4] = [198, 18, 3, 10];
const HIT_ADDR6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const TTL: u32 = 300;
/// Region prefixes in the tries (the client's among them, in class 1).
const REGION_PREFIXES: usize = 100_000;
/// The goals: each kind of answer costs at most this many times the reflector (the first
/// prefix of a case's name counts).
const TARGETS: [(&str, f64); 6] = [
    ("A hit with ECS", 3.5),
    ("A hit", 3.0),
    ("AAAA hit", 3.5),
    ("NODATA hit", 3.5),
    ("NXDOMAIN", 4.0),
    ("static RRset hit", 4.0),
];

#[derive(Parser)]
#[command(about = "ns per packet of the xgslb XDP program through BPF_PROG_TEST_RUN")]
struct Args {
    /// A quick run that only proves the bench works.
    #[arg(long)]
    smoke: bool,
    /// Override the repeat count of the repeat=N runs (made even).
    #[arg(long)]
    repeat: Option<u32>,
    /// Only the scale part (publication, memory, lookups at size).
    #[arg(long)]
    scale_only: bool,
    /// Only the agent ingest part.
    #[arg(long)]
    ingest_only: bool,
    /// Only the EDNS fleet part (several xgslbd peered on loopback).
    #[arg(long)]
    fleet_only: bool,
    /// EDNSs in the fleet part (default 16, smoke 4; at most the sites).
    #[arg(long)]
    fleet_ednss: Option<usize>,
    /// Sites in the fleet part (default 20, smoke 5).
    #[arg(long)]
    fleet_sites: Option<usize>,
    /// Wide IPs in the fleet part (default 10,000, smoke 500).
    #[arg(long)]
    fleet_wideips: Option<usize>,
    /// Timed changes in the fleet part (default 30, smoke 3).
    #[arg(long)]
    fleet_changes: Option<usize>,
    /// Only the in-kernel cases (no scale, ingest or fleet part): for comparing program
    /// changes.
    #[arg(long)]
    cases_only: bool,
    /// Wide IP counts of the scale part (each with 8 client classes).
    #[arg(long, value_delimiter = ',')]
    scale_sizes: Option<Vec<u32>>,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

/// How much to run.
#[derive(Clone, Copy)]
struct Plan {
    /// Batches per case; each figure is their median.
    batches: usize,
    /// Runs of repeat=1 per batch.
    runs: u32,
    /// The repeat count of a repeat=N run (even: see the reflector above).
    repeat: u32,
}

const FULL: Plan = Plan {
    batches: 9,
    runs: 20_000,
    repeat: 1_000_000,
};
const SMOKE: Plan = Plan {
    batches: 3,
    runs: 1_000,
    repeat: 20_000,
};

#[derive(Clone, Copy, PartialEq)]
enum Prog {
    Xgslb,
    Reflector,
}

/// One measured case: the frame, the action and output each run must give, and the counter
/// that must grow by one per run (the xgslb program only; the reflector counts nothing).
struct Case {
    name: &'static str,
    prog: Prog,
    frame: Vec<u8>,
    action: u32,
    /// The output of one run on `frame`.
    out_once: Vec<u8>,
    /// The output of `plan.repeat` runs on the same buffer, when those take the same path.
    out_repeated: Option<Vec<u8>>,
    counter: Option<Counter>,
    /// Run with the response rate limit on (`rrl_on`), at a rate the runs stay under.
    rrl: bool,
    /// The answer ends with a fresh server cookie: its timestamp and hash (the last 12
    /// bytes) and the UDP checksum are the second's, not `out_once`'s.
    fresh_cookie: bool,
    /// Figures, ns per packet: one per batch.
    single: Vec<f64>,
    repeated: Vec<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xgslb-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "needs root (BPF)");
    let mut plan = if args.smoke { SMOKE } else { FULL };
    if let Some(n) = args.repeat {
        plan.repeat = n.max(2) & !1;
    }
    // The fleet needs no XDP program, and all the CPUs.
    if args.fleet_only {
        let fleet = fleet::run(fleet_shape(args))?;
        println!("{}", serde_json::to_string_pretty(&fleet)?);
        return Ok(());
    }
    // Before pinning: afterwards this process sees one CPU.
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = pin_to_last_cpu();
    let pins = PinDir::new("bench");
    let mut dp = setup(pins.path())?;
    if args.ingest_only {
        let ingest = ingest::run(args.smoke)?;
        println!("{}", serde_json::to_string_pretty(&ingest)?);
        return Ok(());
    }
    if args.scale_only {
        let sizes = args
            .scale_sizes
            .clone()
            .unwrap_or(scale::FULL_SIZES.to_vec());
        let scale = scale::run(&mut dp, &sizes, scale::PREFIXES)?;
        println!("{}", serde_json::to_string_pretty(&scale)?);
        return Ok(());
    }
    let mut cases = cases();

    // Warm-up (caches, branch predictors, the JIT image): not recorded.
    for case in &mut cases {
        single_runs(&mut dp, case, plan.runs / 10 + 1)?;
    }
    for _ in 0..plan.batches {
        for case in &mut cases {
            let ns = single_runs(&mut dp, case, plan.runs)?;
            case.single.push(ns);
            if case.out_repeated.is_some() {
                let ns = repeated_run(&mut dp, case, plan.repeat)?;
                case.repeated.push(ns);
            }
        }
    }
    let verified = dp
        .program()
        .info()
        .ok()
        .and_then(|i| i.verified_instruction_count());
    let report = Report::new(&cases, plan, args.smoke, (nproc, cpu), verified)?;
    print!("{}", report.markdown());
    // What the program costs the verifier (of its 1M-instruction limit).
    let verified = dp.program().info()?.verified_instruction_count();
    println!(
        "\nverified instructions: {}",
        verified.map_or("unknown (kernel before 5.16)".into(), |n| n.to_string())
    );
    if args.cases_only {
        return Ok(());
    }
    // Wide IPs x 8 classes: 1k to 1M entries (smoke: 1k and 10k).
    let (sizes, prefixes) = if args.smoke {
        (vec![125, 1_250], 2_000)
    } else {
        let sizes = args.scale_sizes.clone();
        (sizes.unwrap_or(scale::FULL_SIZES.to_vec()), scale::PREFIXES)
    };
    let scale = scale::run(&mut dp, &sizes, prefixes)?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let ingest = ingest::run(args.smoke)?;
    // A fleet that does not settle, or a change not published in time, is a result of the
    // full run (printed and kept), not a reason to lose the others; the smoke run must pass.
    let fleet = match fleet::run(fleet_shape(args)) {
        Ok(fleet) => fleet,
        Err(e) if !args.smoke => {
            println!("\n### EDNS fleet\n\nFAILED: {e:#}");
            json!({ "error": format!("{e:#}") })
        }
        Err(e) => return Err(e.context("the fleet part")),
    };
    let mut json = report.json();
    json["verified_instructions"] = json!(verified);
    json["scale"] = scale;
    json["ingest"] = ingest;
    json["fleet"] = fleet;
    let json = serde_json::to_string_pretty(&json)?;
    std::fs::write(&args.out, json + "\n")
        .with_context(|| format!("write {}", args.out.display()))?;
    println!("\nresults: {}", args.out.display());
    Ok(())
}

/// The fleet part's shape: the full or smoke one, with the command line's overrides.
fn fleet_shape(args: &Args) -> fleet::Shape {
    let base = if args.smoke {
        fleet::SMOKE
    } else {
        fleet::FULL
    };
    fleet::Shape {
        ednss: args.fleet_ednss.unwrap_or(base.ednss),
        sites: args.fleet_sites.unwrap_or(base.sites),
        wideips: args.fleet_wideips.unwrap_or(base.wideips),
        changes: args.fleet_changes.unwrap_or(base.changes),
        ..base
    }
}

/// Runs on the last CPU only, so that no migration lands between runs. Returns the CPU.
fn pin_to_last_cpu() -> Option<usize> {
    let cpu = std::thread::available_parallelism().ok()?.get() - 1;
    // SAFETY: the set is a zeroed local that CPU_SET fills; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        (libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0).then_some(cpu)
    }
}

/// The program loaded with its maps in `pin_dir`, answering A for HIT on both listeners.
fn setup(pin_dir: &Path) -> Result<DataPlane> {
    let mut dp = DataPlane::load(pin_dir).context("load the XDP program")?;
    let listener = |addr, family| ListenerKey {
        addr,
        port: 53,
        family,
        _pad: 0,
    };
    let mut v4 = [0; 16];
    v4[..4].copy_from_slice(&SERVER4.octets());
    publish_listeners(
        &mut dp.listeners,
        &[listener(v4, 4), listener(SERVER6.octets(), 6)],
    )
    .context("publish listeners")?;
    dp.cookies
        .publish(&Cookies::new(true, cookie_secret(), Default::default()))
        .context("publish cookies")?;
    // One address, one record: every answer is the same, whatever the pick counter says.
    let set = |addr: [u8; 16]| {
        let mut set = AnswerSet {
            ttl: TTL,
            count: 1,
            records: 1,
            pick: PickMode::Counter as u8,
            slots: slot_table(&[1]),
            addrs: [[0; 16]; MAX_ADDRS],
            ..bytemuck::Zeroable::zeroed()
        };
        set.addrs[0] = addr;
        set
    };
    let v4 = |a: [u8; 4]| {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    };
    let name = |n: &str| Name::from_ascii(format!("{n}.")).context("name");
    let sets = [
        (name(HIT)?, RecordType::A, 0, set(v4(HIT_ADDR))),
        (name(HIT)?, RecordType::AAAA, 0, set(HIT_ADDR6)),
        // Class 1 (the client's) gets its own answer; everyone else another.
        (name(GEO)?, RecordType::A, 0, set(v4([198, 18, 9, 9]))),
        (name(GEO)?, RecordType::A, 1, set(v4(GEO_ADDR))),
    ];
    let entries = xgslb_tests::zone::entries(&sets);
    dp.tables
        .swap(&entries, &scale::prefixes(REGION_PREFIXES))
        .context("publish the entries")?;
    dp.reflector().context("load the reflector")?;
    Ok(dp)
}

fn a_query(opt: Option<&Opt>) -> Vec<u8> {
    dns_query(0xbeef, 0x0100, &wire_name(HIT), qtype::A, 1, opt)
}

impl Case {
    /// Whether `out` is the case's output (for a fresh cookie, but for its second).
    fn matches(&self, out: &[u8]) -> bool {
        let want = &self.out_once;
        if !self.fresh_cookie {
            return out == &want[..];
        }
        let n = want.len();
        // The UDP checksum of an untagged frame: after Ethernet, the IP header, 6 bytes.
        let csum =
            14 + if out.get(12..14) == Some(&[0x86, 0xdd]) {
                40
            } else {
                20
            } + 6;
        out.len() == n
            && n > csum + 2
            && out[..csum] == want[..csum]
            && out[csum + 2..n - 12] == want[csum + 2..n - 12]
    }
}

/// The secret of the cookie cases.
fn cookie_secret() -> CookieSecret {
    CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").expect("a secret")
}

/// The client cookie of the cookie cases.
const CLIENT_COOKIE: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

/// An A hit for HIT whose query's COOKIE is `cookie` and whose answer's is `reply_cookie`
/// (`fresh`: a server cookie made now, so compared but for its second).
fn cookie_hit(name: &'static str, q: Udp, reply_cookie: &[u8], fresh: bool) -> Case {
    let reply = dns_a_reply(
        &q.payload,
        wire_name(HIT).len(),
        TTL,
        &[HIT_ADDR],
        Some(false),
    );
    Case {
        fresh_cookie: fresh,
        ..answer_case(
            name,
            q,
            with_options(reply, &[(10, reply_cookie)]),
            Counter::AnsweredAddresses,
        )
    }
}

fn hit(name: &'static str, q: Udp, opt_do: Option<bool>) -> Case {
    let reply = dns_a_reply(&q.payload, wire_name(HIT).len(), TTL, &[HIT_ADDR], opt_do);
    answer_case(name, q, reply, Counter::AnsweredAddresses)
}

/// A case passed for `reason`, unchanged (and so repeatable).
fn pass_case(name: &'static str, frame: Vec<u8>, reason: Counter) -> Case {
    Case {
        name,
        prog: Prog::Xgslb,
        frame: frame.clone(),
        action: XDP_PASS,
        out_once: frame.clone(),
        out_repeated: Some(frame),
        counter: Some(reason),
        rrl: false,
        fresh_cookie: false,
        single: Vec::new(),
        repeated: Vec::new(),
    }
}

/// A case answered with `reply`, counted as `kind`.
fn answer_case(name: &'static str, q: Udp, reply: Vec<u8>, kind: Counter) -> Case {
    Case {
        name,
        prog: Prog::Xgslb,
        frame: q.to_bytes(),
        action: XDP_TX,
        out_once: q.reply(reply).to_bytes(),
        out_repeated: None,
        counter: Some(kind),
        rrl: false,
        fresh_cookie: false,
        single: Vec::new(),
        repeated: Vec::new(),
    }
}

fn cases() -> Vec<Case> {
    let v4 = |payload| Udp::query(IpAddr::V4(CLIENT4), IpAddr::V4(SERVER4), payload);
    let v6 = |payload| Udp::query(IpAddr::V6(CLIENT6), IpAddr::V6(SERVER6), payload);
    let miss = v4(dns_query(
        0xbeef,
        0x0100,
        &wire_name(MISS),
        qtype::A,
        1,
        None,
    ))
    .to_bytes();

    // The reflector's query, from port 53 (see the method above), and what it becomes.
    let mut query = v4(a_query(None));
    query.sport = 53;
    let mut answered = query.payload.clone();
    answered[2] |= 0x80;
    let once = Udp {
        src_mac: SERVER_MAC,
        dst_mac: CLIENT_MAC,
        src: query.dst,
        dst: query.src,
        payload: answered.clone(),
        ..query.clone()
    };
    let twice = Udp {
        payload: answered,
        ..query.clone()
    };
    vec![
        hit("A hit IPv4", v4(a_query(None)), None),
        Case {
            rrl: true,
            ..hit(
                "A hit IPv4, RRL on (under the rate)",
                v4(a_query(None)),
                None,
            )
        },
        {
            // No checksum to verify: what verifying one costs, beside the row above.
            let mut q = v4(a_query(None));
            q.zero_csum = true;
            hit("A hit IPv4, UDP checksum 0", q, None)
        },
        hit(
            "A hit IPv4 with OPT",
            v4(a_query(Some(&Opt::plain()))),
            Some(false),
        ),
        {
            // The longest query XDP answers (512 bytes of DNS, RFC 7830 padding): the whole
            // datagram is summed for its checksum.
            let plain = a_query(Some(&Opt::plain())).len();
            let opt = Opt {
                options: vec![(12, vec![0; 512 - plain - 4])],
                ..Opt::plain()
            };
            hit(
                "A hit IPv4 with OPT, 512-byte query (padding)",
                v4(a_query(Some(&opt))),
                Some(false),
            )
        },
        {
            // The client's own /24 as its subnet, to the classed name: the class and the
            // scope (24, the region's own prefix) come from the ECS trie, and the response
            // echoes the subnet.
            let ecs = ecs_data(1, 24, 0, &CLIENT4.octets()[..3]);
            let opt = Opt {
                options: vec![(8, ecs.clone())],
                ..Opt::plain()
            };
            let q = v4(dns_query(
                0xbeef,
                0x0100,
                &wire_name(GEO),
                qtype::A,
                1,
                Some(&opt),
            ));
            let mut echoed = ecs;
            echoed[3] = 24;
            let reply = dns_a_reply(
                &q.payload,
                wire_name(GEO).len(),
                TTL,
                &[GEO_ADDR],
                Some(false),
            );
            answer_case(
                "A hit with ECS",
                q,
                with_ecs(reply, &echoed),
                Counter::AnsweredAddresses,
            )
        },
        hit("A hit IPv6", v6(a_query(None)), None),
        {
            // A client cookie alone: one SipHash, for the fresh server cookie.
            let opt = Opt {
                options: vec![(10, CLIENT_COOKIE.to_vec())],
                ..Opt::plain()
            };
            let q = v4(a_query(Some(&opt)));
            let server = cookie_secret().server_cookie(&CLIENT_COOKIE, q.src, unix_now());
            let reply = [&CLIENT_COOKIE[..], &server[..]].concat();
            cookie_hit("cookie: A hit IPv4, client cookie", q, &reply, true)
        },
        {
            let opt = Opt {
                options: vec![(10, CLIENT_COOKIE.to_vec())],
                ..Opt::plain()
            };
            let q = v6(a_query(Some(&opt)));
            let server = cookie_secret().server_cookie(&CLIENT_COOKIE, q.src, unix_now());
            let reply = [&CLIENT_COOKIE[..], &server[..]].concat();
            cookie_hit("cookie: A hit IPv6, client cookie", q, &reply, true)
        },
        {
            // A valid server cookie, a minute old: one SipHash to validate it, then echoed.
            let server =
                cookie_secret().server_cookie(&CLIENT_COOKIE, IpAddr::V4(CLIENT4), unix_now() - 60);
            let cookie = [&CLIENT_COOKIE[..], &server[..]].concat();
            let opt = Opt {
                options: vec![(10, cookie.clone())],
                ..Opt::plain()
            };
            cookie_hit(
                "cookie: A hit IPv4, valid server cookie (echoed)",
                v4(a_query(Some(&opt))),
                &cookie,
                false,
            )
        },
        {
            let q = v4(dns_query(
                0xbeef,
                0x0100,
                &wire_name(GEO),
                qtype::A,
                1,
                None,
            ));
            let reply = dns_a_reply(&q.payload, wire_name(GEO).len(), TTL, &[GEO_ADDR], None);
            answer_case(
                "A hit IPv4, 100,000-prefix region table",
                q,
                reply,
                Counter::AnsweredAddresses,
            )
        },
        {
            let q = v4(dns_query(
                0xbeef,
                0x0100,
                &wire_name(HIT),
                qtype::AAAA,
                1,
                None,
            ));
            let reply = dns_aaaa_reply(&q.payload, wire_name(HIT).len(), TTL, &[HIT_ADDR6], None);
            answer_case("AAAA hit", q, reply, Counter::AnsweredAddresses)
        },
        {
            let q = v4(dns_query(
                0xbeef,
                0x0100,
                &wire_name(HIT),
                qtype::HTTPS,
                1,
                None,
            ));
            let reply = zone::nodata(&q.payload, HIT, None);
            answer_case("NODATA hit", q, reply, Counter::AnsweredNoData)
        },
        {
            let apex = wire_name("example.test");
            let q = v4(dns_query(0xbeef, 0x0100, &apex, qtype::MX, 1, None));
            let reply = zone::apex_mx(&q.payload, None);
            answer_case("static RRset hit", q, reply, Counter::AnsweredRecords)
        },
        {
            let q = v4(dns_query(0xbeef, 0x0100, &wire_name(NX), qtype::A, 1, None));
            let reply = zone::nxdomain(&q.payload, NX, None);
            answer_case("NXDOMAIN", q, reply, Counter::AnsweredNxDomain)
        },
        // The cost of the stages, from passes that stop after them (repeatable: a pass
        // leaves the frame as it was).
        pass_case(
            "stage: to the listener check (PASS, another port)",
            {
                let mut q = v4(a_query(None));
                q.dport = 5353;
                q.to_bytes()
            },
            Counter::PassNotListener,
        ),
        pass_case(
            "stage: to the question type (PASS, ANY)",
            v4(dns_query(0xbeef, 0x0100, &wire_name(HIT), 255, 1, None)).to_bytes(),
            Counter::PassQtype,
        ),
        Case {
            name: "miss (no selection, PASS)",
            prog: Prog::Xgslb,
            frame: miss.clone(),
            action: XDP_PASS,
            out_once: miss.clone(),
            out_repeated: Some(miss),
            counter: Some(Counter::PassNoSelection),
            rrl: false,
            fresh_cookie: false,
            single: Vec::new(),
            repeated: Vec::new(),
        },
        Case {
            name: "reflector",
            prog: Prog::Reflector,
            frame: query.to_bytes(),
            action: XDP_TX,
            out_once: once.to_bytes(),
            out_repeated: Some(twice.to_bytes()),
            counter: None,
            rrl: false,
            fresh_cookie: false,
            single: Vec::new(),
            repeated: Vec::new(),
        },
    ]
}

fn program(dp: &mut DataPlane, prog: Prog) -> Result<&mut Xdp> {
    Ok(match prog {
        Prog::Xgslb => dp.program(),
        Prog::Reflector => dp.reflector()?,
    })
}

/// One test run; returns the action, the output and the kernel's ns per repeat.
fn test_run(
    xdp: &mut Xdp,
    frame: &[u8],
    out: &mut [u8],
    repeat: u32,
) -> Result<(u32, usize, u128)> {
    let res = xdp
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(out),
            repeat,
            ..Default::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    Ok((
        res.return_value,
        res.data_size_out as usize,
        res.duration.as_nanos(),
    ))
}

/// Checks that each counter grew by exactly `want` of its own and `received` by `runs`.
fn check_counters(
    case: &Case,
    before: &[u64; Counter::COUNT],
    after: &[u64; Counter::COUNT],
    runs: u64,
) -> Result<()> {
    let Some(counter) = case.counter else {
        return Ok(());
    };
    for c in Counter::ALL {
        let grew = after[c as usize] - before[c as usize];
        let answered = counter != Counter::Answered
            && (Counter::AnsweredAddresses as usize..=Counter::AnsweredNxDomain as usize)
                .contains(&(counter as usize));
        let want = if c == Counter::Received || c == counter || (answered && c == Counter::Answered)
        {
            runs
        } else {
            0
        };
        ensure!(
            grew == want,
            "{}: counter {} grew by {grew} over {runs} runs, want {want}",
            case.name,
            c.name()
        );
    }
    Ok(())
}

/// The response rate limit of the RRL case: the highest rate (far above what the runs of
/// one second reach, so every answer goes out and is checked as usual), slip 2, and two
/// exempt prefixes the client is not in (the exempt lookup walks a trie that holds some).
fn rrl_on() -> Result<RrlPolicy> {
    Ok(RrlPolicy {
        responses_per_second: xgslb_common::MAX_RRL_RATE,
        slip: 2,
        exempt: vec!["198.19.0.0/16".parse()?, "2001:db8:ffff::/48".parse()?],
        ..RrlPolicy::default()
    })
}

/// Turns the response rate limit on for a case that asks for it, off for the others.
fn set_rrl(dp: &mut DataPlane, case: &Case) -> Result<()> {
    let policy = if case.rrl {
        rrl_on()?
    } else {
        RrlPolicy::default()
    };
    dp.rrl.publish(&policy).context("publish the RRL policy")
}

/// `runs` runs of repeat=1, each checked; returns the mean of the kernel's durations.
fn single_runs(dp: &mut DataPlane, case: &Case, runs: u32) -> Result<f64> {
    set_rrl(dp, case)?;
    let before = dp.stats()?;
    let mut out = vec![0u8; 2048];
    let mut total = 0u128;
    let xdp = program(dp, case.prog)?;
    for _ in 0..runs {
        let (action, len, ns) = test_run(xdp, &case.frame, &mut out, 1)?;
        if action != case.action || !case.matches(&out[..len]) {
            let after = dp.stats()?;
            let grew: Vec<&str> = Counter::ALL
                .iter()
                .filter(|c| after[**c as usize] != before[**c as usize])
                .map(|c| c.name())
                .collect();
            bail!(
                "{}: action {action} (want {}), output as expected: {}, counted {grew:?}\n  got  {:02x?}\n  want {:02x?}",
                case.name,
                case.action,
                out[..len] == case.out_once[..],
                &out[..len],
                case.out_once
            );
        }
        total += ns;
    }
    check_counters(case, &before, &dp.stats()?, runs.into())?;
    Ok(total as f64 / f64::from(runs))
}

/// One run of repeat=`repeat`, checked; returns the kernel's ns per repeat.
fn repeated_run(dp: &mut DataPlane, case: &Case, repeat: u32) -> Result<f64> {
    let want = case.out_repeated.as_ref().context("not repeatable")?;
    set_rrl(dp, case)?;
    let before = dp.stats()?;
    let mut out = vec![0u8; 2048];
    let (action, len, ns) = test_run(program(dp, case.prog)?, &case.frame, &mut out, repeat)?;
    ensure!(
        action == case.action && out[..len] == want[..],
        "{} repeat={repeat}: action {action} (want {}), output as expected: {}",
        case.name,
        case.action,
        out[..len] == want[..]
    );
    check_counters(case, &before, &dp.stats()?, repeat.into())?;
    Ok(ns as f64)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

struct Row {
    name: &'static str,
    checked: String,
    raw: f64,
    corrected: f64,
    repeated: Option<f64>,
    single: Vec<f64>,
    repeated_batches: Vec<f64>,
}

struct Report {
    rows: Vec<Row>,
    overhead: f64,
    reflector: f64,
    cold_start: f64,
    plan: Plan,
    smoke: bool,
    cpu: Option<usize>,
    nproc: usize,
    kernel: String,
    cpu_model: String,
    /// Instructions the verifier processed to load the program (its limit is 1,000,000).
    verified: Option<u32>,
}

impl Report {
    fn new(
        cases: &[Case],
        plan: Plan,
        smoke: bool,
        (nproc, cpu): (usize, Option<usize>),
        verified: Option<u32>,
    ) -> Result<Self> {
        let refl = cases
            .iter()
            .find(|c| c.prog == Prog::Reflector)
            .context("no reflector case")?;
        let reflector = median(&refl.repeated);
        let overhead = median(&refl.single) - reflector;
        let miss = cases
            .iter()
            .find(|c| c.counter == Some(Counter::PassNoSelection))
            .context("no miss case")?;
        let cold_start = median(&miss.single) - overhead - median(&miss.repeated);
        let rows = cases
            .iter()
            .map(|c| {
                let raw = median(&c.single);
                let checked = match (c.action, c.counter) {
                    (XDP_TX, Some(k)) => format!("XDP_TX, reply byte-exact, {} +1/run", k.name()),
                    (_, Some(k)) => format!("XDP_PASS, frame unchanged, {} +1/run", k.name()),
                    _ => "XDP_TX, reflected frame byte-exact".into(),
                };
                Row {
                    name: c.name,
                    checked,
                    raw,
                    corrected: raw - overhead,
                    repeated: (!c.repeated.is_empty()).then(|| median(&c.repeated)),
                    single: c.single.clone(),
                    repeated_batches: c.repeated.clone(),
                }
            })
            .collect();
        let kernel = std::process::Command::new("uname")
            .arg("-r")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_default();
        Ok(Self {
            rows,
            overhead,
            reflector,
            cold_start,
            plan,
            smoke,
            cpu,
            nproc,
            kernel,
            cpu_model,
            verified,
        })
    }

    /// The answered cases with their ratio to the reflector, measured and warm estimate,
    /// and their target.
    fn hits(&self) -> impl Iterator<Item = (&Row, f64, f64, f64)> {
        self.rows.iter().filter_map(|r| {
            let target = TARGETS
                .iter()
                .find(|(prefix, _)| r.name.starts_with(prefix))?
                .1;
            let measured = r.corrected / self.reflector;
            let warm = (r.corrected - self.cold_start) / self.reflector;
            Some((r, measured, warm, target))
        })
    }

    fn markdown(&self) -> String {
        let p = self.plan;
        let mut s = format!(
            "## XDP program, ns per packet (BPF_PROG_TEST_RUN)\n\n\
             Machine: {} CPUs ({}), kernel {}; bench pinned to CPU {}.{}\n\
             The verifier processed {} instructions to load the program (limit 1,000,000).\n\
             Median of {} batches; a batch is {} runs of repeat=1 each checked, or one run of \
             repeat={}.\n\n",
            self.nproc,
            self.cpu_model,
            self.kernel,
            self.cpu.map_or("none".into(), |c| c.to_string()),
            if self.smoke {
                " SMOKE RUN: the figures are rough."
            } else {
                ""
            },
            self.verified
                .map_or("an unknown number of".into(), |n| n.to_string()),
            p.batches,
            p.runs,
            p.repeat,
        );
        s += "| case | checked on every run | repeat=1 (kernel) | repeat=1 less timer | \
              repeat=N |\n|---|---|---:|---:|---:|\n";
        for r in &self.rows {
            let rep = r
                .repeated
                .map_or("n/a (answers its own output)".into(), |v| format!("{v:.0}"));
            s += &format!(
                "| {} | {} | {:.1} | {:.1} | {rep} |\n",
                r.name, r.checked, r.raw, r.corrected
            );
        }
        s += "\nThe queries (IPv4 unless named, no OPT unless named): A and AAAA hits ask for an \
              answer set's name; the 100,000-prefix case asks for a wide IP whose answer \
              differs by client class, from a client in one of 100,000 region prefixes (so the \
              class is worked out); the ECS case asks that wide IP with the client's /24 as an \
              EDNS Client Subnet (class and scope from the ECS trie, the subnet echoed); the RRL \
              case is the A hit with the response rate limit on (its bucket counted, never \
              over the rate); NODATA asks HTTPS of that answer set's name; the static \
              RRset is the apex MX with mail's A in additional; NXDOMAIN asks A of \
              nope.example.test; the stage rows stop early (another port, type ANY) to show \
              what the parse costs.\n";
        s += &format!(
            "\nTimer overhead of a repeat=1 run (reflector repeat=1 minus repeat=N): {:.1} ns, \
             taken off the repeat=1 figures. Reflector: {:.0} ns per packet.\n\
             Cold start (the miss: repeat=1 less timer, minus repeat=N): {:.1} ns; an A hit \
             run hot is estimated at its repeat=1 figure less that.\n\n",
            self.overhead, self.reflector, self.cold_start
        );
        for (r, measured, warm, target) in self.hits() {
            s += &format!(
                "- {}: {measured:.2}x the reflector (about {warm:.2}x run hot); target \
                 (<= {target}x): {}\n",
                r.name,
                if measured <= target { "MET" } else { "MISSED" }
            );
        }
        s
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "machine": {
                "nproc": self.nproc,
                "kernel": self.kernel,
                "cpu_model": self.cpu_model,
                "pinned_cpu": self.cpu,
            },
            "smoke": self.smoke,
            "plan": {
                "batches": self.plan.batches,
                "runs_per_batch": self.plan.runs,
                "repeat": self.plan.repeat,
            },
            "verified_instructions": self.verified,
            "unit": "ns per packet",
            "timer_overhead_ns": self.overhead,
            "reflector_ns": self.reflector,
            "cold_start_ns": self.cold_start,
            "cases": self.rows.iter().map(|r| json!({
                "name": r.name,
                "checked": r.checked,
                "repeat1_kernel_ns": r.raw,
                "repeat1_less_timer_ns": r.corrected,
                "repeatN_ns": r.repeated,
                "batches_repeat1_ns": r.single,
                "batches_repeatN_ns": r.repeated_batches,
            })).collect::<Vec<_>>(),
            "target": self.hits().map(|(r, measured, warm, target)| json!({
                "case": r.name,
                "ratio_to_reflector": measured,
                "ratio_to_reflector_warm_estimate": warm,
                "max_ratio": target,
                "met": measured <= target,
            })).collect::<Vec<_>>(),
        })
    }
}
