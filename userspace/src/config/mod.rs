//! The TOML configuration, validated as a whole: every error names the key and why, and a
//! config that fails validation is never half applied.
//!
//! This module reads the listener, zone and answer sections; [`gslb`] reads the GSLB sections
//! (balancer, sites, servers, virtual servers, pools, wide IPs, regions, topology) into a
//! [`Model`]; [`agents`] reads `[agents]`, the agent ingest and its keys; [`transfer`] reads
//! the TSIG keys and each zone's transfer and NOTIFY settings.
use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use hickory_proto::rr::Name;
use serde::Deserialize;
use xgslb_common::{MAX_ADDRS, MAX_LISTENERS};

use crate::model::{EcsMode, Model};

pub mod agents;
mod ecs;
pub mod gslb;
pub mod peers;
mod rrl;
pub mod transfer;

pub use agents::{AgentKey, AgentsConfig};
pub use ecs::EcsPolicy;
pub use gslb::{BalancerConfig, StateFile};
pub use peers::{PeerConfig, PeeringConfig};
pub use rrl::RrlPolicy;
pub use transfer::{TsigKeyConfig, ZoneTransferConfig};

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (the message has line and column).
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value that parses but is not acceptable.
    #[error("{path}: {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: String,
        why: String,
    },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    zone: Vec<RawZone>,
    #[serde(default)]
    tsig_key: Vec<transfer::RawTsigKey>,
    #[serde(default)]
    answer: Vec<RawAnswer>,
    #[serde(default)]
    balancer: gslb::RawBalancer,
    #[serde(default)]
    site: Vec<gslb::RawSite>,
    #[serde(default)]
    site_server: Vec<gslb::RawSiteServer>,
    #[serde(default)]
    virtual_server: Vec<gslb::RawVs>,
    #[serde(default)]
    pool: Vec<gslb::RawPool>,
    #[serde(default)]
    wideip: Vec<gslb::RawWideIp>,
    #[serde(default)]
    region: Vec<gslb::RawRegion>,
    #[serde(default)]
    topology: Vec<gslb::RawTopology>,
    #[serde(default)]
    agents: Option<agents::RawAgents>,
    #[serde(default)]
    peering: Option<peers::RawPeering>,
    #[serde(default)]
    peer: Vec<peers::RawPeer>,
    #[serde(default)]
    ecs: Option<RawEcs>,
    #[serde(default)]
    rrl: Option<rrl::RawRrl>,
    cookies: Option<RawCookies>,
}

/// `[cookies]`: DNS cookies (RFC 7873, RFC 9018 server cookies).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCookies {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
}

/// `[ecs]`: how far client subnets (RFC 7871) are honoured, and whose.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEcs {
    #[serde(default)]
    max_source_v4: Option<u8>,
    #[serde(default)]
    max_source_v6: Option<u8>,
    #[serde(default)]
    trusted: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Vec<String>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default = "default_pin_dir")]
    pin_dir: PathBuf,
    #[serde(default)]
    xdp_mode: XdpModeSetting,
    #[serde(default = "default_control_socket")]
    control_socket: PathBuf,
    #[serde(default)]
    metrics_listen: Option<String>,
    #[serde(default)]
    http_token_file: Option<PathBuf>,
    #[serde(default)]
    udp_steering: UdpSteering,
}

fn default_pin_dir() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/xgslb")
}

fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/xgslb/control.sock")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    origin: String,
    file: PathBuf,
    /// The zone-transfer keys (read by `transfer`).
    #[serde(default)]
    allow_transfer: Vec<String>,
    #[serde(default)]
    transfer_keys: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    notify_key: Option<String>,
    /// "honor" (default) or "ignore": what the zone's wide IPs do with client subnets.
    #[serde(default)]
    ecs: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    name: String,
    ttl: u32,
    #[serde(default = "one")]
    records: u8,
    addresses: Vec<RawAddress>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddress {
    ip: String,
    #[serde(default = "one_u32")]
    weight: u32,
}

fn one_u32() -> u32 {
    1
}

