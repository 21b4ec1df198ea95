//! The control protocol: newline-delimited JSON. A request is
//! `{"version": 1, "command": "status"}`; a response is `{"version": 1, "ok": true, ...}` or
//! `{"version": 1, "ok": false, "error": "why"}`. A request over [`MAX_REQUEST`] bytes, one
//! that is not JSON, of another version or with an unknown command gets an error response
//! naming the problem, and the connection goes on.
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Longest request line, newline excluded.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub version: u32,
    pub command: Command,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name", deny_unknown_fields)]
pub enum Command {
    /// Publication facts, the agents and the ingest counters.
    Status,
    /// How the balancer decided a wide IP's answer for a client address (and the client
    /// subnet a resolver sent for it, `ecs`: a prefix such as `198.18.3.0/24`).
    Explain {
        wideip: String,
        client: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ecs: Option<String>,
    },
    /// Put a virtual server (or every one of a site) back in rotation.
    Enable { target: Target },
    /// Take a virtual server (or a site's) out of rotation.
    Disable { target: Target },
    /// Stop new answers to a virtual server (or a site's); DNS has no connections to drain,
    /// so this is `disable` for answers, while resolvers' caches run out their TTL.
    Drain { target: Target },
    /// Set a virtual server's ratio (>= 1).
    SetRatio { vs: String, ratio: u32 },
    /// Re-read the config; with `check`, only validate it (zones and all).
    Reload { check: bool },
    /// A table of the model's objects as the balancer holds them now.
    Show { what: ShowWhat },
    /// The peer EDNSs: contact, what each decides for us and we for it, divergence, and
    /// the peer socket's counters.
    Peers,
    /// Hand the listening sockets and the pin-directory lock to the xgslbd asking (it was
    /// started with `--replace`), then stop: see `daemon::handover`. The control server
    /// gives the connection to the daemon; it is no command for xgslbctl.
    Handover,
}

/// What `show` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ShowWhat {
    Sites,
    Servers,
    Vs,
    Pools,
    Wideips,
    Regions,
    Agents,
}

/// A virtual server or a site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    Vs(String),
    Site(String),
}

/// The answer to `explain`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Explain {
    pub wideip: String,
    pub client: String,
    /// The client class the address falls in (0: the default class).
    pub class: xgslb_common::ClassId,
    /// The decision, step by step: tiers and methods tried, why each VS was in or out.
    pub trace: Vec<String>,
    /// The outcome, after damping.
    pub outcome: String,
    /// What XDP and the slow path hold for A: each address and its share of answers.
    pub a_records: Vec<(String, f64)>,
    /// With a client subnet: how it was taken and the scope the response carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<String>,
    /// What the decision rests on, where it is not a fresh agent report: a restart's
    /// warm-up, and each of the wide IP's virtual servers whose health is restored, held,
    /// stale (down) or unknown (counted as up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<String>,
}

/// The answer to `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Publications that changed what is served.
    pub generation: u64,
    pub reloads: u64,
    pub metric_updates: u64,
    pub metric_errors: u64,
    /// Agent reports applied.
    pub reports: u64,
    /// Whether `[agents]` is configured.
    pub agents_configured: bool,
    pub agents: Vec<AgentLine>,
    /// Agent datagrams accepted.
    pub ingest_accepted: u64,
    /// Agent datagrams refused, by reason (every reason listed).
    pub ingest_rejected: Vec<(String, u64)>,
    /// The slow path's UDP workers, summed.
    #[serde(default)]
    pub udp: UdpCounters,
    /// Zone transfers and NOTIFYs.
    #[serde(default)]
    pub transfers: TransferTotals,
    /// What start-up did with pins an earlier xgslbd left (a program left serving from a
    /// frozen config, detached), if anything.
    #[serde(default)]
    pub startup: Vec<String>,
}

