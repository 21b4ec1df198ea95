//! A small network of test hosts: each host a network namespace with one veth into a bridge
//! (itself in a namespace of its own), addresses from 198.18.0.0/15 and 2001:db8::/32 only.
//! Hosts can sit on a second bridge behind a router namespace (one more hop), and a host's
//! link can be slowed or made lossy with tc netem. Everything is removed when the guard
//! drops, even when the test fails.
use std::{
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::netns::run;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The interface of every host (inside its own namespace).
pub const HOST_IF: &str = "eth0";

/// One host on the LAN.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace name.
    pub ns: String,
    pub v4: String,
    pub v6: String,
}

/// Namespaces joined by bridges: segment A (198.18.10.0/24, 2001:db8:10::/64) and, behind a
/// router, segment B (198.18.11.0/24, 2001:db8:11::/64).
pub struct Lan {
    base: String,
    /// Every namespace made, removed on drop (hosts, bridges, router).
    made: Vec<String>,
    next_port: u32,
    /// XDP_PASS programs on bridge ports (veth delivers XDP_TX frames only to a peer with
    /// XDP), with their pin directories.
    peers: Vec<(xgslb::maps::DataPlane, crate::pins::PinDir)>,
}

impl Lan {
    /// An empty network; `tag` names the test in the namespace names.
    pub fn new(tag: &str) -> Self {
        crate::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("xgl-{tag}-{}-{n}", std::process::id());
        let mut lan = Lan {
            base,
            made: Vec::new(),
            next_port: 0,
            peers: Vec::new(),
        };
        for seg in ["a", "b"] {
            let br = lan.bridge_ns(seg);
            lan.add_ns(&br);
            run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"]);
            run(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        }
        // The router between the two segments.
        let router = lan.ns("router");
        lan.add_ns(&router);
        lan.plug(
            &router,
            "a",
            "eth0",
            "198.18.10.254/24",
            "2001:db8:10::fe/64",
        );
        lan.plug(
            &router,
            "b",
            "eth1",
            "198.18.11.254/24",
            "2001:db8:11::fe/64",
        );
        run(&[
            "ip",
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        lan
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.base)
    }

    fn bridge_ns(&self, seg: &str) -> String {
        self.ns(&format!("br{seg}"))
    }

    fn add_ns(&mut self, ns: &str) {
        run(&["ip", "netns", "add", ns]);
        self.made.push(ns.to_owned());
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// A veth from `ns` (named `ifname`) to segment `seg`'s bridge, with addresses.
    fn plug(&mut self, ns: &str, seg: &str, ifname: &str, v4: &str, v6: &str) {
        let br = self.bridge_ns(seg);
        self.next_port += 1;
        let port = format!("p{}", self.next_port);
        run(&[
            "ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", &port,
            "netns", &br,
        ]);
        // XDP on the bridge port before anything is up: attaching it flaps the pair's
        // carrier, which would take IPv6 routes added after it away.
        let br_ns = br.clone();
        let pins = crate::pins::PinDir::new("lanport");
        let port_name = port.clone();
        let attached = std::thread::spawn(move || {
            crate::netns::enter_namespace(&br_ns);
            let mut dp = xgslb::maps::DataPlane::load(pins.path())
                .unwrap_or_else(|e| panic!("load the XDP object: {e}"));
            dp.attach_pass(&port_name)
                .unwrap_or_else(|e| panic!("attach the pass program to {port_name}: {e}"));
            (dp, pins)
        })
        .join()
        .unwrap_or_else(|_| panic!("attaching a bridge port's XDP program failed"));
        self.peers.push(attached);
        run(&["ip", "-n", &br, "link", "set", &port, "master", "br0"]);
        run(&["ip", "-n", &br, "link", "set", &port, "up"]);
        run(&["ip", "-n", ns, "addr", "add", v4, "dev", ifname]);
        run(&["ip", "-n", ns, "addr", "add", v6, "dev", ifname, "nodad"]);
        // Full checksums from senders (see netns.rs): replies built from partial ones are wrong.
        run(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off",
        ]);
        run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
    }

    /// A host on segment A (`last` is the last byte of its addresses: 198.18.10.last,
    /// 2001:db8:10::last), its default routes through the router.
    pub fn host(&mut self, name: &str, last: u8) -> Host {
        self.host_on("a", name, last)
    }

    /// A host on segment B, one router hop away from segment A.
    pub fn host_behind_router(&mut self, name: &str, last: u8) -> Host {
        self.host_on("b", name, last)
    }

    fn host_on(&mut self, seg: &str, name: &str, last: u8) -> Host {
        let ns = self.ns(name);
        self.add_ns(&ns);
        let (net4, net6) = if seg == "a" { (10, 0x10) } else { (11, 0x11) };
        let v4 = format!("198.18.{net4}.{last}");
        let v6 = format!("2001:db8:{net6:x}::{last:x}");
        self.plug(&ns, seg, HOST_IF, &format!("{v4}/24"), &format!("{v6}/64"));
        let gw4 = format!("198.18.{net4}.254");
        let gw6 = format!("2001:db8:{net6:x}::fe");
        run(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "198.18.0.0/15",
            "via",
            &gw4,
        ]);
        run(&[
            "ip",
            "-n",
            &ns,
            "-6",
            "route",
            "add",
            "2001:db8::/32",
            "via",
            &gw6,
        ]);
        Host { ns, v4, v6 }
    }

    /// Adds `delay` (e.g. "40ms") and `loss` (e.g. "20%", or "0%") to everything `host` sends.
    pub fn netem(&self, host: &Host, delay: &str, loss: &str) {
        run(&[
            "ip", "netns", "exec", &host.ns, "tc", "qdisc", "replace", "dev", HOST_IF, "root",
            "netem", "delay", delay, "loss", loss,
        ]);
    }

    /// Runs a command in `host`'s namespace (whatever its status).
    pub fn cmd(&self, host: &Host, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", host.ns))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.peers.clear();
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
