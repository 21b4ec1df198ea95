//! What the transports and the answer logic share: the transport a query came over, the
//! handler a transport hands a query to, and the source of dynamic (GSLB) answers. Its own
//! module so that the catalog, the lookup, the response writer and the TCP server all depend
//! on it and not on each other.
use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Record, RecordType};

use super::ecs::ClientSubnet;

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

/// Who asks: the query's source (the LDNS) and the client subnet it carried, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub source: IpAddr,
    /// A well-formed EDNS Client Subnet option of the query (RFC 7871).
    pub subnet: Option<ClientSubnet>,
}

impl Client {
    /// A client that sent no subnet.
    pub fn at(source: IpAddr) -> Self {
        Self {
            source,
            subnet: None,
        }
    }
}

/// A dynamic answer and its ECS scope: the prefix length around the client's subnet over
/// which the answer is the same (0: it does not depend on the client's address).
#[derive(Debug, Clone, PartialEq)]
pub struct Scoped {
    pub answer: Dynamic,
    pub scope: u8,
}

impl From<Dynamic> for Scoped {
    fn from(answer: Dynamic) -> Self {
        Self { answer, scope: 0 }
    }
}

/// The source of dynamic (GSLB) answers.
pub trait DynamicAnswers {
    /// The answer for `client`. Called only for the (name, type) pairs the catalog was
    /// built with.
    fn answer(&self, name: &LowerName, rtype: RecordType, client: &Client) -> Scoped;
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
