//! The `[agents]` section: where xgslbd takes agent reports, how long a report counts, the
//! replay guard's limits, and the shared keys.
//!
//! ```toml
//! [agents]
//! listen = "198.18.0.2:5300"   # UDP address the ingest binds (required)
//! report_timeout_ms = 3000     # a VS whose reports stop is down after this, 100..=3600000
//! max_skew_ms = 30000          # timestamps further from our clock are stale, 1000..=3600000
//! max_agents = 4096            # agents the replay guard tracks, 1..=1000000
//! [[agents.key]]
//! id = 1                       # the key id datagrams carry; unique
//! secret_file = "agent.key"    # relative to the config; owner-only (0600 or stricter)
//! site = "tokyo"               # optional: reports under this key may only speak for it
//! ```
//! The secret is the file's bytes (a trailing newline trimmed), used as the HMAC key as they
//! are: a hex string is not decoded. At least 16 bytes; 32 random bytes, or 64 hex digits,
//! are right.
use std::{
    collections::HashMap,
    net::SocketAddr,
    ops::RangeInclusive,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::gslb::Invalid;
use crate::{model::Model, secret::Key};

/// Bounds of `agents.report_timeout_ms`.
pub const REPORT_TIMEOUT_MS: RangeInclusive<u64> = 100..=3_600_000;
/// Bounds of `agents.max_skew_ms`.
pub const MAX_SKEW_MS: RangeInclusive<u64> = 1_000..=3_600_000;
/// Bounds of `agents.max_agents`.
pub const MAX_AGENTS: RangeInclusive<usize> = 1..=1_000_000;
/// The shortest secret, in bytes.
pub const MIN_SECRET: usize = 16;

/// The agent ingest.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentsConfig {
    /// The UDP address the ingest binds.
    pub listen: SocketAddr,
    /// A VS whose last report is older than this is down.
    pub report_timeout_ms: u64,
    /// Datagrams whose timestamp is further than this from the clock are stale.
    pub max_skew_ms: u64,
    /// Most agents the replay guard tracks.
    pub max_agents: usize,
    /// The shared keys, in file order.
    pub keys: Vec<AgentKey>,
}

/// One shared key.
#[derive(Clone, Debug)]
pub struct AgentKey {
    /// Id and secret (its `Debug` does not show the secret).
    pub key: Key,
    /// The site reports under this key must be for, if bound.
    pub site: Option<String>,
    /// Where the secret was read from (resolved against the config's directory).
    pub secret_file: PathBuf,
}

impl PartialEq for AgentKey {
    fn eq(&self, other: &Self) -> bool {
        self.key.id == other.key.id
            && self.key.secret == other.key.secret
            && self.site == other.site
            && self.secret_file == other.secret_file
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgents {
    listen: String,
    #[serde(default = "default_timeout")]
    report_timeout_ms: u64,
    #[serde(default = "default_skew")]
    max_skew_ms: u64,
    #[serde(default = "default_max_agents")]
    max_agents: usize,
    #[serde(default)]
    key: Vec<RawKey>,
}

fn default_timeout() -> u64 {
    3000
}

fn default_skew() -> u64 {
    30_000
}

fn default_max_agents() -> usize {
    4096
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: u32,
    secret_file: PathBuf,
    #[serde(default)]
    site: Option<String>,
}

fn bad<T>(key: impl Into<String>, why: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        key: key.into(),
        why: why.into(),
    })
}

/// Why a secret file was refused (the messages name the file, never the secret).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{0}: mode {1:04o}, must be 0600 or stricter (owner-only)")]
    Mode(PathBuf, u32),
    #[error("{0}: {1} bytes, a secret is at least {MIN_SECRET}")]
    Short(PathBuf, usize),
}