/// How xgslbd attaches the XDP program.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    /// Driver mode, or fail.
    Native,
    /// Generic (skb) mode.
    Generic,
    /// Native, else generic with a warning.
    #[default]
    Auto,
    /// No XDP: the slow path answers everything.
    Off,
}

/// How the kernel spreads UDP queries over the slow path's workers (one socket each in a
/// SO_REUSEPORT group).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UdpSteering {
    /// `cpu` when the interface spreads its receive over as many queues as there are
    /// workers (RSS), else `hash`.
    #[default]
    Auto,
    /// Each datagram to the worker of the CPU that received it (a classic BPF program on the
    /// group): no cross-CPU traffic, when the NIC spreads receive over the CPUs.
    Cpu,
    /// The kernel's hash of addresses and ports: every worker busy even when every
    /// datagram arrives on one CPU (one receive queue, veth).
    Hash,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Addresses the slow path binds and the XDP program answers on.
    pub listen: Vec<SocketAddr>,
    /// Interface to attach to, unless the command line names one.
    pub interface: Option<String>,
    /// bpffs directory for the pinned maps and link.
    pub pin_dir: PathBuf,
    /// XDP attach mode.
    pub xdp_mode: XdpModeSetting,
    /// The control socket `xgslbctl` talks to.
    pub control_socket: PathBuf,
    /// Where the HTTP endpoint listens (`/metrics`, the web console and its `/api/v1/`), if
    /// anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The token every HTTP request must carry (`server.http_token_file`); required
    /// when `metrics_listen` is not a loopback address.
    pub http_token: Option<crate::secret::HttpToken>,
    /// How UDP queries are spread over the workers.
    pub udp_steering: UdpSteering,
    /// Zones: origin and file (resolved against the config's directory), transfer settings.
    pub zones: Vec<ZoneConfig>,
    /// TSIG keys (`[[tsig_key]]`), for zone transfers and NOTIFY.
    pub tsig_keys: Vec<TsigKeyConfig>,
    /// Answer sets.
    pub answers: Vec<AnswerConfig>,
    /// Sites, servers, virtual servers, pools, wide IPs, regions, topology and damping.
    pub model: Model,
    /// The balancer thread.
    pub balancer: BalancerConfig,
    /// The agent ingest (`[agents]`), if agents report.
    pub agents: Option<AgentsConfig>,
    /// The peer EDNSs (`[peering]`, `[[peer]]`), if this EDNS has any.
    pub peering: Option<PeeringConfig>,
    /// `[ecs]`: how far client subnets are honoured, and whose.
    pub ecs: EcsPolicy,
    /// `[rrl]`: response rate limiting of UDP responses (off by default).
    pub rrl: RrlPolicy,
    /// `[cookies]`: whether DNS cookies are checked and issued, and with which secret.
    pub cookies: CookiesConfig,
}

/// `[cookies]`: DNS cookies (RFC 7873) with RFC 9018 server cookies, on both paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookiesConfig {
    /// Check and issue cookies (default); off, the option is ignored.
    pub enabled: bool,
    /// The server secret from `secret_file` (16 bytes as 32 hex digits), shared by every
    /// EDNS answering for one address; without one, xgslbd keeps the secret of the program
    /// it adopts, or draws a random one.
    pub secret: Option<crate::secret::CookieSecret>,
}

impl Default for CookiesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
        }
    }
}

/// One zone.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    pub origin: Name,
    pub file: PathBuf,
    /// Who may transfer it, whom to notify (default: nobody, no one).
    pub transfer: ZoneTransferConfig,
    /// What its wide IPs do with client subnets, unless they say.
    pub ecs: EcsMode,
}

/// One answer set: the A and AAAA records of `name`.
#[derive(Clone, Debug)]
pub struct AnswerConfig {
    pub name: Name,
    pub ttl: u32,
    /// Records per answer (capped to the addresses of each family).
    pub records: u8,
    /// Addresses and weights, in order.
    pub addresses: Vec<(IpAddr, u32)>,
}

