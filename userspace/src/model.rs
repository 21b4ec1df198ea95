//! The GSLB model at run time: sites, servers, virtual servers, pools, wide IPs, regions and
//! topology records as validated from the config, and the metrics the balancer weighs them by.
//!
//! Objects refer to each other by index into the `Model`'s vectors (a `VsId` is an index into
//! `Model::vss`), so the balancer walks vectors and never looks names up. Names are kept for
//! traces, stats and the control socket.
use std::{collections::HashMap, net::IpAddr};

use hickory_proto::rr::Name;
use ipnet::IpNet;

/// Index into `Model::sites`.
pub type SiteId = usize;
/// Index into `Model::servers`.
pub type ServerId = usize;
/// Index into `Model::vss`.
pub type VsId = usize;
/// Index into `Model::pools`.
pub type PoolId = usize;
/// Index into `Model::regions`.
pub type RegionId = usize;

/// Everything the balancer decides over.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub sites: Vec<Site>,
    pub servers: Vec<Server>,
    pub vss: Vec<VirtualServer>,
    pub pools: Vec<Pool>,
    pub wideips: Vec<WideIp>,
    pub regions: Vec<Region>,
    pub topology: Vec<TopologyRecord>,
    /// How fast dynamic weights may move.
    pub damping: Damping,
}

/// A data center.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub name: String,
}

/// What kind of machine a server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum ServerKind {
    /// A server array controller: a local load balancer that makes virtual servers out of
    /// node servers (BIG-IP LTM, nginx, a Kubernetes Service).
    Controller,
    /// A plain host serving on its own address.
    Host,
}

/// A server at a site, owning virtual servers.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: String,
    pub site: SiteId,
    pub kind: ServerKind,
}

/// Limits past which a virtual server is taken out of rotation (F5 "resource limits"). A
/// limit is checked only when the metric is known.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub connections: Option<u64>,
    pub bits_per_second: Option<u64>,
    pub packets_per_second: Option<u64>,
    /// Percent, 0..=100.
    pub cpu_percent: Option<f64>,
}

/// An address and port at a site that DNS answers point to.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    pub name: String,
    pub server: ServerId,
    /// The server's site (denormalised: methods group by site).
    pub site: SiteId,
    pub addr: IpAddr,
    pub port: u16,
    /// Connections it can take, for VS Capacity (a reported capacity overrides it).
    pub capacity: Option<u64>,
    /// Weight under Ratio, >= 1.
    pub ratio: u32,
    pub limits: Limits,
    /// Administratively enabled (config; the control socket will add drain).
    pub enabled: bool,
}

/// A balancing method, used by a pool tier. Spelled in snake_case in the config; the
/// variants are listed in the order the README documents them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Method {
    // Static methods.
    RoundRobin,
    Ratio,
    GlobalAvailability,
    Topology,
    StaticPersist,
    FallbackIp,
    DropPacket,
    ReturnToDns,
    None,
    // Dynamic methods (from metrics).
    LeastConnections,
    PacketRate,
    KilobytesPerSecond,
    VsCapacity,
    VsScore,
    Cpu,
    RoundTripTime,
    Hops,
    CompletionRate,
    QualityOfService,
}

impl Method {
    /// The config spelling (snake_case).
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Whether the method weighs metrics (and so is damped).
    pub const fn is_dynamic(self) -> bool {
        matches!(
            self,
            Method::LeastConnections
                | Method::PacketRate
                | Method::KilobytesPerSecond
                | Method::VsCapacity
                | Method::VsScore
                | Method::Cpu
                | Method::RoundTripTime
                | Method::Hops
                | Method::CompletionRate
                | Method::QualityOfService
        )
    }

    /// Whether the method ranks by LDNS path metrics (and so depends on the client's prefix).
    pub const fn uses_paths(self) -> bool {
        matches!(
            self,
            Method::RoundTripTime
                | Method::Hops
                | Method::CompletionRate
                | Method::QualityOfService
        )
    }
}

