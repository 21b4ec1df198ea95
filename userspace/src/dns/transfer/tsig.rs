//! TSIG (RFC 8945) for transfers and NOTIFY, through hickory-proto's signer: checking a
//! request's signature, and signing every message of the response, each chained to the one
//! before (5.3.1: the first message's MAC covers the request's MAC and the full TSIG
//! variables; each later one the previous MAC and the timers only).
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::ProtoError;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};
use hickory_proto::rr::{Name, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::BinEncoder;

use super::counters::Refusal;
use crate::config::{TsigKeyConfig, transfer::TSIG_FUDGE};

/// The current time in seconds since the epoch, as TSIG counts it.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The TSIG keys xgslbd has, by name (a few: found by a linear search).
#[derive(Clone, Default)]
pub struct Keyring {
    signers: Vec<TSigner>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .signers
            .iter()
            .map(|s| s.signer_name().to_string())
            .collect();
        write!(f, "Keyring {names:?}")
    }
}

impl Keyring {
    /// The signers of `keys` (their algorithms were checked with the config).
    pub fn new(keys: &[TsigKeyConfig]) -> Keyring {
        let signers = keys
            .iter()
            .filter_map(|k| {
                TSigner::new(
                    k.secret.clone(),
                    k.algorithm.clone(),
                    k.name.clone(),
                    TSIG_FUDGE,
                )
                .inspect_err(|e| tracing::error!("TSIG key {}: {e}", k.name))
                .ok()
            })
            .collect();
        Keyring { signers }
    }

    /// The key named `name` (case-insensitively).
    pub fn get(&self, name: &Name) -> Option<&TSigner> {
        self.signers.iter().find(|s| s.signer_name() == name)
    }
}

/// What a request's TSIG says.
pub enum RequestTsig {
    /// The request is not signed.
    Unsigned,
    /// Signed and valid: the response is signed with `signer`, chained to `mac`.
    Valid {
        /// The key it was signed with.
        signer: TSigner,
        /// The request's MAC.
        mac: Vec<u8>,
    },
    /// Signed but not acceptable: NOTAUTH, with the TSIG RR `reply` makes.
    Invalid {
        /// Why, for the counters.
        why: Refusal,
        /// What signs (or, for BADKEY and BADSIG, leaves unsigned) the error response.
        reply: TSigResponseContext,
    },
}

impl std::fmt::Debug for RequestTsig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestTsig::Unsigned => f.write_str("Unsigned"),
            RequestTsig::Valid { signer, .. } => write!(f, "Valid({})", signer.signer_name()),
            RequestTsig::Invalid { why, .. } => write!(f, "Invalid({why:?})"),
        }
    }
}

/// Checks the TSIG of `request` (`bytes` as received, `message` as parsed) at time `now`,
/// in RFC 8945 5.2's order: key, MAC, time.
pub fn check_request(bytes: &[u8], message: &Message, keys: &Keyring, now: u64) -> RequestTsig {
    let Some(tsig) = message.signature() else {
        return RequestTsig::Unsigned;
    };
    let id = message.metadata.id;
    let signer = match keys.get(&tsig.name) {
        Some(s) if *s.algorithm() == tsig.data.algorithm => s,
        _ => {
            return RequestTsig::Invalid {
                why: Refusal::BadKey,
                reply: TSigResponseContext::unknown_key(id, now, tsig.name.clone()),
            };
        }
    };
    match signer.verify_message_byte(bytes, None, true) {
        Err(_) => RequestTsig::Invalid {
            why: Refusal::BadSig,
            reply: TSigResponseContext::bad_signature(id, now, signer.clone()),
        },
        Ok((mac, _, valid)) if !valid.contains(&now) => RequestTsig::Invalid {
            why: Refusal::BadTime,
            reply: TSigResponseContext::new(id, now, signer.clone(), mac, Some(TsigError::BadTime)),
        },
        Ok((mac, _, _)) => RequestTsig::Valid {
            signer: signer.clone(),
            mac,
        },
    }
}

/// Signs the messages of one response in turn, each chained to the MAC before it.
pub struct ResponseSigner {
    signer: TSigner,
    /// The request's ID (the TSIG's original ID).
    request_id: u16,
    /// The MAC the next message's is chained to: the request's, then each message's own.
    previous_mac: Vec<u8>,
    first: bool,
    /// The time every message is signed at.
    time: u64,
}

impl ResponseSigner {
    /// A signer for the response to a request signed by `signer` with MAC `request_mac`.
    pub fn new(signer: TSigner, request_id: u16, request_mac: Vec<u8>, time: u64) -> Self {
        ResponseSigner {
            signer,
            request_id,
            previous_mac: request_mac,
            first: true,
            time,
        }
    }

