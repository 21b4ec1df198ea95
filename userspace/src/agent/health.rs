//! Health checks of virtual servers (TCP connect, HTTP(S) GET, DNS query over UDP) and the
//! rise/fall state machine that turns their results into up or down.
//!
//! A VS starts unknown and the first result decides (so a restarted agent reports at once);
//! from then on `rise` consecutive successes bring it up and `fall` consecutive failures take
//! it down. Unknown VSs are not reported.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RecordType},
};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::{
    error::Error,
    http::{self, Url},
    tls,
};

/// A health check and its schedule.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a down VS up.
    pub rise: u32,
    /// Consecutive failures that take an up VS down.
    pub fall: u32,
}

/// What a check does.
#[derive(Clone, Debug)]
pub enum CheckKind {
    /// A TCP connect succeeds.
    Tcp { address: SocketAddr },
    /// An HTTP or HTTPS GET returns the expected status (and body text).
    Http(HttpCheck),
    /// A DNS query over UDP gets the expected rcode.
    Dns {
        server: SocketAddr,
        name: Name,
        qtype: RecordType,
        expect_rcode: ResponseCode,
    },
}

/// An HTTP(S) GET check.
#[derive(Clone, Debug)]
pub struct HttpCheck {
    /// `url.tls` is true for https.
    pub url: Url,
    pub expect_status: u16,
    /// Text the body (its first [`http::MAX_BODY`] bytes) must contain.
    pub body_contains: Option<String>,
    /// https only: accept any certificate (lab use).
    pub insecure: bool,
}

/// The rise/fall state of one VS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// None until the first result.
    pub up: Option<bool>,
    /// Consecutive results against `up` so far.
    pub streak: u32,
}

impl Health {
    /// The state after one more result.
    pub fn observe(self, ok: bool, rise: u32, fall: u32) -> Health {
        match self.up {
            None => Health {
                up: Some(ok),
                streak: 0,
            },
            Some(up) if up == ok => Health {
                up: Some(up),
                streak: 0,
            },
            Some(up) => {
                let streak = self.streak + 1;
                let need = if up { fall } else { rise };
                if streak >= need {
                    Health {
                        up: Some(ok),
                        streak: 0,
                    }
                } else {
                    Health {
                        up: Some(up),
                        streak,
                    }
                }
            }
        }
    }
}

/// A check ready to run (HTTPS with its TLS config built once).
pub struct Checker {
    kind: CheckKind,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Checker {
    pub fn new(kind: &CheckKind) -> Result<Checker, Error> {
        let tls = match kind {
            CheckKind::Http(h) if h.url.tls => Some(tls::client_config(h.insecure)?),
            _ => None,
        };
        Ok(Checker {
            kind: kind.clone(),
            tls,
        })
    }

    /// Runs the check once; `Err` says why it failed.
    pub async fn run(&self, timeout: Duration) -> Result<(), Error> {
        let check = async {
            match &self.kind {
                CheckKind::Tcp { address } => TcpStream::connect(address)
                    .await
                    .map(drop)
                    .map_err(Error::io(format!("connect {address}"))),
                CheckKind::Http(h) => self.http(h).await,
                CheckKind::Dns {
                    server,
                    name,
                    qtype,
                    expect_rcode,
                } => {
                    let mut q = Message::query();
                    q.add_query(Query::query(name.clone(), *qtype));
                    let r = dns_exchange(*server, &q).await?;
                    if r.metadata.response_code == *expect_rcode {
                        Ok(())
                    } else {
                        Err(Error::Rcode {
                            server: *server,
                            got: r.metadata.response_code,
                            want: *expect_rcode,
                        })
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, check).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    async fn http(&self, h: &HttpCheck) -> Result<(), Error> {
        let tcp = http::connect(&h.url).await?;
        let response = match &self.tls {
            Some(config) => {
                let stream = tls::connect(config.clone(), &h.url.host, tcp).await?;
                http::get(stream, &h.url).await?
            }
            None => http::get(tcp, &h.url).await?,
        };
        if response.status != h.expect_status {
            return Err(Error::Status {
                got: response.status,
                want: h.expect_status,
            }
            .context(&h.url));
        }
        if let Some(want) = &h.body_contains
            && !contains(&response.body, want.as_bytes())
        {
            return Err(Error::BodyLacks(want.clone()).context(&h.url));
        }
        Ok(())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Sends `query` to `server` over UDP and waits for the response with its id (the caller
/// bounds the wait). Datagrams from elsewhere, or that do not decode, are skipped.
pub async fn dns_exchange(server: SocketAddr, query: &Message) -> Result<Message, Error> {
    let socket = UdpSocket::bind(unspecified(server))
        .await
        .map_err(Error::io("bind"))?;
    socket
        .connect(server)
        .await
        .map_err(Error::io(format!("connect {server}")))?;
    let bytes = query.to_vec().map_err(Error::DnsEncode)?;
    socket
        .send(&bytes)
        .await
        .map_err(Error::io(format!("send to {server}")))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(Error::io(server.to_string()))?;
        let Ok(r) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if r.metadata.id == query.metadata.id
            && r.metadata.message_type == MessageType::Response
            && r.metadata.op_code == OpCode::Query
        {
            return Ok(r);
        }
    }
}

/// The any-address of `peer`'s family, port 0.
pub fn unspecified(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// Runs `check` every interval until shutdown, passing each decided state to `publish`.
/// Failures are logged at debug; changes of state at info.
pub async fn watch(
    vs: String,
    check: CheckConfig,
    publish: impl Fn(Option<bool>),
    shutdown: CancellationToken,
) {
    let checker = match Checker::new(&check.kind) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(vs, "health check cannot run: {e}");
            return;
        }
    };
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut health = Health::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = checker.run(check.timeout) => r,
        };
        if let Err(e) = &result {
            tracing::debug!(vs, "health check failed: {e}");
        }
        let next = health.observe(result.is_ok(), check.rise, check.fall);
        if next.up != health.up {
            match (&result, next.up) {
                (Err(e), Some(false)) => tracing::info!(vs, "down: {e}"),
                (_, Some(up)) => tracing::info!(vs, "{}", if up { "up" } else { "down" }),
                _ => {}
            }
        }
        health = next;
        publish(health.up);
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
