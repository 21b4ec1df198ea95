//! `[rrl]`: response rate limiting of UDP responses (the algorithm is
//! `xgslb_common::rrl`'s; both paths apply it).
use ipnet::IpNet;
use serde::Deserialize;
use xgslb_common::{MAX_RRL_EXEMPT, MAX_RRL_RATE, MAX_RRL_SLIP, RrlConfig};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRrl {
    #[serde(default)]
    responses_per_second: Option<u32>,
    #[serde(default)]
    slip: Option<u32>,
    #[serde(default)]
    ipv4_prefix: Option<u8>,
    #[serde(default)]
    ipv6_prefix: Option<u8>,
    #[serde(default)]
    exempt: Vec<String>,
}

/// How UDP responses are rate limited, per client prefix and response class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrlPolicy {
    /// Responses per second per bucket; 0: no limit (the default).
    pub responses_per_second: u32,
    /// Every `slip`-th limited response goes out truncated (TC=1, so that a real client
    /// retries over TCP); 1: all of them; 0: none, every limited response is dropped.
    pub slip: u32,
    /// Bits of a client's IPv4 and IPv6 address that make its bucket's prefix.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Clients never limited.
    pub exempt: Vec<IpNet>,
}

impl Default for RrlPolicy {
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
        }
    }
}

impl RrlPolicy {
    /// The policy as the XDP program reads it (`RrlConfig`).
    pub fn config(&self) -> RrlConfig {
        RrlConfig {
            rate: self.responses_per_second,
            slip: self.slip,
            prefix4: self.ipv4_prefix,
            prefix6: self.ipv6_prefix,
            exempt4: self.exempt.iter().any(|n| n.addr().is_ipv4()).into(),
            exempt6: self.exempt.iter().any(|n| n.addr().is_ipv6()).into(),
            _pad: [0; 4],
        }
    }
}

/// The `[rrl]` section checked; `Err` names the key and says why.
pub(super) fn policy(raw: &RawRrl) -> Result<RrlPolicy, (String, String)> {
    let d = RrlPolicy::default();
    let key = |k: &str| format!("rrl.{k}");
    let responses_per_second = raw.responses_per_second.unwrap_or(d.responses_per_second);
    if responses_per_second > MAX_RRL_RATE {
        return Err((
            key("responses_per_second"),
            format!("{responses_per_second} is more than {MAX_RRL_RATE} (0 turns the limit off)"),
        ));
    }
    let slip = raw.slip.unwrap_or(d.slip);
    if slip > MAX_RRL_SLIP {
        return Err((
            key("slip"),
            format!(
                "{slip} is more than {MAX_RRL_SLIP} (1: every limited response truncated, \
                 0: all dropped)"
            ),
        ));
    }
    let prefix = |k: &str, v: Option<u8>, default: u8, max: u8| match v {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err((
            key(k),
            format!("{v} is not a prefix length (1 to {max} bits)"),
        )),
    };
    let ipv4_prefix = prefix("ipv4_prefix", raw.ipv4_prefix, d.ipv4_prefix, 32)?;
    let ipv6_prefix = prefix("ipv6_prefix", raw.ipv6_prefix, d.ipv6_prefix, 128)?;
    let mut exempt: Vec<IpNet> = Vec::new();
    for (i, e) in raw.exempt.iter().enumerate() {
        let net: IpNet = e
            .parse()
            .or_else(|_| e.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                (
                    format!("rrl.exempt[{i}]"),
                    format!("{e:?} is not a prefix (198.18.0.0/24) or an address"),
                )
            })?;
        let net = net.trunc();
        if !exempt.contains(&net) {
            exempt.push(net);
        }
    }
    for (family, v6) in [("IPv4", false), ("IPv6", true)] {
        let n = exempt.iter().filter(|n| n.addr().is_ipv6() == v6).count();
        if n > MAX_RRL_EXEMPT as usize {
            return Err((
                key("exempt"),
                format!("{n} {family} prefixes; at most {MAX_RRL_EXEMPT} per family"),
            ));
        }
    }
    Ok(RrlPolicy {
        responses_per_second,
        slip,
        ipv4_prefix,
        ipv6_prefix,
        exempt,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{error_of, parse};

    const BASE: &str = r#"
[server]
listen = ["198.18.0.2:53"]
"#;

    #[test]
    fn the_limit_is_off_unless_configured() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.rrl.responses_per_second, 0);
        assert_eq!(c.rrl.config().rate, 0);
        assert_eq!(
            (c.rrl.slip, c.rrl.ipv4_prefix, c.rrl.ipv6_prefix),
            (2, 24, 56)
        );
    }

    #[test]
    fn a_full_section_validates() {
        let c = parse(&format!(
            "{BASE}\n[rrl]\nresponses_per_second = 20\nslip = 1\nipv4_prefix = 32\n\
             ipv6_prefix = 64\nexempt = [\"198.18.0.7/24\", \"2001:db8::1\", \"198.18.0.0/24\"]\n"
        ))
        .unwrap();
        let r = &c.rrl;
        assert_eq!((r.responses_per_second, r.slip), (20, 1));
        assert_eq!((r.ipv4_prefix, r.ipv6_prefix), (32, 64));
        let exempt: Vec<String> = r.exempt.iter().map(|n| n.to_string()).collect();
        assert_eq!(exempt, ["198.18.0.0/24", "2001:db8::1/128"]);
        let config = r.config();
        assert_eq!(
            (config.rate, config.slip, config.prefix4, config.prefix6),
            (20, 1, 32, 64)
        );
        assert_eq!((config.exempt4, config.exempt6), (1, 1));
        let base = parse(BASE).unwrap().rrl.config();
        assert_eq!((base.exempt4, base.exempt6), (0, 0));
    }

    #[test]
    fn errors_name_the_key() {
        for (section, want) in [
            ("responses_per_second = 2000000", "rrl.responses_per_second"),
            ("slip = 101", "rrl.slip"),
            ("ipv4_prefix = 0", "rrl.ipv4_prefix"),
            ("ipv4_prefix = 33", "rrl.ipv4_prefix"),
            ("ipv6_prefix = 129", "rrl.ipv6_prefix"),
            ("exempt = [\"198.18.0/24\"]", "rrl.exempt[0]"),
            ("rate = 5", "unknown field `rate`"),
            ("responses_per_second = -1", "invalid value"),
        ] {
            let err = error_of(&format!("{BASE}\n[rrl]\n{section}\n"));
            assert!(err.contains(want), "{section}: {err:?} lacks {want:?}");
        }
        let many: Vec<String> = (0..=xgslb_common::MAX_RRL_EXEMPT)
            .map(|i| format!("\"10.{}.{}.0/24\"", i / 256, i % 256))
            .collect();
        let err = error_of(&format!("{BASE}\n[rrl]\nexempt = [{}]\n", many.join(",")));
        assert!(
            err.contains("rrl.exempt") && err.contains("at most"),
            "{err}"
        );
    }
}
