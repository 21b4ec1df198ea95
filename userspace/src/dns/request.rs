//! Decoding and checking a query message: the narrow boundary between wire bytes and the
//! answer logic. Either a single checked question comes out, or the error response to send.
//!
//! Decoding is done section by section (not `Message::from_vec`) so that each failure gets
//! the rcode RFC 6891 and RFC 1035 ask for, and the question can be echoed when it parsed.

use hickory_proto::op::{Edns, Header, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use xgslb_common::CookieSeen;

use super::cookies::{self, QueryCookie};
use super::ecs::ClientSubnet;

/// A DNS header is 12 bytes; anything shorter cannot be answered (there is no ID).
const HEADER_LEN: usize = 12;

/// What to do with a received message.
#[derive(Debug)]
pub(crate) enum Request {
    /// Send nothing: too short to carry a header, or a response (QR=1).
    Drop,
    /// Answer with an error rcode and no records.
    Error(Reject),
    /// A well-formed standard query with one question.
    Query(CheckedQuery),
}

/// An error response to send: header of the request, question if it parsed, rcode.
#[derive(Debug)]
pub(crate) struct Reject {
    pub(crate) header: Metadata,
    pub(crate) question: Option<Query>,
    pub(crate) rcode: ResponseCode,
    /// The request's EDNS, when it had a valid one; the response then carries an OPT.
    pub(crate) edns: Option<Edns>,
}

/// A checked standard query.
#[derive(Debug)]
pub(crate) struct CheckedQuery {
    pub(crate) header: Metadata,
    pub(crate) question: Query,
    pub(crate) edns: Option<Edns>,
    /// The OPT's client subnet, checked (RFC 7871).
    pub(crate) subnet: Option<ClientSubnet>,
    /// The OPT's COOKIE option, well formed (RFC 7873), as received.
    pub(crate) cookie: Option<QueryCookie>,
    /// What that cookie was found to be, once the catalog has checked it (`Catalog::respond`)
    /// against the secret and the client's address: rate limiting exempts
    /// `CookieSeen::Valid`. `CookieSeen::None` without a cookie, or with cookies off.
    pub(crate) cookie_seen: CookieSeen,
}

/// Decodes and checks `bytes` as a query.
/// The COOKIE option of the query `bytes`, as the full handler reads it: `None` when it has
/// none, or is not a query the handler would answer.
pub(crate) fn cookie_of(bytes: &[u8]) -> Option<crate::dns::cookies::QueryCookie> {
    match decode(bytes) {
        Request::Query(q) => q.cookie,
        _ => None,
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Request {
    if bytes.len() < HEADER_LEN {
        return Request::Drop;
    }
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else {
        return Request::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        return Request::Drop;
    }
    let reject = |question: Option<Query>, rcode, edns: Option<Edns>| {
        Request::Error(Reject {
            header: header.metadata,
            question,
            rcode,
            edns,
        })
    };
    let counts = header.counts;
    // The question is read before the opcode check so that NOTIMP can echo it.
    let question = if counts.queries == 1 {
        Query::read(&mut decoder).ok()
    } else {
        None
    };
    if header.metadata.op_code != OpCode::Query {
        return reject(question, ResponseCode::NotImp, None);
    }
    let Some(question) = question else {
        return reject(None, ResponseCode::FormErr, None);
    };
    // A query carries no answer or authority records (RFC 1035 4.1.1 usage of the sections).
    if counts.answers != 0 || counts.authorities != 0 {
        return reject(Some(question), ResponseCode::FormErr, None);
    }
    let (edns, opt_rdata) = match read_additional(bytes, &mut decoder, counts.additionals) {
        Ok(found) => found,
        Err(()) => return reject(Some(question), ResponseCode::FormErr, None),
    };
    // RFC 7871 7.1.1: a malformed client subnet is FORMERR (with our OPT).
    let subnet = match super::ecs::find(opt_rdata) {
        Ok(subnet) => subnet,
        Err(e) => {
            tracing::trace!("FORMERR: {e}");
            return reject(Some(question), ResponseCode::FormErr, edns);
        }
    };
    // RFC 7873 5.2.2: so is a cookie too short or too long.
    let cookie = match cookies::find(opt_rdata) {
        Ok(cookie) => cookie.map(QueryCookie::new),
        Err(e) => {
            tracing::trace!("FORMERR: {e}");
            return reject(Some(question), ResponseCode::FormErr, edns);
        }
    };
    if !decoder.is_empty() {
        return reject(Some(question), ResponseCode::FormErr, edns);
    }
    if let Some(edns) = &edns
        && edns.version() > 0
    {
        // RFC 6891 6.1.3: BADVERS, answered with the highest version we support (0).
        return reject(Some(question), ResponseCode::BADVERS, Some(edns.clone()));
    }
    Request::Query(CheckedQuery {
        header: header.metadata,
        question,
        edns,
        subnet,
        cookie,
        cookie_seen: CookieSeen::None,
    })
}

/// Reads the additional section of `message`; returns its OPT, if any, and the OPT's rdata
/// as sent (empty without one). Fails on a record that does not decode, more than one OPT,
/// or an OPT whose owner is not the root (RFC 6891 6.1.1). Other records (TSIG and the
/// like) are not supported and are ignored.
fn read_additional<'m>(
    message: &'m [u8],
    decoder: &mut BinDecoder<'_>,
    count: u16,
) -> Result<(Option<Edns>, &'m [u8]), ()> {
    let mut edns = None;
    let mut rdata: &[u8] = &[];
    for _ in 0..count {
        let start = decoder.index();
        let record = Record::read(decoder).map_err(|_| ())?;
        if record.record_type() != RecordType::OPT {
            continue;
        }
        if edns.is_some() || !record.name.is_root() {
            return Err(());
        }
        edns = Some(Edns::from(&record));
        rdata = opt_rdata(message, start, decoder.index()).ok_or(())?;
    }
    Ok((edns, rdata))
}

/// The rdata of the OPT RR at `start..end` of `message`: past its root owner (a zero byte,
/// or a compression pointer to one) and the 10 bytes of type, class, TTL and length.
fn opt_rdata(message: &[u8], start: usize, end: usize) -> Option<&[u8]> {
    let owner = if *message.get(start)? == 0 { 1 } else { 2 };
    let fixed = start + owner;
    let len = usize::from(u16::from_be_bytes([
        *message.get(fixed + 8)?,
        *message.get(fixed + 9)?,
    ]));
    let rdata = message.get(fixed + 10..fixed + 10 + len)?;
    (fixed + 10 + len == end).then_some(rdata)
}
