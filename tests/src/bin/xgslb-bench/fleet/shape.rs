//! The fleet's shape and the configs it is written as: sites with one virtual server per
//! agent, a pool per virtual server, the wide IPs, and per EDNS its `[agents]`, `[peering]`
//! and a `[[peer]]` for every other EDNS (full mesh, relay on), each pair with its own key.
//!
//! Site `s` has `agents_per_site` virtual servers, one agent each. EDNS `i` runs at site `i`;
//! the sites past the last EDNS report to EDNS `s % ednss`. Virtual server `j` heads pool `j`,
//! a global-availability pool of it and the virtual servers at the same position in the next
//! two sites; wide IP `w` is served by pool `w % vss`. So a virtual server going down moves
//! exactly the wide IPs of its pool to the next site's, and back when it is up.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, ensure};
use xgslb::test_model::TestModel;
use xgslb_tests::agents::write_key;

/// How big a fleet, and how many changes are timed.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub ednss: usize,
    pub sites: usize,
    pub agents_per_site: usize,
    pub wideips: usize,
    pub changes: usize,
}

/// The fleet: 16 EDNSs, 200 agents across 20 sites, 10,000 wide IPs.
pub const FULL: Shape = Shape {
    ednss: 16,
    sites: 20,
    agents_per_site: 10,
    wideips: 10_000,
    changes: 30,
};

/// Enough to prove the part works: 4 EDNSs, 20 agents across 5 sites, 500 wide IPs.
pub const SMOKE: Shape = Shape {
    ednss: 4,
    sites: 5,
    agents_per_site: 4,
    wideips: 500,
    changes: 3,
};

/// Each EDNS's agents' port is this plus its index; its peers' port, `PEER_PORT` plus it.
/// Below the ephemeral range (32768 up): the agents' own sockets cannot take them first.
pub const AGENT_PORT: u16 = 25300;
pub const PEER_PORT: u16 = 25600;
/// Each site's agents sign with key id `site + 1`; its secret is this and the site.
pub const AGENT_SECRET: &str = "fleet-agent-secret-0123456789abcdef";

pub fn edns_name(i: usize) -> String {
    format!("edns-{i:02}")
}

pub fn site_name(s: usize) -> String {
    format!("site-{s:02}")
}

pub fn wideip_name(w: usize) -> String {
    format!("w{w:05}.example.test.")
}

impl Shape {
    pub fn vss(&self) -> usize {
        self.sites * self.agents_per_site
    }

    pub fn vs_name(&self, j: usize) -> String {
        format!(
            "vs-{:02}-{:02}",
            j / self.agents_per_site,
            j % self.agents_per_site
        )
    }

    pub fn vs_address(&self, j: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            198,
            18,
            (j / self.agents_per_site) as u8,
            10 + (j % self.agents_per_site) as u8,
        )
    }

    /// Pool `j`'s members in order: `j`, then the same position in the next two sites.
    pub fn pool_members(&self, j: usize) -> [usize; 3] {
        let n = self.vss();
        [
            j,
            (j + self.agents_per_site) % n,
            (j + 2 * self.agents_per_site) % n,
        ]
    }

    /// The EDNS the agents of site `s` report to.
    pub fn edns_of_site(&self, s: usize) -> usize {
        s % self.ednss
    }

    /// Agents reporting to EDNS `i` directly.
    pub fn direct_agents(&self, i: usize) -> usize {
        (0..self.sites)
            .filter(|&s| self.edns_of_site(s) == i)
            .count()
            * self.agents_per_site
    }

    pub fn check(&self) -> Result<()> {
        ensure!(
            (2..=self.sites).contains(&self.ednss) && (3..=200).contains(&self.sites),
            "3 to 200 sites (pools span three), 2 EDNSs to one per site"
        );
        ensure!(
            (1..=200).contains(&self.agents_per_site),
            "1 to 200 agents per site"
        );
        ensure!(
            self.wideips >= self.vss() && self.wideips < 100_000,
            "a wide IP per virtual server at least, fewer than 100,000"
        );
        ensure!(self.changes > 0, "at least one change to time");
        Ok(())
    }
}

/// The key id and file of the pair of EDNSs `a` and `b` (either order).
fn pair_key(a: usize, b: usize) -> (u32, String) {
    let (lo, hi) = (a.min(b), a.max(b));
    (
        1000 + (lo * 256 + hi) as u32,
        format!("peer-{lo:02}-{hi:02}.key"),
    )
}

/// Writes the zone, the agents' keys and every pair's key to `dir`, then each EDNS's config
/// (its balancer pinned to CPU `i % cpus`); returns the configs' paths.
pub fn write_configs(shape: &Shape, dir: &Path, cpus: usize) -> Result<Vec<PathBuf>> {
    let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.test.zone");
    std::fs::copy(&zone, dir.join("example.test.zone"))
        .with_context(|| format!("copy {}", zone.display()))?;
    let mut base = TestModel::new(&["127.0.0.1:0"])
        .set("server", "xdp_mode = \"off\"")
        .set("balancer", "interval_ms = 1000")
        // 16 EDNSs in one directory would share one state file; a real EDNS has its host.
        .set("balancer", "state_file = \"\"")
        .demo_zone();
    for s in 0..shape.sites {
        let file = format!("agent-{s:02}.key");
        write_key(&dir.join(&file), &format!("{AGENT_SECRET}-{s}"));
        base = base.agent_key(s as u32 + 1, &file, Some(&site_name(s)));
    }
    for s in 0..shape.sites {
        let vss: Vec<(String, String)> = (0..shape.agents_per_site)
            .map(|a| {
                let j = s * shape.agents_per_site + a;
                (shape.vs_name(j), shape.vs_address(j).to_string())
            })
            .collect();
        let vss: Vec<(&str, &str)> = vss.iter().map(|(n, a)| (n.as_str(), a.as_str())).collect();
        base = base.site(&site_name(s), &format!("lb-{s:02}"), &vss);
    }
    for j in 0..shape.vss() {
        let members = shape.pool_members(j).map(|m| shape.vs_name(m));
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        base = base.pool(&format!("p{j}"), &members, "global_availability");
    }
    for w in 0..shape.wideips {
        base = base.wideip(&wideip_name(w), &[&format!("p{}", w % shape.vss())]);
    }
    for a in 0..shape.ednss {
        for b in a + 1..shape.ednss {
            let (id, file) = pair_key(a, b);
            write_key(
                &dir.join(file),
                &format!("fleet-peer-secret-{id}-0123456789"),
            );
        }
    }
    let mut paths = Vec::new();
    for i in 0..shape.ednss {
        let mut t = base
            .clone()
            .set("balancer", &format!("cpu = {}", i % cpus.max(1)))
            .agents(&format!("127.0.0.1:{}", AGENT_PORT + i as u16))
            .peering(
                &edns_name(i),
                &site_name(i),
                &format!("127.0.0.1:{}", PEER_PORT + i as u16),
            );
        for j in (0..shape.ednss).filter(|&j| j != i) {
            let (id, file) = pair_key(i, j);
            t = t.peer(
                &edns_name(j),
                &site_name(j),
                &format!("127.0.0.1:{}", PEER_PORT + j as u16),
                id,
                &file,
            );
        }
        let path = dir.join(format!("{}.toml", edns_name(i)));
        std::fs::write(&path, t.toml()).with_context(|| format!("write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
