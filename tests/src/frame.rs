//! Frames for XDP tests, built with a checksum implementation independent of the program's.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// XDP actions as BPF_PROG_TEST_RUN returns them (enum xdp_action).
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The addresses of frames built for test_run: a server listening on port 53 and a client.
pub const SERVER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// RFC 1071 checksum of `data` plus an initial sum.
pub fn inet_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    sum
}

pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A UDP datagram in an IP packet in an Ethernet frame.
#[derive(Clone, Debug)]
pub struct Udp {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 802.1Q tags (VLAN ids), outermost first.
    pub vlans: Vec<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub ipv4_id: u16,
    /// Send a zero UDP checksum (IPv4 only makes that legal).
    pub zero_csum: bool,
    pub payload: Vec<u8>,
}

impl Udp {
    pub fn query(src: IpAddr, dst: IpAddr, payload: Vec<u8>) -> Self {
        Self {
            src_mac: CLIENT_MAC,
            dst_mac: SERVER_MAC,
            vlans: Vec::new(),
            src,
            dst,
            sport: 40000,
            dport: 53,
            ttl: 63,
            ipv4_id: 0x1234,
            zero_csum: false,
            payload,
        }
    }

    /// The reply the XDP program must write for this query with `payload` as DNS message.
    pub fn reply(&self, payload: Vec<u8>) -> Self {
        Self {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            vlans: self.vlans.clone(),
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ttl: 64,
            ipv4_id: self.ipv4_id,
            zero_csum: self.zero_csum,
            payload,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128 + self.payload.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for vid in &self.vlans {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        let udp_len = (8 + self.payload.len()) as u16;
        let mut udp = Vec::with_capacity(udp_len as usize);
        udp.extend_from_slice(&self.sport.to_be_bytes());
        udp.extend_from_slice(&self.dport.to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.payload);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
                ip.extend_from_slice(&self.ipv4_id.to_be_bytes());
                ip.extend_from_slice(&[0x40, 0, self.ttl, 17, 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let c = !fold(inet_sum(0, &ip));
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                if !self.zero_csum {
                    fill_udp_checksum(&mut udp, &s.octets(), &d.octets());
                }
                f.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let mut ip = vec![0x60, 0, 0, 0];
                ip.extend_from_slice(&udp_len.to_be_bytes());
                ip.extend_from_slice(&[17, self.ttl]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                if !self.zero_csum {
                    fill_udp_checksum(&mut udp, &s.octets(), &d.octets());
                }
                f.extend_from_slice(&ip);
            }
            _ => panic!("mixed address families"),
        }
        f.extend_from_slice(&udp);
        f
    }
}

/// Writes the UDP checksum of `udp` (its checksum field zero) from `src` to `dst`; a computed
/// zero is sent as 0xffff (RFC 768).
fn fill_udp_checksum(udp: &mut [u8], src: &[u8], dst: &[u8]) {
    let pseudo = inet_sum(inet_sum(0, src), dst) + 17 + udp.len() as u32;
    let c = match !fold(inet_sum(pseudo, udp)) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Wire form of a dotted name ("www.example.test"), keeping letter case.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

/// An OPT RR as a query carries it.
#[derive(Clone, Debug)]
pub struct Opt {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// (code, data) pairs.
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Opt {
    pub fn plain() -> Self {
        Self {
            udp_size: 1232,
            version: 0,
            dnssec_ok: false,
            options: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut rdata = Vec::new();
        for (code, data) in &self.options {
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(data);
        }
        let mut v = vec![0, 0, 41];
        v.extend_from_slice(&self.udp_size.to_be_bytes());
        v.extend_from_slice(&[0, self.version, if self.dnssec_ok { 0x80 } else { 0 }, 0]);
        v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        v.extend_from_slice(&rdata);
        v
    }
}

/// A DNS query message: header, one question, an optional OPT.
pub fn dns_query(
    id: u16,
    flags: u16,
    qname_wire: &[u8],
    qtype: u16,
    qclass: u16,
    opt: Option<&Opt>,
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, opt.is_some() as u8]);
    m.extend_from_slice(qname_wire);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    if let Some(o) = opt {
        m.extend_from_slice(&o.to_bytes());
    }
    m
}

/// The response to `query` (whose name is `qname_len` bytes of wire form): header with QR,
/// `flags` (AA, RCODE) and the query's RD and CD, the echoed question, then `records` as
/// given (`an`, `ns`, `ar` of them) and an OPT (our size, DO as given) when `opt_do` is set.
pub fn dns_reply(
    query: &[u8],
    qname_len: usize,
    flags: u16,
    counts: [u16; 3],
    records: &[u8],
    opt_do: Option<bool>,
) -> Vec<u8> {
    let qflags = u16::from_be_bytes([query[2], query[3]]);
    let flags = 0x8000 | flags | (qflags & 0x0110);
    let mut m = Vec::new();
    m.extend_from_slice(&query[0..2]);
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&counts[0].to_be_bytes());
    m.extend_from_slice(&counts[1].to_be_bytes());
    m.extend_from_slice(&(counts[2] + opt_do.is_some() as u16).to_be_bytes());
    m.extend_from_slice(&query[12..12 + qname_len + 4]);
    m.extend_from_slice(records);
    if let Some(d) = opt_do {
        m.extend_from_slice(&[
            0,
            0,
            41,
            0x04,
            0xd0,
            0,
            0,
            if d { 0x80 } else { 0 },
            0,
            0,
            0,
        ]);
    }
    m
}

/// An answer record owned by the question name (a pointer to offset 12).
pub fn rr_at_question(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xc0, 0x0c];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// The response to an A query with one A record per address, TTL `ttl`.
pub fn dns_a_reply(
    query: &[u8],
    qname_len: usize,
    ttl: u32,
    addrs: &[[u8; 4]],
    opt_do: Option<bool>,
) -> Vec<u8> {
    let addrs: Vec<&[u8]> = addrs.iter().map(|a| &a[..]).collect();
    address_reply(query, qname_len, 1, ttl, &addrs, opt_do)
}

/// The response to an AAAA query with one AAAA record per address, TTL `ttl`.
pub fn dns_aaaa_reply(
    query: &[u8],
    qname_len: usize,
    ttl: u32,
    addrs: &[[u8; 16]],
    opt_do: Option<bool>,
) -> Vec<u8> {
    let addrs: Vec<&[u8]> = addrs.iter().map(|a| &a[..]).collect();
    address_reply(query, qname_len, 28, ttl, &addrs, opt_do)
}

/// An authoritative answer of `rtype` records holding `addrs`, owned by the question name.
fn address_reply(
    query: &[u8],
    qname_len: usize,
    rtype: u16,
    ttl: u32,
    addrs: &[&[u8]],
    opt_do: Option<bool>,
) -> Vec<u8> {
    let records: Vec<u8> = addrs
        .iter()
        .flat_map(|a| rr_at_question(rtype, ttl, a))
        .collect();
    dns_reply(
        query,
        qname_len,
        0x0400,
        [addrs.len() as u16, 0, 0],
        &records,
        opt_do,
    )
}

/// The data of an EDNS Client Subnet option (RFC 7871 6): FAMILY, SOURCE and SCOPE
/// PREFIX-LENGTH, then `address` as given (a query's `Opt::options` entry takes it with
/// code 8).
pub fn ecs_data(family: u16, source: u8, scope: u8, address: &[u8]) -> Vec<u8> {
    let mut d = family.to_be_bytes().to_vec();
    d.extend([source, scope]);
    d.extend_from_slice(address);
    d
}

/// `reply` (whose last record is an OPT without options, as `dns_reply` writes it) with the
/// client subnet option of data `data` in that OPT.
pub fn with_ecs(reply: Vec<u8>, data: &[u8]) -> Vec<u8> {
    with_options(reply, &[(8, data)])
}

/// `reply` (whose last record is an OPT without options, as `dns_reply` writes it) with
/// `options` (code, data) in that OPT, in order.
pub fn with_options(mut reply: Vec<u8>, options: &[(u16, &[u8])]) -> Vec<u8> {
    let n = reply.len();
    let rdlen: usize = options.iter().map(|(_, d)| 4 + d.len()).sum();
    reply[n - 2..].copy_from_slice(&(rdlen as u16).to_be_bytes());
    for (code, data) in options {
        reply.extend_from_slice(&code.to_be_bytes());
        reply.extend_from_slice(&(data.len() as u16).to_be_bytes());
        reply.extend_from_slice(data);
    }
    reply
}
