//! xgslb-agent in-process for tests: its own thread and runtime inside a site namespace,
//! stopped (killed, as far as xgslbd can tell) when the guard drops or on `stop`.
use std::{path::Path, sync::mpsc, thread::JoinHandle, time::Duration};

use tokio_util::sync::CancellationToken;
use xgslb::agent::{self, AgentConfig};

/// A running agent.
pub struct Agent {
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// Writes `secret` to `path` with owner-only mode, as both ends require of key files.
pub fn write_key(path: &Path, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, secret).expect("write the key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

impl Agent {
    /// Starts the agent of the config file at `config` inside namespace `ns`.
    pub fn start(ns: &str, config: &Path) -> Self {
        let cfg = AgentConfig::load(config).unwrap_or_else(|e| panic!("agent config: {e}"));
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let ns = ns.to_owned();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            crate::netns::enter_namespace(&ns);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(agent::run(cfg, token, move || {
                let _ = ready_tx.send(());
            }))
            .map_err(|e| e.to_string())
        });
        let mut a = Agent {
            shutdown,
            thread: Some(thread),
        };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let err = a.join();
            panic!("xgslb-agent did not start: {err:?}");
        }
        a
    }

    fn join(&mut self) -> Result<(), String> {
        self.shutdown.cancel();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("agent thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Stops the agent: it sends nothing more.
    pub fn stop(mut self) {
        let _ = self.join();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
