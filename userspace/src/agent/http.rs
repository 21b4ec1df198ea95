//! HTTP GET for health checks and load endpoints: the URL a config names, the TCP connection
//! to it, and one request per connection (`Connection: close`) over hyper's HTTP/1.1 client,
//! the body kept up to [`MAX_BODY`] bytes. The stream is any `AsyncRead + AsyncWrite`, so
//! HTTPS is the same code over a [`super::tls`] stream.
use std::net::IpAddr;

use http_body_util::{BodyExt, Empty};
use hyper::{
    Request, Uri,
    body::Bytes,
    header::{ACCEPT, CONNECTION, HOST, USER_AGENT},
};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

use super::error::Error;

/// Most body bytes kept; a longer body is cut here, not refused.
pub const MAX_BODY: usize = 64 * 1024;
/// Most bytes hyper buffers, so the most header bytes accepted (hyper's least is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

/// An http:// or https:// URL: host, port, path (with the query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    pub port: u16,
    /// Starts with '/'.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path]` or `https://...`; IPv6 hosts in brackets. No user
    /// info, no fragment.
    pub fn parse(s: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error::Url {
            url: s.to_owned(),
            why: why.to_owned(),
        };
        // Uri drops a fragment without a word; in a check's URL it is a mistake.
        if s.contains('#') {
            return Err(bad("a fragment is never sent"));
        }
        let uri: Uri = s
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("not an http:// or https:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not supported"));
        }
        let host = match authority.host().strip_prefix('[') {
            Some(v6) => {
                let v6 = v6.strip_suffix(']').unwrap_or(v6);
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(bad(&format!("{v6:?} is not an IPv6 address")));
                }
                v6
            }
            None => authority.host(),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad(&format!("{host:?} is not a host")));
        }
        // Uri takes any text after the ':' and then has no port: a typo must not fall back
        // to the default port.
        let after_host = authority
            .as_str()
            .strip_prefix(authority.host())
            .ok_or_else(|| bad("the host is not where it belongs"))?;
        let port = match after_host.strip_prefix(':') {
            None => default_port(tls),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("{p:?} is not a port")))?,
        };
        let path = match uri.query() {
            Some(q) => format!("{}?{q}", uri.path()),
            None => uri.path().to_owned(),
        };
        Ok(Url {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The host as an address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The host, in brackets if it is an IPv6 address.
    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The Host header value: the port only when it is not the scheme's default.
    fn host_header(&self) -> String {
        if self.port == default_port(self.tls) {
            self.bracketed_host()
        } else {
            format!("{}:{}", self.bracketed_host(), self.port)
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(
            f,
            "{scheme}://{}:{}{}",
            self.bracketed_host(),
            self.port,
            self.path
        )
    }
}

fn default_port(tls: bool) -> u16 {
    if tls { 443 } else { 80 }
}

/// Connects to a URL's host and port (a name resolves through the system resolver).
pub async fn connect(url: &Url) -> Result<TcpStream, Error> {
    TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(Error::io(format!("connect {}:{}", url.host, url.port)))
}

/// A response: the status and the first `MAX_BODY` bytes of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends a GET for `url` on `stream` and reads the response, its body cut at `MAX_BODY`.
/// The caller bounds the time it takes.
pub async fn get<S>(stream: S, url: &Url) -> Result<Response, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let http = |what| move |error| Error::Http { what, error };
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        // "Host:", not "host:": the form every server and packet capture expects to see.
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(http("HTTP handshake"))?;
    let request = Request::get(url.path.as_str())
        .header(HOST, url.host_header())
        .header(USER_AGENT, "xgslb-agent")
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| Error::Url {
            url: url.to_string(),
            why: e.to_string(),
        })?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(http("reading the response"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut kept = Vec::new();
        // Dropping the body early makes hyper close the connection: the rest is never read.
        while kept.len() < MAX_BODY {
            let Some(frame) = body.frame().await else {
                break;
            };
            if let Ok(data) = frame.map_err(http("reading the body"))?.into_data() {
                let room = MAX_BODY - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        Ok(Response { status, body: kept })
    };
    // The connection does the reading and writing; it ends once the exchange is done (or
    // failed, which the exchange then reports).
    let (response, _) = tokio::join!(exchange, connection);
    response
}

#[cfg(test)]
pub(crate) mod tests {
    use tokio::{
        io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// What a test server reads of a request: everything up to the end of its head, or
    /// `None` if the client closed (or failed) first.
    pub(crate) async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        Some(req)
    }

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://198.18.1.10/health").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "198.18.1.10", 80, "/health")
        );
        assert_eq!(u.host_header(), "198.18.1.10");
        let u = Url::parse("https://www.example.test:8443").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 8443, "/"));
        let u = Url::parse("http://[2001:db8::1]:9100/load?x=1").unwrap();
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.host_header(), "[2001:db8::1]:9100");
        assert_eq!(u.path, "/load?x=1");
        assert_eq!(u.to_string(), "http://[2001:db8::1]:9100/load?x=1");
        assert_eq!(Url::parse("http://h?x").unwrap().path, "/?x");
        for bad in [
            "ftp://x/",
            "http://",
            "http://a:b/",
            "http://a:0/",
            "http://a:/",
            "http://u@h/",
            "http://[::1/",
            "http://[::g]/",
            "http://h/a b",
            "http://h/#f",
            "/just/a/path",
        ] {
            let e = Url::parse(bad).expect_err(bad);
            // The message quotes the URL it refuses.
            assert!(e.to_string().starts_with(&format!("{bad:?}: ")), "{e}");
        }
    }

    /// Serves one connection: reads the request head, writes `response` in `pieces` (to
    /// split it across reads), then closes, or with `hold` waits for the client to close.
    async fn serve_once(response: Vec<u8>, pieces: usize, hold: bool) -> Url {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            if read_head(&mut s).await.is_none() {
                return;
            }
            let step = response.len().div_ceil(pieces.max(1)).max(1);
            for piece in response.chunks(step) {
                if s.write_all(piece).await.is_err() {
                    return;
                }
                let _ = s.flush().await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let mut buf = [0u8; 64];
            while hold && matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap()
    }

    async fn get_from(response: &[u8], pieces: usize) -> Result<Response, Error> {
        let url = serve_once(response.to_vec(), pieces, false).await;
        get(connect(&url).await?, &url).await
    }

    #[tokio::test]
    async fn bodies_by_length_by_chunks_and_by_close() {
        let r = get_from(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 3).await;
        assert_eq!(
            r.unwrap(),
            Response {
                status: 200,
                body: b"ok".to_vec()
            }
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=1\r\n!!!\r\n0\r\n\r\n";
        assert_eq!(get_from(chunked, 4).await.unwrap().body, b"ok!!!");
        let r = get_from(b"HTTP/1.0 503 x\r\n\r\nab", 1).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"ab"[..]));
        // No body for 204 whatever follows.
        let r = get_from(b"HTTP/1.1 204 No Content\r\n\r\n", 1)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
    }

    #[tokio::test]
    async fn broken_responses_are_errors() {
        for bad in [
            &b"SSH-2.0-x\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            // Closed inside the body.
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
            // Closed before a whole response.
            b"HTTP/1.1 200 OK\r\nContent-Le",
        ] {
            let e = get_from(bad, 1)
                .await
                .expect_err(&String::from_utf8_lossy(bad));
            assert!(matches!(e, Error::Http { .. }), "{e}");
        }
        let mut long_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        long_head.extend(std::iter::repeat_n(b"X-Pad: 0123456789abcdef\r\n", 2048).flatten());
        long_head.extend_from_slice(b"\r\n");
        assert!(get_from(&long_head, 1).await.is_err());
    }

    #[tokio::test]
    async fn bodies_are_capped() {
        for head in [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY * 2
            ),
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned(),
        ] {
            let mut big = head.into_bytes();
            big.extend(std::iter::repeat_n(b'x', MAX_BODY * 2));
            // A server that never ends the body: the cap ends the exchange.
            let url = serve_once(big, 8, true).await;
            let get = get(connect(&url).await.unwrap(), &url);
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), get)
                .await
                .expect("the cap ends the exchange")
                .unwrap();
            assert_eq!(r.body.len(), MAX_BODY);
        }
    }

    #[tokio::test]
    async fn the_request_names_host_and_path() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let req = read_head(&mut s).await.expect("a request head");
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/load?x=1")).unwrap();
        get(connect(&url).await.unwrap(), &url).await.unwrap();
        let req = seen.await.unwrap();
        assert!(req.starts_with("GET /load?x=1 HTTP/1.1\r\n"), "{req}");
        let req = req.to_ascii_lowercase();
        for header in [
            format!("host: 127.0.0.1:{port}\r\n"),
            "user-agent: xgslb-agent\r\n".into(),
            "connection: close\r\n".into(),
        ] {
            assert!(req.contains(&header), "{req}");
        }
    }
}
