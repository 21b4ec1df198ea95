//! The replay guard: a verified datagram is accepted only if its timestamp is within
//! `max_skew` of the receiver's clock and its sequence number is new for its (key id, agent
//! id): higher than any seen, or within [`WINDOW`] below the highest and not yet seen (UDP
//! reorders). Everything else is a replay.
//!
//! Memory is bounded: at most `max_agents` (key, agent) pairs are tracked, and a new one
//! evicts the least recently seen. An evicted agent's window is forgotten, so its datagrams
//! could be replayed once within `max_skew`: size `max_agents` above the number of agents.
//! Only authenticated datagrams reach the guard, so only key holders can make entries.
use std::collections::{BTreeMap, HashMap};

use super::wire::{Header, Reject};

/// How far below the highest sequence seen a late datagram is still accepted.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// What is known of one (key, agent).
#[derive(Clone, Debug)]
struct Entry {
    /// The highest sequence accepted.
    highest: u64,
    /// Sequences accepted in `highest - WINDOW + 1 ..= highest`: bit `s % WINDOW`.
    seen: [u64; WORDS],
    /// When it was last accepted, in `ReplayGuard::tick`s (for eviction).
    touched: u64,
}

impl Entry {
    fn bit(s: u64) -> (usize, u64) {
        let i = s % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn has(&self, s: u64) -> bool {
        let (w, b) = Self::bit(s);
        self.seen[w] & b != 0
    }

    fn set(&mut self, s: u64) {
        let (w, b) = Self::bit(s);
        self.seen[w] |= b;
    }

    /// Moves the window up to `s` (> highest), forgetting what falls out of it.
    fn advance(&mut self, s: u64) {
        if s - self.highest >= WINDOW {
            self.seen = [0; WORDS];
        } else {
            for x in self.highest + 1..=s {
                let (w, b) = Self::bit(x);
                self.seen[w] &= !b;
            }
        }
        self.highest = s;
    }
}

/// Freshness and replay state of every agent, by (key id, agent id).
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    max_skew_ms: u64,
    max_agents: usize,
    entries: HashMap<(u32, String), Entry>,
    /// Entries by `touched`, oldest first.
    order: BTreeMap<u64, (u32, String)>,
    tick: u64,
    evicted: u64,
}

impl ReplayGuard {
    /// A guard accepting timestamps within `max_skew_ms` of the clock and tracking at most
    /// `max_agents` (at least 1) agents.
    pub fn new(max_skew_ms: u64, max_agents: usize) -> Self {
        Self {
            max_skew_ms,
            max_agents: max_agents.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            evicted: 0,
        }
    }

    /// Accepts `header` (and records its sequence) or says why not: `Stale` if its timestamp
    /// is more than `max_skew` from `now_ms` either way, `Replayed` if its sequence was seen
    /// or is below the window. A refused datagram changes nothing.
    pub fn check(&mut self, header: &Header, now_ms: u64) -> Result<(), Reject> {
        if header.timestamp_ms.abs_diff(now_ms) > self.max_skew_ms {
            return Err(Reject::Stale);
        }
        let s = header.sequence;
        let id = (header.key_id, header.agent.clone());
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(&id) {
            Some(e) => {
                if s > e.highest {
                    e.advance(s);
                } else if e.highest - s >= WINDOW || e.has(s) {
                    return Err(Reject::Replayed);
                }
                e.set(s);
                self.order.remove(&e.touched);
                e.touched = tick;
                self.order.insert(tick, id);
            }
            None => {
                while self.entries.len() >= self.max_agents {
                    let Some((_, old)) = self.order.pop_first() else {
                        break;
                    };
                    self.entries.remove(&old);
                    self.evicted += 1;
                }
                let mut e = Entry {
                    highest: s,
                    seen: [0; WORDS],
                    touched: tick,
                };
                e.set(s);
                self.entries.insert(id.clone(), e);
                self.order.insert(tick, id);
            }
        }
        Ok(())
    }

    /// `(max_skew_ms, max_agents)`.
    pub fn limits(&self) -> (u64, usize) {
        (self.max_skew_ms, self.max_agents)
    }

    /// (key id, agent id) pairs tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no agent is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Agents evicted to make room since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::wire::Kind;

    const NOW: u64 = 1_700_000_000_000;

    fn h(key_id: u32, agent: &str, sequence: u64, timestamp_ms: u64) -> Header {
        Header {
            kind: Kind::Report,
            key_id,
            sequence,
            timestamp_ms,
            agent: agent.into(),
            site: "tokyo".into(),
        }
    }

