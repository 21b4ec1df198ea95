//! The GSLB sections of the config — `[balancer]`, `[[site]]`, `[[site_server]]`,
//! `[[virtual_server]]`, `[[pool]]`, `[[wideip]]`, `[[region]]`, `[[topology]]` — as written,
//! and their validation into a [`Model`] and a [`BalancerConfig`].
//!
//! Objects name each other (`virtual_server.server = "tokyo-lb"`); validation resolves every
//! name to an index into the model's vectors, in file order, so `model.vss[i]` is
//! `virtual_server[i]`. Every error names the key (`pool[1].members[0]`) and says why.
//!
//! GSLB servers are `[[site_server]]`, not `[[server]]`: `[server]` is the listener section.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;
use strum::VariantNames;
use xgslb_common::MAX_ADDRS;

use super::{AnswerConfig, MAX_TTL, ZoneConfig, parse_name};
use crate::model::{
    AllDown, Damping, Deferral, LdnsMatch, Method, Model, Pool, PoolMember, PoolMethod,
    QosCoefficients, Region, Server, ServerKind, Site, TargetMatch, TopologyRecord, VirtualServer,
    WhenPeerSilent, WideIp,
};

/// Most members a pool may have (the balancer answers with the heaviest 8 per family).
pub const MAX_POOL_MEMBERS: usize = 64;
/// Balancer interval bounds, in milliseconds.
pub const INTERVAL_MS: std::ops::RangeInclusive<u64> = 50..=60_000;
/// Bounds of `balancer.max_classes`.
pub const MAX_CLASSES: std::ops::RangeInclusive<usize> = 1..=65_535;
/// The LDNS side of a topology record that matches every client.
const ANY: &str = "any";
/// The longest object name.
const MAX_NAME: usize = 63;

/// How the balancer thread runs.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancerConfig {
    /// How often it recomputes selections (`interval_ms`, 50..=60000, default 1000).
    pub interval: Duration,
    /// The metrics file it watches, resolved against the config's directory.
    pub metrics_file: Option<PathBuf>,
    /// The core to pin the balancer thread to.
    pub cpu: Option<usize>,
    /// Most client classes (XDP regions) it publishes, 1..=65535, default 1024.
    pub max_classes: usize,
    /// Where the agents' last reports are saved across restarts (`state_file`, resolved
    /// against the config's directory; `""` for none; default beside the pins, see
    /// `metrics::state::default_path`).
    pub state_file: StateFile,
    /// How long a restarted xgslbd that adopted a serving program keeps its maps while
    /// agents have not all reported (`warm_grace_ms`, 0..=600000; default the agents'
    /// report timeout).
    pub warm_grace: Option<Duration>,
}

/// Where the state file is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StateFile {
    /// `metrics::state::default_path` of the pin directory.
    #[default]
    BesidePins,
    /// No state file.
    Off,
    At(PathBuf),
}

/// Bounds of `balancer.warm_grace_ms`.
pub const WARM_GRACE_MS: std::ops::RangeInclusive<u64> = 0..=600_000;

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(1000),
            metrics_file: None,
            cpu: None,
            max_classes: 1024,
            state_file: StateFile::BesidePins,
            warm_grace: None,
        }
    }
}

/// A refused value: the key and why.
#[derive(Debug)]
pub(super) struct Invalid {
    pub key: String,
    pub why: String,
}

