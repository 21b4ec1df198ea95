//! Rise/fall as a pure function, and each check kind against local listeners on 127.0.0.1.
use std::time::Duration;

use hickory_proto::{op::ResponseCode, rr::RecordType};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, UdpSocket},
};

use super::*;
use crate::agent::http::{Url, tests::read_head};

fn run(results: &[bool], rise: u32, fall: u32) -> Vec<Option<bool>> {
    let mut h = Health::default();
    results
        .iter()
        .map(|ok| {
            h = h.observe(*ok, rise, fall);
            h.up
        })
        .collect()
}

#[test]
fn the_first_result_decides() {
    assert_eq!(Health::default().up, None);
    assert_eq!(run(&[true], 3, 3), [Some(true)]);
    assert_eq!(run(&[false], 3, 3), [Some(false)]);
}

#[test]
fn fall_failures_in_a_row_take_it_down() {
    let t = Some(true);
    let f = Some(false);
    assert_eq!(run(&[true, false, false], 2, 2), [t, t, f]);
    // A success in between starts the count again.
    assert_eq!(
        run(&[true, false, true, false, false, false], 2, 3),
        [t, t, t, t, t, f]
    );
}

#[test]
fn rise_successes_in_a_row_bring_it_up() {
    let t = Some(true);
    let f = Some(false);
    assert_eq!(run(&[false, true, true, true], 3, 1), [f, f, f, t]);
    assert_eq!(
        run(&[false, true, false, true, true], 2, 1),
        [f, f, f, f, t]
    );
    // rise = fall = 1: every result decides.
    assert_eq!(run(&[true, false, true], 1, 1), [t, f, t]);
}

#[test]
fn the_streak_counts_results_against_the_state() {
    let h = Health::default().observe(true, 2, 3).observe(false, 2, 3);
    assert_eq!(
        h,
        Health {
            up: Some(true),
            streak: 1
        }
    );
    assert_eq!(
        h.observe(true, 2, 3),
        Health {
            up: Some(true),
            streak: 0
        }
    );
}

const T: Duration = Duration::from_secs(2);

fn check(kind: CheckKind) -> Checker {
    Checker::new(&kind).unwrap()
}

#[tokio::test]
async fn tcp_connects_or_fails() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = l.local_addr().unwrap();
    check(CheckKind::Tcp { address }).run(T).await.unwrap();
    drop(l);
    let e = check(CheckKind::Tcp { address })
        .run(T)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("connect"), "{e}");
}

/// A one-request-per-connection HTTP server answering every GET with `response`; returns
/// its port. The request line it saw goes to the channel.
async fn http_server(
    response: &'static str,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(req) = read_head(&mut s).await else {
                    return;
                };
                let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, rx)
}

fn http(port: u16, path: &str, status: u16, body: Option<&str>) -> CheckKind {
    CheckKind::Http(HttpCheck {
        url: Url::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap(),
        expect_status: status,
        body_contains: body.map(str::to_owned),
        insecure: false,
    })
}

#[tokio::test]
async fn http_checks_status_and_body() {
    let (port, mut seen) =
        http_server("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nstatus: ok\n").await;
    check(http(port, "/health", 200, Some("ok")))
        .run(T)
        .await
        .unwrap();
    let request = seen.recv().await.unwrap();
    assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{request}"
    );

    let e = check(http(port, "/", 204, None))
        .run(T)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("status 200, want 204"), "{e}");
    let e = check(http(port, "/", 200, Some("healthy")))
        .run(T)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("lacks \"healthy\""), "{e}");
}

#[tokio::test]
async fn http_failures_are_errors() {
    let (port, _seen) =
        http_server("HTTP/1.1 503 Unavailable\r\nConnection: close\r\n\r\nbusy").await;
    let e = check(http(port, "/", 200, None))
        .run(T)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("status 503"), "{e}");
    // A listener that never answers: the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let e = check(http(port, "/", 200, None))
        .run(Duration::from_millis(200))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no result within 200 ms"), "{e}");
}

