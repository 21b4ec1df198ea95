//! `[peering]` and `[[peer]]`: the other EDNSs this one works with as one system (claims 13,
//! 45-48, 57, 58): where peer messages arrive, who the peers are, and the key each pair
//! shares.
//!
//! ```toml
//! [peering]
//! name = "edns-tokyo"          # this EDNS on the peer protocol, a name as [[site]]'s (required)
//! site = "tokyo"               # the [[site]] it runs at (required)
//! listen = "198.18.0.2:5301"   # UDP address for peer messages and relayed reports (required)
//! heartbeat_ms = 1000          # how often each peer hears from us, 100..=60000
//! silent_after_ms = 3000       # a peer unheard for this long is silent, 300..=3600000
//! max_skew_ms = 30000          # peer timestamps further from our clock are stale
//!
//! [[peer]]
//! name = "edns-newyork"
//! site = "newyork"
//! address = "198.18.0.3:5301"  # its [peering] listen
//! key_id = 101                 # the key this pair signs with, both ways; unique
//! secret_file = "newyork.peer.key"   # owner-only, as agent keys
//! relay = true                 # forward the agent reports we accept to it (default true)
//! ```
use std::{
    collections::HashMap,
    net::SocketAddr,
    ops::RangeInclusive,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    agents::{MAX_SKEW_MS, read_secret},
    gslb::{Invalid, check_name},
};
use crate::{model::Model, secret::Key};

/// Bounds of `peering.heartbeat_ms`.
pub const HEARTBEAT_MS: RangeInclusive<u64> = 100..=60_000;
/// Bounds of `peering.silent_after_ms`.
pub const SILENT_AFTER_MS: RangeInclusive<u64> = 300..=3_600_000;

/// This EDNS on the peer protocol, and its peers.
#[derive(Clone, Debug, PartialEq)]
pub struct PeeringConfig {
    /// Our name in the messages we send (the header's sender).
    pub name: String,
    /// The site we run at.
    pub site: String,
    /// The UDP address peer messages and relayed reports arrive on.
    pub listen: SocketAddr,
    pub heartbeat_ms: u64,
    pub silent_after_ms: u64,
    pub max_skew_ms: u64,
    /// The peers, in file order.
    pub peers: Vec<PeerConfig>,
}

impl PeeringConfig {
    /// The peer named `name`.
    pub fn peer(&self, name: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.name == name)
    }
}

/// One peer EDNS.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub name: String,
    pub site: String,
    /// Its `[peering] listen`.
    pub address: SocketAddr,
    /// The key both ends sign with (its `Debug` hides the secret).
    pub key: Key,
    pub secret_file: PathBuf,
    /// Whether the agent reports we accept are forwarded to it.
    pub relay: bool,
}

impl PartialEq for PeerConfig {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.site == other.site
            && self.address == other.address
            && self.key.id == other.key.id
            && self.key.secret == other.key.secret
            && self.secret_file == other.secret_file
            && self.relay == other.relay
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeering {
    name: String,
    site: String,
    listen: String,
    #[serde(default = "default_heartbeat")]
    heartbeat_ms: u64,
    #[serde(default = "default_silent")]
    silent_after_ms: u64,
    #[serde(default = "default_skew")]
    max_skew_ms: u64,
}

fn default_heartbeat() -> u64 {
    1000
}

fn default_silent() -> u64 {
    3000
}

fn default_skew() -> u64 {
    30_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    name: String,
    site: String,
    address: String,
    key_id: u32,
    secret_file: PathBuf,
    #[serde(default = "yes")]
    relay: bool,
}

fn yes() -> bool {
    true
}

fn bad<T>(key: impl Into<String>, why: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        key: key.into(),
        why: why.into(),
    })
}

fn address(key: &str, s: &str) -> Result<SocketAddr, Invalid> {
    match s.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        Ok(a) => bad(key, format!("{a}: port 0")),
        Err(_) => bad(
            key,
            format!("{s:?} is not address:port (IPv6 as [addr]:port)"),
        ),
    }
}

