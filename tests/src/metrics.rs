//! Reading xgslbd's Prometheus endpoint from a test: one scrape, parsed by a real
//! text-format parser, and one sample of it.
use crate::netns::NetnsPair;

/// The bearer token tests configure on an HTTP endpoint off loopback (with
/// `TestModel::http_token`); [`scrape`] always sends it.
pub const HTTP_TOKEN: &str = "xgslb-tests-http-token-0123456789";

/// One scrape of `/metrics` at `addr`, from the client namespace (with [`HTTP_TOKEN`]),
/// parsed by a real Prometheus text-format parser.
pub fn scrape(pair: &NetnsPair, addr: &str) -> prometheus_parse::Scrape {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    let body = crate::servers::in_ns(&pair.client, move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
            .expect("connect to the metrics endpoint");
        let request = format!(
            "GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {HTTP_TOKEN}\r\n\r\n"
        );
        s.write_all(request.as_bytes()).expect("request");
        let mut all = String::new();
        s.read_to_string(&mut all).expect("response");
        all
    })
    .join()
    .expect("scrape thread");
    let (head, body) = body.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

pub fn sample(s: &prometheus_parse::Scrape, name: &str, label: (&str, &str)) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == name && x.labels.get(label.0) == Some(label.1))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name}{{{}={}}}", label.0, label.1))
}

/// The value of the sample `name` that has no labels.
pub fn value(s: &prometheus_parse::Scrape, name: &str) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == name && x.labels.is_empty())
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name}"))
}
