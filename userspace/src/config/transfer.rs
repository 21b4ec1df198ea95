//! Zone transfers out: the TSIG keys (`[[tsig_key]]`) and each zone's transfer keys
//! (`allow_transfer`, `transfer_keys`, `notify`, `notify_key` in its `[[zone]]`).
//!
//! ```toml
//! [[tsig_key]]
//! name = "xfr-key."             # the key's name, as the secondary knows it; unique
//! algorithm = "hmac-sha256"     # hmac-sha256 | hmac-sha384 | hmac-sha512
//! secret_file = "xfr.key"       # relative to the config; owner-only; the base64 secret
//! [[zone]]
//! origin = "example.test."
//! file = "example.test.zone"
//! allow_transfer = ["198.18.0.0/15"]   # who may transfer (address or prefix); none: nobody
//! transfer_keys = ["xfr-key."]         # non-empty: a valid TSIG with one of these is required
//! notify = ["198.18.5.2:53"]           # secondaries to NOTIFY when the zone changes
//! notify_key = "xfr-key."              # optional: sign the NOTIFYs with this key
//! ```
//! The secret file holds the key as BIND and Knot write it (base64, as `tsig-keygen` and
//! `keymgr -t` print it), with the same file checks as the agents' secrets.
use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use hickory_proto::rr::{Name, rdata::tsig::TsigAlgorithm};
use ipnet::IpNet;
use serde::Deserialize;

use super::{RawZone, agents::read_secret, gslb::Invalid, parse_name};

/// The shortest TSIG secret once decoded, in bytes (128 bits).
pub const MIN_TSIG_SECRET: usize = 16;
/// How far a TSIG's time may be from ours, in seconds (RFC 8945 10 recommends 300).
pub const TSIG_FUDGE: u16 = 300;
/// The algorithms a key may use, as written in the config.
const ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// A TSIG key (RFC 8945).
#[derive(Clone)]
pub struct TsigKeyConfig {
    /// The key's name (fully qualified).
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    /// The decoded secret (its `Debug` does not show it).
    pub secret: Vec<u8>,
    /// Where the secret was read from.
    pub secret_file: PathBuf,
}

impl std::fmt::Debug for TsigKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TsigKeyConfig {{ name: {}, algorithm: {}, secret: <{} bytes>, secret_file: {:?} }}",
            self.name,
            self.algorithm,
            self.secret.len(),
            self.secret_file
        )
    }
}

/// Who may transfer a zone, and whom xgslbd notifies of its changes. The default: nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneTransferConfig {
    /// Clients allowed to transfer (with or without a key); empty: none.
    pub allow: Vec<IpNet>,
    /// When not empty, a transfer needs a valid TSIG with one of these keys.
    pub keys: Vec<Name>,
    /// Secondaries sent a NOTIFY on every change of the zone.
    pub notify: Vec<SocketAddr>,
    /// The key NOTIFYs are signed with, if any.
    pub notify_key: Option<Name>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTsigKey {
    name: String,
    algorithm: String,
    secret_file: PathBuf,
}

fn bad<T>(key: impl Into<String>, why: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        key: key.into(),
        why: why.into(),
    })
}

/// Validates the `[[tsig_key]]`s; secret files resolve against `base`.
pub(super) fn keys(raw: &[RawTsigKey], base: &Path) -> Result<Vec<TsigKeyConfig>, Invalid> {
    let mut keys: Vec<TsigKeyConfig> = Vec::new();
    for (i, k) in raw.iter().enumerate() {
        let key = |k: &str| format!("tsig_key[{i}].{k}");
        let name = parse_name(&k.name).or_else(|why| bad(key("name"), why))?;
        if keys.iter().any(|other| other.name == name) {
            return bad(key("name"), format!("{name} twice"));
        }
        let algorithm = match k.algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            _ => {
                return bad(
                    key("algorithm"),
                    format!("{:?} is not one of {}", k.algorithm, ALGORITHMS.join(", ")),
                );
            }
        };
        let secret_file = base.join(&k.secret_file);
        let secret = read_tsig_secret(&secret_file).or_else(|why| bad(key("secret_file"), why))?;
        keys.push(TsigKeyConfig {
            name,
            algorithm,
            secret,
            secret_file,
        });
    }
    Ok(keys)
}

