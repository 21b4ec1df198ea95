//! What the tests of the xgslbd binary share: the command that runs it on a config with JSON
//! logs, starting it with its log lines delivered as they come, and running it in process.
// Each test binary that shares this module uses only some of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
};

/// xgslbd on `config`, logging JSON to a pipe; the caller may adjust it before starting.
pub fn xgslbd(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xgslbd"));
    cmd.arg("--config")
        .arg(config)
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Starts `cmd` (from [`xgslbd`]); its log lines arrive on the receiver as they are written.
pub fn start(mut cmd: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.spawn().expect("start xgslbd");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// xgslbd run in this process, on a thread with its own one-worker runtime, until `shutdown`
/// is cancelled: its handle once it serves, and the thread (the run's outcome, as text).
pub fn run_in_thread(
    config: std::path::PathBuf,
    shutdown: tokio_util::sync::CancellationToken,
) -> (
    xgslb::daemon::DaemonHandle,
    std::thread::JoinHandle<Result<(), String>>,
) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(xgslb::daemon::run(
            &config,
            xgslb::daemon::Options::default(),
            move |h| {
                let _ = ready_tx.send(h);
            },
            shutdown,
        ))
        .map_err(|e| e.to_string())
    });
    let handle = ready_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("xgslbd started");
    (handle, thread)
}
