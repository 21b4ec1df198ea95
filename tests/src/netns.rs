//! Test hosts: a pair of network namespaces joined by a veth pair, created per test and
//! removed when the guard drops (even when the test fails). Addresses come only from
//! 198.18.0.0/15 and 2001:db8::/32; the interfaces exist only inside the namespaces, so tests
//! running in parallel never collide on anything but the namespace names, which are unique.
use std::{
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub const SERVER_V4: &str = "198.18.0.2";
pub const CLIENT_V4: &str = "198.18.0.1";
pub const SERVER_V6: &str = "2001:db8::2";
pub const CLIENT_V6: &str = "2001:db8::1";
/// The server's veth, inside the server namespace.
pub const SERVER_IF: &str = "xg-s0";
/// The client's veth, inside the client namespace.
pub const CLIENT_IF: &str = "xg-c0";

/// Two namespaces ("server", "client") with a veth pair between them.
pub struct NetnsPair {
    pub server: String,
    pub client: String,
    /// The XDP_PASS program on the client veth (see `DataPlane::attach_pass`), with its pins.
    client_xdp: Option<(xgslb::maps::DataPlane, crate::pins::PinDir)>,
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

impl NetnsPair {
    /// Whether an XDP program is attached to the server's interface (as `ip link` shows it).
    pub fn xdp_attached(&self) -> bool {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.server, "link", "show", SERVER_IF])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }

    /// Creates the pair; `tag` names the test in the namespace names.
    pub fn new(tag: &str) -> Self {
        crate::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("xgt-{tag}-{}-{n}", std::process::id());
        let mut pair = NetnsPair {
            server: format!("{base}-s"),
            client: format!("{base}-c"),
            client_xdp: None,
        };
        // The guard exists before anything is created, so a failure below still cleans up.
        run(&["ip", "netns", "add", &pair.server]);
        run(&["ip", "netns", "add", &pair.client]);
        run(&[
            "ip",
            "link",
            "add",
            SERVER_IF,
            "netns",
            &pair.server,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "netns",
            &pair.client,
        ]);
        for (ns, ifname, v4, v6) in [
            (&pair.server, SERVER_IF, SERVER_V4, SERVER_V6),
            (&pair.client, CLIENT_IF, CLIENT_V4, CLIENT_V6),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                ifname,
            ]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ]);
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // A sender with tx checksum offload leaves partial UDP checksums, from which no
        // correct reply can be computed; real NICs deliver full ones.
        run(&[
            "ip",
            "netns",
            "exec",
            &pair.client,
            "ethtool",
            "-K",
            CLIENT_IF,
            "tx",
            "off",
        ]);
        let client = pair.client.clone();
        let attached = std::thread::spawn(move || {
            enter_namespace(&client);
            let pins = crate::pins::PinDir::new("peer");
            let mut dp = xgslb::maps::DataPlane::load(pins.path())
                .unwrap_or_else(|e| panic!("load the XDP object: {e}"));
            dp.attach_pass(CLIENT_IF)
                .unwrap_or_else(|e| panic!("attach the pass program to the client veth: {e}"));
            (dp, pins)
        })
        .join()
        .unwrap_or_else(|_| panic!("attaching the client's XDP program failed"));
        pair.client_xdp = Some(attached);
        pair
    }

    /// Adds another address (CIDR, on the client veth's subnet) to the client, so that one
    /// namespace can ask as several LDNSs (`dig -b ADDR`).
    pub fn add_client_address(&self, cidr: &str) {
        let mut args = vec![
            "ip",
            "-n",
            &self.client,
            "addr",
            "add",
            cidr,
            "dev",
            CLIENT_IF,
        ];
        if cidr.contains(':') {
            args.push("nodad");
        }
        run(&args);
    }

    /// Runs a command in the client namespace and returns its output (whatever its status).
    pub fn client_cmd(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.client))
    }
}

/// Moves the calling thread into the named namespace (for an in-process daemon).
pub fn enter_namespace(name: &str) {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid netns fd; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        self.client_xdp = None;
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A namespace of clients behind another namespace (a resolver's, say): a veth between the
/// two, the leaf's own address and its clients' addresses on the leaf's end, a host route to
/// each client address on the other end. Removed (with its veth) when the guard drops.
pub struct Leaf {
    pub ns: String,
}

/// The leaf's veth (inside the leaf) and its peer (inside the namespace it hangs from).
pub const LEAF_IF: &str = "xg-l1";
pub const LEAF_PEER_IF: &str = "xg-l0";

impl Leaf {
    /// A leaf hanging from namespace `behind`: `gateway` (CIDR) on `behind`'s end, `own`
    /// (CIDR, on the gateway's subnet) on the leaf's, and `clients` (addresses, outside that
    /// subnet) on the leaf's end too, routed to it from `behind`.
    pub fn new(tag: &str, behind: &str, gateway: &str, own: &str, clients: &[&str]) -> Self {
        crate::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let leaf = Leaf {
            ns: format!("xgt-{tag}-{}-{n}-l", std::process::id()),
        };
        run(&["ip", "netns", "add", &leaf.ns]);
        run(&[
            "ip",
            "link",
            "add",
            LEAF_PEER_IF,
            "netns",
            behind,
            "type",
            "veth",
            "peer",
            "name",
            LEAF_IF,
            "netns",
            &leaf.ns,
        ]);
        run(&[
            "ip",
            "-n",
            behind,
            "addr",
            "add",
            gateway,
            "dev",
            LEAF_PEER_IF,
        ]);
        run(&["ip", "-n", &leaf.ns, "addr", "add", own, "dev", LEAF_IF]);
        for client in clients {
            let host = format!("{client}/32");
            run(&["ip", "-n", &leaf.ns, "addr", "add", &host, "dev", LEAF_IF]);
        }
        for (ns, ifname) in [(behind, LEAF_PEER_IF), (leaf.ns.as_str(), LEAF_IF)] {
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
        run(&["ip", "-n", &leaf.ns, "link", "set", "lo", "up"]);
        let via = gateway.split('/').next().unwrap_or(gateway);
        run(&["ip", "-n", &leaf.ns, "route", "add", "default", "via", via]);
        for client in clients {
            let host = format!("{client}/32");
            run(&[
                "ip",
                "-n",
                behind,
                "route",
                "add",
                &host,
                "dev",
                LEAF_PEER_IF,
            ]);
        }
        leaf
    }

    /// Runs a command in the leaf and returns its output (whatever its status).
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.ns))
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth, both ends.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}