/// A TSIG secret file: the agents' secret-file checks (regular file, owner-only), then
/// base64 of at least [`MIN_TSIG_SECRET`] bytes.
fn read_tsig_secret(path: &Path) -> Result<Vec<u8>, String> {
    let text = read_secret(path).map_err(|e| e.to_string())?;
    let text: Vec<u8> = text
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let secret = data_encoding::BASE64
        .decode(&text)
        .map_err(|e| format!("{}: not a base64 secret: {e}", path.display()))?;
    if secret.len() < MIN_TSIG_SECRET {
        return Err(format!(
            "{}: the secret is {} bytes, at least {MIN_TSIG_SECRET}",
            path.display(),
            secret.len()
        ));
    }
    Ok(secret)
}

/// Validates the transfer keys of `zone[i]` against the `keys` defined.
pub(super) fn zone(
    i: usize,
    raw: &RawZone,
    keys: &[TsigKeyConfig],
) -> Result<ZoneTransferConfig, Invalid> {
    let key = |k: &str| format!("zone[{i}].{k}");
    let known = |k: String, text: &str| -> Result<Name, Invalid> {
        let name = parse_name(text).or_else(|why| bad(&k, why))?;
        if !keys.iter().any(|key| key.name == name) {
            return bad(k, format!("no [[tsig_key]] is named {name}"));
        }
        Ok(name)
    };
    let mut allow = Vec::new();
    for (j, text) in raw.allow_transfer.iter().enumerate() {
        let k = key(&format!("allow_transfer[{j}]"));
        let net = match text.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => text.parse::<IpNet>().or_else(|_| {
                bad(
                    &k,
                    format!("{text:?} is not an address or prefix (address/length)"),
                )
            })?,
        };
        if net.trunc() != net {
            return bad(
                k,
                format!("{net} has host bits set (the prefix is {})", net.trunc()),
            );
        }
        allow.push(net);
    }
    let mut transfer_keys = Vec::new();
    let mut seen = HashSet::new();
    for (j, text) in raw.transfer_keys.iter().enumerate() {
        let k = key(&format!("transfer_keys[{j}]"));
        let name = known(k.clone(), text)?;
        if !seen.insert(name.to_lowercase()) {
            return bad(k, format!("{name} twice"));
        }
        transfer_keys.push(name);
    }
    let mut notify = Vec::new();
    for (j, text) in raw.notify.iter().enumerate() {
        let k = key(&format!("notify[{j}]"));
        let addr = match text.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, 53),
            Err(_) => text.parse::<SocketAddr>().or_else(|_| {
                bad(
                    &k,
                    format!("{text:?} is not address or address:port (IPv6 as [addr]:port)"),
                )
            })?,
        };
        if notify.contains(&addr) {
            return bad(k, format!("{addr} twice"));
        }
        notify.push(addr);
    }
    let notify_key = match &raw.notify_key {
        None => None,
        Some(_) if notify.is_empty() => {
            return bad(key("notify_key"), "there is no notify target to sign for");
        }
        Some(text) => Some(known(key("notify_key"), text)?),
    };
    Ok(ZoneTransferConfig {
        allow,
        keys: transfer_keys,
        notify,
        notify_key,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::tests::parse;
    use super::*;
    use crate::config::Config;

    /// 32 bytes, base64.
    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYiE=\n";

    /// A config in `dir` with the key file `xfr.key` (mode 0600) and `zone_keys` in its zone.
    fn config_in(dir: &Path, key_lines: &str, zone_keys: &str) -> Result<Config, String> {
        let secret = dir.join("xfr.key");
        std::fs::write(&secret, SECRET).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "[server]\nlisten = [\"198.18.0.2:53\"]\n\
             [[tsig_key]]\n{key_lines}\n\
             [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n{zone_keys}\n"
        );
        Config::parse(&dir.join("xgslb.toml"), &text).map_err(|e| e.to_string())
    }

    const KEY: &str = "name = \"xfr-key\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"xfr.key\"";

    #[test]
    fn a_zone_without_transfer_keys_allows_nobody() {
        let text = "[server]\nlisten = [\"198.18.0.2:53\"]\n[[zone]]\norigin = \"example.test\"\nfile = \"z\"\n";
        let c = parse(text).unwrap();
        assert_eq!(c.zones[0].transfer, ZoneTransferConfig::default());
        assert!(c.tsig_keys.is_empty());
    }

    #[test]
    fn keys_and_zone_transfer_settings_validate() {
        let dir = tempfile::tempdir().unwrap();
        let c = config_in(
            dir.path(),
            KEY,
            "allow_transfer = [\"198.18.0.0/15\", \"2001:db8::1\"]\n\
             transfer_keys = [\"XFR-key.\"]\nnotify = [\"198.18.5.2:5353\", \"198.18.5.3\"]\n\
             notify_key = \"xfr-key.\"",
        )
        .unwrap();
        let key = &c.tsig_keys[0];
        assert_eq!(key.name.to_string(), "xfr-key.");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(key.secret, b"secret-secret-secret-secret-32b!");
        assert!(!format!("{key:?}").contains("secret-secret"), "{key:?}");
        let t = &c.zones[0].transfer;
        assert_eq!(
            t.allow,
            [
                "198.18.0.0/15".parse::<IpNet>().unwrap(),
                "2001:db8::1/128".parse().unwrap()
            ]
        );
        assert_eq!(t.keys, [Name::from_ascii("xfr-key.").unwrap()]);
        assert_eq!(
            t.notify,
            [
                "198.18.5.2:5353".parse::<SocketAddr>().unwrap(),
                "198.18.5.3:53".parse().unwrap()
            ]
        );
        assert_eq!(t.notify_key, Some(Name::from_ascii("xfr-key.").unwrap()));
    }

    #[test]
    fn errors_name_the_key_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                KEY,
                "transfer_keys = [\"other.\"]",
                "zone[0].transfer_keys[0]: no [[tsig_key]] is named other.",
            ),
            (
                KEY,
                "notify_key = \"other.\"\nnotify = [\"198.18.5.2\"]",
                "zone[0].notify_key: no [[tsig_key]] is named other.",
            ),
            (
                KEY,
                "notify_key = \"xfr-key.\"",
                "zone[0].notify_key: there is no notify target",
            ),
            (
                KEY,
                "allow_transfer = [\"198.18.0.1/15\"]",
                "zone[0].allow_transfer[0]: 198.18.0.1/15 has host bits set",
            ),
            (
                KEY,
                "allow_transfer = [\"example\"]",
                "zone[0].allow_transfer[0]: \"example\" is not an address or prefix",
            ),
            (KEY, "notify = [\"198.18.5.2:x\"]", "zone[0].notify[0]"),
            (
                KEY,
                "notify = [\"198.18.5.2\", \"198.18.5.2:53\"]",
                "zone[0].notify[1]: 198.18.5.2:53 twice",
            ),
            (
                KEY,
                "transfer_keys = [\"xfr-key\", \"XFR-KEY.\"]",
                "zone[0].transfer_keys[1]",
            ),
            (
                &KEY.replace("hmac-sha256", "hmac-md5"),
                "",
                "tsig_key[0].algorithm: \"hmac-md5\" is not one of hmac-sha256, hmac-sha384, hmac-sha512",
            ),
            (
                &KEY.replace("xfr.key", "missing.key"),
                "",
                "tsig_key[0].secret_file: cannot read",
            ),
            (
                &format!("{KEY}\n[[tsig_key]]\n{KEY}"),
                "",
                "tsig_key[1].name: xfr-key. twice",
            ),
            (
                KEY,
                "allow_transfers = []",
                "unknown field `allow_transfers`",
            ),
        ];
        for (key_lines, zone_keys, want) in cases {
            let err = config_in(dir.path(), key_lines, zone_keys).unwrap_err();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
    }

    #[test]
    fn secret_files_must_be_owner_only_base64_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write(SECRET, 0o644);
        let err = read_tsig_secret(&path).unwrap_err();
        assert!(err.contains("must be 0600 or stricter"), "{err}");
        write("not base64 at all!!", 0o600);
        let err = read_tsig_secret(&path).unwrap_err();
        assert!(err.contains("not a base64 secret"), "{err}");
        write("c2hvcnQtc2VjcmV0LTE1", 0o600);
        let err = read_tsig_secret(&path).unwrap_err();
        assert!(err.contains("the secret is 15 bytes, at least 16"), "{err}");
        write(SECRET, 0o400);
        assert_eq!(read_tsig_secret(&path).unwrap().len(), 32);
    }
}
