//! The slow path's answers from the plan: the entries the XDP program answers from (answer
//! sets and precomputed response tails), read the way it reads them, written into a buffer
//! the way it writes them into the frame. The same parse conditions send everything else
//! (ECS, NSID, compression, meta types, ...) to the full handler, so a query gets the XDP
//! program's bytes from either, and the full handler's answer in substance (the
//! differential tests compare them); no query answered here allocates. A query's DNS
//! cookie is checked and answered here as the full handler does (`dns::cookies`).
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use xgslb_common::{
    ANY_CLASS, AnswerSet, Body, COOKIE_REPLY_LEN, ClassId, CookieSeen, DEFAULT_CLASS,
    EDNS_UDP_SIZE, Entry, EntryKind, MAX_ADDRS, MAX_NAME_LABELS, NAME_KEY_LEN, NO_FIX, PickMode,
    ResponseTail, TAIL_LEN, cookie_len_ok, edns_option, entry_flags, entry_key, flags, hash_label,
    qtype,
};

use crate::dns::cookies::{CookieReply, Cookies, unix_now};
use crate::plan::key::{WordHasher, key_of, random_seed};
use crate::plan::snapshot::{ClassTable, address_words};

/// What the plan says of one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Planned {
    /// The response is the first this many bytes of the output buffer.
    Answered(usize),
    /// The entry says drop (Drop Packet): send nothing.
    Drop,
    /// The full handler answers it (not a plain query, not in the plan, too big, ...).
    SlowPath,
}

/// Largest query answered here (the XDP program's bound: real queries are far smaller).
const MAX_QUERY: usize = 512;
/// RFC 1035 4.2.1: the UDP payload limit without EDNS, and the floor with it.
const CLASSIC_UDP_SIZE: u16 = 512;
/// Most EDNS options walked in a query's OPT before leaving it to the full handler.
const MAX_OPTIONS: usize = 8;
const DNS_HLEN: usize = 12;
const OPT_LEN: usize = 11;
/// Owner C0 0C (the question name), type, class, TTL, RDLENGTH.
const RR_HEAD_LEN: usize = 12;
/// Largest response written here: the most the client's size may allow.
pub const MAX_RESPONSE: usize = EDNS_UDP_SIZE as usize;

/// Index value of a key two entries share under this table's seed (odds below 1e-7 for a
/// few million names): their questions go to the full handler.
const SHARED_KEY: u32 = u32::MAX;

/// The plan's answer table as the slow path reads it.
pub struct PlanAnswers {
    seed: u64,
    entries: Vec<Entry>,
    /// Entry index by key (`entry_key` of the seeded name hash).
    index: HashMap<u64, u32, BuildHasherDefault<WordHasher>>,
    classes: ClassTable,
    /// DNS cookies: on or off, the secret, the counters (the full handler's).
    cookies: Arc<Cookies>,
}

impl Default for PlanAnswers {
    fn default() -> Self {
        Self::new(Vec::new(), &[])
    }
}

/// A query this module answers, parsed.
struct Query {
    flags: u16,
    qtype: u16,
    /// The question name, lowercased, and its wire length.
    name: [u8; NAME_KEY_LEN],
    name_len: usize,
    /// Label start offsets in the name, and how many (the root not counted).
    labels: [u8; MAX_NAME_LABELS],
    nlabels: usize,
    /// End of the question (after type and class) in the query.
    question_end: usize,
    has_opt: bool,
    dnssec_ok: bool,
    /// The response size the client allows.
    limit: usize,
    /// Where the OPT's COOKIE option data lies in the query, and its length.
    cookie: Option<(usize, usize)>,
    /// What that cookie was found to be, once checked (`PlanAnswers::answer`): rate
    /// limiting exempts `CookieSeen::Valid`. `None` without one, or with cookies off.
    cookie_seen: CookieSeen,
    /// The COOKIE option the response carries, once checked.
    cookie_reply: Option<CookieReply>,
}

