//! Slow-path responses counted by rcode: one set per server loop (each UDP worker, TCP),
//! summed when read.
use std::sync::atomic::{AtomicU64, Ordering};

/// Slow-path responses by rcode (0..=15; 16 counts queries answered with nothing).
#[derive(Default)]
pub struct RcodeCounters {
    counts: [AtomicU64; 17],
}

impl RcodeCounters {
    /// Counts one response (its header's rcode), or a query left unanswered.
    pub fn count(&self, response: Option<&[u8]>) {
        let i = match response {
            Some(r) if r.len() >= 4 => (r[3] & 0x0f) as usize,
            Some(_) => return,
            None => 16,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of all of `counters` by rcode name.
    pub fn sum<'a>(counters: impl Iterator<Item = &'a RcodeCounters>) -> Vec<(&'static str, u64)> {
        let mut total = [0u64; 17];
        for c in counters {
            for (t, n) in total.iter_mut().zip(&c.counts) {
                *t += n.load(Ordering::Relaxed);
            }
        }
        const NAMES: [&str; 17] = [
            "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
            "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14",
            "RCODE15", "none",
        ];
        NAMES.iter().copied().zip(total).collect()
    }
}
