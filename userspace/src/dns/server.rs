//! The TCP transport of the slow path (UDP has its workers, `crate::udp`). It moves bytes;
//! the answers come from a [`Responder`], so the transport can be tested with any responder
//! and the logic without sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::handler::Responder;
use crate::backoff::{LogLimiter, accept_failed};

/// A TCP connection with no complete query (or no progress writing) for this long is closed
/// (RFC 7766 6.2.3 suggests seconds, not minutes, for a busy server).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open TCP connections at most; a new one over this is closed at once so that a flood of
/// idle connections cannot exhaust file descriptors.
const MAX_TCP_CONNECTIONS: usize = 256;
/// Open TCP connections at most from one client address: no client holds every slot (the
/// others' fallback after a truncated UDP answer).
pub const MAX_TCP_PER_CLIENT: usize = 16;
/// Open TCP connections at most from one client network (an IPv4 /24, an IPv6 /56, what one
/// site or one customer usually holds): a client with many addresses cannot take every slot
/// either.
pub const MAX_TCP_PER_NETWORK: usize = 64;
/// Responses computed but not yet written, per connection: how far a client may pipeline
/// ahead of its reading before we stop reading its queries.
const TCP_PIPELINE_DEPTH: usize = 16;

/// Serves DNS over TCP on `listener` until `shutdown` is cancelled, then waits for the open
/// connections to close.
pub async fn serve_tcp(
    listener: TcpListener,
    responder: Arc<dyn Responder>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_tcp_until(listener, responder, shutdown.clone(), shutdown).await
}

/// Serves DNS over TCP on `listener` until `accepting` or `shutdown` is cancelled, then
/// waits for the open connections: they end by themselves (the client closes, the idle
/// timeout) or at `shutdown`. A handover stops accepting first, so that no query a client
/// has sent on an open connection goes unanswered.
pub async fn serve_tcp_until(
    listener: TcpListener,
    responder: Arc<dyn Responder>,
    accepting: CancellationToken,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let per_client = Arc::new(ClientCounts::default());
    let mut connections = JoinSet::new();
    let mut accept_log = LogLimiter::new();
    let mut limit_log = LogLimiter::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = accepting.cancelled() => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(client_slot) = ClientSlot::take(&per_client, peer.ip()) else {
                        limit_log.warn(|suppressed| {
                            tracing::warn!(%peer, suppressed, "dns tcp: {MAX_TCP_PER_CLIENT} connections from this client or {MAX_TCP_PER_NETWORK} from its network already, closing new connection");
                        });
                        drop(stream);
                        continue;
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        limit_log.warn(|suppressed| {
                            tracing::warn!(%peer, suppressed, "dns tcp: connection limit reached, closing new connection");
                        });
                        drop(stream);
                        continue;
                    };
                    connections.spawn(serve_connection(
                        stream,
                        Arc::clone(&responder),
                        shutdown.child_token(),
                        (permit, client_slot),
                    ));
                }
                Err(err) => accept_failed("dns tcp", &err, &mut accept_log).await,
            },
        }
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Open connections by client address and by client network.
#[derive(Default)]
struct ClientCounts(std::sync::Mutex<std::collections::HashMap<ClientKey, usize>>);

/// What connections are counted by.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum ClientKey {
    Address(IpAddr),
    /// The address with its host bits cleared (/24 or /56).
    Network(IpAddr),
}

/// The network `client` is counted in.
fn network_of(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & 0xffff_ff00).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & !((1u128 << 72) - 1)).into()),
    }
}

/// One of a client's connection places, given back when dropped.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    keys: [ClientKey; 2],
}

impl ClientSlot {
    /// A place for one more connection from `client`, unless it has `MAX_TCP_PER_CLIENT` or
    /// its network `MAX_TCP_PER_NETWORK`.
    fn take(counts: &Arc<ClientCounts>, client: IpAddr) -> Option<ClientSlot> {
        let keys = [
            ClientKey::Address(client),
            ClientKey::Network(network_of(client)),
        ];
        let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        let full = |key: &ClientKey, max| map.get(key).is_some_and(|&n| n >= max);
        if full(&keys[0], MAX_TCP_PER_CLIENT) || full(&keys[1], MAX_TCP_PER_NETWORK) {
            return None;
        }
        for key in keys {
            *map.entry(key).or_insert(0) += 1;
        }
        Some(ClientSlot {
            counts: counts.clone(),
            keys,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

/// One TCP connection: a reader that answers queries as they arrive and a writer that sends
/// the responses in order, so a client may pipeline (RFC 7766 6.2.1.1).
async fn serve_connection(
    stream: TcpStream,
    responder: Arc<dyn Responder>,
    shutdown: CancellationToken,
    _held: (OwnedSemaphorePermit, ClientSlot),
) {
    let peer = stream.peer_addr().ok();
    let (reader, writer) = stream.into_split();
    let (responses, pending) = mpsc::channel(TCP_PIPELINE_DEPTH);
    let read = read_queries(reader, responder, responses, shutdown, peer);
    let write = write_responses(writer, pending);
    tokio::join!(read, write);
}

/// Reads framed queries until EOF, a broken frame, idle timeout or shutdown; queues answers.
async fn read_queries(
    mut reader: OwnedReadHalf,
    responder: Arc<dyn Responder>,
    responses: mpsc::Sender<Vec<u8>>,
    shutdown: CancellationToken,
    peer: Option<SocketAddr>,
) {
    loop {
        let frame = tokio::select! {
            () = shutdown.cancelled() => return,
            frame = tokio::time::timeout(TCP_IDLE_TIMEOUT, read_frame(&mut reader)) => frame,
        };
        let query = match frame {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) => return,
            Ok(Err(err)) => {
                tracing::debug!(?peer, %err, "dns tcp: closing connection on read error");
                return;
            }
            Err(_) => {
                tracing::debug!(?peer, "dns tcp: closing idle connection");
                return;
            }
        };
        let Some(client) = peer.map(|p| p.ip().to_canonical()) else {
            return; // no peer address: nothing to answer to
        };
        // A zone transfer's messages are made as the writer takes them (the channel's
        // depth bounds how far ahead), and its last before the next query is read.
        for response in responder.respond_tcp(&query, client) {
            tokio::select! {
                // A long transfer does not hold up shutdown.
                () = shutdown.cancelled() => return,
                sent = responses.send(response) => if sent.is_err() {
                    return; // the writer gave up; nothing more can be sent
                },
            }
        }
    }
}

/// Reads one length-prefixed message; `None` on a clean EOF between messages.
async fn read_frame(reader: &mut OwnedReadHalf) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "zero-length frame",
        ));
    }
    let mut query = vec![0u8; len];
    reader.read_exact(&mut query).await?;
    Ok(Some(query))
}

/// Writes queued responses with their length prefix; stops on error or a stalled peer.
async fn write_responses(mut writer: OwnedWriteHalf, mut pending: mpsc::Receiver<Vec<u8>>) {
    while let Some(response) = pending.recv().await {
        let Ok(len) = u16::try_from(response.len()) else {
            continue; // cannot be framed; the response encoder never makes one this big
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, writer.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    // All queries answered and the reader is done: close our side cleanly.
    writer.shutdown().await.ok();
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
