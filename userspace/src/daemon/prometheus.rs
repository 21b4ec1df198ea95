//! The metrics the endpoint serves (daemon::metrics_http does the HTTP), in the Prometheus
//! text format written by prometheus-client: XDP counters by outcome, slow-path responses
//! by rcode, responses over the rate limit on both paths, publication facts and failures, whether and how the program is attached,
//! agent reports, each agent's last report and ingest refusals by reason, zone transfers,
//! each virtual server's availability, and with `[peering]` each peer EDNS's contact,
//! datagrams, relays, decisions and divergence (what `xgslbctl peers` shows).
//! Every value is read at scrape time (kernel maps, atomics, the balancer), so one
//! collector encodes them all, nothing is kept in between.
use std::{fmt, path::PathBuf, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use xgslb_common::Counter;

use super::DaemonHandle;
use crate::{
    control::protocol::{Contact, Peers},
    dns::RcodeCounters,
};

/// The `Content-Type` of what [`render`] returns (the text format, version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The label set of a sample without labels (written without braces).
const NO_LABELS: [(&str, &str); 0] = [];

/// What the endpoint reads from.
pub struct Sources {
    pub handle: DaemonHandle,
    /// The pinned maps' directory, when XDP is loaded.
    pub pin_dir: Option<PathBuf>,
    /// The interface XDP was attached to, when XDP is on and one is named.
    pub iface: Option<String>,
    /// The pinned counter maps, opened at the first scrape that finds them and kept.
    pub counters: std::sync::Mutex<Option<crate::maps::dataplane::PinnedCounters>>,
    /// The TCP server's responses by rcode (the UDP workers' come through `handle`).
    pub tcp_rcodes: Arc<RcodeCounters>,
}

/// The metrics in the text exposition format.
pub fn render(sources: Arc<Sources>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(sources)));
    let mut out = String::new();
    // Writing to a String cannot fail; a collector error would leave the scrape short.
    if let Err(e) = prometheus_text::encode(&mut out, &registry) {
        tracing::warn!(%e, "metrics endpoint: encoding failed");
    }
    out
}

/// The collector: reads [`Sources`] when encoded.
struct Scrape(Arc<Sources>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

impl Collector for Scrape {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        encode(&self.0, &mut out)
    }
}