/// The slow path's UDP workers' counters, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpCounters {
    pub workers: u64,
    pub received: u64,
    pub answered_from_plan: u64,
    pub answered_by_handler: u64,
    pub unanswered: u64,
    /// Responses the rate limit dropped, and sent as their slipped reply.
    #[serde(default)]
    pub rrl_dropped: u64,
    #[serde(default)]
    pub rrl_slipped: u64,
    pub send_failed: u64,
}

impl From<crate::udp::Totals> for UdpCounters {
    fn from(t: crate::udp::Totals) -> Self {
        Self {
            workers: t.workers as u64,
            received: t.received,
            answered_from_plan: t.planned,
            answered_by_handler: t.handled,
            unanswered: t.unanswered,
            rrl_dropped: t.rrl_dropped,
            rrl_slipped: t.rrl_slipped,
            send_failed: t.send_failed,
        }
    }
}

impl UdpCounters {
    /// Name and value of each counter, as `xgslbctl` prints them.
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("udp_workers", self.workers),
            ("udp_received", self.received),
            ("udp_answered_from_plan", self.answered_from_plan),
            ("udp_answered_by_handler", self.answered_by_handler),
            ("udp_unanswered", self.unanswered),
            ("udp_rrl_dropped", self.rrl_dropped),
            ("udp_rrl_slipped", self.rrl_slipped),
            ("udp_send_failed", self.send_failed),
        ]
    }
}

/// Zone transfers and NOTIFYs, summed over zones and reasons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferTotals {
    pub axfr: u64,
    pub ixfr: u64,
    /// IXFRs answered with the whole zone.
    pub ixfr_full: u64,
    /// IXFRs from secondaries already up to date.
    pub ixfr_up_to_date: u64,
    pub ixfr_udp: u64,
    /// Requests refused, every reason.
    pub refused: u64,
    pub notify_sent: u64,
    pub notify_acknowledged: u64,
    pub notify_gave_up: u64,
}

impl From<&crate::dns::transfer::counters::TransferCounters> for TransferTotals {
    fn from(c: &crate::dns::transfer::counters::TransferCounters) -> Self {
        use crate::dns::transfer::counters::{NotifyOutcome, TransferKind};
        let transfers = c.transfers();
        let served = |kind| transfers.iter().filter(|t| t.1 == kind).map(|t| t.2).sum();
        let notifies = c.notifies();
        let notified = |o| notifies.iter().find(|n| n.0 == o).map_or(0, |n| n.1);
        Self {
            axfr: served(TransferKind::Axfr),
            ixfr: served(TransferKind::Ixfr),
            ixfr_full: served(TransferKind::IxfrFull),
            ixfr_up_to_date: served(TransferKind::IxfrUpToDate),
            ixfr_udp: served(TransferKind::IxfrUdp),
            refused: c.refusals().iter().map(|r| r.1).sum(),
            notify_sent: notified(NotifyOutcome::Sent),
            notify_acknowledged: notified(NotifyOutcome::Acknowledged),
            notify_gave_up: notified(NotifyOutcome::GaveUp),
        }
    }
}

impl TransferTotals {
    /// Name and value of each counter, as `xgslbctl stats` prints them.
    pub fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("xfr_axfr", self.axfr),
            ("xfr_ixfr", self.ixfr),
            ("xfr_ixfr_full", self.ixfr_full),
            ("xfr_ixfr_up_to_date", self.ixfr_up_to_date),
            ("xfr_ixfr_udp", self.ixfr_udp),
            ("xfr_refused", self.refused),
            ("notify_sent", self.notify_sent),
            ("notify_acknowledged", self.notify_acknowledged),
            ("notify_gave_up", self.notify_gave_up),
        ]
    }
}

/// One agent in `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentLine {
    pub agent: String,
    pub site: String,
    pub address: String,
    pub key_id: u32,
    /// Milliseconds since its last report.
    pub age_ms: u64,
    pub last_sequence: u64,
    /// Records in its last datagram.
    pub records: usize,
    /// "up", or "stale" past the report timeout.
    pub state: String,
}