    #[test]
    fn timestamps_beyond_the_skew_either_way_are_stale() {
        let mut g = ReplayGuard::new(30_000, 16);
        assert_eq!(
            g.check(&h(1, "a", 1, NOW - 30_001), NOW),
            Err(Reject::Stale)
        );
        assert_eq!(
            g.check(&h(1, "a", 1, NOW + 30_001), NOW),
            Err(Reject::Stale)
        );
        assert!(g.is_empty(), "a refused datagram leaves no state");
        g.check(&h(1, "a", 1, NOW - 30_000), NOW).unwrap();
        g.check(&h(1, "a", 2, NOW + 30_000), NOW).unwrap();
        // No underflow near the epoch.
        assert_eq!(g.check(&h(1, "a", 3, u64::MAX), 0), Err(Reject::Stale));
        g.check(&h(1, "a", 3, 0), 5).unwrap();
    }

    #[test]
    fn sequences_are_new_or_replayed() {
        let mut g = ReplayGuard::new(30_000, 16);
        g.check(&h(1, "a", 5000, NOW), NOW).unwrap();
        assert_eq!(g.check(&h(1, "a", 5000, NOW), NOW), Err(Reject::Replayed));
        g.check(&h(1, "a", 5002, NOW), NOW).unwrap();
        // Late but inside the window, once.
        g.check(&h(1, "a", 5001, NOW), NOW).unwrap();
        assert_eq!(g.check(&h(1, "a", 5001, NOW), NOW), Err(Reject::Replayed));
        g.check(&h(1, "a", 5002 - 1023, NOW), NOW).unwrap();
        assert_eq!(
            g.check(&h(1, "a", 5002 - 1024, NOW), NOW),
            Err(Reject::Replayed)
        );
        // Other agents and other keys have their own windows.
        g.check(&h(1, "b", 5000, NOW), NOW).unwrap();
        g.check(&h(2, "a", 5000, NOW), NOW).unwrap();
        // A jump beyond the window forgets everything below it.
        g.check(&h(1, "a", 100_000, NOW), NOW).unwrap();
        assert_eq!(g.check(&h(1, "a", 5002, NOW), NOW), Err(Reject::Replayed));
        g.check(&h(1, "a", 99_000, NOW), NOW).unwrap();
        assert_eq!(g.check(&h(1, "a", 99_000, NOW), NOW), Err(Reject::Replayed));
        g.check(&h(1, "a", u64::MAX, NOW), NOW).unwrap();
        assert_eq!(
            g.check(&h(1, "a", u64::MAX, NOW), NOW),
            Err(Reject::Replayed)
        );
    }

    #[test]
    fn the_window_matches_a_plain_set() {
        // Against a model: accept iff new and within WINDOW of the highest.
        let mut g = ReplayGuard::new(30_000, 16);
        let mut seen = std::collections::HashSet::new();
        let mut highest = 0u64;
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly forward, with reordering, duplicates and the odd jump.
            let s = match x % 100 {
                0 => highest + 1500,
                1..=30 => highest.saturating_sub(x % 1100),
                _ => highest + x % 3,
            };
            let want = if seen.is_empty() || s > highest {
                true
            } else {
                highest - s < WINDOW && !seen.contains(&s)
            };
            let got = g.check(&h(1, "a", s, NOW), NOW).is_ok();
            assert_eq!(got, want, "sequence {s}, highest {highest}");
            if got {
                seen.insert(s);
                highest = highest.max(s);
            }
        }
    }

    #[test]
    fn memory_is_bounded_and_the_least_recent_goes() {
        let mut g = ReplayGuard::new(30_000, 3);
        g.check(&h(1, "a", 1, NOW), NOW).unwrap();
        g.check(&h(1, "b", 1, NOW), NOW).unwrap();
        g.check(&h(1, "c", 1, NOW), NOW).unwrap();
        g.check(&h(1, "a", 2, NOW), NOW).unwrap();
        // d evicts b, the least recently seen.
        g.check(&h(1, "d", 1, NOW), NOW).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g.evicted(), 1);
        assert_eq!(g.check(&h(1, "a", 2, NOW), NOW), Err(Reject::Replayed));
        assert_eq!(g.check(&h(1, "c", 1, NOW), NOW), Err(Reject::Replayed));
        // b was forgotten: its old sequence is new again (the documented cost of eviction).
        g.check(&h(1, "b", 1, NOW), NOW).unwrap();
        assert_eq!(g.len(), 3);
    }
}
