//! NOTIFY (RFC 1996): when a zone's version changes (and at start), each of its secondaries
//! is told over UDP, signed when the zone names a key, and told again with a doubling wait
//! until it answers NOERROR or [`NOTIFY_TRIES`] tries have gone by. A newer version's NOTIFY
//! to the same secondary replaces one still retrying.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Record, RecordType, TSigner};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::counters::{NotifyOutcome, TransferCounters};

/// Tries per secondary and version.
pub const NOTIFY_TRIES: u32 = 5;
/// How long the first try waits for an answer; each retry waits twice as long (1, 2, 4, 8,
/// 16 s: about half a minute in all).
pub const FIRST_WAIT: Duration = Duration::from_secs(1);

/// A secondary to notify, and the key to sign with.
#[derive(Clone)]
pub struct NotifyTarget {
    pub addr: SocketAddr,
    pub signer: Option<TSigner>,
}

/// One zone's version to announce to its secondaries.
pub struct NotifyJob {
    /// The zone's SOA (owner: the zone), with the serial served.
    pub soa: Record,
    pub targets: Vec<NotifyTarget>,
}

/// The NOTIFY for the zone of `soa` (RFC 1996 3.7: the SOA in the answer section as a hint),
/// with a random ID.
pub fn notify_message(soa: &Record) -> Message {
    let mut m = Message::query();
    m.metadata.op_code = OpCode::Notify;
    m.metadata.authoritative = true;
    m.add_query(Query::query(soa.name.clone(), RecordType::SOA));
    m.add_answer(soa.clone());
    m
}

/// The address NOTIFYs to `target` are sent from: the first listen address of its family
/// (secondaries usually accept NOTIFY from their primary's address only), else any.
pub fn source_for(target: SocketAddr, listen: &[SocketAddr]) -> SocketAddr {
    let ip = listen
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| ip.is_ipv4() == target.is_ipv4() && !ip.is_unspecified())
        .unwrap_or(if target.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
    SocketAddr::new(ip, 0)
}

/// Tells `target` of the zone version `soa`, from `source`: waits `first_wait` for a NOERROR
/// answer, twice as long at each retry, [`NOTIFY_TRIES`] tries at most. Whether it was
/// acknowledged.
pub async fn notify_secondary(
    soa: &Record,
    target: &NotifyTarget,
    source: SocketAddr,
    first_wait: Duration,
    counters: &TransferCounters,
) -> bool {
    let zone = &soa.name;
    let socket = match UdpSocket::bind(source).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%zone, target = %target.addr, "NOTIFY: cannot bind {source}: {e}");
            counters.notify(NotifyOutcome::GaveUp);
            return false;
        }
    };
    let mut wait = first_wait;
    for attempt in 1..=NOTIFY_TRIES {
        if let Some(rcode) = try_once(&socket, soa, target, wait, counters).await {
            if rcode == ResponseCode::NoError {
                tracing::info!(%zone, target = %target.addr, attempt, "NOTIFY acknowledged");
                counters.notify(NotifyOutcome::Acknowledged);
                return true;
            }
            tracing::warn!(%zone, target = %target.addr, attempt, %rcode, "NOTIFY answered with an error");
        }
        wait = wait.saturating_mul(2);
    }
    tracing::warn!(%zone, target = %target.addr, "NOTIFY: no NOERROR after {NOTIFY_TRIES} tries, giving up");
    counters.notify(NotifyOutcome::GaveUp);
    false
}

/// One NOTIFY and up to `wait` for its answer: the answer's rcode, or `None` (no answer, or
/// a send that failed, which the wait then paces).
async fn try_once(
    socket: &UdpSocket,
    soa: &Record,
    target: &NotifyTarget,
    wait: Duration,
    counters: &TransferCounters,
) -> Option<ResponseCode> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut message = notify_message(soa);
    let mut verifier = match &target.signer {
        None => None,
        Some(signer) => match message.finalize(signer, super::tsig::now()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(zone = %soa.name, "NOTIFY: cannot sign: {e}");
                return None;
            }
        },
    };
    let id = message.metadata.id;
    let sent = match message.to_vec() {
        Ok(bytes) => socket.send_to(&bytes, target.addr).await,
        Err(e) => Err(std::io::Error::other(e)),
    };
    counters.notify(NotifyOutcome::Sent);
    if let Err(e) = sent {
        tracing::debug!(target = %target.addr, "NOTIFY: send failed: {e}");
        tokio::time::sleep_until(deadline).await;
        return None;
    }
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let (n, from) = match received {
            Err(_) => return None,
            Ok(Err(e)) => {
                tracing::debug!(target = %target.addr, "NOTIFY: receive failed: {e}");
                tokio::time::sleep_until(deadline).await;
                return None;
            }
            Ok(Ok(got)) => got,
        };
        if from != target.addr {
            continue;
        }
        let bytes = &buf[..n];
        let Ok(response) = Message::from_vec(bytes) else {
            continue;
        };
        if response.metadata.id != id
            || response.metadata.message_type != MessageType::Response
            || response.metadata.op_code != OpCode::Notify
        {
            continue;
        }
        if let Some(v) = verifier.as_mut()
            && let Err(e) = v.verify(bytes)
        {
            tracing::warn!(target = %target.addr, "NOTIFY: answer's TSIG does not verify: {e}");
            continue;
        }
        return Some(response.metadata.response_code);
    }
}

