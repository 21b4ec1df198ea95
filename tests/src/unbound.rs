//! Debian's unbound as a real ECS resolver in a test namespace: its subnetcache module sends
//! each client's subnet (RFC 7871) to one authoritative server, reached through a stub zone,
//! and caches the answers by the scope that server returns. It runs in the foreground as a
//! child, with its config, pidfile and log in a temporary directory, and is killed (and
//! reaped) when the guard drops, even when the test fails.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The unbound binary (Debian's package).
pub const UNBOUND: &str = "/usr/sbin/unbound";

/// How long unbound may take to answer once started: a bound, not a sleep.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What unbound forwards, and to whom.
pub struct Resolver<'a> {
    /// The namespace it runs in.
    pub ns: &'a str,
    /// The address it listens on (port 53).
    pub listen: &'a str,
    /// Who may ask it (CIDR).
    pub clients: &'a str,
    /// The stub zone (`example.test.`) and the authoritative server's address for it; that
    /// server also gets the clients' subnets.
    pub zone: &'a str,
    pub authority: &'a str,
    /// The longest IPv4 source prefix sent upstream.
    pub max_source_v4: u8,
}

/// A running unbound.
pub struct Unbound {
    child: Child,
    dir: tempfile::TempDir,
}

/// Panics, saying why, unless unbound is installed with its subnetcache module: without it
/// the test would prove nothing about ECS (and under CI a skip would hide that).
pub fn require_subnetcache() {
    let out = Command::new(UNBOUND)
        .arg("-V")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {UNBOUND} -V ({e}): install unbound (`cargo xtask setup` does)")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    let modules = text
        .lines()
        .find(|l| l.starts_with("Linked modules:"))
        .unwrap_or_else(|| panic!("{UNBOUND} -V lists no modules:\n{text}"));
    assert!(
        modules.split_whitespace().any(|m| m == "subnetcache"),
        "{UNBOUND} has no subnetcache module (built without --enable-subnet): {modules}"
    );
}

impl Unbound {
    /// Starts unbound for `r` and waits until it answers on its address.
    pub fn start(r: &Resolver) -> Self {
        require_subnetcache();
        let dir = tempfile::tempdir().expect("unbound dir");
        let d = dir.path().display();
        // No chroot, no user switch, no validator (it would need trust anchors), no qname
        // minimisation (one query per question upstream), no default local zone for test.
        let conf = format!(
            "server:\n\
             \x20   verbosity: 1\n\
             \x20   use-syslog: no\n\
             \x20   logfile: \"\"\n\
             \x20   chroot: \"\"\n\
             \x20   username: \"\"\n\
             \x20   directory: \"{d}\"\n\
             \x20   pidfile: \"{d}/unbound.pid\"\n\
             \x20   num-threads: 1\n\
             \x20   interface: {listen}\n\
             \x20   port: 53\n\
             \x20   do-ip6: no\n\
             \x20   access-control: {clients} allow\n\
             \x20   module-config: \"subnetcache iterator\"\n\
             \x20   send-client-subnet: {authority}\n\
             \x20   max-client-subnet-ipv4: {max4}\n\
             \x20   qname-minimisation: no\n\
             \x20   local-zone: \"test.\" nodefault\n\
             stub-zone:\n\
             \x20   name: \"{zone}\"\n\
             \x20   stub-addr: {authority}\n\
             remote-control:\n\
             \x20   control-enable: no\n",
            listen = r.listen,
            clients = r.clients,
            authority = r.authority,
            zone = r.zone,
            max4 = r.max_source_v4,
        );
        let conf_file = dir.path().join("unbound.conf");
        std::fs::write(&conf_file, conf).expect("unbound conf");
        let check = Command::new("unbound-checkconf")
            .arg(&conf_file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run unbound-checkconf: {e}"));
        assert!(
            check.status.success(),
            "unbound-checkconf refuses the config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("unbound.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", r.ns, UNBOUND, "-d", "-c"])
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {UNBOUND}: {e}"));
        let mut unbound = Unbound { child, dir };
        unbound.wait_answering(r);
        unbound
    }

    /// Polls unbound with a question it answers itself (its version, class CH) until it
    /// answers, it exits, or `START_TIMEOUT` passes.
    fn wait_answering(&mut self, r: &Resolver) {
        let deadline = Instant::now() + START_TIMEOUT;
        let at = format!("@{}", r.listen);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", r.ns, "kdig", "+retry=0", "+time=1"])
                .args([at.as_str(), "+short", "version.server", "CH", "TXT"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run kdig: {e}"));
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("unbound") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "unbound exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "unbound did not answer on {} within {START_TIMEOUT:?}:\n{}",
                r.listen,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What unbound logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("unbound.log")
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
