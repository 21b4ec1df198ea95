//! Building the response message and fitting it into the transport's size limit.

use hickory_proto::op::{Edns, Message, MessageType, Metadata, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::EdnsOption;
use xgslb_common::{COOKIE_REPLY_LEN, EDNS_UDP_SIZE, edns_option};

use super::ecs::ClientSubnet;
use super::handler::Transport;

/// RFC 1035 4.2.1: the UDP payload limit without EDNS, and the floor with it (RFC 6891 6.2.5).
const CLASSIC_UDP_SIZE: usize = 512;
/// TCP messages carry a 16-bit length prefix.
const TCP_MAX_SIZE: usize = 65535;

/// A response before encoding.
#[derive(Debug)]
pub(crate) struct Draft {
    pub(crate) rcode: ResponseCode,
    pub(crate) authoritative: bool,
    pub(crate) answers: Vec<Record>,
    pub(crate) authorities: Vec<Record>,
    /// Additional records the answer needs (referral glue).
    pub(crate) glue: Vec<Record>,
    /// Additional records that only help; left out first when space is short.
    pub(crate) extra: Vec<Record>,
    /// Send no response at all (a GSLB name whose policy drops).
    pub(crate) drop: bool,
    /// ECS scope of the answer (RFC 7871): echoed when the query carried a client subnet.
    pub(crate) scope: u8,
}

impl Draft {
    /// A response with just an rcode.
    pub(crate) fn rcode(rcode: ResponseCode) -> Draft {
        Draft {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            glue: Vec::new(),
            extra: Vec::new(),
            drop: false,
            scope: 0,
        }
    }
}

/// The largest response the client accepts on `transport`.
pub(crate) fn size_limit(transport: Transport, edns: Option<&Edns>) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => TCP_MAX_SIZE,
        (Transport::Udp, None) => CLASSIC_UDP_SIZE,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload().min(EDNS_UDP_SIZE)).max(CLASSIC_UDP_SIZE)
        }
    }
}

/// Encodes the response to a request with header `request`, echoing `question`.
///
/// The header copies ID, opcode, RD and CD; RA, AD and Z are always 0. If the request had an
/// OPT the response has exactly one: version 0, our UDP size, DO copied, and no option but
/// the query's client subnet (`subnet`) echoed with the draft's scope (RFC 7871 7.2.1), then
/// the COOKIE (`cookie`: the client cookie and a server cookie, RFC 7873 5.2), in that order
/// (the XDP program's).
/// Too big for the limit: first the helpful additional records go (RFC 2181 9 says that is
/// no reason for TC); still too big: TC=1 with all record sections empty, OPT kept.
pub(crate) fn encode(
    request: &Metadata,
    question: Option<&Query>,
    request_edns: Option<&Edns>,
    subnet: Option<&ClientSubnet>,
    cookie: Option<&[u8; COOKIE_REPLY_LEN]>,
    draft: Draft,
    transport: Transport,
) -> Vec<u8> {
    let limit = size_limit(transport, request_edns);
    let mut message = Message::new(request.id, MessageType::Response, request.op_code);
    message.metadata.recursion_desired = request.recursion_desired;
    message.metadata.checking_disabled = request.checking_disabled;
    message.metadata.authoritative = draft.authoritative;
    message.metadata.response_code = draft.rcode;
    if let Some(question) = question {
        message.add_query(question.clone());
    }
    if let Some(request_edns) = request_edns {
        let mut edns = response_edns(request_edns);
        if let Some(s) = subnet {
            edns.options_mut().insert(EdnsOption::Subnet(
                hickory_proto::rr::rdata::opt::ClientSubnet::new(s.address, s.source, draft.scope),
            ));
        }
        if let Some(c) = cookie {
            edns.options_mut()
                .insert(EdnsOption::Unknown(edns_option::COOKIE, c.to_vec()));
        }
        message.set_edns(edns);
    }
    message.answers = draft.answers;
    message.authorities = draft.authorities;
    message.additionals = draft.glue;
    let additional_needed = message.additionals.len();
    message.additionals.extend(draft.extra);

    if let Some(bytes) = to_vec_within(&message, limit) {
        return bytes;
    }
    message.additionals.truncate(additional_needed);
    if let Some(bytes) = to_vec_within(&message, limit) {
        return bytes;
    }
    message.answers.clear();
    message.authorities.clear();
    message.additionals.clear();
    message.metadata.truncation = true;
    match message.to_vec() {
        Ok(bytes) => bytes,
        // Header, question and OPT alone always encode; this is a last resort.
        Err(_) => servfail(request),
    }
}

/// The OPT of a response to a request with `request_edns`: version 0, our UDP size, DO
/// copied, no options.
pub(crate) fn response_edns(request_edns: &Edns) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_UDP_SIZE);
    edns.set_version(0);
    edns.set_dnssec_ok(request_edns.flags().dnssec_ok);
    edns
}

/// The encoded message, if it encodes and fits in `limit` bytes.
fn to_vec_within(message: &Message, limit: usize) -> Option<Vec<u8>> {
    message.to_vec().ok().filter(|bytes| bytes.len() <= limit)
}

/// A bare SERVFAIL header for the request, built by hand so it cannot fail.
fn servfail(request: &Metadata) -> Vec<u8> {
    let mut bytes = vec![0u8; 12];
    bytes[..2].copy_from_slice(&request.id.to_be_bytes());
    bytes[2] = 0x80 | (u8::from(request.op_code) << 3) | u8::from(request.recursion_desired);
    bytes[3] = (u8::from(request.checking_disabled) << 4) | ResponseCode::ServFail.low();
    bytes
}