/// The answer to `peers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Peers {
    /// Whether `[peering]` is configured; without it nothing else is filled in.
    pub configured: bool,
    /// This EDNS's name and site on the peer protocol.
    pub name: String,
    pub site: String,
    /// A peer unheard for this long is silent.
    pub silent_after_ms: u64,
    pub peers: Vec<PeerLine>,
    /// Datagrams on the peer socket from no configured peer (all refused, by reason).
    pub unknown_senders: PeerWire,
}

impl Peers {
    /// Every (peer, wide IP) whose decisions differ though they should agree.
    pub fn divergent(&self) -> impl Iterator<Item = (&str, &str)> {
        self.peers
            .iter()
            .flat_map(|p| p.divergent.iter().map(|w| (p.name.as_str(), w.as_str())))
    }
}

/// Whether a peer is heard from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contact {
    /// Heard within `silent_after_ms`.
    Up,
    /// Heard once, not within `silent_after_ms`.
    Silent,
    /// No verified datagram from it since xgslbd started.
    #[default]
    NeverHeard,
}

impl Contact {
    /// As `xgslbctl peers` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Contact::Up => "up",
            Contact::Silent => "silent",
            Contact::NeverHeard => "never heard",
        }
    }
}

/// One peer in `peers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerLine {
    pub name: String,
    pub site: String,
    pub address: String,
    pub state: Contact,
    /// Unix ms of its last verified datagram, and how long before the answer that was.
    pub last_contact_ms: Option<u64>,
    pub last_contact_age_ms: Option<u64>,
    /// Same inputs as ours and its whole fingerprint set held: decisions can be compared.
    pub comparable: bool,
    /// Wide IPs whose decisions differ from ours though they should agree.
    pub divergent: Vec<String>,
    /// Wide IPs we defer to it, and of those, how many we hold its decision of.
    pub deferred: usize,
    pub decisions_held: usize,
    /// Wide IPs it defers to us.
    pub subscriptions: usize,
    /// Verified datagrams the balancer took from it.
    pub messages: u64,
    /// Whole decisions it sent for wide IPs we defer to it.
    pub decisions: u64,
    /// Times it went silent, and came back.
    pub went_silent: u64,
    pub came_back: u64,
    /// What the peer socket counted of it.
    pub wire: PeerWire,
}

/// What the peer socket counted of one peer's (or unknown senders') datagrams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerWire {
    /// Datagrams accepted.
    pub accepted: u64,
    /// Datagrams refused, by reason (every reason listed).
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Agent reports it relayed that were applied here, already taken, or refused.
    pub relayed_in: u64,
    pub relay_duplicates: u64,
    pub relay_refused: u64,
    /// Agent reports we relayed to it.
    pub relayed_out: u64,
    /// Datagrams to it that could not be sent.
    pub send_errors: u64,
}

impl Default for PeerWire {
    /// Nothing counted, every reason listed.
    fn default() -> Self {
        Self {
            accepted: 0,
            rejected: crate::metrics::wire::Reject::ALL
                .iter()
                .map(|r| (r.name().to_owned(), 0))
                .collect(),
            relayed_in: 0,
            relay_duplicates: 0,
            relay_refused: 0,
            relayed_out: 0,
            send_errors: 0,
        }
    }
}

impl PeerWire {
    /// Datagrams refused, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// A response line: `{"version": 1, "ok": true, "<kind>": ...}`, one kind per response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    /// False exactly when the body is an error (kept on the wire for scripts that test it).
    pub ok: bool,
    #[serde(flatten)]
    pub body: Body,
}

/// What a response carries: its key on the wire names the kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Why the command was refused.
    Error(String),
    Status(Status),
    Explain(Explain),
    /// A table: the first row names the columns.
    Table(Vec<Vec<String>>),
    /// What a command did, in words.
    Message(String),
    Peers(Peers),
}

