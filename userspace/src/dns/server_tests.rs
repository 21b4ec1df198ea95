//! Transport tests on 127.0.0.1 with a trivial responder: framing, pipelining, bad input,
//! shutdown. Timeouts here only bound a failing test; they never order events.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::dns::{Messages, Transport};

/// Longest any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(5);

/// Answers a message of 12 bytes or more with the same bytes and QR set; nothing otherwise.
struct Reflect;

impl Responder for Reflect {
    fn respond(
        &self,
        query: &[u8],
        transport: Transport,
        _client: std::net::IpAddr,
    ) -> Option<Vec<u8>> {
        if query.len() < 12 {
            return None;
        }
        let mut response = query.to_vec();
        response[2] |= 0x80;
        // Mark the transport in the Z bit so tests see which one answered.
        if transport == Transport::Tcp {
            response[3] |= 0x40;
        }
        Some(response)
    }

    /// A query with ID [`STREAM_ID`] gets [`STREAM_LEN`] responses (a zone transfer's
    /// shape), each with its index in its first payload byte.
    fn respond_tcp(&self, query: &[u8], client: std::net::IpAddr) -> Messages {
        let one = self.respond(query, Transport::Tcp, client);
        match one {
            Some(response) if query[..2] == STREAM_ID.to_be_bytes() => {
                Box::new((0..STREAM_LEN).map(move |i| {
                    let mut r = response.clone();
                    r[12] = i;
                    r
                }))
            }
            one => Box::new(one.into_iter()),
        }
    }
}

const STREAM_ID: u16 = 0x5757;
const STREAM_LEN: u8 = 3;

fn message(id: u16) -> Vec<u8> {
    let mut bytes = vec![0u8; 12];
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(b"payload");
    bytes
}

fn framed(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(bytes);
    out
}

async fn read_framed(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    tokio::time::timeout(STEP, stream.read_exact(&mut len))
        .await
        .expect("response in time")
        .expect("length");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tokio::time::timeout(STEP, stream.read_exact(&mut body))
        .await
        .expect("response in time")
        .expect("body");
    body
}

async fn start_tcp() -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_tcp(listener, Arc::new(Reflect), shutdown.clone()));
    (addr, shutdown, task)
}

/// Shuts the server down; it must stop in time, without panicking or failing.
async fn stop(shutdown: CancellationToken, task: tokio::task::JoinHandle<io::Result<()>>) {
    shutdown.cancel();
    tokio::time::timeout(STEP, task)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("no error");
}

#[tokio::test]
async fn tcp_answers_framed_queries() {
    let (addr, shutdown, task) = start_tcp().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&framed(&message(1))).await.expect("write");
    let response = read_framed(&mut stream).await;
    assert_eq!(&response[..2], &1u16.to_be_bytes());
    assert_eq!(response[3] & 0x40, 0x40, "answered as TCP");

    // Closing our side ends the connection; the server closes its side too.
    stream.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(rest.is_empty());

    stop(shutdown, task).await;
}