fn bad<T>(key: impl Into<String>, why: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        key: key.into(),
        why: why.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// As written.

/// The GSLB sections of the file (each a field of `RawConfig`: serde cannot flatten with
/// `deny_unknown_fields`).
#[derive(Debug, Default)]
pub(super) struct Raw {
    pub balancer: RawBalancer,
    pub site: Vec<RawSite>,
    pub site_server: Vec<RawSiteServer>,
    pub virtual_server: Vec<RawVs>,
    pub pool: Vec<RawPool>,
    pub wideip: Vec<RawWideIp>,
    pub region: Vec<RawRegion>,
    pub topology: Vec<RawTopology>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawBalancer {
    interval_ms: u64,
    metrics_file: Option<PathBuf>,
    cpu: Option<usize>,
    max_classes: usize,
    damping: RawDamping,
    state_file: Option<PathBuf>,
    warm_grace_ms: Option<u64>,
}

impl Default for RawBalancer {
    fn default() -> Self {
        let d = BalancerConfig::default();
        Self {
            interval_ms: d.interval.as_millis() as u64,
            metrics_file: None,
            cpu: None,
            max_classes: d.max_classes,
            damping: RawDamping::default(),
            state_file: None,
            warm_grace_ms: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawDamping {
    max_step: f64,
    hysteresis: f64,
}

impl Default for RawDamping {
    fn default() -> Self {
        let d = Damping::default();
        Self {
            max_step: d.max_step,
            hysteresis: d.hysteresis,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSiteServer {
    name: String,
    site: String,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVs {
    name: String,
    server: String,
    address: String,
    port: u16,
    #[serde(default)]
    capacity: Option<u64>,
    #[serde(default = "one")]
    ratio: u32,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    limits: RawLimits,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// Counts are read as numbers so that `bits_per_second = 1e9` reads; validation wants whole
/// numbers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    connections: Option<f64>,
    bits_per_second: Option<f64>,
    packets_per_second: Option<f64>,
    cpu_percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    name: String,
    members: Vec<RawMember>,
    #[serde(default)]
    preferred: Option<String>,
    #[serde(default)]
    alternate: Option<String>,
    #[serde(default)]
    fallback: Option<String>,
    #[serde(default)]
    fallback_ip: Option<String>,
    #[serde(default = "default_ttl")]
    ttl: u32,
    #[serde(default = "one_u8")]
    records: u8,
    #[serde(default = "one")]
    ratio: u32,
    #[serde(default)]
    qos: RawQos,
}

fn default_ttl() -> u32 {
    30
}

fn one_u8() -> u8 {
    1
}

/// A pool member: `"tokyo-www"` or `{ vs = "tokyo-www", ratio = 3 }`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "toml::Value")]
struct RawMember {
    vs: String,
    ratio: Option<u32>,
}

/// The table form of a member.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberTable {
    vs: String,
    #[serde(default)]
    ratio: Option<u32>,
}

// Not `#[serde(untagged)]`: its one error for every mismatch would hide what is wrong
// inside a table (an unknown field, a ratio that is not a number).
impl TryFrom<toml::Value> for RawMember {
    type Error = String;

    fn try_from(v: toml::Value) -> Result<RawMember, String> {
        match v {
            toml::Value::String(vs) => Ok(RawMember { vs, ratio: None }),
            toml::Value::Table(_) => {
                let t = MemberTable::deserialize(v).map_err(|e| e.message().to_owned())?;
                Ok(RawMember {
                    vs: t.vs,
                    ratio: t.ratio,
                })
            }
            _ => Err("a virtual server name or a table { vs = \"name\", ratio = N }".to_owned()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawQos {
    round_trip_time: f64,
    completion_rate: f64,
    packet_rate: f64,
    kilobytes_per_second: f64,
    hops: f64,
    vs_capacity: f64,
    topology: f64,
    connections: f64,
}

impl Default for RawQos {
    fn default() -> Self {
        let q = QosCoefficients::default();
        Self {
            round_trip_time: q.round_trip_time,
            completion_rate: q.completion_rate,
            packet_rate: q.packet_rate,
            kilobytes_per_second: q.kilobytes_per_second,
            hops: q.hops,
            vs_capacity: q.vs_capacity,
            topology: q.topology,
            connections: q.connections,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWideIp {
    name: String,
    pools: Vec<String>,
    #[serde(default)]
    pool_method: Option<String>,
    #[serde(default = "default_persist_v4")]
    persist_v4: u8,
    #[serde(default = "default_persist_v6")]
    persist_v6: u8,
    #[serde(default)]
    when_all_down: Option<String>,
    #[serde(default)]
    fallback_ip: Option<String>,
    /// The `[[peer]]` that decides this wide IP (checked against the peers by the caller).
    #[serde(default)]
    decided_by: Option<String>,
    #[serde(default)]
    when_peer_silent: Option<String>,
    /// "honor" or "ignore"; default: the zone's.
    #[serde(default)]
    ecs: Option<String>,
}

fn default_persist_v4() -> u8 {
    24
}

fn default_persist_v6() -> u8 {
    56
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    name: String,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopology {
    ldns: String,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    region: Option<String>,
    score: u32,
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Names of one kind of object, to their index.
struct Names<'a> {
    /// What the kind is called in messages ("site", "virtual server").
    what: &'static str,
    /// Its config key ("site", "virtual_server").
    key: &'static str,
    index: HashMap<&'a str, usize>,
}

impl<'a> Names<'a> {
    /// Checks each name and that none is used twice.
    fn new(
        what: &'static str,
        key: &'static str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Invalid> {
        let mut index = HashMap::new();
        for (i, name) in names.into_iter().enumerate() {
            let k = format!("{key}[{i}].name");
            check_name(&k, name)?;
            if let Some(j) = index.insert(name, i) {
                return bad(k, format!("{name:?} twice (also {key}[{j}])"));
            }
        }
        Ok(Self { what, key, index })
    }

    /// The index of `name`, or an error at `at`.
    fn get(&self, at: &str, name: &str) -> Result<usize, Invalid> {
        match self.index.get(name) {
            Some(&i) => Ok(i),
            None => bad(
                at,
                format!(
                    "no {} {name:?} (no [[{}]] has that name)",
                    self.what, self.key
                ),
            ),
        }
    }
}

pub(super) fn check_name(key: &str, name: &str) -> Result<(), Invalid> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return bad(
            key,
            format!("{name:?}: a name is 1 to {MAX_NAME} of A-Z a-z 0-9 - _ ."),
        );
    }
    Ok(())
}

fn parse_ip(key: &str, s: &str) -> Result<IpAddr, Invalid> {
    s.parse()
        .or_else(|_| bad(key, format!("{s:?} is not an IP address")))
}

/// A method name; the message lists the valid ones.
fn parse_method(key: &str, s: &str) -> Result<Method, Invalid> {
    parse_spelled(key, "method", s)
}

/// One of an enum's config spellings; the message lists them.
fn parse_choice<T: FromStr + VariantNames>(key: &str, s: &str) -> Result<T, Invalid> {
    parse_spelled(key, "value", s)
}

fn parse_spelled<T: FromStr + VariantNames>(key: &str, what: &str, s: &str) -> Result<T, Invalid> {
    s.parse().or_else(|_| {
        bad(
            key,
            format!("unknown {what} {s:?}; one of {}", T::VARIANTS.join(", ")),
        )
    })
}

/// A whole number at least 1, written as an integer or a float (`1e9`).
fn positive_count(key: &str, v: f64) -> Result<u64, Invalid> {
    if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v < u64::MAX as f64) {
        return bad(key, format!("{v} is not a whole number of at least 1"));
    }
    Ok(v as u64)
}

/// Validates the GSLB sections. `zones` and `answers` are the validated zone and answer
/// sections (a wide IP must be in a zone and must not also be an answer set); `base` is the
/// config's directory.
pub(super) fn validate(
    raw: Raw,
    zones: &[ZoneConfig],
    answers: &[AnswerConfig],
    base: &Path,
) -> Result<(Model, BalancerConfig), Invalid> {
    let (balancer, damping) = balancer(raw.balancer, base)?;

    let site_names = Names::new("site", "site", raw.site.iter().map(|s| s.name.as_str()))?;
    let sites = raw
        .site
        .iter()
        .map(|s| Site {
            name: s.name.clone(),
        })
        .collect();

    let server_names = Names::new(
        "server",
        "site_server",
        raw.site_server.iter().map(|s| s.name.as_str()),
    )?;
    let mut servers = Vec::new();
    for (i, s) in raw.site_server.iter().enumerate() {
        let site = site_names.get(&format!("site_server[{i}].site"), &s.site)?;
        let kind = match &s.kind {
            None => ServerKind::Controller,
            Some(k) => parse_choice(&format!("site_server[{i}].kind"), k)?,
        };
        servers.push(Server {
            name: s.name.clone(),
            site,
            kind,
        });
    }

    let vs_names = Names::new(
        "virtual server",
        "virtual_server",
        raw.virtual_server.iter().map(|v| v.name.as_str()),
    )?;
    let vss = virtual_servers(&raw.virtual_server, &server_names, &servers)?;

    let region_names = Names::new(
        "region",
        "region",
        raw.region.iter().map(|r| r.name.as_str()),
    )?;
    let regions = regions(&raw.region, &region_names)?;
    let topology = topology(&raw.topology, &site_names, &region_names)?;

    let pool_names = Names::new("pool", "pool", raw.pool.iter().map(|p| p.name.as_str()))?;
    let mut pools = Vec::new();
    for (i, p) in raw.pool.iter().enumerate() {
        pools.push(pool(i, p, &vs_names, &vss, !topology.is_empty())?);
    }

    let mut wideips = Vec::new();
    let answer_names: HashSet<Name> = answers.iter().map(|a| a.name.to_lowercase()).collect();
    let mut seen: HashMap<Name, usize> = HashMap::new();
    for (i, w) in raw.wideip.iter().enumerate() {
        let wip = wideip(
            i,
            w,
            zones,
            &answer_names,
            &pool_names,
            !topology.is_empty(),
        )?;
        if let Some(j) = seen.insert(wip.name.to_lowercase(), i) {
            return bad(
                format!("wideip[{i}].name"),
                format!("{} twice (also wideip[{j}])", wip.name),
            );
        }
        wideips.push(wip);
    }

    Ok((
        Model {
            sites,
            servers,
            vss,
            pools,
            wideips,
            regions,
            topology,
            damping,
        },
        balancer,
    ))
}

fn balancer(raw: RawBalancer, base: &Path) -> Result<(BalancerConfig, Damping), Invalid> {
    if !INTERVAL_MS.contains(&raw.interval_ms) {
        return bad(
            "balancer.interval_ms",
            format!(
                "{} to {} milliseconds",
                INTERVAL_MS.start(),
                INTERVAL_MS.end()
            ),
        );
    }
    if !MAX_CLASSES.contains(&raw.max_classes) {
        return bad(
            "balancer.max_classes",
            format!("{} to {}", MAX_CLASSES.start(), MAX_CLASSES.end()),
        );
    }
    if raw
        .warm_grace_ms
        .is_some_and(|g| !WARM_GRACE_MS.contains(&g))
    {
        return bad(
            "balancer.warm_grace_ms",
            format!(
                "{} to {} milliseconds",
                WARM_GRACE_MS.start(),
                WARM_GRACE_MS.end()
            ),
        );
    }
    let d = raw.damping;
    if !(d.max_step > 0.0 && d.max_step <= 1.0) {
        return bad(
            "balancer.damping.max_step",
            format!("{} is not in (0, 1]", d.max_step),
        );
    }
    if !(d.hysteresis >= 0.0 && d.hysteresis < d.max_step) {
        return bad(
            "balancer.damping.hysteresis",
            format!(
                "{} is not in [0, max_step = {}): a change must be able to pass it",
                d.hysteresis, d.max_step
            ),
        );
    }
    Ok((
        BalancerConfig {
            interval: Duration::from_millis(raw.interval_ms),
            metrics_file: raw.metrics_file.map(|f| base.join(f)),
            cpu: raw.cpu,
            max_classes: raw.max_classes,
            state_file: match raw.state_file {
                None => StateFile::BesidePins,
                Some(f) if f.as_os_str().is_empty() => StateFile::Off,
                Some(f) => StateFile::At(base.join(f)),
            },
            warm_grace: raw.warm_grace_ms.map(Duration::from_millis),
        },
        Damping {
            max_step: d.max_step,
            hysteresis: d.hysteresis,
        },
    ))
}

fn virtual_servers(
    raw: &[RawVs],
    server_names: &Names,
    servers: &[Server],
) -> Result<Vec<VirtualServer>, Invalid> {
    let mut vss = Vec::new();
    let mut endpoints: HashMap<(IpAddr, u16), usize> = HashMap::new();
    for (i, v) in raw.iter().enumerate() {
        let key = |k: &str| format!("virtual_server[{i}].{k}");
        let server = server_names.get(&key("server"), &v.server)?;
        let addr = parse_ip(&key("address"), &v.address)?;
        if addr.is_unspecified() || addr.is_multicast() {
            return bad(
                key("address"),
                format!("{addr} cannot be answered (unspecified or multicast)"),
            );
        }
        if v.port == 0 {
            return bad(key("port"), "1 to 65535");
        }
        if let Some(j) = endpoints.insert((addr, v.port), i) {
            return bad(
                key("address"),
                format!(
                    "{} port {} is also virtual_server[{j}] ({:?})",
                    addr, v.port, raw[j].name
                ),
            );
        }
        if v.capacity == Some(0) {
            return bad(
                key("capacity"),
                "must be at least 1 (leave it out for unknown)",
            );
        }
        if v.ratio == 0 {
            return bad(
                key("ratio"),
                "must be at least 1 (set enabled = false to take it out)",
            );
        }
        let l = &v.limits;
        let count = |k: &str, x: Option<f64>| {
            x.map(|x| positive_count(&key(&format!("limits.{k}")), x))
                .transpose()
        };
        let cpu_percent = match l.cpu_percent {
            Some(c) if !(c > 0.0 && c <= 100.0) => {
                return bad(key("limits.cpu_percent"), format!("{c} is not in (0, 100]"));
            }
            c => c,
        };
        vss.push(VirtualServer {
            name: v.name.clone(),
            server,
            site: servers[server].site,
            addr,
            port: v.port,
            capacity: v.capacity,
            ratio: v.ratio,
            limits: crate::model::Limits {
                connections: count("connections", l.connections)?,
                bits_per_second: count("bits_per_second", l.bits_per_second)?,
                packets_per_second: count("packets_per_second", l.packets_per_second)?,
                cpu_percent,
            },
            enabled: v.enabled,
        });
    }
    Ok(vss)
}

fn regions(raw: &[RawRegion], names: &Names) -> Result<Vec<Region>, Invalid> {
    let mut regions = Vec::new();
    let mut owner: HashMap<IpNet, usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        if r.name == ANY {
            return bad(
                format!("region[{i}].name"),
                "\"any\" is reserved (topology ldns = \"any\" matches every client)",
            );
        }
        if r.prefixes.is_empty() && r.members.is_empty() {
            return bad(format!("region[{i}]"), "a region needs prefixes or members");
        }
        let mut prefixes = Vec::new();
        for (j, p) in r.prefixes.iter().enumerate() {
            let key = format!("region[{i}].prefixes[{j}]");
            let net: IpNet = p
                .parse()
                .or_else(|_| bad(&key, format!("{p:?} is not a prefix (address/length)")))?;
            if net.trunc() != net {
                return bad(
                    key,
                    format!("{net} has host bits set (the prefix is {})", net.trunc()),
                );
            }
            if let Some(k) = owner.insert(net, i) {
                return bad(
                    key,
                    format!("{net} is also in region[{k}] ({:?})", raw[k].name),
                );
            }
            prefixes.push(net);
        }
        let mut members = Vec::new();
        for (j, m) in r.members.iter().enumerate() {
            let key = format!("region[{i}].members[{j}]");
            let id = names.get(&key, m)?;
            if members.contains(&id) {
                return bad(key, format!("{m:?} twice"));
            }
            members.push(id);
        }
        regions.push(Region {
            name: r.name.clone(),
            prefixes,
            members,
        });
    }
    no_region_cycle(&regions)?;
    Ok(regions)
}

/// Fails at the member that closes a cycle of region groups.
fn no_region_cycle(regions: &[Region]) -> Result<(), Invalid> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        r: usize,
        regions: &[Region],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Result<(), Invalid> {
        marks[r] = Mark::OnPath;
        path.push(r);
        for (j, &m) in regions[r].members.iter().enumerate() {
            match marks[m] {
                Mark::Done => {}
                Mark::New => visit(m, regions, marks, path)?,
                Mark::OnPath => {
                    let start = path.iter().position(|&p| p == m).unwrap_or(0);
                    let cycle: Vec<&str> = path[start..]
                        .iter()
                        .chain([&m])
                        .map(|&p| regions[p].name.as_str())
                        .collect();
                    return bad(
                        format!("region[{r}].members[{j}]"),
                        format!("a cycle of regions: {}", cycle.join(" > ")),
                    );
                }
            }
        }
        path.pop();
        marks[r] = Mark::Done;
        Ok(())
    }
    let mut marks = vec![Mark::New; regions.len()];
    for r in 0..regions.len() {
        if marks[r] == Mark::New {
            visit(r, regions, &mut marks, &mut Vec::new())?;
        }
    }
    Ok(())
}

fn topology(
    raw: &[RawTopology],
    sites: &Names,
    regions: &Names,
) -> Result<Vec<TopologyRecord>, Invalid> {
    let mut records: Vec<TopologyRecord> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("topology[{i}].{k}");
        let ldns = if t.ldns == ANY {
            LdnsMatch::Any
        } else {
            LdnsMatch::Region(regions.get(&key("ldns"), &t.ldns)?)
        };
        let target = match (&t.site, &t.region) {
            (Some(s), None) => TargetMatch::Site(sites.get(&key("site"), s)?),
            (None, Some(r)) => TargetMatch::Region(regions.get(&key("region"), r)?),
            _ => return bad(format!("topology[{i}]"), "exactly one of site and region"),
        };
        if let Some(j) = records
            .iter()
            .position(|r| r.ldns == ldns && r.target == target)
        {
            return bad(
                format!("topology[{i}]"),
                format!("the same ldns and target as topology[{j}]"),
            );
        }
        records.push(TopologyRecord {
            ldns,
            target,
            score: t.score,
        });
    }
    Ok(records)
}

fn pool(
    i: usize,
    p: &RawPool,
    vs_names: &Names,
    vss: &[VirtualServer],
    have_topology: bool,
) -> Result<Pool, Invalid> {
    let key = |k: &str| format!("pool[{i}].{k}");
    if p.members.is_empty() {
        return bad(key("members"), "at least one virtual server");
    }
    if p.members.len() > MAX_POOL_MEMBERS {
        return bad(
            key("members"),
            format!("at most {MAX_POOL_MEMBERS} virtual servers"),
        );
    }
    let mut members: Vec<PoolMember> = Vec::new();
    for (j, m) in p.members.iter().enumerate() {
        let at = key(&format!("members[{j}]"));
        let vs = vs_names.get(&at, &m.vs)?;
        if let Some(k) = members.iter().position(|x| x.vs == vs) {
            return bad(at, format!("{:?} twice (also members[{k}])", m.vs));
        }
        let ratio = m.ratio.unwrap_or(vss[vs].ratio);
        if ratio == 0 {
            return bad(format!("{at}.ratio"), "must be at least 1");
        }
        members.push(PoolMember { vs, ratio });
    }
    let mut tiers = [Method::RoundRobin, Method::None, Method::None];
    for (t, (k, s)) in tiers.iter_mut().zip([
        ("preferred", &p.preferred),
        ("alternate", &p.alternate),
        ("fallback", &p.fallback),
    ]) {
        if let Some(s) = s {
            *t = parse_method(&key(k), s)?;
        }
        if *t == Method::Topology && !have_topology {
            return bad(key(k), "topology needs [[topology]] records");
        }
    }
    let uses_fallback_ip = tiers.contains(&Method::FallbackIp);
    let fallback_ip = match &p.fallback_ip {
        Some(s) => {
            let ip = parse_ip(&key("fallback_ip"), s)?;
            if !uses_fallback_ip {
                return bad(key("fallback_ip"), "set, but no tier is fallback_ip");
            }
            Some(ip)
        }
        None if uses_fallback_ip => {
            return bad(
                key("fallback_ip"),
                "required: a tier of the pool is fallback_ip",
            );
        }
        None => None,
    };
    if p.ttl > MAX_TTL {
        return bad(key("ttl"), format!("at most {MAX_TTL} (RFC 2181 8)"));
    }
    if p.records == 0 || p.records as usize > MAX_ADDRS {
        return bad(key("records"), format!("1 to {MAX_ADDRS}"));
    }
    if p.ratio == 0 {
        return bad(key("ratio"), "must be at least 1");
    }
    let q = &p.qos;
    let coefficients = [
        ("round_trip_time", q.round_trip_time),
        ("completion_rate", q.completion_rate),
        ("packet_rate", q.packet_rate),
        ("kilobytes_per_second", q.kilobytes_per_second),
        ("hops", q.hops),
        ("vs_capacity", q.vs_capacity),
        ("topology", q.topology),
        ("connections", q.connections),
    ];
    for (k, c) in coefficients {
        if !(c.is_finite() && c >= 0.0) {
            return bad(
                key(&format!("qos.{k}")),
                format!("{c} is not a finite number >= 0"),
            );
        }
    }
    if coefficients.iter().all(|(_, c)| *c == 0.0) {
        return bad(key("qos"), "at least one coefficient must be above 0");
    }
    Ok(Pool {
        name: p.name.clone(),
        members,
        tiers,
        fallback_ip,
        ttl: p.ttl,
        records: p.records,
        ratio: p.ratio,
        qos: QosCoefficients {
            round_trip_time: q.round_trip_time,
            completion_rate: q.completion_rate,
            packet_rate: q.packet_rate,
            kilobytes_per_second: q.kilobytes_per_second,
            hops: q.hops,
            vs_capacity: q.vs_capacity,
            topology: q.topology,
            connections: q.connections,
        },
    })
}

fn wideip(
    i: usize,
    w: &RawWideIp,
    zones: &[ZoneConfig],
    answer_names: &HashSet<Name>,
    pool_names: &Names,
    have_topology: bool,
) -> Result<WideIp, Invalid> {
    let key = |k: &str| format!("wideip[{i}].{k}");
    let name = parse_name(&w.name).map_err(|why| Invalid {
        key: key("name"),
        why,
    })?;
    if name.is_wildcard() {
        return bad(
            key("name"),
            format!("{name}: a wide IP cannot be a wildcard"),
        );
    }
    if !zones.iter().any(|z| z.origin.zone_of(&name)) {
        return bad(
            key("name"),
            format!("{name} is in none of the configured zones"),
        );
    }
    if answer_names.contains(&name.to_lowercase()) {
        return bad(
            key("name"),
            format!("{name} is also an [[answer]] set; a name is one or the other"),
        );
    }
    if w.pools.is_empty() {
        return bad(key("pools"), "at least one pool");
    }
    let mut pools = Vec::new();
    for (j, p) in w.pools.iter().enumerate() {
        let at = key(&format!("pools[{j}]"));
        let id = pool_names.get(&at, p)?;
        if pools.contains(&id) {
            return bad(at, format!("{p:?} twice"));
        }
        pools.push(id);
    }
    let pool_method = match &w.pool_method {
        None => PoolMethod::RoundRobin,
        Some(s) => parse_choice(&key("pool_method"), s)?,
    };
    if pool_method == PoolMethod::Topology && !have_topology {
        return bad(key("pool_method"), "topology needs [[topology]] records");
    }
    if w.persist_v4 > 32 {
        return bad(key("persist_v4"), "0 to 32 bits");
    }
    if w.persist_v6 > 128 {
        return bad(key("persist_v6"), "0 to 128 bits");
    }
    #[derive(Clone, Copy, PartialEq, strum::EnumString, strum::VariantNames)]
    #[strum(serialize_all = "snake_case")]
    enum Down {
        FallbackIp,
        ReturnToDns,
        #[strum(serialize = "servfail")]
        ServFail,
        #[strum(serialize = "nodata")]
        NoData,
        Drop,
    }
    let down = match &w.when_all_down {
        None => Down::ReturnToDns,
        Some(s) => parse_choice(&key("when_all_down"), s)?,
    };
    let fallback_ip = w
        .fallback_ip
        .as_deref()
        .map(|s| parse_ip(&key("fallback_ip"), s))
        .transpose()?;
    let all_down = match (down, fallback_ip) {
        (Down::FallbackIp, Some(ip)) => AllDown::FallbackIp(ip),
        (Down::FallbackIp, None) => {
            return bad(key("fallback_ip"), "required: when_all_down is fallback_ip");
        }
        (_, Some(_)) => {
            return bad(
                key("fallback_ip"),
                "set, but when_all_down is not fallback_ip",
            );
        }
        (Down::ReturnToDns, None) => AllDown::ReturnToDns,
        (Down::ServFail, None) => AllDown::ServFail,
        (Down::NoData, None) => AllDown::NoData,
        (Down::Drop, None) => AllDown::Drop,
    };
    let when_silent = w
        .when_peer_silent
        .as_deref()
        .map(|s| parse_choice::<WhenPeerSilent>(&key("when_peer_silent"), s))
        .transpose()?;
    let deferral = match (&w.decided_by, when_silent) {
        (Some(peer), when_silent) => Some(Deferral {
            peer: peer.clone(),
            when_silent: when_silent.unwrap_or_default(),
        }),
        (None, Some(_)) => return bad(key("when_peer_silent"), "set, but decided_by is not"),
        (None, None) => None,
    };
    // The wide IP's own setting, else its zone's (the closest enclosing one).
    let ecs = match &w.ecs {
        Some(s) => parse_choice(&key("ecs"), s)?,
        None => zones
            .iter()
            .filter(|z| z.origin.zone_of(&name))
            .max_by_key(|z| z.origin.num_labels())
            .map(|z| z.ecs)
            .unwrap_or_default(),
    };
    Ok(WideIp {
        name,
        pools,
        pool_method,
        persist_v4: w.persist_v4,
        persist_v6: w.persist_v6,
        all_down,
        deferral,
        ecs,
    })
}

#[cfg(test)]
#[path = "gslb_tests.rs"]
mod tests;
