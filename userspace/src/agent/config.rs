//! The agent's TOML config, validated as a whole: every error names the key and why. What
//! it yields for checks, load sources and probes are the types of the modules that run them
//! ([`CheckConfig`], [`LoadConfig`], [`ProbeConfig`]), so none of those depends on this one.
//! Shape (every key but `agent_id`, `site`, `edns` and `vs.name` has a default or is
//! optional):
//! ```toml
//! agent_id = "tokyo-1"
//! site = "tokyo"
//! interval_ms = 1000                 # report interval
//! [[edns]]
//! address = "198.18.0.2:5300"
//! key_id = 1
//! secret_file = "agent-tokyo.key"    # relative to this file; owner-only, >= 16 bytes
//! [[vs]]
//! name = "tokyo-www"
//! [vs.check]
//! kind = "tcp"                       # tcp | http | https | dns
//! address = "198.18.1.10:80"
//! interval_ms = 1000
//! timeout_ms = 500
//! rise = 2
//! fall = 2
//! [vs.load]
//! connections_port = 80
//! interface = "eth0"
//! cpu = true
//! capacity = 1000
//! command = ["/usr/local/bin/load", "--json"]
//! http_json = "http://127.0.0.1:9100/load"
//! timeout_ms = 1000                  # for command and http_json
//! [probes]
//! ldns = ["198.18.64.1", "2001:db8:4000::1"]
//! max_targets = 64
//! interval_ms = 5000
//! count = 5
//! timeout_ms = 1000
//! port = 53
//! ```
use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::{
    op::ResponseCode,
    rr::{Name, RecordType},
};
use serde::Deserialize;

use super::{
    error::Error,
    health::{CheckConfig, CheckKind, HttpCheck},
    http::Url,
    probe::{self, ProbeConfig},
    sampler::LoadConfig,
};
use crate::metrics::wire;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest agent id and site name the wire carries.
pub const MAX_ID_LEN: usize = 63;
/// Longest VS name the wire carries (a length byte).
pub const MAX_VS_NAME_LEN: usize = 255;
/// Most LDNS targets one agent probes.
pub const MAX_PROBE_TARGETS: usize = 1024;
/// Most DNS queries per target per round.
pub const MAX_PROBE_COUNT: u32 = 100;
/// Interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// A validated agent configuration.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// This agent's id on the wire (1..=63 bytes).
    pub agent_id: String,
    /// The site it reports for (1..=63 bytes).
    pub site: String,
    /// Report interval.
    pub interval: Duration,
    /// The EDNSs to report to (at least one; every report goes to each).
    pub edns: Vec<EdnsConfig>,
    /// The virtual servers it watches.
    pub vs: Vec<VsConfig>,
    /// LDNS path probes.
    pub probes: ProbeConfig,
}

/// One EDNS to report to.
#[derive(Clone, Debug)]
pub struct EdnsConfig {
    pub address: SocketAddr,
    /// Key id and the secret read from `secret_file`.
    pub key: wire::Key,
    pub secret_file: PathBuf,
}

/// One virtual server: how to check it and where its load comes from.
#[derive(Clone, Debug)]
pub struct VsConfig {
    pub name: String,
    /// None: no health records for this VS (load only).
    pub check: Option<CheckConfig>,
    pub load: LoadConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    agent_id: String,
    site: String,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default)]
    edns: Vec<RawEdns>,
    #[serde(default)]
    vs: Vec<RawVs>,
    #[serde(default)]
    probes: RawProbes,
}