/// A family of counters. Its name is without `_total`: the encoder appends it to every name.
fn counters<L: EncodeLabelSet>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, n) in samples {
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family of gauges.
fn gauges<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The non-zero ECS counts of `path` as (labels, count), from counts by `ecs_stat_index`.
fn ecs_samples<'a>(
    path: &'static str,
    counts: &'a [u64],
) -> impl Iterator<Item = ([(&'static str, String); 3], u64)> + 'a {
    counts
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != 0)
        .filter_map(move |(i, &n)| {
            let (v6, scope) = xgslb_common::ecs_stat_of(i as u32)?;
            let labels = [
                ("path", path.to_owned()),
                ("family", if v6 { "ipv6" } else { "ipv4" }.to_owned()),
                ("scope", scope.to_string()),
            ];
            Some((labels, n))
        })
}

fn encode(s: &Sources, out: &mut DescriptorEncoder) -> fmt::Result {
    let mut counters_map = match s.counters.lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    if counters_map.is_none()
        && let Some(dir) = &s.pin_dir
    {
        *counters_map = crate::maps::dataplane::PinnedCounters::open(dir).ok();
    }
    let pinned = counters_map.as_ref();
    if let Some(stats) = pinned.and_then(|c| c.stats().ok()) {
        counters(
            out,
            "xgslb_xdp_packets",
            "Frames the XDP program saw, by what it did (answered, dropped, pass_<reason>).",
            Counter::ALL
                .into_iter()
                .filter(|c| !c.is_answer_kind())
                .map(|c| ([("outcome", c.name())], stats[c as usize])),
        )?;
        counters(
            out,
            "xgslb_xdp_answers_by_kind",
            "Frames the XDP program answered, by kind (addresses, records, nodata, nxdomain).",
            Counter::ALL
                .into_iter()
                .filter(|c| c.is_answer_kind())
                .map(|c| {
                    let kind = c.name().trim_start_matches("answered_");
                    ([("kind", kind)], stats[c as usize])
                }),
        )?;
    }
    if let (Some(dir), Some(iface)) = (&s.pin_dir, &s.iface) {
        attachment(out, dir, iface)?;
    }
    if let Some(pinned) = pinned {
        let labels = s.handle.answer_stats();
        // Only the slots that have labels: a few reads, not every slot of the map.
        let samples = labels.iter().flat_map(|label| {
            label.leads.iter().enumerate().map(move |(i, lead)| {
                let at = label.slot * xgslb_common::MAX_ADDRS as u32 + i as u32;
                let set = [
                    ("wideip", label.wideip.as_str()),
                    ("region", label.class.as_str()),
                    ("vs", lead.as_str()),
                ];
                (set, pinned.answer_count(at).unwrap_or(0))
            })
        });
        counters(
            out,
            "xgslb_answers",
            "A answers XDP gave per wide IP, by client class (region) and leading virtual server.",
            samples,
        )?;
    }
    let xdp_ecs = pinned.and_then(|c| c.ecs_stats().ok()).unwrap_or_default();
    let slow_ecs = s.handle.ecs_counts();
    counters(
        out,
        "xgslb_ecs_answers",
        "Answers to queries with an EDNS Client Subnet, by path, the subnet's family and the \
         scope returned (only the scopes seen).",
        ecs_samples("xdp", &xdp_ecs).chain(ecs_samples("slow_path", &slow_ecs)),
    )?;
    let xdp_cookies = pinned.and_then(|c| c.cookie_stats().ok());
    let slow_cookies = s.handle.cookie_counts();
    let cookie_samples = |path: &'static str, counts: [u64; 4]| {
        xgslb_common::CookieSeen::ALL
            .into_iter()
            .filter(|c| *c != xgslb_common::CookieSeen::None)
            .map(move |c| ([("path", path), ("cookie", c.name())], counts[c as usize]))
    };
    counters(
        out,
        "xgslb_dns_cookies",
        "Answers to queries with a DNS cookie, by path and what the cookie was: client_only, \
         valid (a server cookie of ours), invalid (another server's, expired, or for another \
         address: answered as client_only).",
        xdp_cookies
            .map(|c| cookie_samples("xdp", c))
            .into_iter()
            .flatten()
            .chain(cookie_samples("slow_path", slow_cookies)),
    )?;
    let workers = s.handle.udp_counters();
    let rcodes = std::iter::once(&*s.tcp_rcodes).chain(workers.iter().map(|w| &w.rcodes));
    counters(
        out,
        "xgslb_slow_path_responses",
        "Slow-path responses by rcode (none: queries answered with nothing).",
        RcodeCounters::sum(rcodes)
            .into_iter()
            .map(|(rcode, n)| ([("rcode", rcode)], n)),
    )?;
    let udp = crate::udp::totals(workers);
    counters(
        out,
        "xgslb_slow_path_udp",
        "UDP queries the slow path's workers read, by what became of them.",
        [
            ("received", udp.received),
            ("answered_from_plan", udp.planned),
            ("answered_by_handler", udp.handled),
            ("unanswered", udp.unanswered),
            ("rrl_dropped", udp.rrl_dropped),
            ("rrl_slipped", udp.rrl_slipped),
            ("send_failed", udp.send_failed),
        ]
        .map(|(what, n)| ([("outcome", what)], n)),
    )?;
    let xdp_stats = pinned.and_then(|c| c.stats().ok());
    let xdp_limited = xdp_stats.iter().flat_map(|st| {
        [
            ("xdp", "dropped", st[Counter::RrlDropped as usize]),
            ("xdp", "slipped", st[Counter::RrlSlipped as usize]),
        ]
    });
    counters(
        out,
        "xgslb_rrl_limited",
        "UDP responses over the response rate limit, by path and what went instead (slipped: \
         the truncated reply; dropped: nothing).",
        xdp_limited
            .chain([
                ("slow_path", "dropped", udp.rrl_dropped),
                ("slow_path", "slipped", udp.rrl_slipped),
            ])
            .map(|(path, action, n)| ([("path", path), ("action", action)], n)),
    )?;
    gauges(
        out,
        "xgslb_slow_path_udp_workers",
        "UDP worker threads (one per core).",
        [(NO_LABELS, udp.workers)],
    )?;
    counters(
        out,
        "xgslb_slow_path_udp_worker_received",
        "UDP queries each worker read (the kernel hands each the datagrams of its CPU).",
        workers.iter().enumerate().map(|(i, w)| {
            let n = w.received.load(std::sync::atomic::Ordering::Relaxed);
            ([("worker", i)], n)
        }),
    )?;
    let st = s.handle.status();
    let p = s.handle.published();
    gauges(
        out,
        "xgslb_publication_duration_seconds",
        "How long the last publication took (decisions, maps, snapshot).",
        [(NO_LABELS, p.last_publication_us as f64 / 1e6)],
    )?;
    gauges(
        out,
        "xgslb_publication_generation",
        "Publications that changed what is served.",
        [(NO_LABELS, st.generation)],
    )?;
    for (name, help, n) in [
        ("xgslb_reloads", "Config reloads applied.", st.reloads),
        (
            "xgslb_publication_failures",
            "Publications that failed (the one before serves on); the log says why.",
            p.publication_failures,
        ),
        (
            "xgslb_metric_updates",
            "Metric sets applied from the metrics file.",
            st.metric_updates,
        ),
        (
            "xgslb_metric_errors",
            "Metrics files refused (the last good metrics stay).",
            st.metric_errors,
        ),
        ("xgslb_agent_reports", "Agent reports applied.", st.reports),
        (
            "xgslb_ingest_accepted",
            "Agent datagrams accepted.",
            st.ingest_accepted,
        ),
    ] {
        counters(out, name, help, [(NO_LABELS, n)])?;
    }
    counters(
        out,
        "xgslb_ingest_rejected",
        "Agent datagrams refused, by reason.",
        st.ingest_rejected
            .iter()
            .map(|(reason, n)| ([("reason", reason.as_str())], *n)),
    )?;
    if st.agents_configured {
        let agent = |a: &crate::control::protocol::AgentLine| {
            [("agent", a.agent.clone()), ("site", a.site.clone())]
        };
        gauges(
            out,
            "xgslb_agent_up",
            "1 when the agent reported within agents.report_timeout_ms, else 0 (listed until \
             forgotten, after ten timeouts).",
            st.agents
                .iter()
                .map(|a| (agent(a), u32::from(a.state == "up"))),
        )?;
        gauges(
            out,
            "xgslb_agent_report_age_seconds",
            "Seconds since the agent's last accepted report.",
            st.agents.iter().map(|a| (agent(a), a.age_ms as f64 / 1e3)),
        )?;
    }
    let xfr = s.handle.transfer_counters();
    counters(
        out,
        "xgslb_zone_transfers",
        "Zone transfers served, by zone and kind (axfr, ixfr, ixfr_full, ixfr_up_to_date, ixfr_udp).",
        xfr.transfers()
            .iter()
            .map(|(zone, kind, n)| ([("zone", zone.as_str()), ("kind", kind.name())], *n)),
    )?;
    counters(
        out,
        "xgslb_zone_transfers_refused",
        "Zone transfer requests refused, by reason.",
        xfr.refusals()
            .into_iter()
            .map(|(why, n)| ([("reason", why.name())], n)),
    )?;
    counters(
        out,
        "xgslb_notify",
        "NOTIFYs to secondaries: datagrams sent, and per zone version and secondary acknowledged or gave up.",
        xfr.notifies()
            .into_iter()
            .map(|(outcome, n)| ([("outcome", outcome.name())], n)),
    )?;
    let peers = s.handle.peers();
    if peers.configured {
        peer_families(out, &peers)?;
    }
    let availability = s.handle.vs_availability();
    gauges(
        out,
        "xgslb_vs_available",
        "1 when the virtual server is in rotation (enabled, not down, within its limits).",
        availability.iter().map(|(vs, site, up)| {
            (
                [("vs", vs.as_str()), ("site", site.as_str())],
                u32::from(up.is_ok()),
            )
        }),
    )?;
    gauges(
        out,
        "xgslb_vs_unavailable",
        "1 for each virtual server out of rotation, with why (disabled, down, over_<limit>).",
        availability.iter().filter_map(|(vs, site, up)| {
            let why = up.err()?;
            Some((
                [
                    ("vs", vs.as_str()),
                    ("site", site.as_str()),
                    ("reason", why.reason()),
                ],
                1u32,
            ))
        }),
    )
}

/// `xgslb_xdp_attached`: what the kernel says `iface` runs, one sample: 1 with the mode
/// (native, generic, offload, multi) when it is the program of xgslbd's pinned link, else 0
/// with `mode="none"` (detached, or another program in its place).
fn attachment(out: &mut DescriptorEncoder, pin_dir: &std::path::Path, iface: &str) -> fmt::Result {
    use crate::maps::link_state::{XdpAttachment, xdp_state};
    let ours = crate::maps::dataplane::pinned_link_program(pin_dir, iface);
    let mode = match (ours, xdp_state(iface)) {
        // In multi mode the kernel names no single program: the pinned link says it is ours.
        (Some(id), Ok(state)) if state.prog_id == id || state.attached == XdpAttachment::Multi => {
            state.attached
        }
        (_, Err(e)) => {
            tracing::debug!(%e, "metrics endpoint: cannot read the XDP state of {iface}");
            XdpAttachment::None
        }
        _ => XdpAttachment::None,
    };
    gauges(
        out,
        "xgslb_xdp_attached",
        "1 when xgslbd's XDP program is attached to the interface, with the mode the kernel \
         reports (native, generic, offload); 0 with mode=\"none\" when it is not.",
        [(
            [("iface", iface), ("mode", mode.name())],
            u32::from(mode != XdpAttachment::None),
        )],
    )
}

/// The peer EDNSs' families. Datagrams from no configured peer are counted under
/// `peer=""`.
fn peer_families(out: &mut DescriptorEncoder, p: &Peers) -> fmt::Result {
    let peer = |name: &str| [("peer", name.to_owned())];
    gauges(
        out,
        "xgslb_peer_up",
        "1 when the peer EDNS was heard within peering.silent_after_ms, else 0.",
        p.peers.iter().map(|l| {
            let labels = [("peer", l.name.as_str()), ("site", l.site.as_str())];
            (labels, u32::from(l.state == Contact::Up))
        }),
    )?;
    gauges(
        out,
        "xgslb_peer_last_contact_seconds",
        "When the peer's last verified datagram arrived (Unix seconds; absent if never).",
        p.peers.iter().filter_map(|l| {
            let ms = l.last_contact_ms?;
            Some((peer(&l.name), ms as f64 / 1e3))
        }),
    )?;
    counters(
        out,
        "xgslb_peer_datagrams",
        "Peer datagrams accepted, by peer.",
        p.peers.iter().map(|l| (peer(&l.name), l.wire.accepted)),
    )?;
    let wire = p
        .peers
        .iter()
        .map(|l| (l.name.as_str(), &l.wire))
        .chain(std::iter::once(("", &p.unknown_senders)));
    counters(
        out,
        "xgslb_peer_rejected",
        "Datagrams the peer socket refused, by peer (\"\": from no configured peer) and reason.",
        wire.flat_map(|(name, w)| {
            w.rejected.iter().map(move |(reason, n)| {
                ([("peer", name.to_owned()), ("reason", reason.clone())], *n)
            })
        }),
    )?;
    counters(
        out,
        "xgslb_peer_relayed",
        "Agent reports relayed: in (from the peer, applied here), duplicate (already taken), \
         refused (by the ingest), out (by us to the peer).",
        p.peers.iter().flat_map(|l| {
            let w = &l.wire;
            [
                ("in", w.relayed_in),
                ("duplicate", w.relay_duplicates),
                ("refused", w.relay_refused),
                ("out", w.relayed_out),
            ]
            .map(|(direction, n)| {
                (
                    [
                        ("peer", l.name.clone()),
                        ("direction", direction.to_owned()),
                    ],
                    n,
                )
            })
        }),
    )?;
    counters(
        out,
        "xgslb_peer_decisions",
        "Whole decisions the peer sent for the wide IPs we defer to it.",
        p.peers.iter().map(|l| (peer(&l.name), l.decisions)),
    )?;
    counters(
        out,
        "xgslb_peer_silent_switches",
        "Times the peer went silent (to=\"silent\") and was heard again (to=\"back\").",
        p.peers.iter().flat_map(|l| {
            [("silent", l.went_silent), ("back", l.came_back)]
                .map(|(to, n)| ([("peer", l.name.clone()), ("to", to.to_owned())], n))
        }),
    )?;
    gauges(
        out,
        "xgslb_peer_divergent_wideips",
        "Wide IPs whose decisions differ from the peer's though they should agree.",
        p.peers
            .iter()
            .map(|l| (peer(&l.name), l.divergent.len() as u64)),
    )?;
    gauges(
        out,
        "xgslb_peer_comparable",
        "1 when the peer decides from our inputs and we hold its whole fingerprint set.",
        p.peers
            .iter()
            .map(|l| (peer(&l.name), u32::from(l.comparable))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{PeerLine, PeerWire};

    /// Only the peer families, encoded as the endpoint encodes them.
    #[derive(Debug)]
    struct PeersOnly(Peers);

    impl Collector for PeersOnly {
        fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
            peer_families(&mut out, &self.0)
        }
    }

    /// The value of the sample `name` whose labels include `labels`, if any.
    fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let x = s.samples.iter().find(|x| {
            x.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| x.labels.get(k).unwrap_or_default() == *v)
        })?;
        match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn peer_families_carry_each_peers_labels() {
        let mut wire = PeerWire {
            accepted: 3,
            relayed_in: 4,
            relay_duplicates: 1,
            relay_refused: 2,
            relayed_out: 6,
            ..PeerWire::default()
        };
        wire.rejected.insert("bad_tag".into(), 2);
        let mut unknown = PeerWire::default();
        unknown.rejected.insert("unknown_key".into(), 5);
        let peers = Peers {
            configured: true,
            name: "edns-a".into(),
            site: "a".into(),
            silent_after_ms: 3000,
            peers: vec![
                PeerLine {
                    name: "edns-b".into(),
                    site: "b".into(),
                    state: Contact::Up,
                    last_contact_ms: Some(1_700_000_000_500),
                    comparable: true,
                    divergent: vec!["app.example.test.".into(), "www.example.test.".into()],
                    decisions: 4,
                    went_silent: 1,
                    came_back: 1,
                    wire,
                    ..PeerLine::default()
                },
                PeerLine {
                    name: "edns-c".into(),
                    site: "c".into(),
                    state: Contact::NeverHeard,
                    ..PeerLine::default()
                },
            ],
            unknown_senders: unknown,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(PeersOnly(peers)));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        let s = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let v = |name, labels: &[(&str, &str)]| value(&s, name, labels);

        let b = ("peer", "edns-b");
        let c = ("peer", "edns-c");
        assert_eq!(v("xgslb_peer_up", &[b, ("site", "b")]), Some(1.0), "{text}");
        assert_eq!(v("xgslb_peer_up", &[c, ("site", "c")]), Some(0.0));
        assert_eq!(
            v("xgslb_peer_last_contact_seconds", &[b]),
            Some(1_700_000_000.5)
        );
        assert_eq!(v("xgslb_peer_last_contact_seconds", &[c]), None, "{text}");
        assert_eq!(v("xgslb_peer_datagrams_total", &[b]), Some(3.0));
        assert_eq!(v("xgslb_peer_datagrams_total", &[c]), Some(0.0));
        let rejected = |peer, reason| v("xgslb_peer_rejected_total", &[peer, ("reason", reason)]);
        assert_eq!(rejected(b, "bad_tag"), Some(2.0));
        assert_eq!(rejected(b, "stale"), Some(0.0));
        assert_eq!(rejected(("peer", ""), "unknown_key"), Some(5.0));
        let reasons = crate::metrics::wire::Reject::ALL.len();
        let rejected_samples = s
            .samples
            .iter()
            .filter(|x| x.metric == "xgslb_peer_rejected_total")
            .count();
        assert_eq!(
            rejected_samples,
            3 * reasons,
            "every reason of each and of \"\""
        );
        for (direction, n) in [
            ("in", 4.0),
            ("duplicate", 1.0),
            ("refused", 2.0),
            ("out", 6.0),
        ] {
            let labels = [b, ("direction", direction)];
            assert_eq!(
                v("xgslb_peer_relayed_total", &labels),
                Some(n),
                "{direction}"
            );
        }
        assert_eq!(v("xgslb_peer_decisions_total", &[b]), Some(4.0));
        for to in ["silent", "back"] {
            let labels = [b, ("to", to)];
            assert_eq!(v("xgslb_peer_silent_switches_total", &labels), Some(1.0));
        }
        assert_eq!(v("xgslb_peer_divergent_wideips", &[b]), Some(2.0));
        assert_eq!(v("xgslb_peer_divergent_wideips", &[c]), Some(0.0));
        assert_eq!(v("xgslb_peer_comparable", &[b]), Some(1.0));
        assert_eq!(v("xgslb_peer_comparable", &[c]), Some(0.0));
    }
}