/// The largest TTL RFC 2181 8 allows.
pub(crate) const MAX_TTL: u32 = (1 << 31) - 1;

impl Config {
    /// The `[server]` keys (and the agents' and peers' addresses) whose values differ
    /// between `self` and `other`: what a reload cannot apply (sockets, interface, pins are
    /// set up at start).
    pub fn server_differences(&self, other: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut differ = |key, same: bool| {
            if !same {
                keys.push(key);
            }
        };
        differ("server.listen", self.listen == other.listen);
        differ("server.interface", self.interface == other.interface);
        differ("server.pin_dir", self.pin_dir == other.pin_dir);
        differ("server.xdp_mode", self.xdp_mode == other.xdp_mode);
        differ(
            "server.control_socket",
            self.control_socket == other.control_socket,
        );
        differ(
            "server.metrics_listen",
            self.metrics_listen == other.metrics_listen,
        );
        differ(
            "server.http_token_file",
            self.http_token == other.http_token,
        );
        differ(
            "server.udp_steering",
            self.udp_steering == other.udp_steering,
        );
        // The agents' and peers' sockets are bound at start too (adding or removing the
        // section included).
        differ(
            "agents.listen",
            self.agents.as_ref().map(|a| a.listen) == other.agents.as_ref().map(|a| a.listen),
        );
        differ(
            "peering.listen",
            self.peering.as_ref().map(|p| p.listen) == other.peering.as_ref().map(|p| p.listen),
        );
        keys
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (relative zone files resolve against its
    /// directory).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: String, why: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            why,
        };
        let base = path.parent().unwrap_or(Path::new("."));

        if raw.server.listen.is_empty() {
            return Err(invalid(
                "server.listen".into(),
                "at least one address:port".into(),
            ));
        }
        if raw.server.listen.len() > MAX_LISTENERS as usize {
            return Err(invalid(
                "server.listen".into(),
                format!("at most {MAX_LISTENERS} addresses"),
            ));
        }
        let mut listen = Vec::new();
        for (i, l) in raw.server.listen.iter().enumerate() {
            let addr: SocketAddr = l.parse().map_err(|_| {
                invalid(
                    format!("server.listen[{i}]"),
                    format!("{l:?} is not address:port (IPv6 as [addr]:port)"),
                )
            })?;
            if listen.contains(&addr) {
                return Err(invalid(
                    format!("server.listen[{i}]"),
                    format!("{addr} twice"),
                ));
            }
            listen.push(addr);
        }

        let metrics_listen = match &raw.server.metrics_listen {
            None => None,
            Some(l) => Some(l.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "server.metrics_listen".into(),
                    format!("{l:?} is not address:port (IPv6 as [addr]:port)"),
                )
            })?),
        };

        let http_token = match &raw.server.http_token_file {
            Some(file) => Some(crate::secret::HttpToken::new(
                agents::read_secret(&base.join(file))
                    .map_err(|why| invalid("server.http_token_file".into(), why.to_string()))?,
            )),
            None => None,
        };
        if let Some(addr) = metrics_listen
            && !addr.ip().is_loopback()
            && http_token.is_none()
        {
            return Err(invalid(
                "server.metrics_listen".into(),
                format!(
                    "{addr} is not a loopback address: set server.http_token_file, the token \
                     every request must carry"
                ),
            ));
        }

        let tsig_keys = transfer::keys(&raw.tsig_key, base).map_err(|e| invalid(e.key, e.why))?;
        let mut zones = Vec::new();
        let mut origins = HashSet::new();
        for (i, z) in raw.zone.iter().enumerate() {
            let origin =
                parse_name(&z.origin).map_err(|why| invalid(format!("zone[{i}].origin"), why))?;
            if !origins.insert(origin.to_lowercase()) {
                return Err(invalid(
                    format!("zone[{i}].origin"),
                    format!("{origin} twice"),
                ));
            }
            let ecs = match &z.ecs {
                None => EcsMode::default(),
                Some(s) => s.parse().map_err(|_| {
                    invalid(
                        format!("zone[{i}].ecs"),
                        format!("{s:?} is not one of: honor, ignore"),
                    )
                })?,
            };
            zones.push(ZoneConfig {
                origin,
                file: base.join(&z.file),
                transfer: transfer::zone(i, z, &tsig_keys).map_err(|e| invalid(e.key, e.why))?,
                ecs,
            });
        }

        let mut answers = Vec::new();
        let mut names = HashSet::new();
        for (i, a) in raw.answer.iter().enumerate() {
            let key = |k: &str| format!("answer[{i}].{k}");
            let name = parse_name(&a.name).map_err(|why| invalid(key("name"), why))?;
            if !names.insert(name.to_lowercase()) {
                return Err(invalid(key("name"), format!("{name} has two answer sets")));
            }
            if !zones.iter().any(|z| z.origin.zone_of(&name)) {
                return Err(invalid(
                    key("name"),
                    format!("{name} is in none of the configured zones"),
                ));
            }
            if a.ttl > MAX_TTL {
                return Err(invalid(
                    key("ttl"),
                    format!("at most {MAX_TTL} (RFC 2181 8)"),
                ));
            }
            let mut addresses = Vec::new();
            for (j, ad) in a.addresses.iter().enumerate() {
                let ip: IpAddr = ad.ip.parse().map_err(|_| {
                    invalid(
                        key(&format!("addresses[{j}].ip")),
                        format!("{:?} is not an IP address", ad.ip),
                    )
                })?;
                if ad.weight == 0 {
                    return Err(invalid(
                        key(&format!("addresses[{j}].weight")),
                        "must be at least 1 (remove the address to take it out)".into(),
                    ));
                }
                if addresses.iter().any(|(a, _)| *a == ip) {
                    return Err(invalid(
                        key(&format!("addresses[{j}].ip")),
                        format!("{ip} twice"),
                    ));
                }
                addresses.push((ip, ad.weight));
            }
            let v4 = addresses.iter().filter(|(a, _)| a.is_ipv4()).count();
            let v6 = addresses.len() - v4;
            if addresses.is_empty() {
                return Err(invalid(key("addresses"), "at least one address".into()));
            }
            if v4 > MAX_ADDRS || v6 > MAX_ADDRS {
                return Err(invalid(
                    key("addresses"),
                    format!("at most {MAX_ADDRS} IPv4 and {MAX_ADDRS} IPv6 addresses"),
                ));
            }
            if a.records == 0 || a.records as usize > MAX_ADDRS {
                return Err(invalid(key("records"), format!("1 to {MAX_ADDRS}")));
            }
            answers.push(AnswerConfig {
                name,
                ttl: a.ttl,
                records: a.records,
                addresses,
            });
        }

        let (model, balancer) = gslb::validate(
            gslb::Raw {
                balancer: raw.balancer,
                site: raw.site,
                site_server: raw.site_server,
                virtual_server: raw.virtual_server,
                pool: raw.pool,
                wideip: raw.wideip,
                region: raw.region,
                topology: raw.topology,
            },
            &zones,
            &answers,
            base,
        )
        .map_err(|e| invalid(e.key, e.why))?;

        let agents = raw
            .agents
            .map(|a| agents::validate(a, &listen, &model, base))
            .transpose()
            .map_err(|e| invalid(e.key, e.why))?;
        let mut taken = listen.clone();
        taken.extend(agents.as_ref().map(|a| a.listen));
        let peering = peers::validate(raw.peering, raw.peer, &taken, &model, base)
            .map_err(|e| invalid(e.key, e.why))?;

        let ecs = match raw.ecs {
            None => EcsPolicy::default(),
            Some(e) => ecs_policy(&e).map_err(|(key, why)| invalid(key, why))?,
        };
        let rrl = match raw.rrl {
            None => RrlPolicy::default(),
            Some(r) => rrl::policy(&r).map_err(|(key, why)| invalid(key, why))?,
        };
        let cookies = match raw.cookies {
            None => CookiesConfig::default(),
            Some(c) => CookiesConfig {
                enabled: c.enabled.unwrap_or(true),
                secret: c
                    .secret_file
                    .map(|f| crate::secret::CookieSecret::load(&base.join(f)))
                    .transpose()
                    .map_err(|e| invalid("cookies.secret_file".into(), e.to_string()))?,
            },
        };
        Ok(Config {
            path: path.to_owned(),
            listen,
            interface: raw.server.interface,
            pin_dir: raw.server.pin_dir,
            xdp_mode: raw.server.xdp_mode,
            control_socket: raw.server.control_socket,
            metrics_listen,
            http_token,
            udp_steering: raw.server.udp_steering,
            zones,
            tsig_keys,
            answers,
            model,
            balancer,
            agents,
            peering,
            ecs,
            rrl,
            cookies,
        })
    }
}

