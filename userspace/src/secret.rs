//! The agent protocol's shared secrets: a key id and its secret. Its own module because the
//! config reads them and the protocol (`metrics::wire`) signs with them; neither owns the
//! other. So are the HTTP endpoint's token (the daemon's `metrics_http` admits requests with
//! it) and the DNS cookie secret (`[cookies]`, used by `dns::cookies`).
use std::{fmt, path::Path};

/// A shared secret, by key id.
#[derive(Clone)]
pub struct Key {
    pub id: u32,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Key {{ id: {}, secret: <{} bytes> }}",
            self.id,
            self.secret.len()
        )
    }
}

/// The HTTP endpoint's token (`server.http_token_file`): compared in constant time, never
/// printed. A request carries it as `Authorization: Bearer <token>` (API clients,
/// Prometheus) or as the password of `Authorization: Basic base64(<any user>:<token>)`
/// (browsers, which prompt for it on a 401 with a `Basic` challenge and then send it with
/// every request to the origin, the page's own fetches included).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpToken(Vec<u8>);

/// Why a request's `Authorization` was refused; the 401's explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No `Authorization` header at all.
    #[error(
        "no credentials: send Authorization: Bearer <server.http_token_file>, or Basic \
         with any user and the token as the password"
    )]
    Missing,
    /// A scheme other than `Bearer` and `Basic`.
    #[error("Authorization: neither Bearer nor Basic")]
    Scheme,
    /// `Basic` credentials that are not (padded, standard) base64.
    #[error("Authorization: Basic credentials are not base64")]
    NotBase64,
    /// `Basic` credentials without the `:` between user and password.
    #[error("Authorization: Basic credentials have no ':' between user and password")]
    NoColon,
    /// Well-formed, but not the token.
    #[error("Authorization: wrong token")]
    Wrong,
}

impl HttpToken {
    /// A token of these bytes.
    pub fn new(token: Vec<u8>) -> Self {
        Self(token)
    }

    /// Admits a request whose `Authorization` header value carries this token, as
    /// `Bearer <token>` or as the password of `Basic` credentials; the scheme's name in any
    /// case (RFC 9110). The token is compared in constant time (its length aside).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refused> {
        use subtle::ConstantTimeEq;
        let value = authorization.ok_or(Refused::Missing)?.trim_ascii();
        let (scheme, credentials) = match value.iter().position(|&b| b == b' ') {
            Some(space) => (&value[..space], value[space + 1..].trim_ascii_start()),
            None => (value, &[][..]),
        };
        let given = if scheme.eq_ignore_ascii_case(b"bearer") {
            credentials.to_vec()
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            let pair = data_encoding::BASE64
                .decode(credentials)
                .map_err(|_| Refused::NotBase64)?;
            let colon = pair
                .iter()
                .position(|&b| b == b':')
                .ok_or(Refused::NoColon)?;
            pair[colon + 1..].to_vec()
        } else {
            return Err(Refused::Scheme);
        };
        if bool::from(given.ct_eq(&self.0)) {
            Ok(())
        } else {
            Err(Refused::Wrong)
        }
    }
}

impl std::fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpToken(<{} bytes>)", self.0.len())
    }
}

/// The 128-bit server secret of RFC 9018: SipHash's key. Every server answering for one
/// address (anycast EDNSs) must share it, or a client's cookie from one is invalid at the
/// next.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSecret([u8; 16]);

impl fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieSecret(..)")
    }
}

/// Why a cookie secret was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieSecretError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Not 32 hexadecimal digits.
    #[error("a cookie secret is 16 bytes as 32 hexadecimal digits (found {0} characters)")]
    Format(usize),
    /// The system's random source failed.
    #[error("cannot draw a random cookie secret: {0}")]
    Random(String),
}

impl CookieSecret {
    /// The secret of 32 hexadecimal digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, CookieSecretError> {
        let text = text.trim();
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| CookieSecretError::Format(text.len()))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| CookieSecretError::Format(text.len()))?;
        Ok(Self(bytes))
    }

    /// The secret in the file at `path` (`from_hex`).
    pub fn load(path: &Path) -> Result<Self, CookieSecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| CookieSecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_hex(&text)
    }

    /// A secret from the system's random source.
    pub fn random() -> Result<Self, CookieSecretError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| CookieSecretError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The secret of SipHash's two key words (as `xgslb_common::CookieConfig::key` holds
    /// them), for a secret adopted from the pinned map.
    pub fn from_key(key: [u64; 2]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&key[0].to_le_bytes());
        bytes[8..].copy_from_slice(&key[1].to_le_bytes());
        Self(bytes)
    }

    /// The secret's 16 bytes.
    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// SipHash's two key words: bytes 0..8 and 8..16, each little endian.
    pub fn key(&self) -> [u64; 2] {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        [word(&self.0[..8]), word(&self.0[8..])]
    }
}

#[cfg(test)]
mod tests {
    use super::{HttpToken, Refused};

    fn basic(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            data_encoding::BASE64.encode(user_pass.as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn the_token_is_admitted_as_bearer_or_as_the_basic_password_only() {
        let t = HttpToken::new(b"0123456789abcdef".to_vec());
        let check = |v: &[u8]| t.check(Some(v));
        assert_eq!(check(b"Bearer 0123456789abcdef"), Ok(()));
        assert_eq!(check(b"bearer  0123456789abcdef "), Ok(()));
        assert_eq!(check(&basic("xgslb:0123456789abcdef")), Ok(()));
        assert_eq!(check(&basic(":0123456789abcdef")), Ok(()));
        assert_eq!(check(&basic("anyone:0123456789abcdef")), Ok(()));
        assert_eq!(check(&basic("a:b:0123456789abcdef")), Err(Refused::Wrong));
        assert_eq!(check(b"Bearer 0123456789abcdeg"), Err(Refused::Wrong));
        assert_eq!(check(b"Bearer 0123456789abcde"), Err(Refused::Wrong));
        assert_eq!(check(b"Bearer"), Err(Refused::Wrong));
        assert_eq!(check(&basic("xgslb:wrong")), Err(Refused::Wrong));
        assert_eq!(check(&basic("0123456789abcdef")), Err(Refused::NoColon));
        assert_eq!(check(b"Basic 0123456789abcde"), Err(Refused::NotBase64));
        assert_eq!(check(b"Basic %%%"), Err(Refused::NotBase64));
        assert_eq!(check(b"Basic"), Err(Refused::NoColon));
        assert_eq!(check(b"0123456789abcdef"), Err(Refused::Scheme));
        assert_eq!(check(b"Digest 0123456789abcdef"), Err(Refused::Scheme));
        assert_eq!(check(b""), Err(Refused::Scheme));
        assert_eq!(t.check(None), Err(Refused::Missing));
        assert_eq!(format!("{t:?}"), "HttpToken(<16 bytes>)");
    }
}