fn default_interval_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdns {
    address: String,
    key_id: u32,
    secret_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVs {
    name: String,
    #[serde(default)]
    check: Option<RawCheck>,
    #[serde(default)]
    load: Option<RawLoad>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: RawKind,
    #[serde(default = "default_check_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_check_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "two")]
    rise: u32,
    #[serde(default = "two")]
    fall: u32,
    // tcp
    address: Option<String>,
    // http, https
    url: Option<String>,
    expect_status: Option<u16>,
    body_contains: Option<String>,
    insecure: Option<bool>,
    // dns
    server: Option<String>,
    name: Option<String>,
    qtype: Option<String>,
    expect_rcode: Option<String>,
}

fn default_check_interval_ms() -> u64 {
    1000
}
fn default_check_timeout_ms() -> u64 {
    500
}
fn two() -> u32 {
    2
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Tcp,
    Http,
    Https,
    Dns,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    connections_port: Option<u16>,
    interface: Option<String>,
    #[serde(default)]
    cpu: bool,
    capacity: Option<u64>,
    command: Option<Vec<String>>,
    http_json: Option<String>,
    #[serde(default = "default_load_timeout_ms")]
    timeout_ms: u64,
}

fn default_load_timeout_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbes {
    #[serde(default)]
    ldns: Vec<String>,
    #[serde(default = "default_max_targets")]
    max_targets: usize,
    #[serde(default = "default_probe_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_probe_count")]
    count: u32,
    #[serde(default = "default_probe_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_probe_port")]
    port: u16,
}

impl Default for RawProbes {
    fn default() -> Self {
        RawProbes {
            ldns: Vec::new(),
            max_targets: default_max_targets(),
            interval_ms: default_probe_interval_ms(),
            count: default_probe_count(),
            timeout_ms: default_probe_timeout_ms(),
            port: default_probe_port(),
        }
    }
}

fn default_max_targets() -> usize {
    64
}
fn default_probe_interval_ms() -> u64 {
    5000
}
fn default_probe_count() -> u32 {
    5
}
fn default_probe_timeout_ms() -> u64 {
    1000
}
fn default_probe_port() -> u16 {
    53
}

/// A validation failure before the path is attached.
struct Bad {
    key: String,
    why: String,
}

fn bad(key: impl Into<String>, why: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        why: why.into(),
    }
}

impl AgentConfig {
    /// Reads and validates `path` (secret files resolve against its directory).
    pub fn load(path: &Path) -> Result<AgentConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, Error> {
        let raw: Raw = toml::from_str(text).map_err(|e| Error::ConfigSyntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate(raw, path, base).map_err(|b| Error::ConfigInvalid {
            path: path.to_owned(),
            key: b.key,
            why: b.why,
        })
    }
}

fn validate(raw: Raw, path: &Path, base: &Path) -> Result<AgentConfig, Bad> {
    check_id("agent_id", &raw.agent_id)?;
    check_id("site", &raw.site)?;
    let interval = millis("interval_ms", raw.interval_ms, 100, 3_600_000)?;

    if raw.edns.is_empty() {
        return Err(bad("edns", "at least one [[edns]] to report to"));
    }
    let mut edns: Vec<EdnsConfig> = Vec::new();
    for (i, e) in raw.edns.iter().enumerate() {
        let key = |k: &str| format!("edns[{i}].{k}");
        let address: SocketAddr = e.address.parse().map_err(|_| {
            bad(
                key("address"),
                format!("{:?} is not address:port (IPv6 as [addr]:port)", e.address),
            )
        })?;
        if address.port() == 0 || address.ip().is_unspecified() {
            return Err(bad(key("address"), format!("{address} cannot be sent to")));
        }
        if edns.iter().any(|o| o.address == address) {
            return Err(bad(key("address"), format!("{address} twice")));
        }
        let secret_file = base.join(&e.secret_file);
        let secret =
            read_secret(&secret_file).map_err(|e| bad(key("secret_file"), e.to_string()))?;
        edns.push(EdnsConfig {
            address,
            key: wire::Key {
                id: e.key_id,
                secret,
            },
            secret_file,
        });
    }

    let mut vs = Vec::new();
    let mut names = HashSet::new();
    for (i, v) in raw.vs.into_iter().enumerate() {
        let key = |k: &str| format!("vs[{i}].{k}");
        if v.name.is_empty() || v.name.len() > MAX_VS_NAME_LEN {
            return Err(bad(key("name"), format!("1 to {MAX_VS_NAME_LEN} bytes")));
        }
        if !names.insert(v.name.clone()) {
            return Err(bad(key("name"), format!("{:?} twice", v.name)));
        }
        let check = v
            .check
            .map(|c| validate_check(c, &format!("vs[{i}].check")))
            .transpose()?;
        let load = match v.load {
            Some(l) => validate_load(l, &format!("vs[{i}].load"))?,
            None => LoadConfig::default(),
        };
        if check.is_none() && load.is_empty() {
            return Err(bad(
                key("name"),
                format!("{:?} has neither a [vs.check] nor a load source", v.name),
            ));
        }
        vs.push(VsConfig {
            name: v.name,
            check,
            load,
        });
    }

    let probes = validate_probes(raw.probes)?;

    Ok(AgentConfig {
        path: path.to_owned(),
        agent_id: raw.agent_id,
        site: raw.site,
        interval,
        edns,
        vs,
        probes,
    })
}

fn check_id(key: &str, value: &str) -> Result<(), Bad> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(bad(key, format!("1 to {MAX_ID_LEN} bytes")));
    }
    Ok(())
}