#[tokio::test]
async fn tcp_pipelined_queries_get_all_answers_in_order() {
    let (addr, shutdown, _task) = start_tcp().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut batch = Vec::new();
    for id in 1..=5u16 {
        batch.extend_from_slice(&framed(&message(id)));
    }
    // A runt inside the pipeline is skipped without an answer, not a reason to close.
    batch.extend_from_slice(&framed(&[9, 9, 9]));
    batch.extend_from_slice(&framed(&message(6)));
    stream.write_all(&batch).await.expect("write");
    for id in 1..=6u16 {
        let response = read_framed(&mut stream).await;
        assert_eq!(&response[..2], &id.to_be_bytes());
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_response_of_many_messages_is_sent_whole_before_the_next_query_is_answered() {
    let (addr, shutdown, task) = start_tcp().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut both = framed(&message(STREAM_ID));
    both.extend(framed(&message(7)));
    stream.write_all(&both).await.expect("write");
    for i in 0..STREAM_LEN {
        let r = read_framed(&mut stream).await;
        assert_eq!(r[..2], STREAM_ID.to_be_bytes());
        assert_eq!(r[12], i, "message {i} in order");
    }
    let r = read_framed(&mut stream).await;
    assert_eq!(r[..2], 7u16.to_be_bytes(), "then the next query's");
    stop(shutdown, task).await;
}

#[tokio::test]
async fn tcp_broken_frame_closes_only_that_connection() {
    let (addr, shutdown, _task) = start_tcp().await;
    let mut good = TcpStream::connect(addr).await.expect("connect");
    let mut bad = TcpStream::connect(addr).await.expect("connect");
    bad.write_all(&[0, 0]).await.expect("write"); // a zero-length frame
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, bad.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .ok();
    assert!(rest.is_empty());

    good.write_all(&framed(&message(3))).await.expect("write");
    assert_eq!(&read_framed(&mut good).await[..2], &3u16.to_be_bytes());
    shutdown.cancel();
}

#[tokio::test]
async fn tcp_shutdown_closes_open_connections() {
    let (addr, shutdown, task) = start_tcp().await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    // Make sure the connection is being served before shutting down.
    idle.write_all(&framed(&message(4))).await.expect("write");
    read_framed(&mut idle).await;
    stop(shutdown, task).await;
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, idle.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .ok();
    assert!(rest.is_empty());
}

/// `stream` is closed by the server without an answer (`what` says which, on failure).
async fn assert_closed(mut stream: TcpStream, what: &str) {
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(closed.is_err() || rest.is_empty(), "{what} was served");
}

/// A client network (/24) holds at most MAX_TCP_PER_NETWORK connections, however many
/// addresses it spreads them over; another network is served meanwhile.
#[tokio::test]
async fn one_network_cannot_hold_every_tcp_slot() {
    let (addr, shutdown, task) = start_tcp().await;
    let connect_from = |from: &str| {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{from}:0").parse().expect("addr"))
            .expect("bind a loopback address");
        socket.connect(addr)
    };
    let mut held = Vec::new();
    for i in 0..MAX_TCP_PER_NETWORK {
        let from = format!("127.0.3.{}", 10 + i / MAX_TCP_PER_CLIENT);
        let mut s = connect_from(&from).await.expect("connect");
        let id = i as u16;
        s.write_all(&framed(&message(id))).await.expect("write");
        assert_eq!(&read_framed(&mut s).await[..2], &id.to_be_bytes());
        held.push(s);
    }
    // A fresh address of the same /24: refused.
    let over = connect_from("127.0.3.200").await.expect("connect");
    assert_closed(over, "the network's extra connection").await;
    // Another /24: served.
    let mut s = connect_from("127.0.4.1").await.expect("connect");
    s.write_all(&framed(&message(99))).await.expect("write");
    assert_eq!(&read_framed(&mut s).await[..2], &99u16.to_be_bytes());
    drop(held);
    stop(shutdown, task).await;
}

/// One client holds at most MAX_TCP_PER_CLIENT connections (the next is closed at once);
/// another client is still served meanwhile.
#[tokio::test]
async fn one_client_cannot_hold_every_tcp_slot() {
    let (addr, shutdown, task) = start_tcp().await;
    let mut held = Vec::new();
    for id in 0..MAX_TCP_PER_CLIENT as u16 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // A query answered proves the connection is served, not just queued.
        s.write_all(&framed(&message(id))).await.expect("write");
        assert_eq!(&read_framed(&mut s).await[..2], &id.to_be_bytes());
        held.push(s);
    }
    let over = TcpStream::connect(addr).await.expect("connect");
    assert_closed(over, "the extra connection").await;
    // Another address (127.0.0.2 is loopback too) gets a place.
    let other = tokio::net::TcpSocket::new_v4().expect("socket");
    other
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut s = other.connect(addr).await.expect("connect");
    s.write_all(&framed(&message(99))).await.expect("write");
    assert_eq!(&read_framed(&mut s).await[..2], &99u16.to_be_bytes());
    // A place given back is a place for the same client again.
    drop(held.pop());
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let mut again = TcpStream::connect(addr).await.expect("connect");
        if again.write_all(&framed(&message(7))).await.is_ok() {
            let mut len = [0u8; 2];
            if tokio::time::timeout(STEP, again.read_exact(&mut len))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                break;
            }
        }
        // The server may not have seen the close yet: it closes this one at once.
        assert!(std::time::Instant::now() < deadline, "no place given back");
    }
    drop((held, s));
    stop(shutdown, task).await;
}

#[test]
fn clients_are_counted_by_their_slash_24_or_slash_56() {
    let net = |a: &str| network_of(a.parse().expect("address")).to_string();
    assert_eq!(net("198.18.7.200"), "198.18.7.0");
    assert_eq!(net("::ffff:198.18.7.200"), "198.18.7.0");
    assert_eq!(net("2001:db8:1:2ff:1:2:3:4"), "2001:db8:1:200::");
}