/// The `[ecs]` section checked: source prefix caps within the family, trusted prefixes.
fn ecs_policy(raw: &RawEcs) -> Result<EcsPolicy, (String, String)> {
    let defaults = EcsPolicy::default();
    let cap = |key: &str, v: Option<u8>, default: u8, max: u8| match v {
        None => Ok(default),
        Some(v) if v <= max => Ok(v),
        Some(v) => Err((
            format!("ecs.{key}"),
            format!("{v} is longer than an address (0 to {max} bits)"),
        )),
    };
    let mut trusted = Vec::new();
    for (i, t) in raw.trusted.iter().enumerate() {
        let net: ipnet::IpNet = t
            .parse()
            .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                (
                    format!("ecs.trusted[{i}]"),
                    format!("{t:?} is not a prefix (198.18.0.0/15) or an address"),
                )
            })?;
        trusted.push(net.trunc());
    }
    Ok(EcsPolicy {
        max4: cap("max_source_v4", raw.max_source_v4, defaults.max4, 32)?,
        max6: cap("max_source_v6", raw.max_source_v6, defaults.max6, 128)?,
        trusted,
    })
}

/// A fully qualified domain name (a trailing dot is implied).
pub(crate) fn parse_name(s: &str) -> Result<Name, String> {
    let mut name = Name::from_utf8(s).map_err(|e| format!("{s:?} is not a domain name: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// `config/<file>` of the repository, loaded (for tests). Git does not keep modes: a fresh
/// clone has the secrets at 0644, which is refused, so every key file there is made
/// owner-only first.
#[cfg(test)]
pub(crate) fn load_example(file: &str) -> Config {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    for e in std::fs::read_dir(&dir).expect("config/").flatten() {
        if e.path().extension().is_some_and(|x| x == "key") {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o600))
                .expect("chmod a key file");
        }
    }
    Config::load(&dir.join(file)).expect("the example config loads")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = ["198.18.0.2:53", "[2001:db8::2]:53"]

[[zone]]
origin = "example.test"
file = "example.test.zone"

[[answer]]
name = "www.example.test."
ttl = 30
addresses = [{ ip = "198.18.1.10", weight = 3 }, { ip = "2001:db8::10" }]
"#;

    /// `text` parsed as /etc/xgslb/xgslb.toml.
    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/xgslb/xgslb.toml"), text)
    }

    /// The error `text` is refused with.
    pub(super) fn error_of(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_config_validates() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.zones[0].file, Path::new("/etc/xgslb/example.test.zone"));
        assert_eq!(c.zones[0].origin.to_string(), "example.test.");
        assert_eq!(c.answers[0].addresses[0].1, 3);
        assert_eq!(c.answers[0].addresses[1].1, 1);
        assert_eq!(c.answers[0].records, 1);
        assert_eq!(c.xdp_mode, XdpModeSetting::Auto);
        assert_eq!(c.pin_dir, Path::new("/sys/fs/bpf/xgslb"));
        assert_eq!(c.udp_steering, UdpSteering::Auto);
        let hashed = GOOD.replace("[server]\n", "[server]\nudp_steering = \"hash\"\n");
        let hashed = parse(&hashed).unwrap();
        assert_eq!(hashed.udp_steering, UdpSteering::Hash);
        assert_eq!(c.server_differences(&hashed), ["server.udp_steering"]);
        assert!(c.server_differences(&parse(GOOD).unwrap()).is_empty());
    }

    #[test]
    fn the_example_config_validates() {
        let c = load_example("example.toml");
        let agents = c.agents.unwrap();
        assert_eq!(agents.keys.len(), 3);
        assert!(agents.keys.iter().all(|k| k.key.secret.len() == 64));
        let peering = c.peering.unwrap();
        assert_eq!(peering.peers.len(), 1);
        assert!(c.model.wideips.iter().all(|w| w.deferral.is_none()));
    }

    /// The demo's second EDNS: valid, peered with the first both ways (each one's peer is
    /// the other's listen, same key), and with the same model apart from the one wide IP it
    /// defers, as two EDNSs must have to decide alike.
    #[test]
    fn the_second_example_config_validates_and_pairs_with_the_first() {
        let one = load_example("example.toml");
        let two = load_example("example-edns2.toml");
        assert_eq!(two.agents.as_ref().map(|a| a.keys.len()), Some(3));
        let (p1, p2) = (one.peering.unwrap(), two.peering.unwrap());
        let (to2, to1) = (&p1.peers[0], &p2.peers[0]);
        assert_eq!(
            (to2.name.as_str(), to2.address),
            (p2.name.as_str(), p2.listen)
        );
        assert_eq!(
            (to1.name.as_str(), to1.address),
            (p1.name.as_str(), p1.listen)
        );
        assert_eq!(
            (to2.site.as_str(), to1.site.as_str()),
            (p2.site.as_str(), p1.site.as_str())
        );
        assert_eq!(to2.key.id, to1.key.id);
        assert_eq!(to2.key.secret, to1.key.secret);
        let deferred: Vec<_> = two
            .model
            .wideips
            .iter()
            .filter_map(|w| Some((w.name.to_string(), w.deferral.as_ref()?.peer.clone())))
            .collect();
        assert_eq!(
            deferred,
            [("geo.example.test.".to_owned(), "edns-tokyo".to_owned())]
        );
        let mut undeferred = two.model.clone();
        for w in &mut undeferred.wideips {
            w.deferral = None;
        }
        assert_eq!(
            undeferred, one.model,
            "example-edns2.toml's GSLB sections differ"
        );
        assert_eq!(format!("{:?}", two.answers), format!("{:?}", one.answers));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                GOOD.replace("listen = [", "lissen = ["),
                "unknown field `lissen`",
            ),
            (
                GOOD.replace("198.18.0.2:53", "198.18.0.2"),
                "server.listen[0]",
            ),
            (
                GOOD.replace("\"198.18.1.10\"", "\"198.18.1\""),
                "answer[0].addresses[0].ip",
            ),
            (
                GOOD.replace("weight = 3", "weight = 0"),
                "answer[0].addresses[0].weight",
            ),
            (
                GOOD.replace("www.example.test.", "www.other.test."),
                "answer[0].name",
            ),
            (
                GOOD.replace("ttl = 30", "ttl = 4294967295"),
                "answer[0].ttl",
            ),
            (
                GOOD.replace("ttl = 30", "ttl = 30\nrecords = 0"),
                "answer[0].records",
            ),
            (GOOD.replace("ttl = 30", "ttl = \"30\""), "invalid type"),
            (
                GOOD.replace("[server]\n", "[server]\nudp_steering = \"rss\"\n"),
                "unknown variant `rss`",
            ),
            (
                format!(
                    "{GOOD}\n[[answer]]\nname = \"WWW.example.test\"\nttl = 1\naddresses = [{{ ip = \"198.18.0.9\" }}]"
                ),
                "two answer sets",
            ),
            (
                format!("{GOOD}\n[[zone]]\norigin = \"example.test.\"\nfile = \"x\""),
                "zone[1].origin",
            ),
        ];
        for (text, want) in cases {
            let err = error_of(&text);
            assert!(err.contains(want), "error {err:?} lacks {want:?}");
        }
    }
}
