//! xgslbd: the xgslb daemon. Parses its command line, runs `xgslb::daemon::run` until SIGINT
//! or SIGTERM (SIGHUP reloads the config, SIGUSR2 upgrades in place through `--replace`),
//! prints the error once and exits non-zero on failure.
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use tokio_util::sync::CancellationToken;
use xgslb::{config::XdpModeSetting, daemon};

/// xgslb authoritative DNS server and GSLB, with an XDP fast path.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Interface to attach the XDP program to (overrides server.interface).
    #[arg(long)]
    iface: Option<String>,
    /// XDP attach mode (overrides server.xdp_mode).
    #[arg(long, value_enum)]
    xdp_mode: Option<XdpModeSetting>,
    /// bpffs directory for pinned maps and link (overrides server.pin_dir).
    #[arg(long)]
    pin_dir: Option<PathBuf>,
    /// On exit, leave the pinned XDP program attached and answering.
    #[arg(long)]
    leave_serving: bool,
    /// The control socket (overrides server.control_socket).
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// Take over from the xgslbd running on this control socket without losing a query:
    /// it hands over its sockets and pin-directory lock, this one publishes and serves,
    /// then it exits leaving the XDP program attached. Without one, start as usual.
    #[arg(long)]
    replace: bool,
    /// Only validate the config (its zones and GSLB names too) and exit: 0 when it would
    /// serve. Needs no privileges; nothing is bound or loaded.
    #[arg(long)]
    check: bool,
    /// Log lines as text for people or JSON for collectors. Levels come from RUST_LOG
    /// (default info); nothing is logged per packet.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("xgslbd: --log-level {:?}: {e}", cli.log_level);
                return ExitCode::FAILURE;
            }
        },
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if cli.check {
        return check(&cli.config);
    }
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each error's message already names its cause; the chain would repeat it.
            eprintln!("xgslbd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check`: the config read and built as xgslbd would serve it.
fn check(path: &std::path::Path) -> ExitCode {
    let checked = xgslb::config::Config::load(path)
        .map_err(daemon::DaemonError::from)
        .and_then(|cfg| daemon::build(&cfg).map(|_| cfg.zones.len()));
    match checked {
        Ok(zones) => {
            println!("{}: valid ({zones} zones)", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xgslbd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        xgslb::signals::cancel_on_termination(shutdown.clone());
        let opts = daemon::Options {
            iface: cli.iface,
            xdp_mode: cli.xdp_mode,
            pin_dir: cli.pin_dir,
            leave_serving: cli.leave_serving,
            control_socket: cli.control_socket,
            replace: cli.replace,
        };
        // Installed before anything else: a SIGHUP during start-up (whose default action
        // would end the process, pins and all) is held and handled once xgslbd serves.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        // SIGUSR2 (whose default action also ends the process) upgrades: held likewise.
        let usr2 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2());
        let ready = move |handle: daemon::DaemonHandle| {
            println!("xgslbd ready");
            notify_ready();
            match usr2 {
                Ok(usr2) => {
                    tokio::spawn(upgrade_on_sigusr2(usr2));
                }
                Err(e) => tracing::error!(
                    "cannot install the SIGUSR2 handler ({e}): upgrade with xgslbd --replace"
                ),
            }
            match hup {
                Ok(hup) => {
                    tokio::spawn(reload_on_sighup(handle, hup));
                }
                Err(e) => tracing::error!(
                    "cannot install the SIGHUP handler ({e}): reload through xgslbctl"
                ),
            }
        };
        daemon::run(&cli.config, opts, ready, shutdown).await?;
        Ok(())
    })
}

/// Tells systemd (`Type=notify`, when NOTIFY_SOCKET is set) that this process serves and is
/// the service's main process: after `--replace` the successor takes the service over from
/// the process it replaced (the unit needs `NotifyAccess=all`).
fn notify_ready() {
    let states = [
        sd_notify::NotifyState::MainPid(std::process::id()),
        sd_notify::NotifyState::Ready,
    ];
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!("cannot tell systemd this xgslbd is ready: {e}");
    }
}

/// SIGUSR2 upgrades in place: starts this binary's path again (the file a package upgrade
/// replaced) with the same arguments and `--replace`, which takes the sockets and the pins
/// over from this process without losing a query; this one then exits. The successor's
/// failure before it serves leaves this one serving, and is logged here.
async fn upgrade_on_sigusr2(mut usr2: tokio::signal::unix::Signal) {
    while usr2.recv().await.is_some() {
        let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        // argv[0] as started (systemd gives the absolute path): /proc/self/exe would name
        // the old binary, deleted by the upgrade.
        let program = match args.first() {
            Some(p) if std::path::Path::new(p).is_absolute() => args.remove(0),
            _ => match std::env::current_exe() {
                Ok(p) => {
                    args.remove(0);
                    p.into_os_string()
                }
                Err(e) => {
                    tracing::error!("SIGUSR2: cannot tell which binary to start: {e}");
                    continue;
                }
            },
        };
        if !args.iter().any(|a| a == "--replace") {
            args.push("--replace".into());
        }
        tracing::info!("SIGUSR2: starting {program:?} --replace to take over");
        match std::process::Command::new(&program).args(&args).spawn() {
            Ok(mut child) => {
                // Reaped here if it ends while this process lives (it failed, or handed
                // over in turn); once this one exits, it is the service's main process.
                std::thread::spawn(move || match child.wait() {
                    Ok(status) if !status.success() => tracing::error!(
                        "SIGUSR2: the new xgslbd exited ({status}); this one serves on"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!("SIGUSR2: waiting for the new xgslbd: {e}"),
                });
            }
            Err(e) => tracing::error!("SIGUSR2: cannot start {program:?}: {e}"),
        }
    }
}

/// SIGHUP reloads the config; a config that fails validation or publication is refused and
/// logged, and the old one keeps serving. The reload waits for the publication, off the
/// async threads.
async fn reload_on_sighup(handle: daemon::DaemonHandle, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        let h = handle.clone();
        let outcome = tokio::task::spawn_blocking(move || h.reload()).await;
        // The console lists reloads with the other events, as `xgslbctl reload` records them.
        let (kind, text) = match outcome {
            Ok(Ok(())) => {
                tracing::info!("SIGHUP: config reloaded and serving");
                ("reload", "config reloaded on SIGHUP".to_owned())
            }
            Ok(Err(e)) => {
                tracing::error!("SIGHUP: reload refused, the old config keeps serving: {e}");
                ("reload_refused", format!("SIGHUP: {e}"))
            }
            Err(e) => {
                tracing::error!("SIGHUP: the reload did not finish: {e}");
                (
                    "reload_refused",
                    format!("SIGHUP: the reload did not finish: {e}"),
                )
            }
        };
        let now = daemon::ingest::now_ms();
        handle.recent_events().record(now, kind, None, text);
    }
}