/// Coefficients of Quality of Service: each metric is normalised over the pool's members to
/// 0..=1 (1 best) and weighted by its coefficient. Defaults follow BIG-IP DNS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QosCoefficients {
    pub round_trip_time: f64,
    pub completion_rate: f64,
    pub packet_rate: f64,
    pub kilobytes_per_second: f64,
    pub hops: f64,
    pub vs_capacity: f64,
    pub topology: f64,
    pub connections: f64,
}

impl Default for QosCoefficients {
    fn default() -> Self {
        Self {
            round_trip_time: 50.0,
            completion_rate: 5.0,
            packet_rate: 1.0,
            kilobytes_per_second: 3.0,
            hops: 0.0,
            vs_capacity: 0.0,
            topology: 0.0,
            connections: 0.0,
        }
    }
}

/// A member of a pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolMember {
    pub vs: VsId,
    /// Weight under Ratio (the member's own, else the VS's).
    pub ratio: u32,
}

/// An ordered set of virtual servers, balanced by up to three tiers of methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub members: Vec<PoolMember>,
    /// Preferred, alternate, fallback: tried in order until one yields an answer.
    pub tiers: [Method; 3],
    /// The address Fallback IP answers with.
    pub fallback_ip: Option<IpAddr>,
    /// TTL of the records answered from this pool.
    pub ttl: u32,
    /// Records per answer, 1..=8.
    pub records: u8,
    /// Weight of the pool under the wide IP's Ratio pool method.
    pub ratio: u32,
    pub qos: QosCoefficients,
}

/// How a wide IP chooses among its pools.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum PoolMethod {
    /// Every available pool, equally.
    RoundRobin,
    /// Every available pool, by pool ratio.
    Ratio,
    /// The first available pool in order.
    GlobalAvailability,
    /// The available pool with the best topology score for the client.
    Topology,
}

/// What a wide IP answers when no pool has an available virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllDown {
    /// Answer this address (not health checked).
    FallbackIp(IpAddr),
    /// Answer from the zone's static records of the name.
    ReturnToDns,
    /// SERVFAIL.
    ServFail,
    /// NOERROR with no records (and the SOA).
    NoData,
    /// No response at all.
    Drop,
}

/// A DNS name served by GSLB.
#[derive(Clone, Debug, PartialEq)]
pub struct WideIp {
    pub name: Name,
    /// Pools in order.
    pub pools: Vec<PoolId>,
    pub pool_method: PoolMethod,
    /// Static persist: the LDNS address is masked to this many bits before hashing.
    pub persist_v4: u8,
    pub persist_v6: u8,
    pub all_down: AllDown,
    /// `decided_by`: a peer EDNS whose decisions this one serves for the wide IP.
    pub deferral: Option<Deferral>,
    /// Whether a query's client subnet (RFC 7871) stands for the client.
    pub ecs: EcsMode,
}

/// What a wide IP does with a query's EDNS Client Subnet (`ecs` of a zone or wide IP).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum EcsMode {
    /// The subnet, cut to the honoured length, stands for the client.
    #[default]
    Honor,
    /// The query's source stands for the client; the response's scope is 0.
    Ignore,
}

/// A wide IP decided by a peer EDNS (claims 48, 58).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deferral {
    /// The `[[peer]]`'s name.
    pub peer: String,
    /// What to serve while the peer is silent.
    pub when_silent: WhenPeerSilent,
}

/// What a deferring EDNS serves for a wide IP while its deciding peer is silent.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum WhenPeerSilent {
    /// Decide locally, as if the wide IP were not deferred.
    #[default]
    DecideLocally,
    /// Keep serving the peer's last decision, however old.
    KeepLast,
    /// The wide IP's all-down behaviour (`when_all_down`).
    AllDown,
}