fn millis(key: impl Into<String>, ms: u64, min: u64, max: u64) -> Result<Duration, Bad> {
    if ms < min || ms > max {
        return Err(bad(key, format!("{min} to {max} milliseconds")));
    }
    Ok(Duration::from_millis(ms))
}

/// Reads a shared secret: a regular file that only its owner may read or write, at least
/// `MIN_SECRET_LEN` bytes once one trailing newline (LF or CRLF) is trimmed.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, Error> {
    let meta = std::fs::metadata(path).map_err(Error::io(path.display().to_string()))?;
    if !meta.is_file() {
        return Err(Error::SecretNotAFile(path.to_owned()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::SecretMode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut secret = std::fs::read(path).map_err(Error::io(path.display().to_string()))?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(Error::SecretShort {
            path: path.to_owned(),
            len: secret.len(),
            min: MIN_SECRET_LEN,
        });
    }
    Ok(secret)
}

fn validate_check(c: RawCheck, at: &str) -> Result<CheckConfig, Bad> {
    let key = |k: &str| format!("{at}.{k}");
    let interval = millis(key("interval_ms"), c.interval_ms, 10, 3_600_000)?;
    let timeout = millis(key("timeout_ms"), c.timeout_ms, 1, 3_600_000)?;
    if timeout > interval {
        return Err(bad(key("timeout_ms"), "at most interval_ms"));
    }
    if c.rise == 0 || c.rise > 100 {
        return Err(bad(key("rise"), "1 to 100"));
    }
    if c.fall == 0 || c.fall > 100 {
        return Err(bad(key("fall"), "1 to 100"));
    }
    // Keys that belong to another kind are mistakes, not silently ignored.
    let used: &[&str] = match c.kind {
        RawKind::Tcp => &["address"],
        RawKind::Http => &["url", "expect_status", "body_contains"],
        RawKind::Https => &["url", "expect_status", "body_contains", "insecure"],
        RawKind::Dns => &["server", "name", "qtype", "expect_rcode"],
    };
    let present = [
        ("address", c.address.is_some()),
        ("url", c.url.is_some()),
        ("expect_status", c.expect_status.is_some()),
        ("body_contains", c.body_contains.is_some()),
        ("insecure", c.insecure.is_some()),
        ("server", c.server.is_some()),
        ("name", c.name.is_some()),
        ("qtype", c.qtype.is_some()),
        ("expect_rcode", c.expect_rcode.is_some()),
    ];
    let kind_name = format!("{:?}", c.kind).to_lowercase();
    for (k, set) in present {
        if set && !used.contains(&k) {
            return Err(bad(key(k), format!("not used by kind {kind_name}")));
        }
    }
    let kind = match c.kind {
        RawKind::Tcp => {
            let a = c
                .address
                .ok_or_else(|| bad(key("address"), "required for kind tcp"))?;
            CheckKind::Tcp {
                address: socket_addr(&key("address"), &a)?,
            }
        }
        RawKind::Http | RawKind::Https => {
            let tls = c.kind == RawKind::Https;
            let u = c
                .url
                .ok_or_else(|| bad(key("url"), format!("required for kind {kind_name}")))?;
            let url = Url::parse(&u).map_err(|e| bad(key("url"), e.to_string()))?;
            if url.tls != tls {
                return Err(bad(
                    key("url"),
                    format!("kind {kind_name} needs a {kind_name}:// URL"),
                ));
            }
            let expect_status = c.expect_status.unwrap_or(200);
            if !(100..=599).contains(&expect_status) {
                return Err(bad(key("expect_status"), "100 to 599"));
            }
            if c.body_contains.as_deref() == Some("") {
                return Err(bad(key("body_contains"), "empty (leave it out instead)"));
            }
            CheckKind::Http(HttpCheck {
                url,
                expect_status,
                body_contains: c.body_contains,
                insecure: c.insecure.unwrap_or(false),
            })
        }
        RawKind::Dns => {
            let s = c
                .server
                .ok_or_else(|| bad(key("server"), "required for kind dns"))?;
            let server = socket_addr(&key("server"), &s)?;
            let n = c
                .name
                .ok_or_else(|| bad(key("name"), "required for kind dns"))?;
            let mut name = Name::from_utf8(&n)
                .map_err(|e| bad(key("name"), format!("{n:?} is not a domain name: {e}")))?;
            name.set_fqdn(true);
            let qtype = match c.qtype {
                None => RecordType::A,
                Some(q) => q
                    .to_uppercase()
                    .parse::<RecordType>()
                    .map_err(|_| bad(key("qtype"), format!("{q:?} is not a record type")))?,
            };
            let expect_rcode = match c.expect_rcode {
                None => ResponseCode::NoError,
                Some(r) => parse_rcode(&r).ok_or_else(|| {
                    bad(
                        key("expect_rcode"),
                        format!(
                            "{r:?}: NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED or a number up to 4095"
                        ),
                    )
                })?,
            };
            CheckKind::Dns {
                server,
                name,
                qtype,
                expect_rcode,
            }
        }
    };
    Ok(CheckConfig {
        kind,
        interval,
        timeout,
        rise: c.rise,
        fall: c.fall,
    })
}

fn socket_addr(key: &str, s: &str) -> Result<SocketAddr, Bad> {
    let a: SocketAddr = s.parse().map_err(|_| {
        bad(
            key,
            format!("{s:?} is not address:port (IPv6 as [addr]:port)"),
        )
    })?;
    if a.port() == 0 || a.ip().is_unspecified() {
        return Err(bad(key, format!("{a} cannot be connected to")));
    }
    Ok(a)
}

/// An rcode by mnemonic (case-insensitive) or number.
pub fn parse_rcode(s: &str) -> Option<ResponseCode> {
    let code = match s.to_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        other => other.parse::<u16>().ok().filter(|c| *c <= 4095)?,
    };
    Some(<ResponseCode as From<u16>>::from(code))
}