impl Query {
    /// Bytes of the OPT the response carries: none without one in the query.
    fn opt_len(&self) -> usize {
        match (self.has_opt, self.cookie_reply) {
            (false, _) => 0,
            (true, None) => OPT_LEN,
            (true, Some(_)) => OPT_LEN + COOKIE_OPTION_LEN,
        }
    }
}

/// A response's COOKIE option: code, length, the client and server cookies.
const COOKIE_OPTION_LEN: usize = 4 + COOKIE_REPLY_LEN;

impl PlanAnswers {
    /// The table of `entries` (as the planner makes them), classifying clients by
    /// `prefixes`. The name hashes have a seed of their own, so nobody outside can aim two
    /// names at one key.
    pub fn new(entries: Vec<Entry>, prefixes: &[(IpNet, ClassId)]) -> Self {
        let seed = random_seed();
        let mut index: HashMap<u64, u32, BuildHasherDefault<WordHasher>> =
            HashMap::with_capacity_and_hasher(entries.len(), Default::default());
        for (i, e) in entries.iter().enumerate() {
            let Some(key) = key_of(seed, e) else {
                continue;
            };
            index
                .entry(key)
                .and_modify(|v| {
                    if entries.get(*v as usize).map(|o| o.head) != Some(e.head) {
                        *v = SHARED_KEY;
                    }
                })
                .or_insert(i as u32);
        }
        Self {
            seed,
            entries,
            index,
            classes: ClassTable::new(prefixes),
            cookies: Arc::new(Cookies::off()),
        }
    }

    /// This table checking and issuing DNS cookies as `cookies` says (off by default).
    pub fn with_cookies(mut self, cookies: Arc<Cookies>) -> Self {
        self.cookies = cookies;
        self
    }

    /// Whether `query` from `client` carries a server cookie of ours that validates: what
    /// exempts a client from the rate limit, as in XDP (the client gets our responses at its
    /// address: no forged source). The plan's parse reads the OPT; a query it does not
    /// parse is decoded as the full handler decodes it.
    pub fn valid_cookie(&self, query: &[u8], client: IpAddr) -> bool {
        let seen = match parse(query) {
            Some(q) => q
                .cookie
                .and_then(|(at, len)| query.get(at..at + len))
                .and_then(|data| self.cookies.answer(data, client, unix_now())),
            None => crate::dns::request_cookie(query)
                .and_then(|c| self.cookies.answer(c.data(), client, unix_now())),
        };
        seen.is_some_and(|reply| reply.seen == CookieSeen::Valid)
    }

    /// Answers `query` from `client` into `out` when the plan holds its answer. `pick` is the
    /// caller's round-robin counter (one per worker, as XDP has one per CPU).
    pub fn answer(&self, query: &[u8], client: IpAddr, pick: &mut u32, out: &mut [u8]) -> Planned {
        let Some(mut q) = parse(query) else {
            return Planned::SlowPath;
        };
        if let Some((at, len)) = q.cookie {
            q.cookie_reply = self
                .cookies
                .answer(&query[at..at + len], client, unix_now());
            if let Some(reply) = &q.cookie_reply {
                q.cookie_seen = reply.seen;
            }
        }
        let Some(entry) = self.find(&q, client) else {
            return Planned::SlowPath;
        };
        let written = match Body::from_u8(entry.head.body) {
            Some(Body::Answer) => {
                let set: &AnswerSet = bytemuck::from_bytes(&entry.body[..size_of::<AnswerSet>()]);
                answer_set(query, &q, set, client, pick, out)
            }
            Some(Body::Response) => {
                let tail: &ResponseTail =
                    bytemuck::from_bytes(&entry.body[..size_of::<ResponseTail>()]);
                response(query, &q, tail, out)
            }
            Some(Body::Drop) => return Planned::Drop,
            Some(Body::Pass) | None => None,
        };
        if written.is_some() && q.cookie_seen != CookieSeen::None {
            self.cookies.counters().count(q.cookie_seen);
        }
        written.map_or(Planned::SlowPath, Planned::Answered)
    }

