//! The agent protocol's shared secrets: a key id and its secret. Its own module because the
//! config reads them and the protocol (`metrics::wire`) signs with them; neither owns the
//! other. So are the web console's bearer token and the DNS cookie secret (`[cookies]`,
//! used by `dns::cookies`).
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

/// The web console's bearer token (`server.http_token_file`): compared in constant time,
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(Vec<u8>);

impl BearerToken {
    /// A token of these bytes.
    pub fn new(token: Vec<u8>) -> Self {
        Self(token)
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`, comparing the
    /// token in constant time (its length aside).
    pub fn admits(&self, authorization: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let Some(given) = authorization
            .strip_prefix(b"Bearer ")
            .or_else(|| authorization.strip_prefix(b"bearer "))
        else {
            return false;
        };
        given.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BearerToken(<{} bytes>)", self.0.len())
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
    use super::BearerToken;

    #[test]
    fn a_bearer_token_admits_only_itself() {
        let t = BearerToken::new(b"0123456789abcdef".to_vec());
        assert!(t.admits(b"Bearer 0123456789abcdef"));
        assert!(!t.admits(b"Bearer 0123456789abcdeg"));
        assert!(!t.admits(b"Bearer 0123456789abcde"));
        assert!(!t.admits(b"Basic 0123456789abcdef"));
        assert!(!t.admits(b"0123456789abcdef"));
        assert_eq!(format!("{t:?}"), "BearerToken(<16 bytes>)");
    }
}
