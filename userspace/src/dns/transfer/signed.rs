//! Queries signed with TSIG that are not transfers: a secondary's SOA query before it
//! transfers (a secondary with a key signs everything it asks its primary). The signature
//! is checked, the catalog answers, and the answer is signed (RFC 8945 5.3); a signature
//! that fails gets NOTAUTH with its TSIG error. Unsigned queries never get here.
use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};

use super::Transfers;
use super::stream::{Head, Signing, single};
use super::tsig::{self, RequestTsig, ResponseSigner};
use crate::dns::handler::Transport;
use crate::dns::response::size_limit;

/// A TSIG RR's type (250), class (ANY) and TTL (0, RFC 8945 4.2), as they follow its owner:
/// a query without these bytes is not signed, so no other query is decoded here.
const TSIG_TYPE_CLASS_TTL: [u8; 8] = [0, 250, 0, 255, 0, 0, 0, 0];

impl Transfers {
    /// When `query` from `client` carries a TSIG: `Some` of what to send, `answer`'s (the
    /// catalog's response) signed, or NOTAUTH when the signature fails. `None` when it is
    /// not signed: the caller answers as usual.
    pub fn respond_signed(
        &self,
        query: &[u8],
        transport: Transport,
        client: IpAddr,
        answer: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Option<Vec<u8>>> {
        let additionals = query.get(10..12)?;
        if additionals == [0, 0]
            || !query
                .windows(TSIG_TYPE_CLASS_TTL.len())
                .any(|w| w == TSIG_TYPE_CLASS_TTL)
        {
            return None;
        }
        let request = Message::from_vec(query).ok()?;
        let question = request.queries.first()?.clone();
        let head = Head {
            id: request.metadata.id,
            recursion_desired: request.metadata.recursion_desired,
            question,
            edns: request.edns.clone(),
        };
        let now = tsig::now();
        let (signer, mac) = match tsig::check_request(query, &request, &self.keys, now) {
            RequestTsig::Unsigned => return None,
            RequestTsig::Invalid { why, reply } => {
                self.counters.refused(why);
                tracing::debug!(%client, "signed query refused: {}", why.name());
                let refusal = single(
                    &head,
                    ResponseCode::NotAuth,
                    Vec::new(),
                    Signing::Error(reply),
                );
                return Some(refusal);
            }
            RequestTsig::Valid { signer, mac } => (signer, mac),
        };
        let Some(response) = answer().and_then(|bytes| Message::from_vec(&bytes).ok()) else {
            return Some(None);
        };
        let limit = size_limit(transport, request.edns.as_ref());
        let sign = |message: Message| {
            ResponseSigner::new(signer.clone(), head.id, mac.clone(), now)
                .sign(message)
                .inspect_err(|e| tracing::warn!("cannot sign a response: {e}"))
                .ok()
        };
        let signed = sign(response.clone())?;
        if signed.len() <= limit {
            return Some(Some(signed));
        }
        // The signature made it too big: TC, sections empty (RFC 8945 5.3 signs that too).
        let mut truncated = response;
        truncated.answers.clear();
        truncated.authorities.clear();
        truncated.additionals.clear();
        truncated.metadata.truncation = true;
        Some(sign(truncated))
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Edns, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
    use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

    use super::*;
    use crate::config::TsigKeyConfig;
    use crate::dns::transfer::tsig::Keyring;

    fn transfers() -> Transfers {
        Transfers {
            keys: Keyring::new(&[TsigKeyConfig {
                name: Name::from_ascii("xfr.").unwrap(),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: b"0123456789abcdef".to_vec(),
                secret_file: "k".into(),
            }]),
            ..Default::default()
        }
    }

    fn signer(secret: &[u8]) -> TSigner {
        TSigner::new(
            secret.to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("xfr.").unwrap(),
            300,
        )
        .unwrap()
    }

    fn soa_query() -> Message {
        let mut m = Message::new(11, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("example.test.").unwrap(),
            RecordType::SOA,
        ));
        m
    }

    /// The catalog's stand-in: a response with `n` TXT records of 100 bytes.
    fn answer(n: usize) -> Option<Vec<u8>> {
        let mut m = Message::new(11, MessageType::Response, OpCode::Query);
        m.add_query(soa_query().queries[0].clone());
        for i in 0..n {
            m.add_answer(Record::from_rdata(
                Name::from_ascii("example.test.").unwrap(),
                60,
                RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![format!(
                    "{i:0100}"
                )])),
            ));
        }
        m.to_vec().ok()
    }

    #[test]
    fn unsigned_queries_are_left_to_the_catalog() {
        let bytes = soa_query().to_vec().unwrap();
        let client = "198.18.0.1".parse().unwrap();
        let mut with_opt = soa_query();
        with_opt.set_edns(Edns::new());
        let opt_bytes = with_opt.to_vec().unwrap();
        let t = transfers();
        assert!(
            t.respond_signed(&bytes, Transport::Udp, client, || answer(1))
                .is_none()
        );
        assert!(
            t.respond_signed(&opt_bytes, Transport::Udp, client, || answer(1))
                .is_none()
        );
    }

    #[test]
    fn signed_queries_get_signed_answers_or_notauth() {
        let t = transfers();
        let client = "198.18.0.1".parse().unwrap();
        let mut q = soa_query();
        let mut verifier = q
            .finalize(&signer(b"0123456789abcdef"), tsig::now())
            .unwrap()
            .unwrap();
        let bytes = q.to_vec().unwrap();
        let r = t
            .respond_signed(&bytes, Transport::Udp, client, || answer(1))
            .expect("signed")
            .expect("a response");
        let m = verifier.verify(&r).expect("the answer is signed");
        assert_eq!(m.answers.len(), 1);

        // Too big for 512 bytes once signed: TC, signed.
        let mut q = soa_query();
        let mut verifier = q
            .finalize(&signer(b"0123456789abcdef"), tsig::now())
            .unwrap()
            .unwrap();
        let bytes = q.to_vec().unwrap();
        let r = t
            .respond_signed(&bytes, Transport::Udp, client, || answer(4))
            .unwrap()
            .unwrap();
        assert!(r.len() <= 512, "{}", r.len());
        let m = verifier.verify(&r).expect("the truncated answer is signed");
        assert!(m.metadata.truncation && m.answers.is_empty());
        // Over TCP it fits.
        let mut q = soa_query();
        q.finalize(&signer(b"0123456789abcdef"), tsig::now())
            .unwrap();
        let bytes = q.to_vec().unwrap();
        let r = t
            .respond_signed(&bytes, Transport::Tcp, client, || answer(4))
            .unwrap()
            .unwrap();
        assert_eq!(Message::from_vec(&r).unwrap().answers.len(), 4);

        let mut forged = soa_query();
        forged
            .finalize(&signer(b"fedcba9876543210"), tsig::now())
            .unwrap();
        let bytes = forged.to_vec().unwrap();
        let r = t
            .respond_signed(&bytes, Transport::Udp, client, || panic!("not answered"))
            .unwrap()
            .unwrap();
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
        assert_eq!(
            m.signature().and_then(|s| s.data.error),
            Some(TsigError::BadSig)
        );
    }
}
