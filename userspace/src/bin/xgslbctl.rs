//! xgslbctl: operate a running xgslbd: `status`, `peers` and changes over its control
//! socket, `stats` from the pinned maps.
use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use xgslb_common::Counter;

#[derive(Parser, Debug)]
#[command(version, about = "Operate a running xgslbd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which virtual server or site a command acts on.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// A virtual server.
    #[arg(long)]
    vs: Option<String>,
    /// Every virtual server of a site.
    #[arg(long)]
    site: Option<String>,
}

impl TargetArgs {
    fn target(self) -> xgslb::control::protocol::Target {
        use xgslb::control::protocol::Target;
        match (self.vs, self.site) {
            (Some(vs), _) => Target::Vs(vs),
            (None, Some(site)) => Target::Site(site),
            // clap's group makes exactly one of them present.
            (None, None) => Target::Vs(String::new()),
        }
    }
}

/// The control socket option of the commands that use it.
#[derive(clap::Args, Debug)]
struct SocketArgs {
    /// xgslbd's control socket.
    #[arg(long, default_value = "/run/xgslb/control.sock")]
    socket: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// How xgslbd decided a wide IP's answer for a client: the tiers and methods tried, why
    /// each virtual server was in or out, and the addresses and shares XDP holds.
    Explain {
        /// The wide IP.
        wideip: String,
        /// The client's (LDNS's) address.
        #[arg(long)]
        client: String,
        /// The EDNS Client Subnet the LDNS sends for its client (e.g. 198.18.3.0/24): the
        /// answer and scope the response carries for it.
        #[arg(long)]
        ecs: Option<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Put a virtual server (--vs) or a site's (--site) back in rotation.
    Enable {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Take a virtual server or a site's out of rotation.
    Disable {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Stop new answers to a virtual server or a site's (resolvers keep cached answers
    /// until their TTL).
    Drain {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Set a virtual server's ratio.
    SetRatio {
        #[arg(long)]
        vs: String,
        ratio: u32,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// The model as xgslbd holds it now (with operator changes and health).
    Show {
        #[arg(value_enum)]
        what: xgslb::control::protocol::ShowWhat,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// The peer EDNSs: state (up, silent, never heard), last contact, messages, refused
    /// datagrams, relayed reports, decisions held of the wide IPs deferred to each,
    /// subscriptions, and divergence.
    Peers {
        /// Only the divergent wide IPs, a `peer wide-ip` line each (exit 0 with or without).
        #[arg(long, conflicts_with = "json")]
        divergent: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Re-read the config (--check: only validate it).
    Reload {
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// What xgslbd publishes, its agents (address, site, last report, state) and the agent
    /// ingest's counters, over the control socket.
    Status {
        /// xgslbd's control socket.
        #[arg(long, default_value = "/run/xgslb/control.sock")]
        socket: PathBuf,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// XDP counters (frames received, answered, passed to the kernel by reason, dropped),
    /// the publication generation, the slow path's UDP counters (summed over its workers)
    /// and the zone transfers' and NOTIFYs': either part alone when only it can be read
    /// (XDP off: no pins).
    Stats {
        /// bpffs directory of the daemon's pinned maps.
        #[arg(long, default_value = "/sys/fs/bpf/xgslb")]
        pin_dir: PathBuf,
        /// xgslbd's control socket (for the slow path's counters).
        #[arg(long, default_value = "/run/xgslb/control.sock")]
        socket: PathBuf,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Print again every this many seconds (with the rate since the last print) until
        /// interrupted.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
    },
    /// The pinned maps: paths, the publication generation and entry counts.
    Maps {
        /// bpffs directory of the daemon's pinned maps.
        #[arg(long, default_value = "/sys/fs/bpf/xgslb")]
        pin_dir: PathBuf,
    },
    /// Shell completions for xgslbctl, on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Status { socket, json } => status(&socket, json),
        Command::Explain {
            wideip,
            client,
            ecs,
            socket,
        } => send(
            socket,
            xgslb::control::protocol::Command::Explain {
                wideip,
                client,
                ecs,
            },
        ),
        Command::Enable { target, socket } => send(
            socket,
            xgslb::control::protocol::Command::Enable {
                target: target.target(),
            },
        ),
        Command::Disable { target, socket } => send(
            socket,
            xgslb::control::protocol::Command::Disable {
                target: target.target(),
            },
        ),
        Command::Drain { target, socket } => send(
            socket,
            xgslb::control::protocol::Command::Drain {
                target: target.target(),
            },
        ),
        Command::SetRatio { vs, ratio, socket } => send(
            socket,
            xgslb::control::protocol::Command::SetRatio { vs, ratio },
        ),
        Command::Show { what, socket } => {
            send(socket, xgslb::control::protocol::Command::Show { what })
        }
        Command::Peers { divergent, socket } => peers(&socket, divergent),
        Command::Reload { check, socket } => {
            send(socket, xgslb::control::protocol::Command::Reload { check })
        }
        Command::Stats {
            pin_dir,
            socket,
            json,
            watch,
        } => stats(&pin_dir, &socket, json, watch),
        Command::Maps { pin_dir } => maps(&pin_dir),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into memory first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "xgslbctl", &mut script);
            match std::io::stdout().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xgslbctl: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Counters as one JSON object, in their order (names are keys, values numbers).
struct Fields<'a>(&'a [(&'static str, u64)]);

impl serde::Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().copied())
    }
}

/// `xgslbctl stats`: the XDP counters and publication facts from the pinned maps, and the
/// slow path's UDP counters over the control socket; exit 2 when neither can be read.
fn stats(
    pin_dir: &std::path::Path,
    socket: &std::path::Path,
    json: bool,
    watch: Option<u64>,
) -> ExitCode {
    let mut last: Option<Vec<u64>> = None;
    loop {
        let xdp = xgslb::maps::dataplane::read_pinned_stats(pin_dir).and_then(|stats| {
            xgslb::maps::dataplane::read_pinned_meta(pin_dir).map(|meta| (stats, meta))
        });
        let udp =
            xgslb::control::client::command(socket, xgslb::control::protocol::Command::Status)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    r.as_status()
                        .map(|s| (s.udp, s.transfers))
                        .ok_or_else(|| "no status".to_owned())
                });
        let mut fields: Vec<(&'static str, u64)> = Vec::new();
        match (&xdp, &udp) {
            (Err(x), Err(u)) => {
                eprintln!(
                    "xgslbctl: {x} (is xgslbd running with --pin-dir {}?); control socket {}: {u}",
                    pin_dir.display(),
                    socket.display()
                );
                return ExitCode::from(2);
            }
            _ => {
                if let Ok((stats, meta)) = &xdp {
                    fields.extend(Counter::ALL.iter().map(|c| (c.name(), stats[*c as usize])));
                    fields.extend([
                        ("generation", meta.generation),
                        ("swaps", meta.swaps),
                        ("selections", meta.selections),
                        ("region_prefixes", meta.prefixes),
                    ]);
                }
                if let Ok((udp, transfers)) = &udp {
                    fields.extend(udp.fields());
                    fields.extend(transfers.fields());
                }
            }
        }
        if json {
            match serde_json::to_string(&Fields(&fields)) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("xgslbctl: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            let values: Vec<u64> = fields.iter().map(|f| f.1).collect();
            for (i, (name, v)) in fields.iter().enumerate() {
                match (watch, &last) {
                    (Some(secs), Some(prev)) if prev.len() == values.len() => {
                        let rate = v.saturating_sub(prev[i]) as f64 / secs.max(1) as f64;
                        println!("{name:<24}{v:>14}{rate:>14.1}/s");
                    }
                    _ => println!("{name:<24}{v:>14}"),
                }
            }
            last = Some(values);
        }
        let Some(secs) = watch else {
            return ExitCode::SUCCESS;
        };
        println!();
        std::thread::sleep(std::time::Duration::from_secs(secs.max(1)));
    }
}

/// `xgslbctl maps`: the pins under `pin_dir` and what the meta map says of the tables.
fn maps(pin_dir: &std::path::Path) -> ExitCode {
    let meta = match xgslb::maps::dataplane::read_pinned_meta(pin_dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "xgslbctl: {e} (is xgslbd running with --pin-dir {}?)",
                pin_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut pins: Vec<String> = std::fs::read_dir(pin_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    pins.sort();
    for p in pins {
        println!("{p}");
    }
    println!();
    for (name, v) in [
        ("generation", meta.generation),
        ("swaps", meta.swaps),
        ("selections", meta.selections),
        ("region_prefixes", meta.prefixes),
    ] {
        println!("{name:<24}{v:>14}");
    }
    ExitCode::SUCCESS
}

/// One command over the control socket; exit code 2 (said why) when xgslbd cannot be
/// reached.
fn ask(
    socket: &std::path::Path,
    command: xgslb::control::protocol::Command,
) -> Result<xgslb::control::protocol::Response, ExitCode> {
    xgslb::control::client::command(socket, command).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            // The socket is there: the file's mode (0600) keeps this user out.
            eprintln!(
                "xgslbctl: permission denied on {}: run xgslbctl as root or as the user \
                 xgslbd runs as",
                socket.display()
            );
        } else {
            eprintln!(
                "xgslbctl: cannot reach xgslbd at {}: {e} (is it running? --socket names its \
                 control socket)",
                socket.display()
            );
        }
        ExitCode::from(2)
    })
}

/// `xgslbctl status`: exit 0 on an answer, 1 when xgslbd answers with an error, 2 when it
/// cannot be reached.
fn status(socket: &std::path::Path, json: bool) -> ExitCode {
    let response = match ask(socket, xgslb::control::protocol::Command::Status) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(st) = response.as_status() else {
        eprintln!(
            "xgslbctl: xgslbd refused: {}",
            response.error_text().unwrap_or_default()
        );
        return ExitCode::FAILURE;
    };
    if json {
        match serde_json::to_string(st) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("xgslbctl: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", xgslb::control::text::status(st));
    }
    ExitCode::SUCCESS
}

/// `xgslbctl peers`: exit 0 on an answer (peers or not, divergent or not), 1 when xgslbd
/// answers with an error, 2 when it cannot be reached.
fn peers(socket: &SocketArgs, divergent: bool) -> ExitCode {
    let response = match ask(&socket.socket, xgslb::control::protocol::Command::Peers) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(p) = response.as_peers() else {
        eprintln!(
            "xgslbctl: xgslbd refused: {}",
            response.error_text().unwrap_or_default()
        );
        return ExitCode::FAILURE;
    };
    if socket.json {
        match serde_json::to_string(p) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("xgslbctl: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if divergent {
        print!("{}", xgslb::control::text::divergent(p));
    } else {
        print!("{}", xgslb::control::text::peers(p));
    }
    ExitCode::SUCCESS
}

/// Sends one command and prints the answer: exit 0 when done, 1 when xgslbd refuses (the
/// reason on stderr), 2 when it cannot be reached.
fn send(socket: SocketArgs, command: xgslb::control::protocol::Command) -> ExitCode {
    let response = match ask(&socket.socket, command) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if socket.json {
        match serde_json::to_string(&response) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("xgslbctl: {e}"),
        }
    } else if response.ok {
        print!("{}", xgslb::control::text::body(&response.body));
    }
    if response.ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("xgslbctl: {}", response.error_text().unwrap_or_default());
        ExitCode::FAILURE
    }
}
