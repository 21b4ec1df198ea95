//! What zone transfers and NOTIFYs did, counted for Prometheus and `xgslbctl stats`: kept
//! for the daemon's life (every reload's transfer state shares one).
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a transfer request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client's address is not in the zone's `allow_transfer` (REFUSED).
    NotAllowed,
    /// The zone needs a key and the request had none, or another one (REFUSED).
    KeyRequired,
    /// The request was signed with a key xgslbd does not have (NOTAUTH, BADKEY).
    BadKey,
    /// The request's TSIG MAC did not verify (NOTAUTH, BADSIG).
    BadSig,
    /// The request's TSIG time is outside its fudge (NOTAUTH, BADTIME).
    BadTime,
    /// No zone of xgslbd has that origin (NOTAUTH).
    NotAuthoritative,
    /// The request does not parse, or an IXFR has no SOA (FORMERR).
    Malformed,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 7] = [
        Refusal::NotAllowed,
        Refusal::KeyRequired,
        Refusal::BadKey,
        Refusal::BadSig,
        Refusal::BadTime,
        Refusal::NotAuthoritative,
        Refusal::Malformed,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "not_allowed",
            Refusal::KeyRequired => "key_required",
            Refusal::BadKey => "bad_key",
            Refusal::BadSig => "bad_signature",
            Refusal::BadTime => "bad_time",
            Refusal::NotAuthoritative => "not_authoritative",
            Refusal::Malformed => "malformed",
        }
    }
}

/// What a served transfer request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TransferKind {
    /// AXFR: the whole zone.
    Axfr,
    /// IXFR answered with the differences.
    Ixfr,
    /// IXFR answered with the whole zone (serial unknown or too old).
    IxfrFull,
    /// IXFR from a client that is up to date: the SOA alone.
    IxfrUpToDate,
    /// IXFR over UDP: the SOA alone, the client goes on over TCP if it is behind.
    IxfrUdp,
}

impl TransferKind {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::Axfr => "axfr",
            TransferKind::Ixfr => "ixfr",
            TransferKind::IxfrFull => "ixfr_full",
            TransferKind::IxfrUpToDate => "ixfr_up_to_date",
            TransferKind::IxfrUdp => "ixfr_udp",
        }
    }
}

/// What became of a zone's NOTIFY to one secondary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// A NOTIFY datagram sent (first tries and retries).
    Sent,
    /// The secondary answered NOERROR.
    Acknowledged,
    /// Every try went unanswered or was answered with an error.
    GaveUp,
}

impl NotifyOutcome {
    /// Every outcome, in counter order.
    pub const ALL: [NotifyOutcome; 3] = [
        NotifyOutcome::Sent,
        NotifyOutcome::Acknowledged,
        NotifyOutcome::GaveUp,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            NotifyOutcome::Sent => "sent",
            NotifyOutcome::Acknowledged => "acknowledged",
            NotifyOutcome::GaveUp => "gave_up",
        }
    }
}

/// The counters. Refusals are atomics (a flood of them must not contend on a lock); served
/// transfers, per zone, are rare enough for a mutex.
#[derive(Debug, Default)]
pub struct TransferCounters {
    refused: [AtomicU64; Refusal::ALL.len()],
    notify: [AtomicU64; NotifyOutcome::ALL.len()],
    served: Mutex<BTreeMap<(String, TransferKind), u64>>,
}

impl TransferCounters {
    /// Counts a refused request.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a served transfer of `zone`.
    pub fn served(&self, zone: &str, kind: TransferKind) {
        let mut map = self.served.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((zone.to_owned(), kind)).or_insert(0) += 1;
    }

    /// Counts a NOTIFY outcome.
    pub fn notify(&self, outcome: NotifyOutcome) {
        self.notify[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals by reason (every reason listed).
    pub fn refusals(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL
            .iter()
            .map(|&r| (r, self.refused[r as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// NOTIFY outcomes (every outcome listed).
    pub fn notifies(&self) -> Vec<(NotifyOutcome, u64)> {
        NotifyOutcome::ALL
            .iter()
            .map(|&o| (o, self.notify[o as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// Served transfers by (zone, kind), the ones that happened.
    pub fn transfers(&self) -> Vec<(String, TransferKind, u64)> {
        let map = self.served.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|((z, k), n)| (z.clone(), *k, *n)).collect()
    }
}
