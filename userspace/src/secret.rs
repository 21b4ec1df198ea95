//! The agent protocol's shared secrets: a key id and its secret. Its own module because the
//! config reads them and the protocol (`metrics::wire`) signs with them; neither owns the
//! other.

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