/// Reads a secret file: a regular file, owner-only (mode 0600 or stricter), at least
/// [`MIN_SECRET`] bytes once trailing newlines are trimmed. The error says why (without the
/// path's key); the agent reads its secret the same way.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let read = |e| SecretError::Read(path.to_owned(), e);
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile(path.to_owned()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Mode(path.to_owned(), mode));
    }
    let mut secret = std::fs::read(path).map_err(read)?;
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    if secret.len() < MIN_SECRET {
        return Err(SecretError::Short(path.to_owned(), secret.len()));
    }
    Ok(secret)
}

/// Validates `[agents]` against the DNS listeners (`listen`) and the model's sites; secret
/// files resolve against `base`.
pub(super) fn validate(
    raw: RawAgents,
    listen: &[SocketAddr],
    model: &Model,
    base: &Path,
) -> Result<AgentsConfig, Invalid> {
    let addr: SocketAddr = match raw.listen.parse() {
        Ok(a) => a,
        Err(_) => {
            return bad(
                "agents.listen",
                format!("{:?} is not address:port (IPv6 as [addr]:port)", raw.listen),
            );
        }
    };
    if addr.port() == 0 {
        return bad("agents.listen", format!("{addr}: port 0"));
    }
    if listen.contains(&addr) {
        return bad(
            "agents.listen",
            format!("{addr} is also a DNS listener (server.listen)"),
        );
    }
    if !REPORT_TIMEOUT_MS.contains(&raw.report_timeout_ms) {
        return bad(
            "agents.report_timeout_ms",
            format!(
                "{} to {} milliseconds",
                REPORT_TIMEOUT_MS.start(),
                REPORT_TIMEOUT_MS.end()
            ),
        );
    }
    if !MAX_SKEW_MS.contains(&raw.max_skew_ms) {
        return bad(
            "agents.max_skew_ms",
            format!(
                "{} to {} milliseconds",
                MAX_SKEW_MS.start(),
                MAX_SKEW_MS.end()
            ),
        );
    }
    if !MAX_AGENTS.contains(&raw.max_agents) {
        return bad(
            "agents.max_agents",
            format!("{} to {}", MAX_AGENTS.start(), MAX_AGENTS.end()),
        );
    }
    if raw.key.is_empty() {
        return bad(
            "agents.key",
            "at least one [[agents.key]]: reports are accepted only under a key",
        );
    }
    let mut keys = Vec::new();
    let mut ids: HashMap<u32, usize> = HashMap::new();
    for (i, k) in raw.key.into_iter().enumerate() {
        let key = |f: &str| format!("agents.key[{i}].{f}");
        if let Some(j) = ids.insert(k.id, i) {
            return bad(key("id"), format!("{} twice (also agents.key[{j}])", k.id));
        }
        if let Some(site) = &k.site
            && !model.sites.iter().any(|s| &s.name == site)
        {
            return bad(
                key("site"),
                format!("no site {site:?} (no [[site]] has that name)"),
            );
        }
        let secret_file = base.join(&k.secret_file);
        let secret =
            read_secret(&secret_file).or_else(|why| bad(key("secret_file"), why.to_string()))?;
        keys.push(AgentKey {
            key: Key { id: k.id, secret },
            site: k.site,
            secret_file,
        });
    }
    Ok(AgentsConfig {
        listen: addr,
        report_timeout_ms: raw.report_timeout_ms,
        max_skew_ms: raw.max_skew_ms,
        max_agents: raw.max_agents,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::{config::Config, test_model::TestModel};

    const AGENTS: &str = r#"
[agents]
listen = "198.18.0.2:5300"

[[agents.key]]
id = 1
secret_file = "tokyo.key"
site = "tokyo"

[[agents.key]]
id = 2
secret_file = "keys/any.key"
"#;

    /// A directory with the two secret files (mode 0600).
    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("keys")).unwrap();
        for (f, body) in [
            ("tokyo.key", "0123456789abcdef0123456789abcdef\n"),
            ("keys/any.key", "fedcba9876543210"),
        ] {
            let p = d.path().join(f);
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        d
    }

    fn parse(d: &Path, agents: &str) -> Result<Config, String> {
        // Sites tokyo and newyork, for the keys to name; the section as written.
        let text = TestModel::new(&["198.18.0.2:53"])
            .site("tokyo", "tokyo-lb", &[])
            .site("newyork", "newyork-lb", &[])
            .section(agents)
            .toml();
        Config::parse(&d.join("xgslb.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_section_validates_with_defaults() {
        let d = dir();
        let c = parse(d.path(), AGENTS).unwrap().agents.unwrap();
        assert_eq!(c.listen, "198.18.0.2:5300".parse().unwrap());
        assert_eq!(c.report_timeout_ms, 3000);
        assert_eq!(c.max_skew_ms, 30_000);
        assert_eq!(c.max_agents, 4096);
        assert_eq!(c.keys.len(), 2);
        assert_eq!(c.keys[0].key.id, 1);
        assert_eq!(c.keys[0].key.secret, b"0123456789abcdef0123456789abcdef");
        assert_eq!(c.keys[0].site.as_deref(), Some("tokyo"));
        assert_eq!(c.keys[1].key.secret, b"fedcba9876543210");
        assert_eq!(c.keys[1].secret_file, d.path().join("keys/any.key"));
        assert_eq!(c.keys[1].site, None);
        // The secret does not show in Debug.
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        // No section, no ingest.
        assert!(parse(d.path(), "").unwrap().agents.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let d = dir();
        let cases = [
            (AGENTS.replace("listen", "lissen"), "unknown field `lissen`"),
            (
                AGENTS.replace("\"198.18.0.2:5300\"", "\"198.18.0.2\""),
                "agents.listen: \"198.18.0.2\" is not address:port",
            ),
            (
                AGENTS.replace("5300", "53"),
                "agents.listen: 198.18.0.2:53 is also a DNS listener",
            ),
            (
                AGENTS.replace(":5300\"", ":5300\"\nreport_timeout_ms = 99"),
                "agents.report_timeout_ms",
            ),
            (
                AGENTS.replace(":5300\"", ":5300\"\nmax_skew_ms = 0"),
                "agents.max_skew_ms",
            ),
            (
                AGENTS.replace(":5300\"", ":5300\"\nmax_agents = 0"),
                "agents.max_agents",
            ),
            (
                "[agents]\nlisten = \"198.18.0.2:5300\"\n".to_string(),
                "agents.key: at least one",
            ),
            (
                AGENTS.replace("id = 2", "id = 1"),
                "agents.key[1].id: 1 twice",
            ),
            (
                AGENTS.replace("site = \"tokyo\"", "site = \"osaka\""),
                "agents.key[0].site: no site \"osaka\"",
            ),
            (
                AGENTS.replace("tokyo.key", "missing.key"),
                "agents.key[0].secret_file: cannot read",
            ),
            (
                AGENTS.replace("keys/any.key", "keys"),
                "agents.key[1].secret_file",
            ),
            (AGENTS.replace("site =", "sight ="), "unknown field `sight`"),
        ];
        for (text, want) in cases {
            let err = parse(d.path(), &text).map(|_| ()).unwrap_err();
            assert!(err.contains(want), "error {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn secret_files_must_be_owner_only_and_long_enough() {
        let d = dir();
        let p = d.path().join("tokyo.key");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let err = parse(d.path(), AGENTS).map(|_| ()).unwrap_err();
            let want = format!(
                "agents.key[0].secret_file: {}: mode {mode:04o}, must be 0600 or stricter",
                p.display()
            );
            assert!(err.contains(&want), "{err:?} lacks {want:?}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400)).unwrap();
        parse(d.path(), AGENTS).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        // 15 bytes once the newline is trimmed.
        fs::write(&p, "0123456789abcde\r\n").unwrap();
        let err = parse(d.path(), AGENTS).map(|_| ()).unwrap_err();
        assert!(err.contains("15 bytes, a secret is at least 16"), "{err}");
        fs::write(&p, "0123456789abcdef\n").unwrap();
        parse(d.path(), AGENTS).unwrap();
    }
}