/// Sends every job's NOTIFYs until `shutdown`: each (zone, secondary) its own task, which a
/// newer job for the same pair replaces. NOTIFYs go out from `listen`'s addresses.
pub async fn run_notifier(
    mut jobs: UnboundedReceiver<NotifyJob>,
    listen: Vec<SocketAddr>,
    counters: Arc<TransferCounters>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut running: HashMap<(LowerName, SocketAddr), AbortHandle> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let zone = LowerName::new(&job.soa.name);
                let soa = Arc::new(job.soa);
                for target in job.targets {
                    let key = (zone.clone(), target.addr);
                    if let Some(older) = running.remove(&key) {
                        older.abort();
                    }
                    let (soa, counters) = (soa.clone(), counters.clone());
                    let source = source_for(target.addr, &listen);
                    let handle = tasks.spawn(async move {
                        notify_secondary(&soa, &target, source, FIRST_WAIT, &counters).await;
                    });
                    running.insert(key, handle);
                }
                running.retain(|_, h| !h.is_finished());
            }
        }
    }
    tasks.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

    use super::*;

    fn soa() -> Record {
        let zone = "$TTL 300\n@ SOA ns1 host 42 7200 3600 86400 60\n@ NS ns1\n";
        let zone = crate::dns::Zone::parse(&Name::from_ascii("example.com.").unwrap(), zone)
            .expect("zone");
        zone.soa().expect("soa").clone()
    }

    fn signer() -> TSigner {
        TSigner::new(
            b"0123456789abcdef".to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("xfr.").unwrap(),
            300,
        )
        .unwrap()
    }

    #[test]
    fn the_source_is_a_listen_address_of_the_target_family() {
        let listen: Vec<SocketAddr> = vec![
            "[2001:db8::2]:53".parse().unwrap(),
            "198.18.0.2:53".parse().unwrap(),
        ];
        let v4: SocketAddr = "198.18.5.2:53".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::5]:53".parse().unwrap();
        assert_eq!(source_for(v4, &listen), "198.18.0.2:0".parse().unwrap());
        assert_eq!(source_for(v6, &listen), "[2001:db8::2]:0".parse().unwrap());
        let any: Vec<SocketAddr> = vec!["0.0.0.0:53".parse().unwrap()];
        assert_eq!(source_for(v4, &any), "0.0.0.0:0".parse().unwrap());
        assert_eq!(source_for(v6, &any), "[::]:0".parse().unwrap());
    }

    /// A secondary that ignores the first NOTIFY, answers the second with `rcode`, signed
    /// with `key` when given, and reports each NOTIFY it got.
    async fn secondary(
        rcode: ResponseCode,
        key: Option<TSigner>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<Message>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await
            {
                let bytes = buf[..n].to_vec();
                let request = Message::from_vec(&bytes).unwrap();
                if let Some(k) = &key {
                    k.verify_message_byte(&bytes, None, true)
                        .expect("the NOTIFY's TSIG verifies");
                }
                got.push(request.clone());
                if got.len() == 2 {
                    let mut response =
                        Message::new(request.metadata.id, MessageType::Response, OpCode::Notify);
                    response.metadata.response_code = rcode;
                    response.add_query(request.queries[0].clone());
                    let bytes = match &key {
                        None => response.to_vec().unwrap(),
                        Some(k) => {
                            let mac = request.signature().unwrap().data.mac.clone();
                            let mut s = crate::dns::transfer::tsig::ResponseSigner::new(
                                k.clone(),
                                request.metadata.id,
                                mac,
                                crate::dns::transfer::tsig::now(),
                            );
                            s.sign(response).unwrap()
                        }
                    };
                    socket.send_to(&bytes, from).await.unwrap();
                    if rcode == ResponseCode::NoError {
                        break;
                    }
                }
                if got.len() == NOTIFY_TRIES as usize {
                    break;
                }
            }
            got
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_notify_is_retried_until_answered_and_signed_with_the_key() {
        let (addr, seen) = secondary(ResponseCode::NoError, Some(signer())).await;
        let counters = TransferCounters::default();
        let target = NotifyTarget {
            addr,
            signer: Some(signer()),
        };
        let source = "127.0.0.1:0".parse().unwrap();
        let acked = notify_secondary(
            &soa(),
            &target,
            source,
            Duration::from_millis(200),
            &counters,
        )
        .await;
        assert!(acked);
        let got = seen.await.unwrap();
        assert_eq!(got.len(), 2, "one ignored, one answered");
        for m in &got {
            assert_eq!(m.metadata.op_code, OpCode::Notify);
            assert!(m.metadata.authoritative);
            assert_eq!(m.queries[0].query_type(), RecordType::SOA);
            assert_eq!(m.queries[0].name().to_string(), "example.com.");
            assert!(
                matches!(&m.answers[0].data, hickory_proto::rr::RData::SOA(s) if s.serial == 42)
            );
        }
        let n = counters.notifies();
        assert_eq!(
            n,
            [
                (NotifyOutcome::Sent, 2),
                (NotifyOutcome::Acknowledged, 1),
                (NotifyOutcome::GaveUp, 0)
            ]
        );
    }

    #[tokio::test]
    async fn an_error_answer_is_no_acknowledgement_and_the_tries_are_bounded() {
        let (addr, seen) = secondary(ResponseCode::NotAuth, None).await;
        let counters = TransferCounters::default();
        let target = NotifyTarget { addr, signer: None };
        let source = "127.0.0.1:0".parse().unwrap();
        let acked = notify_secondary(
            &soa(),
            &target,
            source,
            Duration::from_millis(20),
            &counters,
        )
        .await;
        assert!(!acked);
        assert_eq!(seen.await.unwrap().len(), NOTIFY_TRIES as usize);
        let n = counters.notifies();
        assert_eq!(
            n,
            [
                (NotifyOutcome::Sent, 5),
                (NotifyOutcome::Acknowledged, 0),
                (NotifyOutcome::GaveUp, 1)
            ]
        );
    }
}