/// A named set of LDNS (or virtual server) prefixes; a group names other regions.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub name: String,
    /// Its own prefixes.
    pub prefixes: Vec<IpNet>,
    /// Regions it contains (a continent of countries); validated acyclic.
    pub members: Vec<RegionId>,
}

/// What the LDNS side of a topology record matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdnsMatch {
    /// Every LDNS.
    Any,
    /// An LDNS in the region (or in a region it contains).
    Region(RegionId),
}

/// What the server side of a topology record matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetMatch {
    /// Virtual servers at the site.
    Site(SiteId),
    /// Virtual servers whose address is in the region (or a region it contains).
    Region(RegionId),
}

/// "LDNS in X prefers servers in Y by this much": the highest matching score wins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopologyRecord {
    pub ldns: LdnsMatch,
    pub target: TargetMatch,
    pub score: u32,
}

/// How dynamic weights follow their metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Damping {
    /// Most a member's share of answers may move per balancer interval (0..=1).
    pub max_step: f64,
    /// A share change smaller than this is ignored (hysteresis, 0..=1).
    pub hysteresis: f64,
}

impl Default for Damping {
    fn default() -> Self {
        Self {
            max_step: 0.10,
            hysteresis: 0.02,
        }
    }
}

/// What is known of one virtual server's load and health. Unknown values are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VsMetrics {
    /// Health: `Some(false)` takes it out of rotation; unknown counts as up.
    pub up: Option<bool>,
    pub connections: Option<u64>,
    pub packets_per_second: Option<u64>,
    pub kilobits_per_second: Option<u64>,
    /// Percent, 0..=100.
    pub cpu_percent: Option<f64>,
    /// Overrides the configured capacity.
    pub capacity: Option<u64>,
    /// An operator or agent score, higher is better.
    pub score: Option<u64>,
}

/// Path from a site to an LDNS prefix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathMetrics {
    pub rtt_ms: f64,
    pub hops: u32,
    /// Share of probes answered, 0..=1.
    pub completion: f64,
}

/// All metrics the balancer knows at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// By virtual server.
    pub vs: HashMap<VsId, VsMetrics>,
    /// By LDNS prefix, then site.
    pub paths: HashMap<IpNet, HashMap<SiteId, PathMetrics>>,
}

/// Who is asking, as far as the balancer distinguishes clients: one "client class" of the
/// XDP region map (see `balance::classes`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientContext {
    /// The regions the LDNS is in: the most specific one and every group containing it.
    pub ldns_regions: Vec<RegionId>,
    /// Path metrics from each site to this client's LDNS prefix, if probed.
    pub paths: Option<HashMap<SiteId, PathMetrics>>,
}

/// A stable 64-bit key of a name (FNV-1a 64), e.g. of a virtual server for a persist slot
/// table or of a client class: the same name gives the same key in every process and version.
pub fn stable_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use strum::VariantNames;

    use super::*;

    /// The config spellings are the user's interface: derived, but pinned here.
    #[test]
    fn config_spellings() {
        assert_eq!(
            Method::VARIANTS,
            [
                "round_robin",
                "ratio",
                "global_availability",
                "topology",
                "static_persist",
                "fallback_ip",
                "drop_packet",
                "return_to_dns",
                "none",
                "least_connections",
                "packet_rate",
                "kilobytes_per_second",
                "vs_capacity",
                "vs_score",
                "cpu",
                "round_trip_time",
                "hops",
                "completion_rate",
                "quality_of_service",
            ]
        );
        assert_eq!(Method::KilobytesPerSecond.name(), "kilobytes_per_second");
        assert_eq!("vs_score".parse(), Ok(Method::VsScore));
        assert!("VS_SCORE".parse::<Method>().is_err());
        assert_eq!(
            PoolMethod::VARIANTS,
            ["round_robin", "ratio", "global_availability", "topology"]
        );
        assert_eq!(ServerKind::VARIANTS, ["controller", "host"]);
    }
}
