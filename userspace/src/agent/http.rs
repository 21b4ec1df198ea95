//! A minimal HTTP/1.1 GET client for health checks and load endpoints: one request per
//! connection (`Connection: close`), status line and headers parsed, the body read up to
//! [`MAX_BODY`] bytes (Content-Length, chunked, or until the peer closes). The stream is any
//! `AsyncRead + AsyncWrite`, so HTTPS is the same code over a TLS stream.
use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Most body bytes kept; a longer body is cut here, not refused.
pub const MAX_BODY: usize = 64 * 1024;
/// Most header bytes accepted.
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
    pub fn parse(s: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{s:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if path.contains('#') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{s:?}: the path has a fragment, a space or a control"
            ));
        }
        if authority.contains('@') {
            return Err(format!("{s:?}: user info is not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("{s:?}: unclosed '[' in the host"))?;
            let host = &r[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{s:?}: {host:?} is not an IPv6 address"));
            }
            (host, port_of(s, &r[end + 1..], default_port)?)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, port_of(s, &format!(":{p}"), default_port)?),
                None => (authority, default_port),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(format!("{s:?}: {host:?} is not a host"));
        }
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

    /// The Host header value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

fn port_of(s: &str, rest: &str, default: u16) -> Result<u16, String> {
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok(default),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: {p:?} is not a port")),
        None => Err(format!("{s:?}: junk after the host")),
    }
}

/// A response: the status and the first `MAX_BODY` bytes of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends a GET for `url` on `stream` and reads the response.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &Url,
) -> Result<Response, String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xgslb-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: what was read is all there is.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("reading the response: {e}")),
        };
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0;
        if let Some(response) = parse_response(&buf, eof)? {
            return Ok(response);
        }
        if eof {
            return Err("the connection closed before a whole response".into());
        }
    }
}

/// Parses a response from the bytes read so far: `Ok(None)` while more are needed, `eof`
/// when the peer has closed. A body past `MAX_BODY` is cut there.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("headers longer than {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 status line: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| format!("no status code in {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a header without ':': {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = &buf[head_end + 4..];
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    if no_body {
        return Ok(Some(Response {
            status,
            body: Vec::new(),
        }));
    }
    if chunked {
        return match dechunk(body)? {
            Some(b) => Ok(Some(Response { status, body: b })),
            None if body.len() >= MAX_BODY + MAX_HEAD || eof => Ok(Some(Response {
                status,
                body: dechunk_partial(body),
            })),
            None => Ok(None),
        };
    }
    let want = length.map(|l| l.min(MAX_BODY));
    match want {
        Some(w) if body.len() >= w => Ok(Some(Response {
            status,
            body: body[..w].to_vec(),
        })),
        Some(_) if eof => Err("the connection closed inside the body".into()),
        None if eof || body.len() >= MAX_BODY => Ok(Some(Response {
            status,
            body: body[..body.len().min(MAX_BODY)].to_vec(),
        })),
        _ => Ok(None),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A whole chunked body (`None` until the last chunk is in), cut at `MAX_BODY`.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if data.len() < size.saturating_add(2) {
            return Ok(None);
        }
        let room = MAX_BODY.saturating_sub(out.len());
        out.extend_from_slice(&data[..size.min(room)]);
        data = &data[size + 2..];
        if out.len() >= MAX_BODY {
            return Ok(Some(out));
        }
    }
}

/// The complete chunks of a body cut short.
fn dechunk_partial(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|t| usize::from_str_radix(t.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else {
            break;
        };
        data = &data[line_end + 2..];
        let take = size.min(data.len()).min(MAX_BODY - out.len());
        out.extend_from_slice(&data[..take]);
        if take < size || out.len() >= MAX_BODY || data.len() < size + 2 {
            break;
        }
        data = &data[size + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://198.18.1.10/health").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "198.18.1.10", 80, "/health")
        );
        let u = Url::parse("https://www.example.test:8443").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 8443, "/"));
        let u = Url::parse("http://[2001:db8::1]:9100/load?x=1").unwrap();
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.host_header(), "[2001:db8::1]:9100");
        assert_eq!(u.path, "/load?x=1");
        assert_eq!(Url::parse("http://h?x").unwrap().path, "/?x");
        for bad in [
            "ftp://x/",
            "http://",
            "http://a:b/",
            "http://a:0/",
            "http://u@h/",
            "http://[::1/",
            "http://h/a b",
            "http://h/#f",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn responses_parse() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
        assert_eq!(
            r.unwrap(),
            Some(Response {
                status: 200,
                body: b"ok".to_vec()
            })
        );
        // More needed until the length is in.
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false).unwrap(),
            None
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", true).is_err());
        // Until the close without a length.
        assert_eq!(
            parse_response(b"HTTP/1.0 503 x\r\n\r\nab", false).unwrap(),
            None
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 503 x\r\n\r\nab", true)
                .unwrap()
                .unwrap()
                .body,
            b"ab"
        );
        // Chunked.
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=1\r\n!!!\r\n0\r\n\r\n";
        assert_eq!(parse_response(c, false).unwrap().unwrap().body, b"ok!!!");
        assert_eq!(parse_response(&c[..60], false).unwrap(), None);
        // No body for 204 whatever follows.
        assert_eq!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", false)
                .unwrap()
                .unwrap()
                .status,
            204
        );
        for bad in [
            &b"SSH-2.0-x\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            assert!(parse_response(bad, true).is_err());
        }
    }

    #[test]
    fn bodies_are_capped() {
        let mut big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY * 2
        )
        .into_bytes();
        big.extend(std::iter::repeat_n(b'x', MAX_BODY));
        let r = parse_response(&big, false).unwrap().unwrap();
        assert_eq!(r.body.len(), MAX_BODY);
    }
}
