//! What the tests of the xgslbd binary share: the command that runs it on a config with JSON
//! logs, and starting it with its log lines delivered as they come.
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