impl Response {
    fn new(body: Body) -> Self {
        Self {
            version: VERSION,
            ok: !matches!(body, Body::Error(_)),
            body,
        }
    }

    pub fn table(rows: Vec<Vec<String>>) -> Self {
        Self::new(Body::Table(rows))
    }

    pub fn error(why: impl Into<String>) -> Self {
        Self::new(Body::Error(why.into()))
    }

    pub fn status(status: Status) -> Self {
        Self::new(Body::Status(status))
    }

    pub fn explain(explain: Explain) -> Self {
        Self::new(Body::Explain(explain))
    }

    pub fn peers(peers: Peers) -> Self {
        Self::new(Body::Peers(peers))
    }

    pub fn done(message: impl Into<String>) -> Self {
        Self::new(Body::Message(message.into()))
    }

    /// The refusal, if the command was refused.
    pub fn error_text(&self) -> Option<&str> {
        match &self.body {
            Body::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The message of a command that did something.
    pub fn message(&self) -> Option<&str> {
        match &self.body {
            Body::Message(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_status(&self) -> Option<&Status> {
        match &self.body {
            Body::Status(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_explain(&self) -> Option<&Explain> {
        match &self.body {
            Body::Explain(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_peers(&self) -> Option<&Peers> {
        match &self.body {
            Body::Peers(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&[Vec<String>]> {
        match &self.body {
            Body::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// What is wrong with a request line (the text goes back in the error response).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request of {0} bytes, the limit is {MAX_REQUEST}")]
    TooLong(usize),
    #[error("request over {MAX_REQUEST} bytes")]
    OverLimit,
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("no \"version\"")]
    NoVersion,
    #[error("version {0}: this xgslbd speaks {VERSION}")]
    Version(u64),
    #[error("bad request: {0}")]
    Bad(serde_json::Error),
}

/// Reads a request line; the error says what is wrong with it.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST {
        return Err(RequestError::TooLong(line.len()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| RequestError::NotJson(e.to_string()))?;
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => {}
        Some(v) => return Err(RequestError::Version(v)),
        None => return Err(RequestError::NoVersion),
    }
    serde_json::from_value(value).map_err(RequestError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let ok = parse_request(br#"{"version":1,"command":{"name":"status"}}"#).unwrap();
        assert_eq!(ok.command, Command::Status);
        let cases: [(&[u8], &str); 5] = [
            (b"status", "not JSON"),
            (br#"{"command":{"name":"status"}}"#, "no \"version\""),
            (br#"{"version":7,"command":{"name":"status"}}"#, "version 7"),
            (
                br#"{"version":1,"command":{"name":"explode"}}"#,
                "bad request",
            ),
            (
                br#"{"version":1,"command":{"name":"status"},"x":1}"#,
                "bad request",
            ),
        ];
        for (line, want) in cases {
            let err = parse_request(line).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
        let big = vec![b' '; MAX_REQUEST + 1];
        assert!(
            parse_request(&big)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }

    #[test]
    fn each_response_kind_is_one_key_beside_version_and_ok() {
        let cases = [
            (
                Response::error("no"),
                r#"{"version":1,"ok":false,"error":"no"}"#,
            ),
            (
                Response::done("did"),
                r#"{"version":1,"ok":true,"message":"did"}"#,
            ),
            (
                Response::table(vec![vec!["A".into()]]),
                r#"{"version":1,"ok":true,"table":[["A"]]}"#,
            ),
        ];
        for (response, wire) in cases {
            assert_eq!(serde_json::to_string(&response).unwrap(), wire);
            let back: Response = serde_json::from_str(wire).unwrap();
            assert_eq!(back, response);
        }
        let status = Response::status(Status::default());
        let text = serde_json::to_string(&status).unwrap();
        assert!(
            text.starts_with(r#"{"version":1,"ok":true,"status":{"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), status);
    }
}
