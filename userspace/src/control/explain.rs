//! `explain`: how a wide IP was decided for a client address, from the published view: the
//! client's class, the decision's trace and outcome, and the A records both paths hold with
//! each one's share of answers.
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::{LowerName, Name, RecordType};
use ipnet::IpNet;

use super::{protocol::Explain, shares::shares};
use crate::{
    balance::{Outcome, trace},
    dns::{Client, ClientSubnet},
    view::View,
};

/// Why there is nothing to explain.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ExplainError {
    #[error("client {0:?} is not an IP address")]
    NotAnAddress(String),
    #[error("{0:?} is not a domain name: {1}")]
    NotAName(String, String),
    #[error("{0} is not a wide IP")]
    NotAWideIp(String),
    #[error("no decision for {0} yet")]
    NoDecision(String),
    #[error("client subnet {0:?} is not a prefix such as 198.18.3.0/24")]
    NotASubnet(String),
}

/// How the wide IP `name` was decided for a client at `client` (sending the client subnet
/// `ecs`, if given), as last published, and what it rests on as of `now_ms`.
pub fn explain(
    view: &View,
    name: &str,
    client: &str,
    ecs: Option<&str>,
    now_ms: u64,
) -> Result<Explain, ExplainError> {
    let source: IpAddr = client
        .parse()
        .map_err(|_| ExplainError::NotAnAddress(client.to_owned()))?;
    let subnet = ecs.map(subnet).transpose()?;
    let mut fqdn = Name::from_ascii(name)
        .map_err(|e| ExplainError::NotAName(name.to_owned(), e.to_string()))?;
    fqdn.set_fqdn(true);
    let lower = LowerName::new(&fqdn);
    let served = &view.served;
    let d = &served.decisions;
    let w = d
        .wideips
        .iter()
        .position(|n| *n == lower)
        .ok_or_else(|| ExplainError::NotAWideIp(fqdn.to_string()))?;
    let asker = Client { source, subnet };
    let seen = served.snapshot.seen_as(&lower, RecordType::A, &asker);
    let addr = seen.address;
    let class = served.snapshot.class_of(addr);
    let decision = d
        .decision(w, class)
        .ok_or_else(|| ExplainError::NoDecision(fqdn.to_string()))?;
    let mut a_records = Vec::new();
    if let Some((_, set)) = served.snapshot.set_for(&lower, RecordType::A, class) {
        let count = set.count as usize;
        for (i, a) in set.addrs.iter().take(count).enumerate() {
            let slots = set.slots.iter().filter(|&&s| s as usize == i).count();
            a_records.push((
                Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
                slots as f64 / xgslb_common::SLOTS as f64,
            ));
        }
    }
    let outcome = match &decision.outcome {
        Outcome::Answer {
            members,
            ttl,
            records,
            persist,
        } => {
            let list = shares(members, |vs| d.names.vs(vs).unwrap_or("?"), 1);
            format!(
                "answer {}; ttl {ttl}, {records} record(s){}",
                list.join(", "),
                if *persist { ", static persist" } else { "" }
            )
        }
        other => format!("{other:?}"),
    };
    let ecs = subnet.map(|s| {
        let scope = served
            .snapshot
            .set_for(&lower, RecordType::A, seen.class)
            .map_or(0, |(_, set)| served.snapshot.scope(&seen, set));
        match seen.honoured {
            Some(len) => format!(
                "{}/{} taken as {addr}/{len}; the response's scope is /{scope}",
                s.address, s.source
            ),
            None => format!(
                "{}/{} not taken (the wide IP ignores subnets, the resolver is not \
                 trusted, or nothing of it is honoured): the client's address decides; \
                 scope /0",
                s.address, s.source
            ),
        }
    });
    Ok(Explain {
        wideip: fqdn.to_string(),
        client: source.to_string(),
        class,
        trace: trace::lines(&decision.trace, &d.names),
        outcome,
        a_records,
        ecs,
        data: data_lines(view, &lower, now_ms),
    })
}

/// What the decisions of wide IP `name` rest on where that is not a fresh agent report:
/// the warm-up of a restart, and each of its virtual servers whose health is restored from
/// the state file, held, stale or unknown. Nothing without `[agents]`.
fn data_lines(view: &View, name: &LowerName, now_ms: u64) -> Vec<String> {
    use crate::metrics::ingest::Knowledge;
    let mut lines = Vec::new();
    if let Some(w) = &view.warming {
        lines.push(format!(
            "warming up after a restart: XDP answers as the previous xgslbd published, the slow path from its last known reports, until agents report for {} or for {} ms more",
            if w.waiting_for.is_empty() {
                "every virtual server".to_owned()
            } else {
                w.waiting_for.join(", ")
            },
            w.ends_in_ms
        ));
    }
    let Some(agents) = &view.config.agents else {
        return lines;
    };
    let model = &view.config.model;
    let Some(w) = model
        .wideips
        .iter()
        .find(|w| LowerName::new(&w.name) == *name)
    else {
        return lines;
    };
    let mut vss: Vec<usize> = w
        .pools
        .iter()
        .filter_map(|p| model.pools.get(*p))
        .flat_map(|p| p.members.iter().map(|m| m.vs))
        .collect();
    vss.sort_unstable();
    vss.dedup();
    let warming = view.warming.is_some();
    for vs in vss {
        let Some(v) = model.vss.get(vs) else {
            continue;
        };
        if view
            .file_metrics
            .vs
            .get(&vs)
            .is_some_and(|m| m.up.is_some())
        {
            continue; // the metrics file says, whatever the agents do
        }
        let k = view
            .agent_metrics
            .knowledge(&v.name, now_ms, agents.report_timeout_ms, warming);
        let line = match k {
            Knowledge::Reported { .. } => continue,
            Knowledge::Restored { age_ms } => format!(
                "{}: health restored from the state file, reported {age_ms} ms ago to the previous xgslbd, not since",
                v.name
            ),
            Knowledge::Held { age_ms } => format!(
                "{}: health unknown (its last report, {age_ms} ms old, is older than the {} ms timeout), held at that report while warming up",
                v.name, agents.report_timeout_ms
            ),
            Knowledge::Stale { age_ms } => format!(
                "{}: stale, down: no report for {age_ms} ms (timeout {} ms)",
                v.name, agents.report_timeout_ms
            ),
            Knowledge::Unknown => format!(
                "{}: health unknown (no agent report), counted as up",
                v.name
            ),
        };
        lines.push(line);
    }
    lines
}

/// A client subnet written as a prefix; bits past its length are dropped (a resolver's
/// would be refused, but this is an operator's question).
fn subnet(text: &str) -> Result<ClientSubnet, ExplainError> {
    let net: IpNet = text
        .parse()
        .map_err(|_| ExplainError::NotASubnet(text.to_owned()))?;
    let net = net.trunc();
    Ok(ClientSubnet {
        address: net.addr(),
        source: net.prefix_len(),
        scope: 0,
    })
}