    /// `message` (the response's next message) signed, as wire bytes.
    pub fn sign(&mut self, mut message: Message) -> Result<Vec<u8>, ProtoError> {
        let unsigned = message.to_vec()?;
        let record = if self.first {
            let context = TSigResponseContext::new(
                self.request_id,
                self.time,
                self.signer.clone(),
                std::mem::take(&mut self.previous_mac),
                None,
            );
            *context.sign(&unsigned)?
        } else {
            // RFC 8945 5.3.1: the previous MAC, the message, and the timers alone.
            let mut tbs = Vec::with_capacity(unsigned.len() + self.previous_mac.len() + 10);
            let mut encoder = BinEncoder::new(&mut tbs);
            encoder.emit_u16(self.previous_mac.len() as u16)?;
            encoder.emit_vec(&self.previous_mac)?;
            encoder.emit_vec(&unsigned)?;
            encoder.emit_u16((self.time >> 32) as u16)?;
            encoder.emit_u32(self.time as u32)?;
            encoder.emit_u16(self.signer.fudge())?;
            let mac = self
                .signer
                .sign(&tbs)
                .map_err(|e| ProtoError::from(e.to_string()))?;
            let tsig = TSIG::new(
                self.signer.algorithm().clone(),
                self.time,
                self.signer.fudge(),
                mac,
                self.request_id,
                None,
                Vec::new(),
            );
            make_tsig_record(self.signer.signer_name().clone(), tsig)
        };
        self.first = false;
        self.previous_mac = record.data.mac.clone();
        message.set_signature(Box::new(record));
        message.to_vec()
    }
}

/// `message` with the TSIG RR of an error `reply` (RFC 8945 5.3.2: BADKEY and BADSIG
/// unsigned, BADTIME signed), as wire bytes.
pub fn sign_error(mut message: Message, reply: TSigResponseContext) -> Result<Vec<u8>, ProtoError> {
    let unsigned = message.to_vec()?;
    message.set_signature(reply.sign(&unsigned)?);
    message.to_vec()
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

    use super::*;

    fn key(name: &str, secret: &[u8]) -> TsigKeyConfig {
        TsigKeyConfig {
            name: Name::from_ascii(name).unwrap(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: secret.to_vec(),
            secret_file: "k".into(),
        }
    }

    fn signer(name: &str, secret: &[u8]) -> TSigner {
        TSigner::new(
            secret.to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii(name).unwrap(),
            300,
        )
        .unwrap()
    }

    fn axfr() -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::AXFR,
        ));
        m
    }

    fn check(m: &Message, keys: &Keyring, now: u64) -> RequestTsig {
        let bytes = m.to_vec().unwrap();
        check_request(&bytes, &Message::from_vec(&bytes).unwrap(), keys, now)
    }

    #[test]
    fn requests_are_checked_for_key_mac_and_time() {
        let keys = Keyring::new(&[key("xfr.", b"0123456789abcdef")]);
        let t = 1_700_000_000;
        assert!(matches!(check(&axfr(), &keys, t), RequestTsig::Unsigned));
        let mut good = axfr();
        good.finalize(&signer("XFR.", b"0123456789abcdef"), t)
            .unwrap();
        assert!(matches!(
            check(&good, &keys, t + 299),
            RequestTsig::Valid { .. }
        ));
        assert!(matches!(
            check(&good, &keys, t + 301),
            RequestTsig::Invalid {
                why: Refusal::BadTime,
                ..
            }
        ));
        let mut other_key = axfr();
        other_key
            .finalize(&signer("other.", b"0123456789abcdef"), t)
            .unwrap();
        assert!(matches!(
            check(&other_key, &keys, t),
            RequestTsig::Invalid {
                why: Refusal::BadKey,
                ..
            }
        ));
        let mut wrong_secret = axfr();
        wrong_secret
            .finalize(&signer("xfr.", b"fedcba9876543210"), t)
            .unwrap();
        assert!(matches!(
            check(&wrong_secret, &keys, t),
            RequestTsig::Invalid {
                why: Refusal::BadSig,
                ..
            }
        ));
    }

    #[test]
    fn every_message_of_a_response_verifies_in_a_chain() {
        let t = 1_700_000_000;
        let client = signer("xfr.", b"0123456789abcdef");
        let mut request = axfr();
        let mut verifier = request.finalize(&client, t).unwrap().expect("a verifier");
        let keys = Keyring::new(&[key("xfr.", b"0123456789abcdef")]);
        let RequestTsig::Valid { signer, mac } = check(&request, &keys, t) else {
            panic!("the request is valid");
        };
        let mut responses = ResponseSigner::new(signer, 7, mac, t + 1);
        for i in 0..3u8 {
            let mut m = Message::new(7, MessageType::Response, OpCode::Query);
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii("example.com.").unwrap(),
                60,
                hickory_proto::rr::RData::A(std::net::Ipv4Addr::new(192, 0, 2, i).into()),
            ));
            let bytes = responses.sign(m).unwrap();
            verifier
                .verify(&bytes)
                .unwrap_or_else(|e| panic!("message {i} does not verify: {e}"));
        }
        // A message whose predecessor went missing does not verify.
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        let _lost = responses.sign(m.clone()).unwrap();
        let after_the_lost_one = responses.sign(m).unwrap();
        assert!(verifier.verify(&after_the_lost_one).is_err());
    }
}
