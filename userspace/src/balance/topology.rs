//! Topology: the score of a (client, virtual server) pair from the topology records, and the
//! region containment it needs (regions contain regions, transitively).
//!
//! A record matches when its LDNS side matches the client (Any, or a region among the
//! client's `ldns_regions`, which already lists every group containing the client's region)
//! and its target side matches the virtual server (its site, or a region whose prefixes, or
//! those of any region it contains, hold the virtual server's address). The score of the pair
//! is the highest score of the matching records, 0 when none matches.
use std::net::IpAddr;

use crate::model::{ClientContext, LdnsMatch, Model, RegionId, TargetMatch, VsId};

/// Topology score of virtual server `vs` for `client`.
pub fn score(model: &Model, client: &ClientContext, vs: VsId) -> u32 {
    let Some(v) = model.vss.get(vs) else {
        return 0;
    };
    model
        .topology
        .iter()
        .filter(|r| match r.ldns {
            LdnsMatch::Any => true,
            LdnsMatch::Region(g) => client.ldns_regions.contains(&g),
        })
        .filter(|r| match r.target {
            TargetMatch::Site(s) => s == v.site,
            TargetMatch::Region(g) => region_holds(model, g, v.addr),
        })
        .map(|r| r.score)
        .max()
        .unwrap_or(0)
}

/// Whether `addr` is in a prefix of `region` or of a region it contains.
pub fn region_holds(model: &Model, region: RegionId, addr: IpAddr) -> bool {
    descendants(model, region).into_iter().any(|r| {
        model
            .regions
            .get(r)
            .is_some_and(|g| g.prefixes.iter().any(|p| p.contains(&addr)))
    })
}

/// `region` and every region it contains, transitively (each once; a cycle, which the config
/// refuses, would not loop).
pub fn descendants(model: &Model, region: RegionId) -> Vec<RegionId> {
    let mut out = vec![region];
    let mut i = 0;
    while let Some(&r) = out.get(i) {
        for &m in model.regions.get(r).map_or(&[][..], |g| &g.members[..]) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        i += 1;
    }
    out
}

/// `region` first, then every region containing it, transitively, nearest first (each once).
pub fn ancestors(model: &Model, region: RegionId) -> Vec<RegionId> {
    let mut out = vec![region];
    let mut i = 0;
    while let Some(&r) = out.get(i) {
        for (g, group) in model.regions.iter().enumerate() {
            if group.members.contains(&r) && !out.contains(&g) {
                out.push(g);
            }
        }
        i += 1;
    }
    out
}
