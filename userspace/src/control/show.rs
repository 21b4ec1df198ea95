//! `show`: the live model's objects as tables (header row first), from the published view:
//! sites, servers, virtual servers with their availability, pools, wide IPs, agents, regions.
use std::net::SocketAddr;

use super::protocol::ShowWhat;
use crate::view::View;

/// The table `what` of `view`; agents' ages are as of `now_ms`.
pub fn table(view: &View, what: ShowWhat, now_ms: u64) -> Vec<Vec<String>> {
    let m = &view.config.model;
    let header = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    let site_name = |s: usize| m.sites.get(s).map_or("?", |x| x.name.as_str());
    let mut out = Vec::new();
    match what {
        ShowWhat::Sites => {
            out.push(header(&["SITE", "SERVERS", "VIRTUAL SERVERS"]));
            for (i, site) in m.sites.iter().enumerate() {
                let servers = m.servers.iter().filter(|x| x.site == i).count();
                let vss = m.vss.iter().filter(|v| v.site == i).count();
                out.push(vec![
                    site.name.clone(),
                    servers.to_string(),
                    vss.to_string(),
                ]);
            }
        }
        ShowWhat::Servers => {
            out.push(header(&["SERVER", "SITE", "KIND"]));
            for s in &m.servers {
                out.push(vec![
                    s.name.clone(),
                    site_name(s.site).to_owned(),
                    format!("{:?}", s.kind).to_lowercase(),
                ]);
            }
        }
        ShowWhat::Vs => {
            out.push(header(&[
                "VS",
                "SITE",
                "ADDRESS",
                "RATIO",
                "ENABLED",
                "AVAILABLE",
                "CONNECTIONS",
            ]));
            for (i, v) in m.vss.iter().enumerate() {
                let available = match view.availability.get(i) {
                    Some(Ok(())) => "yes".to_owned(),
                    Some(Err(why)) => format!("no: {why}"),
                    None => "?".to_owned(),
                };
                let conns = view
                    .metrics
                    .vs
                    .get(&i)
                    .and_then(|x| x.connections)
                    .map_or("-".to_owned(), |c| c.to_string());
                out.push(vec![
                    v.name.clone(),
                    site_name(v.site).to_owned(),
                    SocketAddr::new(v.addr, v.port).to_string(),
                    v.ratio.to_string(),
                    v.enabled.to_string(),
                    available,
                    conns,
                ]);
            }
        }
        ShowWhat::Pools => {
            out.push(header(&["POOL", "TIERS", "MEMBERS", "TTL", "RECORDS"]));
            for p in &m.pools {
                let tiers: Vec<&str> = p.tiers.iter().map(|t| t.name()).collect();
                let members: Vec<String> = p
                    .members
                    .iter()
                    .map(|mb| {
                        let n = m.vss.get(mb.vs).map_or("?", |v| v.name.as_str());
                        format!("{n}:{}", mb.ratio)
                    })
                    .collect();
                out.push(vec![
                    p.name.clone(),
                    tiers.join(" > "),
                    members.join(" "),
                    p.ttl.to_string(),
                    p.records.to_string(),
                ]);
            }
        }
        ShowWhat::Wideips => {
            out.push(header(&[
                "WIDE IP",
                "POOLS",
                "POOL METHOD",
                "WHEN ALL DOWN",
            ]));
            for w in &m.wideips {
                let pools: Vec<&str> = w
                    .pools
                    .iter()
                    .map(|p| m.pools.get(*p).map_or("?", |x| x.name.as_str()))
                    .collect();
                out.push(vec![
                    w.name.to_string(),
                    pools.join(" "),
                    format!("{:?}", w.pool_method),
                    format!("{:?}", w.all_down),
                ]);
            }
        }
        ShowWhat::Agents => {
            out.push(header(&[
                "AGENT", "SITE", "ADDRESS", "KEY", "AGE (ms)", "STATE",
            ]));
            for a in view.agents(now_ms) {
                out.push(vec![
                    a.agent,
                    a.state.site,
                    a.state.address.to_string(),
                    a.state.key_id.to_string(),
                    a.age_ms.to_string(),
                    a.liveness.name().to_owned(),
                ]);
            }
        }
        ShowWhat::Regions => {
            out.push(header(&["REGION", "PREFIXES", "MEMBERS"]));
            for r in &m.regions {
                let prefixes: Vec<String> = r.prefixes.iter().map(|p| p.to_string()).collect();
                let members: Vec<&str> = r
                    .members
                    .iter()
                    .map(|x| m.regions.get(*x).map_or("?", |y| y.name.as_str()))
                    .collect();
                out.push(vec![r.name.clone(), prefixes.join(" "), members.join(" ")]);
            }
        }
    }
    out
}
