//! A transfer response as messages (RFC 5936 2.2): its records in order, packed into
//! messages of about [`MESSAGE_BUDGET`] bytes, the question in the first only, each message
//! signed when the request was. Messages are made as the connection takes them, so a large
//! zone is never held encoded in memory.
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, TSigResponseContext};
use hickory_proto::serialize::binary::BinEncodable;

use super::tsig::{ResponseSigner, sign_error};
use crate::dns::response::response_edns;

/// Record bytes per message before the next one starts. RFC 5936 allows 65535; smaller
/// messages are what BIND and Knot send, and leave room for the largest record and TSIG.
pub const MESSAGE_BUDGET: usize = 16 * 1024;

/// What every message of a response copies from the request.
#[derive(Clone, Debug)]
pub struct Head {
    pub id: u16,
    pub recursion_desired: bool,
    pub question: Query,
    /// The request's OPT, when it had one: each message then has ours.
    pub edns: Option<Edns>,
}

impl Head {
    /// A response message: the question when `first`, our OPT when the request had one.
    fn message(&self, rcode: ResponseCode, first: bool) -> Message {
        let mut m = Message::new(self.id, MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = self.recursion_desired;
        m.metadata.response_code = rcode;
        m.metadata.authoritative = rcode == ResponseCode::NoError;
        if first {
            m.add_query(self.question.clone());
        }
        if let Some(edns) = &self.edns {
            m.set_edns(response_edns(edns));
        }
        m
    }
}

/// How a response is signed.
pub enum Signing {
    /// Not at all: the request was not signed.
    None,
    /// Every message, chained (a validly signed request).
    Chain(ResponseSigner),
    /// An error for a request whose TSIG failed (RFC 8945 5.3.2).
    Error(TSigResponseContext),
}

/// `message` encoded as `signing` says; `None` (logged) when it does not encode.
fn encode(message: Message, signing: &mut Signing) -> Option<Vec<u8>> {
    let encoded = match std::mem::replace(signing, Signing::None) {
        Signing::None => message.to_vec(),
        Signing::Chain(mut signer) => {
            let bytes = signer.sign(message);
            *signing = Signing::Chain(signer);
            bytes
        }
        Signing::Error(reply) => sign_error(message, reply),
    };
    encoded
        .inspect_err(|e| tracing::warn!("zone transfer: cannot encode a response: {e}"))
        .ok()
}

/// A response of one message: `rcode` and `answers`.
pub fn single(
    head: &Head,
    rcode: ResponseCode,
    answers: Vec<Record>,
    mut signing: Signing,
) -> Option<Vec<u8>> {
    let mut message = head.message(rcode, true);
    message.answers = answers;
    encode(message, &mut signing)
}

/// The messages of a transfer: `parts`' records in order.
pub struct TransferStream {
    head: Head,
    parts: Vec<Arc<[Record]>>,
    /// The next record: its part and its place in it.
    part: usize,
    at: usize,
    signing: Signing,
    first: bool,
}

impl TransferStream {
    /// The response to `head` that sends `parts`' records in order.
    pub fn new(head: Head, parts: Vec<Arc<[Record]>>, signing: Signing) -> Self {
        TransferStream {
            head,
            parts,
            part: 0,
            at: 0,
            signing,
            first: true,
        }
    }

    fn peek(&mut self) -> Option<&Record> {
        while let Some(part) = self.parts.get(self.part) {
            if let Some(record) = part.get(self.at) {
                return Some(record);
            }
            self.part += 1;
            self.at = 0;
        }
        None
    }
}

impl Iterator for TransferStream {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let mut message = self.head.message(ResponseCode::NoError, self.first);
        let mut size: usize = 0;
        while let Some(record) = self.peek() {
            // Each record's own encoding: its length in the message, at most (there it
            // can only be compressed further).
            let len = record.to_bytes().map_or(usize::MAX, |b| b.len());
            if !message.answers.is_empty() && size.saturating_add(len) > MESSAGE_BUDGET {
                break;
            }
            size = size.saturating_add(len);
            message.answers.push(record.clone());
            self.at += 1;
        }
        if message.answers.is_empty() {
            return None;
        }
        self.first = false;
        let bytes = encode(message, &mut self.signing);
        if bytes.is_none() {
            // The client sees the transfer end early and tries again.
            self.parts.clear();
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{Name, RData, RecordType};

    use super::*;

    fn head() -> Head {
        Head {
            id: 9,
            recursion_desired: false,
            question: Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::AXFR),
            edns: None,
        }
    }

    fn txt(i: usize) -> Record {
        Record::from_rdata(
            Name::from_ascii(format!("r{i}.example.com.")).unwrap(),
            60,
            RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["x".repeat(200)])),
        )
    }

    #[test]
    fn records_are_packed_in_order_into_messages_under_the_budget() {
        let records: Vec<Record> = (0..300).map(txt).collect();
        let (a, b) = records.split_at(100);
        let parts: Vec<Arc<[Record]>> = vec![a.into(), Arc::from(Vec::new()), b.into()];
        let messages: Vec<Message> = TransferStream::new(head(), parts, Signing::None)
            .map(|bytes| {
                assert!(bytes.len() <= MESSAGE_BUDGET + 512, "{}", bytes.len());
                Message::from_vec(&bytes).unwrap()
            })
            .collect();
        assert!(messages.len() >= 4, "{} messages", messages.len());
        assert_eq!(messages[0].queries.len(), 1, "the question in the first");
        assert!(messages[1..].iter().all(|m| m.queries.is_empty()));
        assert!(
            messages
                .iter()
                .all(|m| m.metadata.authoritative && m.metadata.id == 9)
        );
        let got: Vec<Record> = messages.into_iter().flat_map(|m| m.answers).collect();
        assert_eq!(got.len(), records.len());
        assert!(got.iter().zip(&records).all(|(a, b)| a == b), "in order");
    }
}
