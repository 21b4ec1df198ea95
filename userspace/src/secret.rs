//! Secrets the config reads and others check: the agent protocol's shared keys (a key id
//! and its secret; the protocol, `metrics::wire`, signs with them) and the HTTP endpoint's
//! token (the daemon's `metrics_http` admits requests with it). Their own module so that
//! neither the config nor their users owns the other.

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