#[tokio::test]
async fn https_without_tls_at_the_other_end_fails_the_handshake() {
    // A plain server that answers HTTP at once, whatever it is sent.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    for insecure in [false, true] {
        let kind = CheckKind::Http(HttpCheck {
            url: Url::parse(&format!("https://127.0.0.1:{port}/")).unwrap(),
            expect_status: 200,
            body_contains: None,
            insecure,
        });
        let e = check(kind).run(T).await.unwrap_err().to_string();
        assert!(e.contains("TLS handshake"), "{e}");
    }
}

/// A UDP DNS server answering each query once with `rcode`, echoing id and question.
async fn dns_server(rcode: ResponseCode) -> std::net::SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.response_code = rcode;
            r.add_queries(q.queries.clone());
            let _ = s.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    addr
}

fn dns(server: std::net::SocketAddr, expect: ResponseCode) -> CheckKind {
    let mut name = hickory_proto::rr::Name::from_utf8("www.example.test").unwrap();
    name.set_fqdn(true);
    CheckKind::Dns {
        server,
        name,
        qtype: RecordType::A,
        expect_rcode: expect,
    }
}

#[tokio::test]
async fn dns_checks_the_rcode() {
    let server = dns_server(ResponseCode::NoError).await;
    check(dns(server, ResponseCode::NoError))
        .run(T)
        .await
        .unwrap();
    let e = check(dns(server, ResponseCode::NXDomain))
        .run(T)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("want"), "{e}");
    let refused = dns_server(ResponseCode::Refused).await;
    check(dns(refused, ResponseCode::Refused))
        .run(T)
        .await
        .unwrap();
}

#[tokio::test]
async fn dns_without_a_server_times_out() {
    // A bound socket that never answers.
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let e = check(dns(s.local_addr().unwrap(), ResponseCode::NoError))
        .run(Duration::from_millis(200))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no result"), "{e}");
}

/// A self-signed test certificate for IP 127.0.0.1 (P-256, valid until 2126) and its key:
/// test material only, never trusted anywhere.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATigAwIBAgIUQz5bnnEksqr2CG15Sr0ITxuSQGowCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKeGdzbGItdGVzdDAgFw0yNjExMjcxNjA5NTVaGA8yMTI2MTEw
MzE2MDk1NVowFTETMBEGA1UEAwwKeGdzbGItdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABBgxNWAZsHJl4OENJVPF+Cez5xH+Ctg7TL3L1gnl3XrPO+qsN/YQ
u6YuA5KkEbS7GMSnDd9s0L3Kt/g4wcswlJCjZDBiMB0GA1UdDgQWBBTIkX7mkUIG
zpFo/DmM0bNU8SkOgzAfBgNVHSMEGDAWgBTIkX7mkUIGzpFo/DmM0bNU8SkOgzAP
BgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBH8AAAEwCgYIKoZIzj0EAwIDSAAw
RQIgC+xXLHL4Lf7q/zp7dcur4o1b7UZRSsNFHJO6cPMW3GACIQCAxK1GPi8CMDIN
CCdr5BGwPxfOmWK57RKzKePoT3yAtw==
-----END CERTIFICATE-----
";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT/owZIbS/ALX1iz4
GZ9U7XbelSsgFUaIfw9Mw5my5uOhRANCAAQYMTVgGbByZeDhDSVTxfgns+cR/grY
O0y9y9YJ5d16zzvqrDf2ELumLgOSpBG0uxjEpw3fbNC9yrf4OMHLMJSQ
-----END PRIVATE KEY-----
";

/// An HTTPS server with the test certificate answering every GET with 200 "ok".
async fn https_server() -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let cert = CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                if read_head(&mut s).await.is_none() {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn https_insecure_accepts_a_self_signed_certificate_and_verifying_refuses_it() {
    let port = https_server().await;
    let kind = |insecure| {
        CheckKind::Http(HttpCheck {
            url: Url::parse(&format!("https://127.0.0.1:{port}/health")).unwrap(),
            expect_status: 200,
            body_contains: Some("ok".into()),
            insecure,
        })
    };
    check(kind(true)).run(T).await.unwrap();
    let e = check(kind(false)).run(T).await.unwrap_err().to_string();
    assert!(e.contains("TLS handshake: invalid peer certificate"), "{e}");
}
