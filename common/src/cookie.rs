//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018), as both paths issue
//! and check them: what a query's cookie was found to be, the lengths and lifetimes, and the
//! map value that shares the server secret and the clock with the XDP program.
//!
//! A server cookie of ours is 16 bytes: version 1, three reserved bytes, a 32-bit Unix
//! timestamp (big endian, serial number arithmetic), and the first 8 bytes of
//! SipHash-2-4(client cookie | version | reserved | timestamp | client address) under the
//! 128-bit server secret. Each path hashes on its own (the XDP program in ebpf/src/cookie.rs,
//! user space with the `siphasher` crate); the tests hold them to RFC 9018's vectors and to
//! each other.

/// What a query's COOKIE option was found to be: `ParsedQuery::cookie` in the XDP program,
/// the slow paths' `CookieSeen` of each query. A valid server cookie proves the client saw
/// an earlier response of ours at its address, which is what response rate limiting
/// exempts.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieSeen {
    /// No COOKIE option (or cookies are off).
    None = 0,
    /// A client cookie alone: answered with a fresh server cookie.
    ClientOnly = 1,
    /// A server cookie of ours, within its lifetime, for this client and address.
    Valid = 2,
    /// A server cookie that is not ours, has expired, or was made for another client or
    /// address: answered as a client cookie alone (no enforcement: no BADCOOKIE).
    Invalid = 3,
}

impl CookieSeen {
    /// Every kind a query is counted as, in index order.
    pub const ALL: [CookieSeen; 4] = [
        CookieSeen::None,
        CookieSeen::ClientOnly,
        CookieSeen::Valid,
        CookieSeen::Invalid,
    ];

    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::ClientOnly),
            2 => Some(Self::Valid),
            3 => Some(Self::Invalid),
            _ => None,
        }
    }

    /// Stable snake_case name for stats output.
    pub const fn name(self) -> &'static str {
        match self {
            CookieSeen::None => "none",
            CookieSeen::ClientOnly => "client_only",
            CookieSeen::Valid => "valid",
            CookieSeen::Invalid => "invalid",
        }
    }
}

/// Entries of the cookie counters (indexed by `CookieSeen`; `None` is never counted).
pub const COOKIE_STATS_LEN: u32 = 4;

/// A client cookie's length (RFC 7873 4.1).
pub const CLIENT_COOKIE_LEN: usize = 8;
/// Our server cookies' length (RFC 9018 4.2).
pub const SERVER_COOKIE_LEN: usize = 16;
/// A COOKIE option's data as we send it: the client cookie, then our server cookie.
pub const COOKIE_REPLY_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
/// The server cookie version of RFC 9018.
pub const SERVER_COOKIE_VERSION: u8 = 1;
/// Oldest server cookie accepted, seconds (RFC 9018 4.3: one hour).
pub const COOKIE_MAX_AGE: i32 = 3600;
/// Furthest in the future a server cookie's timestamp may be, seconds (RFC 9018 4.3: five
/// minutes of clock skew between servers sharing the secret).
pub const COOKIE_MAX_AHEAD: i32 = 300;
/// A valid server cookie younger than this is echoed as received; an older one is replaced
/// with a fresh one (RFC 9018 4.3: half an hour).
pub const COOKIE_RENEW_AGE: i32 = 1800;

/// Whether a COOKIE option of `len` data bytes is well formed (RFC 7873 5.2.2): a client
/// cookie alone, or with a server cookie of 8 to 32 bytes. Any other length is FORMERR.
#[inline(always)]
pub const fn cookie_len_ok(len: usize) -> bool {
    len == CLIENT_COOKIE_LEN || (len >= 16 && len <= 40)
}

/// What a valid server cookie stamped `stamp` is worth at `now` (Unix seconds, both taken
/// modulo 2^32): `None` outside its lifetime, else whether it is to be echoed as received
/// (`true`) rather than replaced.
#[inline(always)]
pub const fn cookie_stamp(stamp: u32, now: u32) -> Option<bool> {
    let age = now.wrapping_sub(stamp) as i32;
    if age < -COOKIE_MAX_AHEAD || age > COOKIE_MAX_AGE {
        None
    } else {
        Some(age < COOKIE_RENEW_AGE)
    }
}

/// What the XDP program does with COOKIE options.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieState {
    /// Nothing published yet: a query with a cookie is passed (the program never guesses).
    Unpublished = 0,
    /// Cookies are off: the option is ignored, as a server without cookies does.
    Off = 1,
    /// Cookies are on: checked and answered with `CookieConfig::key`.
    On = 2,
}

/// Value of the cookie map (one entry), written by xgslbd: whether cookies are on, the
/// server secret, and the clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CookieConfig {
    /// A `CookieState`.
    pub state: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// The server secret as SipHash's two key words: its bytes 0..8 and 8..16, each read
    /// little endian.
    pub key: [u64; 2],
    /// Unix time minus boot time, nanoseconds (wrapping): what the program adds to
    /// `bpf_ktime_get_boot_ns` for the Unix time. xgslbd writes it again every balancer
    /// interval, so that a stepped clock reaches the program.
    pub clock_offset_ns: u64,
}
layout!(CookieConfig, 32, { state: 0, _pad: 4, key: 8, clock_offset_ns: 24 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_live_an_hour_are_renewed_after_half_of_it_and_may_run_five_minutes_ahead() {
        let now = 1_559_731_985;
        assert_eq!(cookie_stamp(now, now), Some(true));
        assert_eq!(cookie_stamp(now - 1799, now), Some(true));
        assert_eq!(cookie_stamp(now - 1800, now), Some(false));
        assert_eq!(cookie_stamp(now - 3600, now), Some(false));
        assert_eq!(cookie_stamp(now - 3601, now), None);
        assert_eq!(cookie_stamp(now + 300, now), Some(true));
        assert_eq!(cookie_stamp(now + 301, now), None);
        // Across the wrap of the 32-bit timestamp.
        assert_eq!(cookie_stamp(u32::MAX - 10, 5), Some(true));
        assert_eq!(cookie_stamp(5, u32::MAX - 10), Some(true));
    }

    #[test]
    fn option_lengths_of_rfc_7873_5_2_2() {
        let ok: [usize; 3] = [8, 16, 40];
        let bad: [usize; 5] = [0, 7, 9, 15, 41];
        assert!(ok.iter().all(|&l| cookie_len_ok(l)));
        assert!(bad.iter().all(|&l| !cookie_len_ok(l)));
    }
}
