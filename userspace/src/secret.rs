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
