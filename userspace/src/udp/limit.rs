//! The slow path's response rate limit (the algorithm, shared with the XDP program, is
//! `xgslb_common::rrl`'s): the rules of the config in service, the table of buckets every
//! worker shares, and the slipped reply made from a response in place.
//!
//! The table is this path's own (the program keeps its own in a map): each path counts the
//! responses it sends. It is split in shards behind locks, each bounded; a full shard first
//! forgets the buckets no one used this second (which decide as missing ones do), then, if
//! it must, others.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::{LazyLock, Mutex};

use hickory_proto::op::{Header, Query};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use xgslb_common::{
    RRL_TABLE_ENTRIES, RrlBucket, RrlClass, RrlConfig, RrlDecision, RrlKey, flags, rrl_second,
};

use crate::config::RrlPolicy;
use crate::plan::prefix_table::PrefixTable;
use crate::plan::snapshot::address_words;

/// A DNS header's length.
const DNS_HLEN: usize = 12;
/// Shards of the table: enough that workers rarely wait on one another.
const SHARDS: usize = 64;

/// Rules that limit nothing (before a publication says otherwise).
pub static RRL_OFF: LazyLock<RrlRules> = LazyLock::new(RrlRules::default);

/// The limit as the config in service sets it.
#[derive(Debug, Default)]
pub struct RrlRules {
    config: RrlConfig,
    exempt: PrefixTable<()>,
}

impl RrlRules {
    /// The rules of `policy`.
    pub fn new(policy: &RrlPolicy) -> Self {
        let exempt: Vec<_> = policy.exempt.iter().map(|&n| (n, ())).collect();
        Self {
            config: policy.config(),
            exempt: PrefixTable::new(&exempt),
        }
    }

    /// Whether responses are limited at all.
    pub fn is_on(&self) -> bool {
        self.config.rate != 0
    }

    /// Whether `client` is in an exempt prefix.
    pub fn exempts(&self, client: IpAddr) -> bool {
        self.exempt.get(client).is_some()
    }
}

/// The buckets of every client prefix and response class the slow path answered lately.
pub struct ResponseLimiter {
    shards: Box<[Mutex<HashMap<RrlKey, RrlBucket>>]>,
    /// Buckets per shard at most.
    per_shard: usize,
    hasher: RandomState,
}

impl Default for ResponseLimiter {
    fn default() -> Self {
        Self::new(RRL_TABLE_ENTRIES as usize)
    }
}

impl ResponseLimiter {
    /// A table of about `capacity` buckets.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// What becomes of `response` (a whole DNS message) to `client` at second `now`
    /// (`monotonic_second`) under `rules`; `exempt`: the client is never limited.
    pub fn decide(
        &self,
        rules: &RrlRules,
        client: IpAddr,
        exempt: bool,
        response: &[u8],
        now: u32,
    ) -> RrlDecision {
        let config = &rules.config;
        if config.rate == 0 || exempt || response.len() < DNS_HLEN {
            return RrlDecision::Answer;
        }
        let be16 = |at: usize| u16::from_be_bytes([response[at], response[at + 1]]);
        let class = RrlClass::of(be16(2), be16(6));
        let (hi, lo, v6) = address_words(client);
        let key = RrlKey::new(hi, lo, v6, class, config);
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut buckets = match shard.lock() {
            Ok(b) => b,
            // A worker that panicked holding it left counts, nothing half written that
            // matters.
            Err(poisoned) => poisoned.into_inner(),
        };
        if !buckets.contains_key(&key) && buckets.len() >= self.per_shard {
            make_room(&mut buckets, self.per_shard, now);
        }
        buckets
            .entry(key)
            .or_insert_with(|| RrlBucket::new(now))
            .account(now, config.rate, config.slip)
    }

