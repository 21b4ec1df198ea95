//! xgslbd in-process for tests: its own thread inside the server namespace, a config and zone
//! written to a temporary directory, its own bpffs pin directory, stopped (and detached) when
//! the guard drops.
use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use xgslb::{config::XdpModeSetting, daemon, test_model::TestModel};

use crate::{netns::NetnsPair, pins::PinDir};

/// How long a daemon may take to start: a bound, not a sleep.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A config file and the demo zone in a temporary directory.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// Writes `config` (and the demo zone when it names it).
    pub fn new(config: &TestModel) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        config.write(dir.path());
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("xgslb.toml")
    }
}

/// A running in-process xgslbd.
pub struct Daemon {
    shutdown: CancellationToken,
    thread: Option<JoinHandle<Result<(), String>>>,
    pin_dir: PathBuf,
    /// The pin directory, when this daemon owns it (removed on drop).
    _pins: Option<PinDir>,
    handle: Option<daemon::DaemonHandle>,
    control: PathBuf,
}

impl Daemon {
    /// Starts xgslbd with `config` in the server namespace of `pair`, XDP attached to the
    /// server veth in `mode`, and waits until it serves.
    pub fn start(pair: &NetnsPair, config: &Path, mode: XdpModeSetting) -> Self {
        let pins = PinDir::new("daemon");
        let opts = daemon::Options {
            iface: Some(crate::netns::SERVER_IF.into()),
            xdp_mode: Some(mode),
            pin_dir: Some(pins.path().to_owned()),
            leave_serving: false,
            control_socket: None,
            replace: false,
        };
        let mut d = Self::start_with(pair, config, opts);
        d._pins = Some(pins);
        d
    }

    /// Starts xgslbd in namespace `ns`, XDP attached to `iface` natively, with its own pins.
    pub fn start_in(ns: &str, iface: &str, config: &Path) -> Self {
        let pins = PinDir::new("daemon");
        let opts = daemon::Options {
            iface: Some(iface.into()),
            xdp_mode: Some(XdpModeSetting::Native),
            pin_dir: Some(pins.path().to_owned()),
            leave_serving: false,
            control_socket: None,
            replace: false,
        };
        let mut d = Self::start_ns(ns, config, opts);
        d._pins = Some(pins);
        d
    }

    /// Starts xgslbd with `opts` as given (the caller owns the pin directory).
    pub fn start_with(pair: &NetnsPair, config: &Path, opts: daemon::Options) -> Self {
        Self::start_ns(&pair.server, config, opts)
    }

    fn start_ns(ns: &str, config: &Path, opts: daemon::Options) -> Self {
        Self::try_start_ns(ns, config, opts).unwrap_or_else(|e| panic!("xgslbd did not start: {e}"))
    }

    /// Starts xgslbd with `opts` in namespace `ns`, or returns how it failed to start.
    pub fn try_start_ns(
        ns: &str,
        config: &Path,
        mut opts: daemon::Options,
    ) -> Result<Self, String> {
        // Each daemon its own control socket, beside its pins' name.
        let control = opts.control_socket.get_or_insert_with(|| {
            let pins = opts.pin_dir.clone().unwrap_or_default();
            let tag = pins.file_name().map(|n| n.to_string_lossy().into_owned());
            PathBuf::from(format!("/tmp/{}.control.sock", tag.unwrap_or_default()))
        });
        let control = control.clone();
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        let pin_dir = opts
            .pin_dir
            .clone()
            .expect("tests name their pin directory");
        let server_ns = ns.to_owned();
        let config = config.to_owned();
        let token = shutdown.clone();
        let thread = std::thread::spawn(move || {
            crate::netns::enter_namespace(&server_ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(daemon::run(
                &config,
                opts,
                move |handle| {
                    let _ = ready_tx.send(handle);
                },
                token,
            ))
            .map_err(|e| format!("{e:#}"))
        });
        let mut d = Daemon {
            shutdown,
            thread: Some(thread),
            pin_dir,
            _pins: None,
            handle: None,
            control,
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(handle) => {
                d.handle = Some(handle);
                Ok(d)
            }
            Err(_) => Err(match d.join() {
                Err(e) => e,
                Ok(()) => "it stopped without an error before it was ready".into(),
            }),
        }
    }

    /// The handle that drives the daemon (reload, metrics, publications).
    pub fn handle(&self) -> &daemon::DaemonHandle {
        self.handle.as_ref().expect("set once the daemon is ready")
    }

    /// Waits until a publication satisfies `done` (a bound, not a sleep: it wakes on every
    /// publication) and returns it.
    pub fn wait_published(
        &self,
        what: &str,
        done: impl Fn(&xgslb::view::Published) -> bool,
    ) -> xgslb::view::Published {
        let mut rx = self.handle().subscribe();
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let now = *rx.borrow_and_update();
            if done(&now) {
                return now;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                panic!("timed out waiting for a publication: {what} (last: {now:?})");
            }
            // A small runtime just to wait on the watch channel with a timeout.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let changed = rt.block_on(async { tokio::time::timeout(left, rx.changed()).await });
            if !matches!(changed, Ok(Ok(()))) {
                panic!("no publication: {what} (last: {now:?})");
            }
        }
    }

    /// Its control socket.
    pub fn control_socket(&self) -> &Path {
        &self.control
    }

    /// Its bpffs pin directory.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// XDP counters, summed over CPUs.
    pub fn stats(&self) -> [u64; xgslb_common::Counter::COUNT] {
        xgslb::maps::dataplane::read_pinned_stats(&self.pin_dir).expect("read stats")
    }

    fn join(&mut self) -> Result<(), String> {
        self.shutdown.cancel();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("daemon thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Stops the daemon and returns how it ended.
    pub fn stop(mut self) -> Result<(), String> {
        self.join()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The config a test daemon uses: the demo zone, listeners on the server's addresses.
pub fn test_model() -> TestModel {
    TestModel::new(&LISTEN).demo_zone()
}

/// The server's DNS listeners: port 53 on `netns::SERVER_V4` and `netns::SERVER_V6`.
pub const LISTEN: [&str; 2] = ["198.18.0.2:53", "[2001:db8::2]:53"];