    /// The entry answering `q`, looked up as the XDP program does: the exact question (the
    /// client's class only where the entry says classes differ), the name's entry for other
    /// types, the closest existing ancestor's entry for names below it.
    fn find(&self, q: &Query, client: IpAddr) -> Option<&Entry> {
        // Suffix hashes from the root down: hashes[i] is the name from label i.
        let mut hashes = [0u64; MAX_NAME_LABELS + 1];
        hashes[q.nlabels] = self.seed;
        for i in (0..q.nlabels).rev() {
            let at = q.labels[i] as usize;
            let seg = &q.name[at..at + 1 + q.name[at] as usize];
            hashes[i] = hash_label(hashes[i + 1], seg);
        }
        let suffix = |i: usize| &q.name[q.labels[i] as usize..q.name_len];
        if let Some(e) = self.get(hashes[0], q.qtype, ANY_CLASS, EntryKind::Exact, suffix(0))? {
            if e.head.flags & entry_flags::CLASSED == 0 {
                return Some(e);
            }
            let class = self.classes.class_of(client);
            if class != DEFAULT_CLASS
                && let Some(own) =
                    self.get(hashes[0], q.qtype, class, EntryKind::Exact, suffix(0))?
            {
                return Some(own);
            }
            return Some(e);
        }
        if let Some(e) = self.get(hashes[0], 0, ANY_CLASS, EntryKind::OtherType, suffix(0))? {
            return Some(e);
        }
        for (i, &h) in hashes.iter().enumerate().take(q.nlabels).skip(1) {
            if let Some(e) = self.get(h, 0, ANY_CLASS, EntryKind::Child, suffix(i))? {
                return Some(e);
            }
        }
        None
    }