    /// Buckets held (for tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or_else(|p| p.into_inner().len(), |b| b.len()))
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees a quarter of a full shard of `cap` buckets: first the ones not used in second
/// `now`, which decide as missing ones do; then, only if every bucket was used this second
/// (more active prefixes than the table holds), any others, which start again from zero.
fn make_room(buckets: &mut HashMap<RrlKey, RrlBucket>, cap: usize, now: u32) {
    buckets.retain(|_, b| b.second == now as u64);
    let target = cap - cap / 4;
    if buckets.len() > target {
        let extra: Vec<RrlKey> = buckets
            .keys()
            .take(buckets.len() - target)
            .copied()
            .collect();
        for k in extra {
            buckets.remove(&k);
        }
    }
}

/// The current whole second of CLOCK_MONOTONIC_COARSE, the clock the XDP program reads
/// (`bpf_ktime_get_coarse_ns`).
pub fn monotonic_second() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC_COARSE always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    rrl_second(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Turns the response `msg` into its slipped reply in place and returns the reply's
/// length: the header with TC set and no records counted but the OPT, the question, then
/// the OPT exactly as the response has it (ECS echo included), moved up to follow the
/// question; anything else (records, TSIG) left out. What the XDP program makes of its
/// answers, byte for byte. `None`: `msg` does not decode.
pub fn slip_in_place(msg: &mut [u8]) -> Option<usize> {
    let (question_end, opt) = sections(msg)?;
    let mut reply_flags = u16::from_be_bytes([msg[2], msg[3]]);
    reply_flags |= flags::TC;
    msg[2..4].copy_from_slice(&reply_flags.to_be_bytes());
    msg[6..10].fill(0);
    msg[10..12].copy_from_slice(&u16::from(opt.is_some()).to_be_bytes());
    let Some(opt) = opt else {
        return Some(question_end);
    };
    let len = opt.len();
    msg.copy_within(opt, question_end);
    Some(question_end + len)
}

/// Where `msg`'s question ends, and where its OPT record lies, if it has one.
fn sections(msg: &[u8]) -> Option<(usize, Option<Range<usize>>)> {
    let mut decoder = BinDecoder::new(msg);
    let header = Header::read(&mut decoder).ok()?;
    let counts = header.counts;
    for _ in 0..counts.queries {
        Query::read(&mut decoder).ok()?;
    }
    let question_end = decoder.index();
    let records =
        u32::from(counts.answers) + u32::from(counts.authorities) + u32::from(counts.additionals);
    let mut opt = None;
    for _ in 0..records {
        let start = decoder.index();
        let record = Record::read(&mut decoder).ok()?;
        if record.record_type() == RecordType::OPT {
            opt = Some(start..decoder.index());
        }
    }
    Some((question_end, opt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData};

    fn policy(rate: u32, slip: u32) -> RrlPolicy {
        RrlPolicy {
            responses_per_second: rate,
            slip,
            exempt: vec!["198.18.9.0/24".parse().unwrap()],
            ..RrlPolicy::default()
        }
    }

    fn response(rcode: ResponseCode, answers: usize, edns: bool) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.metadata.authoritative = true;
        let name = Name::from_ascii("wWw.example.test.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        for i in 0..answers {
            m.answers.push(Record::from_rdata(
                name.clone(),
                30,
                RData::A(A::new(198, 18, 1, i as u8)),
            ));
        }
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_dnssec_ok(true);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn a_prefix_is_limited_per_class_and_exempt_clients_never() {
        let limiter = ResponseLimiter::default();
        let rules = RrlRules::new(&policy(2, 2));
        let positive = response(ResponseCode::NoError, 1, false);
        let nxdomain = response(ResponseCode::NXDomain, 0, false);
        let client: IpAddr = "198.18.7.1".parse().unwrap();
        let neighbour: IpAddr = "198.18.7.200".parse().unwrap();
        use RrlDecision::*;
        let got: Vec<_> = (0..6)
            .map(|i| {
                let who = if i % 2 == 0 { client } else { neighbour };
                limiter.decide(&rules, who, false, &positive, 10)
            })
            .collect();
        assert_eq!(got, [Answer, Answer, Drop, Slip, Drop, Slip]);
        // Another class of the same prefix, another prefix, an exempt one: answered.
        assert_eq!(limiter.decide(&rules, client, false, &nxdomain, 10), Answer);
        let other: IpAddr = "198.18.8.1".parse().unwrap();
        assert_eq!(limiter.decide(&rules, other, false, &positive, 10), Answer);
        let exempt: IpAddr = "198.18.9.1".parse().unwrap();
        assert!(rules.exempts(exempt));
        for _ in 0..10 {
            assert_eq!(
                limiter.decide(&rules, exempt, rules.exempts(exempt), &positive, 10),
                Answer
            );
        }
        // The next second starts again.
        assert_eq!(limiter.decide(&rules, client, false, &positive, 11), Answer);
        // Off: nothing is counted.
        let off = RrlRules::new(&RrlPolicy::default());
        assert!(!off.is_on());
        let quiet = ResponseLimiter::default();
        assert_eq!(quiet.decide(&off, client, false, &positive, 10), Answer);
        assert!(quiet.is_empty());
    }

    #[test]
    fn a_full_table_forgets_idle_buckets_first() {
        let limiter = ResponseLimiter::new(SHARDS * 16);
        let rules = RrlRules::new(&policy(1, 0));
        let positive = response(ResponseCode::NoError, 1, false);
        let client = |i: usize| IpAddr::from([10, (i / 256) as u8, (i % 256) as u8, 1]);
        // Twice the table's prefixes in second 4: every shard full of buckets idle by 5.
        for i in 0..SHARDS * 32 {
            limiter.decide(&rules, client(i), false, &positive, 4);
        }
        assert!(limiter.len() <= SHARDS * 16);
        let flooder: IpAddr = "198.18.7.1".parse().unwrap();
        assert_eq!(
            limiter.decide(&rules, flooder, false, &positive, 5),
            RrlDecision::Answer
        );
        // New prefixes in second 5 take the idle buckets' room, not the flooder's.
        for i in 0..SHARDS / 4 {
            let c = IpAddr::from([10, 200, i as u8, 1]);
            assert_eq!(
                limiter.decide(&rules, c, false, &positive, 5),
                RrlDecision::Answer
            );
        }
        assert_eq!(
            limiter.decide(&rules, flooder, false, &positive, 5),
            RrlDecision::Drop
        );
        assert!(limiter.len() <= SHARDS * 16);
    }

    #[test]
    fn the_slipped_reply_keeps_header_question_and_opt() {
        let full = response(ResponseCode::NoError, 3, true);
        let mut msg = full.clone();
        let len = slip_in_place(&mut msg).unwrap();
        let slipped = Message::from_vec(&msg[..len]).unwrap();
        assert!(slipped.metadata.truncation);
        assert!(slipped.metadata.authoritative);
        assert_eq!(slipped.metadata.id, 0x1234);
        assert!(slipped.answers.is_empty() && slipped.additionals.is_empty());
        assert_eq!(slipped.queries[0].name().to_string(), "wWw.example.test.");
        let edns = slipped.edns.as_ref().expect("the OPT");
        assert!(edns.flags().dnssec_ok);
        // Byte for byte: the full response's header (TC, counts aside), question, OPT.
        let question_end = DNS_HLEN + "wWw.example.test.".len() + 1 + 4;
        assert_eq!(msg[..2], full[..2]);
        assert_eq!(msg[DNS_HLEN..question_end], full[DNS_HLEN..question_end]);
        assert_eq!(msg[question_end..len], full[full.len() - 11..]);
        assert_eq!(msg[4..12], [0, 1, 0, 0, 0, 0, 0, 1]);
        // Without an OPT, header and question only; NXDOMAIN keeps its rcode.
        let mut nx = response(ResponseCode::NXDomain, 0, false);
        let len = slip_in_place(&mut nx).unwrap();
        let m = Message::from_vec(&nx[..len]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.truncation && m.edns.is_none());
        assert_eq!(len, question_end);
        assert_eq!(slip_in_place(&mut [0u8; 5]), None);
    }
}