fn site(key: &str, model: &Model, site: &str) -> Result<(), Invalid> {
    if model.sites.iter().any(|s| s.name == site) {
        Ok(())
    } else {
        bad(key, format!("no site {site:?} (no [[site]] has that name)"))
    }
}

/// Validates `[peering]` and `[[peer]]` against the model's sites and wide IPs and the
/// addresses already taken (`taken`: DNS listeners and the agents' port); secret files
/// resolve against `base`.
pub(super) fn validate(
    raw: Option<RawPeering>,
    peers: Vec<RawPeer>,
    taken: &[SocketAddr],
    model: &Model,
    base: &Path,
) -> Result<Option<PeeringConfig>, Invalid> {
    let Some(raw) = raw else {
        if !peers.is_empty() {
            return bad(
                "peer",
                "[[peer]] needs [peering] (our name, site and address)",
            );
        }
        if let Some((i, _)) = model
            .wideips
            .iter()
            .enumerate()
            .find(|(_, w)| w.deferral.is_some())
        {
            return bad(
                format!("wideip[{i}].decided_by"),
                "needs [peering] and the [[peer]] it names",
            );
        }
        return Ok(None);
    };
    check_name("peering.name", &raw.name)?;
    site("peering.site", model, &raw.site)?;
    let listen = address("peering.listen", &raw.listen)?;
    if taken.contains(&listen) {
        return bad(
            "peering.listen",
            format!("{listen} is also a DNS listener or the agents' address"),
        );
    }
    if !HEARTBEAT_MS.contains(&raw.heartbeat_ms) {
        return bad(
            "peering.heartbeat_ms",
            format!(
                "{} to {} milliseconds",
                HEARTBEAT_MS.start(),
                HEARTBEAT_MS.end()
            ),
        );
    }
    if !SILENT_AFTER_MS.contains(&raw.silent_after_ms) || raw.silent_after_ms < 2 * raw.heartbeat_ms
    {
        return bad(
            "peering.silent_after_ms",
            format!(
                "{} to {} milliseconds, and at least two heartbeats ({} ms)",
                SILENT_AFTER_MS.start(),
                SILENT_AFTER_MS.end(),
                2 * raw.heartbeat_ms
            ),
        );
    }
    if !MAX_SKEW_MS.contains(&raw.max_skew_ms) {
        return bad(
            "peering.max_skew_ms",
            format!(
                "{} to {} milliseconds",
                MAX_SKEW_MS.start(),
                MAX_SKEW_MS.end()
            ),
        );
    }
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<u32, usize> = HashMap::new();
    for (i, p) in peers.into_iter().enumerate() {
        let key = |f: &str| format!("peer[{i}].{f}");
        check_name(&key("name"), &p.name)?;
        if p.name == raw.name {
            return bad(
                key("name"),
                format!("{:?} is our own name (peering.name)", p.name),
            );
        }
        if let Some(j) = names.insert(p.name.clone(), i) {
            return bad(key("name"), format!("{:?} twice (also peer[{j}])", p.name));
        }
        if let Some(j) = ids.insert(p.key_id, i) {
            return bad(
                key("key_id"),
                format!("{} twice (also peer[{j}])", p.key_id),
            );
        }
        site(&key("site"), model, &p.site)?;
        let address = address(&key("address"), &p.address)?;
        if address == listen {
            return bad(
                key("address"),
                format!("{address} is our own peering.listen"),
            );
        }
        let secret_file = base.join(&p.secret_file);
        let secret =
            read_secret(&secret_file).or_else(|why| bad(key("secret_file"), why.to_string()))?;
        out.push(PeerConfig {
            name: p.name,
            site: p.site,
            address,
            key: Key {
                id: p.key_id,
                secret,
            },
            secret_file,
            relay: p.relay,
        });
    }
    for (i, w) in model.wideips.iter().enumerate() {
        if let Some(d) = &w.deferral
            && !out.iter().any(|p| p.name == d.peer)
        {
            return bad(
                format!("wideip[{i}].decided_by"),
                format!("no peer {:?} (no [[peer]] has that name)", d.peer),
            );
        }
    }
    Ok(Some(PeeringConfig {
        name: raw.name,
        site: raw.site,
        listen,
        heartbeat_ms: raw.heartbeat_ms,
        silent_after_ms: raw.silent_after_ms,
        max_skew_ms: raw.max_skew_ms,
        peers: out,
    }))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::{config::Config, test_model::TestModel};

    /// Two sites, a pool across them, and the secret file `b.key` in `dir`.
    fn model(dir: &std::path::Path) -> TestModel {
        let key = dir.join("b.key");
        fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
        fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        TestModel::new(&["198.18.0.2:53"])
            .demo_zone()
            .site("a", "lb", &[("one", "198.18.1.1")])
            .site("b", "lb2", &[("two", "198.18.2.1")])
            .pool("p", &["one", "two"], "round_robin")
    }

    fn load(t: TestModel, dir: &std::path::Path) -> Result<Config, String> {
        Config::load(&t.write(dir)).map_err(|e| e.to_string())
    }

    fn peered(dir: &std::path::Path) -> TestModel {
        model(dir).peering("edns-a", "a", "198.18.0.2:5301").peer(
            "edns-b",
            "b",
            "198.18.0.3:5301",
            7,
            "b.key",
        )
    }

    #[test]
    fn peers_and_a_deferred_wide_ip_load() {
        let dir = tempfile::tempdir().unwrap();
        let t = peered(dir.path())
            .wideip("www.example.test.", &["p"])
            .with("decided_by = \"edns-b\"")
            .with("when_peer_silent = \"keep_last\"");
        let c = load(t, dir.path()).unwrap();
        let p = c.peering.unwrap();
        assert_eq!(
            (p.name.as_str(), p.heartbeat_ms, p.silent_after_ms),
            ("edns-a", 1000, 3000)
        );
        assert_eq!(p.peers.len(), 1);
        assert!(p.peers[0].relay);
        let d = c.model.wideips[0].deferral.clone().unwrap();
        assert_eq!(d.peer, "edns-b");
        assert_eq!(d.when_silent, crate::model::WhenPeerSilent::KeepLast);
    }

    #[test]
    fn bad_peer_settings_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases: [(TestModel, &str); 7] = [
            (
                model(d).peer("edns-b", "b", "198.18.0.3:5301", 7, "b.key"),
                "[[peer]] needs [peering]",
            ),
            (
                model(d)
                    .wideip("www.example.test.", &["p"])
                    .with("decided_by = \"edns-b\""),
                "wideip[0].decided_by: needs [peering]",
            ),
            (
                peered(d)
                    .wideip("www.example.test.", &["p"])
                    .with("decided_by = \"edns-c\""),
                "no peer \"edns-c\"",
            ),
            (
                peered(d)
                    .wideip("www.example.test.", &["p"])
                    .with("when_peer_silent = \"local\""),
                "when_peer_silent",
            ),
            (
                model(d).peering("edns-a", "mars", "198.18.0.2:5301").peer(
                    "edns-b",
                    "b",
                    "198.18.0.3:5301",
                    7,
                    "b.key",
                ),
                "peering.site",
            ),
            (
                model(d).peering("edns-a", "a", "198.18.0.2:5301").peer(
                    "edns-a",
                    "b",
                    "198.18.0.3:5301",
                    7,
                    "b.key",
                ),
                "our own name",
            ),
            (
                peered(d).peer("edns-c", "b", "198.18.0.4:5301", 7, "b.key"),
                "peer[1].key_id",
            ),
        ];
        for (t, want) in cases {
            let err = load(t, d).unwrap_err();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
    }
}
