//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018), as the slow paths
//! (the full handler and the UDP workers' plan answers) check and issue them; the XDP
//! program does the same in ebpf/src/cookie.rs, with the secret `maps::cookies` shares.
//!
//! A query's COOKIE option is a client cookie (8 bytes) and perhaps a server cookie (8 to 32
//! bytes; any other length is FORMERR, RFC 7873 5.2.2). The response carries the client
//! cookie and a server cookie: the query's own when it is ours, valid, and less than half an
//! hour old (RFC 9018 4.3), else a fresh one. A server cookie that is not ours, or has
//! expired, is answered as a client cookie alone: cookies are issued and checked, never
//! enforced (no BADCOOKIE), so a client without a valid one is answered as before.
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use siphasher::sip::SipHasher24;
use xgslb_common::{
    CLIENT_COOKIE_LEN, COOKIE_REPLY_LEN, COOKIE_STATS_LEN, CookieSeen, SERVER_COOKIE_LEN,
    SERVER_COOKIE_VERSION, cookie_len_ok, cookie_stamp, edns_option,
};

pub use crate::secret::CookieSecret;

/// Server cookies under a secret (RFC 9018 4.4).
impl CookieSecret {
    /// The hash part of a server cookie (RFC 9018 4.4): SipHash-2-4 of the client cookie,
    /// `stamped` (version, reserved and timestamp as sent or made) and the client's address
    /// (4 bytes for IPv4, 16 for IPv6), the 8 bytes of its result as SipHash writes them.
    pub fn hash(&self, client: &[u8; 8], stamped: &[u8; 8], ip: IpAddr) -> [u8; 8] {
        let mut h = SipHasher24::new_with_key(self.bytes());
        h.write(client);
        h.write(stamped);
        match ip {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.finish().to_le_bytes()
    }

    /// A fresh server cookie for `client` at `ip`, stamped `now` (Unix seconds mod 2^32).
    pub fn server_cookie(&self, client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; 16] {
        let mut stamped = [0u8; 8];
        stamped[0] = SERVER_COOKIE_VERSION;
        stamped[4..].copy_from_slice(&now.to_be_bytes());
        let mut cookie = [0u8; 16];
        cookie[..8].copy_from_slice(&stamped);
        cookie[8..].copy_from_slice(&self.hash(client, &stamped, ip));
        cookie
    }

    /// Whether `server` is a server cookie of ours for `client` at `ip` (version 1, the
    /// hash matches), and then whether it is young enough at `now` to be echoed: `None`
    /// when it is not ours or outside its lifetime.
    pub fn check(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> Option<bool> {
        let server: &[u8; SERVER_COOKIE_LEN] = server.try_into().ok()?;
        if server[0] != SERVER_COOKIE_VERSION {
            return None;
        }
        let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        let young = cookie_stamp(stamp, now)?;
        let mut stamped = [0u8; 8];
        stamped.copy_from_slice(&server[..8]);
        (self.hash(client, &stamped, ip) == server[8..]).then_some(young)
    }
}

/// The COOKIE option data of a response (client cookie, server cookie), and what the
/// query's cookie was found to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieReply {
    /// What the query's cookie was: rate limiting exempts `CookieSeen::Valid`.
    pub seen: CookieSeen,
    /// The option's data as sent.
    pub data: [u8; COOKIE_REPLY_LEN],
}

/// A query's COOKIE option data as received (well formed: 8, or 16 to 40 bytes), kept
/// without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryCookie {
    bytes: [u8; 40],
    len: u8,
}

