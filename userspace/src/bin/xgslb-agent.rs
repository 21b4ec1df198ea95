//! xgslb-agent: measures a site's virtual servers and LDNS paths and reports to every
//! configured EDNS. Parses its command line, runs `xgslb::agent::run` until SIGINT or SIGTERM,
//! prints the error once and exits non-zero on failure.
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use tokio_util::sync::CancellationToken;
use xgslb::agent::{self, AgentConfig};

/// xgslb site agent: health, load and LDNS path metrics for the EDNSs.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each error's message already names its cause; the chain would repeat it.
            eprintln!("xgslb-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    let config = AgentConfig::load(&cli.config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        xgslb::signals::cancel_on_termination(shutdown.clone());
        agent::run(config, shutdown, || println!("xgslb-agent ready")).await?;
        Ok(())
    })
}
