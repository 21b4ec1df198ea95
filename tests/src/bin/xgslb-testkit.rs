//! Helpers for the demo, the tests and the bench, kept out of the operator's `xgslbctl`:
//! an XDP_PASS program for the client end of a veth pair, a tiny HTTP server for demo
//! virtual servers, and the bench's XDP_TX reflector.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xgslb-testkit",
    about = "Demo, test and bench helpers for xgslb"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach an XDP_PASS program to the client end of a veth pair: veth delivers XDP_TX
    /// frames only to a peer whose receive side runs NAPI, which an XDP program turns on.
    /// The link is pinned so it stays after this command (remove the pin to detach it).
    VethPeer {
        /// The client-side veth (run this in its network namespace).
        #[arg(long)]
        iface: String,
        /// Where to pin the link.
        #[arg(long)]
        pin: PathBuf,
    },
    /// A tiny HTTP server answering `200 ok` to everything, to stand behind a demo virtual
    /// server so that an agent has something real to check.
    DemoHttp {
        /// address:port to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Attach the XDP_TX reflector (IPv4 UDP to port 53 sent straight back with QR set; it
    /// answers nothing real) to the server end of the load bench's veth, its link pinned.
    BenchReflector {
        /// The server-side interface (run this in its network namespace).
        #[arg(long)]
        iface: String,
        /// Where to pin the link.
        #[arg(long)]
        pin: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::VethPeer { iface, pin } => {
            xgslb::maps::DataPlane::attach_pass_pinned(&iface, &pin).map_err(|e| e.to_string())
        }
        Command::BenchReflector { iface, pin } => {
            xgslb::maps::DataPlane::attach_reflector_pinned(&iface, &pin).map_err(|e| e.to_string())
        }
        Command::DemoHttp { listen } => {
            demo_http(listen).map_err(|e| format!("demo-http on {listen}: {e}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xgslb-testkit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Answers every request on `listen` with `200 ok`, one thread per connection, until killed.
fn demo_http(listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else {
            continue;
        };
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 2048];
            if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                );
            }
        });
    }
    Ok(())
}