impl QueryCookie {
    /// The cookie of option data `data` (at most 40 bytes: `find` checked it).
    pub fn new(data: &[u8]) -> Self {
        let mut bytes = [0u8; 40];
        let len = data.len().min(40);
        bytes[..len].copy_from_slice(&data[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    /// The option's data.
    pub fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A query's COOKIE option too short or too long (RFC 7873 5.2.2: FORMERR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("COOKIE option of {0} bytes (8, or 16 to 40)")]
pub struct MalformedCookie(pub usize);

/// The data of the first COOKIE option among an OPT RR's options (`rdata`, well formed:
/// the ECS reader checked its framing), if any. A malformed one is an error.
pub fn find(rdata: &[u8]) -> Result<Option<&[u8]>, MalformedCookie> {
    let mut rest = rdata;
    while let [c0, c1, l0, l1, tail @ ..] = rest {
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some(data) = tail.get(..len) else {
            return Ok(None);
        };
        if code == edns_option::COOKIE {
            return if cookie_len_ok(len) {
                Ok(Some(data))
            } else {
                Err(MalformedCookie(len))
            };
        }
        rest = &tail[len..];
    }
    Ok(None)
}

/// Queries answered with a cookie, by `CookieSeen` (its index), on one path. Shared by
/// every catalog and plan a daemon builds, so that reloads keep the counts.
#[derive(Debug, Default)]
pub struct CookieCounters {
    counts: [AtomicU64; COOKIE_STATS_LEN as usize],
}

impl CookieCounters {
    /// Counts one response to a query whose cookie was `seen`.
    pub fn count(&self, seen: CookieSeen) {
        if let Some(c) = self.counts.get(seen as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts by `CookieSeen`.
    pub fn read(&self) -> [u64; COOKIE_STATS_LEN as usize] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }
}

/// Whether cookies are on, with which secret, and the slow paths' counters.
#[derive(Debug)]
pub struct Cookies {
    enabled: bool,
    secret: CookieSecret,
    counters: std::sync::Arc<CookieCounters>,
}

impl Cookies {
    /// Cookies on (`enabled`) or off, with `secret`, counting in `counters`.
    pub fn new(
        enabled: bool,
        secret: CookieSecret,
        counters: std::sync::Arc<CookieCounters>,
    ) -> Self {
        Self {
            enabled,
            secret,
            counters,
        }
    }

    /// Cookies as `config` says, counting in `counters`: with its secret, else `adopted`
    /// (the program in service's), else a random one.
    pub fn of_config(
        config: &crate::config::CookiesConfig,
        adopted: Option<CookieSecret>,
        counters: std::sync::Arc<CookieCounters>,
    ) -> Result<Self, crate::secret::CookieSecretError> {
        let secret = match config.secret.clone().or(adopted) {
            Some(s) => s,
            None => CookieSecret::random()?,
        };
        Ok(Self::new(config.enabled, secret, counters))
    }

    /// Cookies off: a well-formed option is ignored (a malformed one is still FORMERR).
    pub fn off() -> Self {
        Self::new(false, CookieSecret::from_key([0; 2]), Default::default())
    }

    /// Whether cookies are checked and issued.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The server secret.
    pub fn secret(&self) -> &CookieSecret {
        &self.secret
    }

    /// The slow paths' counters.
    pub fn counters(&self) -> &std::sync::Arc<CookieCounters> {
        &self.counters
    }

    /// The response's COOKIE for a query whose option data is `data` (well formed: `find`),
    /// from `ip`, at `now` (not counted: a response sent is, in `counters`). `None` when
    /// cookies are off.
    pub fn answer(&self, data: &[u8], ip: IpAddr, now: u32) -> Option<CookieReply> {
        if !self.enabled {
            return None;
        }
        let client: &[u8; CLIENT_COOKIE_LEN] = data.get(..CLIENT_COOKIE_LEN)?.try_into().ok()?;
        let server = &data[CLIENT_COOKIE_LEN..];
        let (seen, echo) = if server.is_empty() {
            (CookieSeen::ClientOnly, false)
        } else {
            match self.secret.check(client, server, ip, now) {
                Some(young) => (CookieSeen::Valid, young),
                None => (CookieSeen::Invalid, false),
            }
        };
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        reply[..CLIENT_COOKIE_LEN].copy_from_slice(client);
        if echo {
            reply[CLIENT_COOKIE_LEN..].copy_from_slice(server);
        } else {
            reply[CLIENT_COOKIE_LEN..].copy_from_slice(&self.secret.server_cookie(client, ip, now));
        }
        Some(CookieReply { seen, data: reply })
    }
}

/// Unix time in seconds, modulo 2^32 (RFC 9018's timestamp).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    fn secret(s: &str) -> CookieSecret {
        CookieSecret::from_hex(s).unwrap()
    }

    /// RFC 9018 Appendix A: each response's COOKIE, from the query's and the secret.
    #[test]
    fn the_vectors_of_rfc_9018_appendix_a() {
        let a = secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let on = |s: &CookieSecret| Cookies::new(true, s.clone(), Default::default());
        let cases = [
            // A.1: a client cookie alone.
            (
                &a,
                "2464c4abcf10c957",
                "198.51.100.100",
                1559731985,
                CookieSeen::ClientOnly,
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
            ),
            // A.2: valid, 40 minutes old: renewed.
            (
                &a,
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                "198.51.100.100",
                1559734385,
                CookieSeen::Valid,
                "2464c4abcf10c957010000005cf7a871d4a564a1442aca77",
            ),
            // A.3: valid with reserved bytes set (hashed as received), 1h52m old: expired,
            // so a fresh one.
            (
                &a,
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                "203.0.113.203",
                1559734700,
                CookieSeen::Invalid,
                "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e",
            ),
        ];
        for (s, query, ip, now, seen, want) in cases {
            let got = on(s).answer(&hex(query), ip.parse().unwrap(), now).unwrap();
            assert_eq!(got.seen, seen, "{query}");
            assert_eq!(got.data.to_vec(), hex(want), "{query}");
        }
        // A.3's cookie was valid when it was made (and its reserved bytes count).
        let a3 = hex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
        let client: [u8; 8] = a3[..8].try_into().unwrap();
        let ip = "203.0.113.203".parse().unwrap();
        assert_eq!(a.check(&client, &a3[8..], ip, 1559727985 + 10), Some(true));
        // A.4: IPv6, after the secret rolled over: the old secret's cookie is invalid
        // under the new one, and the new one's is made.
        let old = secret("dd3bdf9344b678b185a6f5cb60fca715");
        let new = secret("445536bcd2513298075a5d379663c962");
        let ip6 = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        let q = hex("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
        let client: [u8; 8] = q[..8].try_into().unwrap();
        assert_eq!(old.check(&client, &q[8..], ip6, 1559741817), Some(true));
        let got = on(&new).answer(&q, ip6, 1559741961).unwrap();
        assert_eq!(got.seen, CookieSeen::Invalid);
        assert_eq!(
            got.data.to_vec(),
            hex("22681ab97d52c298010000005cf7c609a6bb79d16625507a")
        );
    }

    #[test]
    fn a_young_valid_cookie_is_echoed_and_other_addresses_or_versions_are_invalid() {
        let s = secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let c = Cookies::new(true, s.clone(), Default::default());
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let client = [7u8; 8];
        let server = s.server_cookie(&client, ip, 1000);
        let query = [&client[..], &server[..]].concat();
        let echoed = c.answer(&query, ip, 1000 + 1799).unwrap();
        assert_eq!(echoed.seen, CookieSeen::Valid);
        assert_eq!(echoed.data.to_vec(), query);
        let elsewhere = c
            .answer(&query, "198.18.0.2".parse().unwrap(), 1000)
            .unwrap();
        assert_eq!(elsewhere.seen, CookieSeen::Invalid);
        let mut v2 = query.clone();
        v2[8] = 2;
        assert_eq!(c.answer(&v2, ip, 1000).unwrap().seen, CookieSeen::Invalid);
        // A server cookie of another length is not ours.
        let short = [&client[..], &[1u8; 8]].concat();
        assert_eq!(
            c.answer(&short, ip, 1000).unwrap().seen,
            CookieSeen::Invalid
        );
        // Nothing counted until a response is sent.
        assert_eq!(c.counters().read(), [0; 4]);
        assert!(Cookies::off().answer(&query, ip, 1000).is_none());
    }

    #[test]
    fn the_first_cookie_is_found_and_a_malformed_one_is_an_error() {
        let opt = |code: u16, data: &[u8]| {
            let mut v = code.to_be_bytes().to_vec();
            v.extend((data.len() as u16).to_be_bytes());
            v.extend_from_slice(data);
            v
        };
        let both = [opt(8, &[0, 1, 0, 0]), opt(10, &[1; 8]), opt(10, &[2; 24])].concat();
        assert_eq!(find(&both), Ok(Some(&[1u8; 8][..])));
        assert_eq!(find(&opt(8, &[0, 1, 0, 0])), Ok(None));
        for len in [0, 7, 9, 15, 41] {
            assert_eq!(find(&opt(10, &vec![0; len])), Err(MalformedCookie(len)));
        }
    }

    #[test]
    fn secrets_are_32_hex_digits_and_survive_the_map_round_trip() {
        assert!(CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf\n").is_ok());
        assert!(CookieSecret::from_hex("E5E973E5A6B2A43F48E7DC849E37BFCF").is_ok());
        assert!(CookieSecret::from_hex("e5e973").is_err());
        assert!(CookieSecret::from_hex("x5e973e5a6b2a43f48e7dc849e37bfcf").is_err());
        let s = secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        assert_eq!(CookieSecret::from_key(s.key()), s);
        assert_eq!(format!("{s:?}"), "CookieSecret(..)");
    }
}
