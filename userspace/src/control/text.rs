//! Responses as `xgslbctl` prints them for a person (`--json` prints the response itself):
//! one function per kind of body, so that each command's text lives beside its data.
use std::fmt::Write as _;

use super::protocol::{Body, Explain, Peers, Status};

/// The text of a response body (an error's text is the reason alone).
pub fn body(body: &Body) -> String {
    match body {
        Body::Error(e) => e.clone(),
        Body::Status(s) => status(s),
        Body::Explain(e) => explain(e),
        Body::Table(rows) => table(rows),
        Body::Message(m) => format!("{m}\n"),
        Body::Peers(p) => peers(p),
    }
}

/// What `peers` says without `[peering]`.
const NO_PEERING: &str = "no peers configured ([peering])\n";

/// `peers`: this EDNS, a row per peer, and what came from no configured peer.
pub fn peers(p: &Peers) -> String {
    if !p.configured {
        return NO_PEERING.to_owned();
    }
    let mut out = format!(
        "{} at {}; a peer unheard for {} ms is silent\n\n",
        p.name, p.site, p.silent_after_ms
    );
    let mut rows = vec![
        [
            "PEER",
            "SITE",
            "ADDRESS",
            "STATE",
            "LAST CONTACT",
            "MESSAGES",
            "REFUSED",
            "RELAYED IN/DUP/OUT",
            "HELD/DEFERRED",
            "SUBSCRIPTIONS",
            "COMPARABLE",
            "DIVERGENT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for l in &p.peers {
        let w = &l.wire;
        rows.push(vec![
            l.name.clone(),
            l.site.clone(),
            l.address.clone(),
            l.state.name().to_owned(),
            l.last_contact_age_ms.map_or("never".to_owned(), |ms| {
                format!("{:.1} s ago", ms as f64 / 1000.0)
            }),
            l.messages.to_string(),
            w.rejected_total().to_string(),
            format!("{}/{}/{}", w.relayed_in, w.relay_duplicates, w.relayed_out),
            format!("{}/{}", l.decisions_held, l.deferred),
            l.subscriptions.to_string(),
            if l.comparable { "yes" } else { "no" }.to_owned(),
            l.divergent.len().to_string(),
        ]);
    }
    out.push_str(&table(&rows));
    let unknown = &p.unknown_senders;
    if unknown.rejected_total() > 0 {
        out.push_str("\nrefused from no configured peer:");
        for (reason, n) in unknown.rejected.iter().filter(|(_, n)| **n > 0) {
            let _ = write!(out, " {reason} {n}");
        }
        out.push('\n');
    }
    out
}

/// `peers --divergent`: a `peer wide-ip` line per divergent wide IP, or that there is none.
pub fn divergent(p: &Peers) -> String {
    if !p.configured {
        return NO_PEERING.to_owned();
    }
    let mut out = String::new();
    for (peer, wideip) in p.divergent() {
        let _ = writeln!(out, "{peer} {wideip}");
    }
    if out.is_empty() {
        out.push_str("no divergent wide IPs\n");
    }
    out
}

/// `status`: publication facts, the UDP workers, the agents and the ingest counters.
pub fn status(st: &Status) -> String {
    let mut out = String::new();
    for (name, v) in [
        ("generation", st.generation),
        ("reloads", st.reloads),
        ("metric_updates", st.metric_updates),
        ("metric_errors", st.metric_errors),
        ("agent_reports", st.reports),
    ] {
        let _ = writeln!(out, "{name:<24}{v:>14}");
    }
    for line in &st.startup {
        let _ = writeln!(out, "start-up: {line}");
    }
    out.push('\n');
    for (name, v) in st.udp.fields() {
        let _ = writeln!(out, "{name:<24}{v:>14}");
    }
    if !st.agents_configured {
        out.push_str("\nagents: not configured ([agents] in the config)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<20} {:<12} {:<24} {:>4} {:>10} {:>8} {:<6}",
        "AGENT", "SITE", "ADDRESS", "KEY", "AGE (ms)", "RECORDS", "STATE"
    );
    for a in &st.agents {
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<24} {:>4} {:>10} {:>8} {:<6}",
            a.agent, a.site, a.address, a.key_id, a.age_ms, a.records, a.state
        );
    }
    let _ = writeln!(out, "\n{:<24}{:>14}", "ingest_accepted", st.ingest_accepted);
    for (reason, n) in &st.ingest_rejected {
        let _ = writeln!(out, "{:<24}{n:>14}", format!("rejected_{reason}"));
    }
    out
}

/// `explain`: the class, the trace, the outcome and each A record's share.
pub fn explain(e: &Explain) -> String {
    let mut out = format!("{} for {} (client class {})\n", e.wideip, e.client, e.class);
    if let Some(ecs) = &e.ecs {
        let _ = writeln!(out, "client subnet: {ecs}");
    }
    for line in &e.trace {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "outcome: {}", e.outcome);
    for (addr, share) in &e.a_records {
        let _ = writeln!(out, "  A {addr:<40} {:>6.1}% of answers", share * 100.0);
    }
    for line in &e.data {
        let _ = writeln!(out, "data: {line}");
    }
    out
}

/// A table with its columns aligned, header first.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns_and_trim_the_last() {
        let rows = vec![
            vec!["VS".to_owned(), "SITE".to_owned()],
            vec!["longer".to_owned(), "a".to_owned()],
        ];
        assert_eq!(table(&rows), "VS      SITE\nlonger  a\n");
    }

    #[test]
    fn peers_show_a_row_each_and_divergent_lists_peer_and_wide_ip() {
        use super::super::protocol::{Contact, PeerLine};
        let p = Peers {
            configured: true,
            name: "edns-a".into(),
            site: "a".into(),
            silent_after_ms: 3000,
            peers: vec![
                PeerLine {
                    name: "edns-b".into(),
                    site: "b".into(),
                    address: "198.18.0.3:5301".into(),
                    state: Contact::Silent,
                    last_contact_age_ms: Some(12_345),
                    deferred: 2,
                    decisions_held: 1,
                    subscriptions: 3,
                    divergent: vec!["app.example.test.".into()],
                    ..PeerLine::default()
                },
                PeerLine {
                    name: "edns-c".into(),
                    site: "c".into(),
                    address: "198.18.0.4:5301".into(),
                    ..PeerLine::default()
                },
            ],
            ..Peers::default()
        };
        assert_eq!(
            peers(&p),
            "edns-a at a; a peer unheard for 3000 ms is silent\n\n\
             PEER    SITE  ADDRESS          STATE        LAST CONTACT  MESSAGES  REFUSED  \
             RELAYED IN/DUP/OUT  HELD/DEFERRED  SUBSCRIPTIONS  COMPARABLE  DIVERGENT\n\
             edns-b  b     198.18.0.3:5301  silent       12.3 s ago    0         0        \
             0/0/0               1/2            3              no          1\n\
             edns-c  c     198.18.0.4:5301  never heard  never         0         0        \
             0/0/0               0/0            0              no          0\n"
        );
        assert_eq!(divergent(&p), "edns-b app.example.test.\n");
    }
}