fn validate_load(l: RawLoad, at: &str) -> Result<LoadConfig, Bad> {
    let key = |k: &str| format!("{at}.{k}");
    if l.connections_port == Some(0) {
        return Err(bad(key("connections_port"), "1 to 65535"));
    }
    if let Some(i) = &l.interface
        && (i.is_empty()
            || i.len() > MAX_IFNAME_LEN
            || i.contains(['/', '\0'])
            || i.chars().any(char::is_whitespace)
            || i == "."
            || i == "..")
    {
        return Err(bad(
            key("interface"),
            format!("{i:?} is not an interface name"),
        ));
    }
    if let Some(cmd) = &l.command
        && cmd.first().is_none_or(|p| p.is_empty())
    {
        return Err(bad(key("command"), "a program and its arguments"));
    }
    let http_json = l
        .http_json
        .map(|u| {
            let url = Url::parse(&u).map_err(|e| bad(key("http_json"), e.to_string()))?;
            if url.tls {
                return Err(bad(key("http_json"), "a local http:// URL"));
            }
            Ok(url)
        })
        .transpose()?;
    let timeout = millis(key("timeout_ms"), l.timeout_ms, 1, 60_000)?;
    Ok(LoadConfig {
        connections_port: l.connections_port,
        interface: l.interface,
        cpu: l.cpu,
        capacity: l.capacity,
        command: l.command,
        http_json,
        timeout,
    })
}

fn validate_probes(p: RawProbes) -> Result<ProbeConfig, Bad> {
    let mut ldns = Vec::new();
    for (i, s) in p.ldns.iter().enumerate() {
        let key = format!("probes.ldns[{i}]");
        let ip: IpAddr = s
            .parse()
            .map_err(|_| bad(&key, format!("{s:?} is not an IP address")))?;
        if !probe::probeable(ip) {
            return Err(bad(&key, format!("{ip} cannot be probed")));
        }
        if ldns.contains(&ip) {
            return Err(bad(&key, format!("{ip} twice")));
        }
        ldns.push(ip);
    }
    if p.max_targets > MAX_PROBE_TARGETS {
        return Err(bad(
            "probes.max_targets",
            format!("at most {MAX_PROBE_TARGETS}"),
        ));
    }
    if ldns.len() > p.max_targets {
        return Err(bad(
            "probes.max_targets",
            format!("below the {} static probes.ldns targets", ldns.len()),
        ));
    }
    let interval = millis("probes.interval_ms", p.interval_ms, 100, 3_600_000)?;
    let timeout = millis("probes.timeout_ms", p.timeout_ms, 1, 60_000)?;
    if timeout > interval {
        return Err(bad("probes.timeout_ms", "at most probes.interval_ms"));
    }
    if p.count == 0 || p.count > MAX_PROBE_COUNT {
        return Err(bad("probes.count", format!("1 to {MAX_PROBE_COUNT}")));
    }
    if p.port == 0 {
        return Err(bad("probes.port", "1 to 65535"));
    }
    Ok(ProbeConfig {
        ldns,
        max_targets: p.max_targets,
        interval,
        count: p.count,
        timeout,
        port: p.port,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
