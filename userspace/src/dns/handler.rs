//! What the transports and the answer logic share: the transport a query came over, the
//! handler a transport hands a query to, and the source of dynamic (GSLB) answers. Its own
//! module so that the catalog, the lookup, the response writer and the TCP server all depend
//! on it and not on each other.
use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Record, RecordType};

/// What a dynamic (GSLB) RRset answers for one client.
#[derive(Debug, Clone, PartialEq)]
pub enum Dynamic {
    /// These records, in answer order, with owner name, TTL and rdata set (none: NODATA).
    Records(Vec<Record>),
    /// The zone file's static records of the name (Return to DNS).
    ReturnToDns,
    /// SERVFAIL for the whole response.
    ServFail,
    /// No response at all.
    Drop,
}

/// The source of dynamic (GSLB) answers.
pub trait DynamicAnswers {
    /// The answer for `client` (the LDNS address). Called only for the (name, type) pairs the
    /// catalog was built with.
    fn answer(&self, name: &LowerName, rtype: RecordType, client: IpAddr) -> Dynamic;
}

/// The transport a query came over: it sets the size limit and the ANY behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the EDNS size; ANY gets one RRset.
    Udp,
    /// TCP: up to 65535 bytes; ANY gets the whole node.
    Tcp,
}

/// The messages of a TCP response (one, or a zone transfer's many), made as they are taken.
pub type Messages = Box<dyn Iterator<Item = Vec<u8>> + Send>;

/// Turns one query message into the response to send, if any.
pub trait Responder: Send + Sync + 'static {
    /// The response to `query` from `client`, or `None` to send nothing.
    fn respond(&self, query: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>>;

    /// The messages answering `query` from `client` over TCP: the response to a query, or a
    /// zone transfer's messages.
    fn respond_tcp(&self, query: &[u8], client: IpAddr) -> Messages {
        Box::new(self.respond(query, Transport::Tcp, client).into_iter())
    }
}
