//! The slow path: zones, authoritative answers and the TCP server (UDP: `crate::udp`).
//!
//! # Layout
//! - `zone`: one zone loaded from an RFC 1035 zone file and validated.
//! - `handler`: the transport, the query handler's trait and the dynamic answers' source,
//!   shared by the modules below.
//! - `index`: a zone as a map of existing names (nodes), cuts and the negative-answer SOA.
//! - `request`: decoding and checking a query; the error rcodes for bad ones.
//! - `ecs`: a query's EDNS Client Subnet option (RFC 7871), read and checked.
//! - `cookies`: DNS cookies (RFC 7873, RFC 9018 server cookies): the secret, checking a
//!   query's cookie and making the response's, their counters.
//! - `lookup`: the authoritative answer inside one zone (CNAME, wildcard, referral, ANY).
//! - `response`: the response header, EDNS and the size limit (truncation).
//! - `authority`: the catalog of zones and the handler from query bytes to response bytes.
//! - `precompute`: the responses that depend on nothing but the question, as wire bytes for
//!   the XDP program.
//! - `rcodes`: responses counted by rcode.
//! - `server`: the TCP transport around any [`server::Responder`].
//! - `transfer`: zone transfers out (AXFR, IXFR), their access control (TSIG), NOTIFY.
pub mod authority;
pub mod cookies;
mod ecs;
mod handler;
mod index;
mod lookup;
pub mod precompute;
mod rcodes;
mod request;
mod response;
pub mod server;
pub mod transfer;
pub mod zone;

pub use authority::{Catalog, CatalogError, CatalogResponder};
pub use cookies::{CookieCounters, CookieReply, CookieSecret, Cookies};
pub use ecs::{ClientSubnet, EcsCounters, EcsError};
pub use handler::{Client, Dynamic, DynamicAnswers, Messages, Responder, Scoped, Transport};
pub use rcodes::RcodeCounters;
pub use server::{TCP_IDLE_TIMEOUT, serve_tcp, serve_tcp_until};
pub use zone::{Zone, ZoneError};

/// The COOKIE option of a query as the full handler reads it (for the UDP workers' rate
/// limit, which exempts valid server cookies whichever path answers).
pub fn request_cookie(bytes: &[u8]) -> Option<cookies::QueryCookie> {
    request::cookie_of(bytes)
}
