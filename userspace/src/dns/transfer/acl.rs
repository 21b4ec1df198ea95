//! Who may transfer a zone: the decision from the zone's settings, the client's address and
//! the key a valid TSIG was made with (the signature itself is checked before, in `tsig`).
use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::counters::Refusal;
use crate::config::ZoneTransferConfig;

/// Whether `client`, with a request validly signed by `key` (if any), may transfer a zone
/// with `policy`: its address must be allowed, and when the zone names keys, the request
/// must be signed with one of them. No allowed address (the default) allows nobody.
pub fn decide(
    policy: &ZoneTransferConfig,
    client: IpAddr,
    key: Option<&Name>,
) -> Result<(), Refusal> {
    let client = client.to_canonical();
    if !policy.allow.iter().any(|net| net.contains(&client)) {
        return Err(Refusal::NotAllowed);
    }
    if !policy.keys.is_empty() && !key.is_some_and(|k| policy.keys.contains(k)) {
        return Err(Refusal::KeyRequired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], keys: &[&str]) -> ZoneTransferConfig {
        ZoneTransferConfig {
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            keys: keys.iter().map(|k| Name::from_ascii(k).unwrap()).collect(),
            ..Default::default()
        }
    }

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    /// Policy, client, key, the decision.
    type Case<'a> = (
        &'a ZoneTransferConfig,
        &'a str,
        Option<&'a Name>,
        Result<(), Refusal>,
    );

    #[test]
    fn decisions() {
        let key = Name::from_ascii("xfr.").unwrap();
        let other = Name::from_ascii("other.").unwrap();
        let upper = Name::from_ascii("XFR.").unwrap();
        let open = policy(&["198.18.0.0/15", "2001:db8::/32"], &[]);
        let keyed = policy(&["198.18.0.0/15"], &["xfr."]);
        let cases: [Case; 11] = [
            (
                &ZoneTransferConfig::default(),
                "198.18.0.1",
                None,
                Err(Refusal::NotAllowed),
            ),
            (
                &ZoneTransferConfig::default(),
                "198.18.0.1",
                Some(&key),
                Err(Refusal::NotAllowed),
            ),
            (&open, "198.18.0.1", None, Ok(())),
            (&open, "198.19.255.255", Some(&other), Ok(())),
            (&open, "198.20.0.1", None, Err(Refusal::NotAllowed)),
            (&open, "2001:db8::5", None, Ok(())),
            (&open, "::ffff:198.18.0.1", None, Ok(())),
            (&keyed, "198.18.0.1", Some(&key), Ok(())),
            (&keyed, "198.18.0.1", Some(&upper), Ok(())),
            (&keyed, "198.18.0.1", None, Err(Refusal::KeyRequired)),
            (
                &keyed,
                "198.18.0.1",
                Some(&other),
                Err(Refusal::KeyRequired),
            ),
        ];
        for (policy, client, key, want) in cases {
            assert_eq!(
                decide(policy, ip(client), key),
                want,
                "{client} {key:?} {policy:?}"
            );
        }
        // The address is checked even with the right key.
        assert_eq!(
            decide(&keyed, ip("192.0.2.1"), Some(&key)),
            Err(Refusal::NotAllowed)
        );
    }
}
