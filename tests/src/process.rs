//! The real xgslbd binary in a test's server namespace (entered with `nsenter --net`, which
//! keeps bpffs visible, unlike `ip netns exec`): for what an in-process daemon cannot show,
//! such as a process that exits, is killed, or hands over to another.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long xgslbd may take to start or stop: a bound, not a sleep.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The xgslbd binary beside this test's own build (`cargo test --workspace` builds it; run
/// `cargo build -p xgslb --bin xgslbd` first when running one test of this crate alone).
pub fn xgslbd_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/<test> -> target/<profile>/xgslbd
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("xgslbd"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p xgslb --bin xgslbd`",
        bin.display()
    );
    bin
}

/// A running xgslbd process.
pub struct Xgslbd {
    child: Option<Child>,
    /// Its log lines (stderr), as they come.
    pub logs: mpsc::Receiver<String>,
}

impl Xgslbd {
    /// Starts xgslbd in namespace `ns` with `args` and waits until it prints that it is
    /// ready; panics with its log when it exits or takes too long.
    pub fn start(ns: &str, args: &[String]) -> Self {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg(xgslbd_binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xgslbd");
        let (tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("xgslbd: {line}");
                let _ = tx.send(line);
            }
        });
        let (ready_tx, ready) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("xgslbd ready") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut d = Xgslbd {
            child: Some(child),
            logs,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready.recv_timeout(Duration::from_millis(100)).is_ok() {
                return d;
            }
            if let Some(status) = d.try_wait() {
                panic!("xgslbd {args:?} exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "xgslbd {args:?} not ready in time"
            );
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits (bounded) until it exits by itself; panics if it does not.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "xgslbd did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits (bounded) until it exits.
    pub fn signal(&mut self, signal: libc::c_int) -> ExitStatus {
        // SAFETY: kill has no memory preconditions; the pid is our child's, not yet reaped.
        unsafe { libc::kill(self.pid() as i32, signal) };
        self.wait_exit()
    }
}

impl Drop for Xgslbd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.try_wait().ok().flatten().is_none()
        {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