    /// The entry of this question, `Some(None)` when there is none, `None` when its key is
    /// shared (the full handler answers).
    fn get(
        &self,
        hash: u64,
        qtype: u16,
        class: ClassId,
        kind: EntryKind,
        name: &[u8],
    ) -> Option<Option<&Entry>> {
        let Some(&i) = self.index.get(&entry_key(hash, qtype, class, kind)) else {
            return Some(None);
        };
        if i == SHARED_KEY {
            return None;
        }
        let e = self.entries.get(i as usize)?;
        let h = &e.head;
        let same = h.qtype == qtype
            && h.class == class
            && h.kind == kind as u8
            && h.name.get(..name.len()) == Some(name);
        Some(same.then_some(e))
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The query if it is one the XDP program would answer from its table: the same checks, in
/// the same order of strictness.
fn parse(m: &[u8]) -> Option<Query> {
    if m.len() < DNS_HLEN || m.len() > MAX_QUERY {
        return None;
    }
    let qflags = be16(m, 2)?;
    if qflags & (flags::QR | flags::OPCODE | flags::TC | flags::Z | flags::RCODE) != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(m, 4)?, be16(m, 6)?, be16(m, 8)?, be16(m, 10)?);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut q = Query {
        flags: qflags,
        qtype: 0,
        name: [0; NAME_KEY_LEN],
        name_len: 0,
        labels: [0; MAX_NAME_LABELS],
        nlabels: 0,
        question_end: 0,
        has_opt: false,
        dnssec_ok: false,
        limit: CLASSIC_UDP_SIZE as usize,
        cookie: None,
        cookie_seen: CookieSeen::None,
        cookie_reply: None,
    };
    let mut pos = 0usize;
    loop {
        let len = *m.get(DNS_HLEN + pos)? as usize;
        if len == 0 {
            break;
        }
        // Compression pointers and extended label types: the full handler's.
        if len & 0xc0 != 0 || q.nlabels == MAX_NAME_LABELS || pos + 1 + len >= NAME_KEY_LEN {
            return None;
        }
        q.labels[q.nlabels] = pos as u8;
        q.nlabels += 1;
        q.name[pos] = len as u8;
        let label = m.get(DNS_HLEN + pos + 1..DNS_HLEN + pos + 1 + len)?;
        for (d, b) in q.name[pos + 1..pos + 1 + len].iter_mut().zip(label) {
            *d = b.to_ascii_lowercase();
        }
        pos += 1 + len;
    }
    if q.nlabels == 0 {
        return None; // the root: no zone of ours
    }
    q.name_len = pos + 1;
    let tail = DNS_HLEN + q.name_len;
    let (qt, qclass) = (be16(m, tail)?, be16(m, tail + 2)?);
    if qclass != 1 || !qtype::answerable(qt) {
        return None;
    }
    q.qtype = qt;
    q.question_end = tail + 4;
    if ar == 0 {
        return (q.question_end == m.len()).then_some(q);
    }
    let OptRead {
        dnssec_ok,
        size,
        cookie,
    } = parse_opt(m, q.question_end)?;
    q.has_opt = true;
    q.dnssec_ok = dnssec_ok;
    q.cookie = cookie;
    q.limit = size.clamp(CLASSIC_UDP_SIZE, EDNS_UDP_SIZE) as usize;
    Some(q)
}

/// What the OPT of a query this path answers says: the DO bit, the UDP size, and where its
/// COOKIE option's data lies (offset in the query, length).
struct OptRead {
    dnssec_ok: bool,
    size: u16,
    cookie: Option<(usize, usize)>,
}

/// The OPT RR at `off`, the query's last record: its DO bit, UDP size and where its COOKIE
/// option's data lies, when it is one this path answers (version 0, well formed, no option
/// that changes the response but one cookie).
fn parse_opt(m: &[u8], off: usize) -> Option<OptRead> {
    let opt = m.get(off..off + OPT_LEN)?;
    let (owner, rtype, size) = (opt[0], be16(opt, 1)?, be16(opt, 3)?);
    let (ext_rcode, version, opt_flags, rdlen) = (opt[5], opt[6], be16(opt, 7)?, be16(opt, 9)?);
    if owner != 0 || rtype != qtype::OPT || ext_rcode != 0 || version != 0 {
        return None;
    }
    let mut o = off + OPT_LEN;
    if o + rdlen as usize != m.len() {
        return None;
    }
    let mut cookie = None;
    for _ in 0..MAX_OPTIONS {
        if o >= m.len() {
            break;
        }
        let (code, len) = (be16(m, o)?, be16(m, o + 2)? as usize);
        if (code == edns_option::COOKIE && (!cookie_len_ok(len) || cookie.is_some()))
            || code == edns_option::ECS
            || code == edns_option::NSID
        {
            return None;
        }
        if code == edns_option::COOKIE {
            cookie = Some((o + 4, len));
        }
        o += 4 + len;
        if o > m.len() {
            return None;
        }
    }
    (o == m.len()).then_some(OptRead {
        dnssec_ok: opt_flags & 0x8000 != 0,
        size,
        cookie,
    })
}

/// What the sections after the question hold.
struct Sections {
    an: u16,
    ns: u16,
    ar: u16,
    /// AA and RCODE.
    flags: u16,
}

/// A or AAAA records from an answer set; the length of the response.
fn answer_set(
    query: &[u8],
    q: &Query,
    set: &AnswerSet,
    client: IpAddr,
    pick: &mut u32,
    out: &mut [u8],
) -> Option<usize> {
    let records = set.records as usize;
    if records == 0 || records > set.count as usize || records > MAX_ADDRS {
        return None;
    }
    let rdlen = match q.qtype {
        qtype::A => 4,
        qtype::AAAA => 16,
        _ => return None,
    };
    let p = match PickMode::from_u8(set.pick)? {
        PickMode::Counter => {
            let p = *pick;
            *pick = p.wrapping_add(1);
            p
        }
        PickMode::Persist => {
            let (hi, lo, v6) = address_words(client);
            set.persist_pick(hi, lo, v6)
        }
    };
    let rr_len = RR_HEAD_LEN + rdlen;
    let end = records_start(query, q, records * rr_len, out)?;
    let (t, ttl, l) = (
        q.qtype.to_be_bytes(),
        set.ttl.to_be_bytes(),
        (rdlen as u16).to_be_bytes(),
    );
    let head = [
        0xc0, 0x0c, t[0], t[1], 0, 1, ttl[0], ttl[1], ttl[2], ttl[3], l[0], l[1],
    ];
    for i in 0..records {
        let idx = set.answer_index(p, i as u32)? as usize;
        let addr = set.addrs.get(idx)?;
        let at = q.question_end + i * rr_len;
        out[at..at + RR_HEAD_LEN].copy_from_slice(&head);
        out[at + RR_HEAD_LEN..at + rr_len].copy_from_slice(&addr[..rdlen]);
    }
    let sections = Sections {
        an: records as u16,
        ns: 0,
        ar: 0,
        flags: flags::AA,
    };
    Some(finish(query, q, end, sections, out))
}

/// A precomputed response: the tail copied after the question, its pointer to the question
/// name's suffix written; the length of the response.
fn response(query: &[u8], q: &Query, tail: &ResponseTail, out: &mut [u8]) -> Option<usize> {
    let len = tail.len as usize;
    if len == 0 || len > TAIL_LEN {
        return None;
    }
    let end = records_start(query, q, len, out)?;
    let at = q.question_end;
    out[at..at + len].copy_from_slice(&tail.bytes[..len]);
    if tail.fix_at != NO_FIX {
        let (fix, suffix) = (tail.fix_at as usize, tail.fix_suffix as usize);
        if suffix > q.name_len || fix + 2 > len {
            return None;
        }
        let ptr = 0xc000 | (DNS_HLEN + q.name_len - suffix) as u16;
        out[at + fix..at + fix + 2].copy_from_slice(&ptr.to_be_bytes());
    }
    let sections = Sections {
        an: tail.an,
        ns: tail.ns,
        ar: tail.ar,
        flags: tail.flags & (flags::AA | flags::RCODE),
    };
    Some(finish(query, q, end, sections, out))
}

/// Checks that `records` bytes after the question (and the OPT) fit the client's size and
/// `out`, and copies the question as sent; returns where the records end.
fn records_start(query: &[u8], q: &Query, records: usize, out: &mut [u8]) -> Option<usize> {
    let end = q.question_end + records;
    let total = end + q.opt_len();
    if total > q.limit || total > out.len() {
        return None;
    }
    // The question as sent: the client's case is echoed (RFC 4343; 0x20 randomisation).
    out[DNS_HLEN..q.question_end].copy_from_slice(&query[DNS_HLEN..q.question_end]);
    Some(end)
}

/// Writes the header and the OPT around the records that end at `end`; the response's length.
fn finish(query: &[u8], q: &Query, end: usize, s: Sections, out: &mut [u8]) -> usize {
    let ar = s.ar + q.has_opt as u16;
    let reply_flags = flags::QR | s.flags | (q.flags & (flags::RD | flags::CD));
    out[0..2].copy_from_slice(&query[0..2]);
    out[2..4].copy_from_slice(&reply_flags.to_be_bytes());
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..8].copy_from_slice(&s.an.to_be_bytes());
    out[8..10].copy_from_slice(&s.ns.to_be_bytes());
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    if !q.has_opt {
        return end;
    }
    let size = EDNS_UDP_SIZE.to_be_bytes();
    let do_bit = if q.dnssec_ok { 0x80 } else { 0 };
    let rdlen = (q.opt_len() - OPT_LEN) as u8;
    out[end..end + OPT_LEN]
        .copy_from_slice(&[0, 0, 41, size[0], size[1], 0, 0, do_bit, 0, 0, rdlen]);
    let at = end + OPT_LEN;
    if let Some(reply) = &q.cookie_reply {
        out[at..at + 4].copy_from_slice(&[0, edns_option::COOKIE as u8, 0, COOKIE_REPLY_LEN as u8]);
        out[at + 4..at + COOKIE_OPTION_LEN].copy_from_slice(&reply.data);
    }
    end + q.opt_len()
}
