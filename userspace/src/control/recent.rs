//! Recent events, for the web console: operators' changes and reloads (recorded by
//! `dispatch`), virtual servers going in and out of rotation and publications (recorded by
//! the console's sampler as it sees them). A bounded ring: the oldest drop out.
use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use serde::Serialize;

/// Events kept; older ones drop out.
pub const CAPACITY: usize = 256;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// +1 per event, for the daemon's life: a reader asks for those after the last it saw.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `drain`, `enable`, `disable`, `ratio`, `reload`, `reload_refused`, `vs_up`,
    /// `vs_out`, `publication`.
    pub kind: &'static str,
    /// The virtual server or site it is about, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What happened, for a person.
    pub text: String,
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct RecentEvents {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<Event>,
    /// The last operator change (`drain`, `enable`, `disable`) to each target, with its
    /// seq: kept apart from the ring so that a drain is still told from a disable once
    /// newer events have pushed it out. Bounded by the names operators changed.
    last_admin: HashMap<String, (u64, &'static str)>,
}

/// The kinds of event that set a target's administrative state.
const ADMIN_KINDS: [&str; 3] = ["drain", "enable", "disable"];

impl RecentEvents {
    /// Records an event at `at_ms`.
    pub fn record(&self, at_ms: u64, kind: &'static str, target: Option<String>, text: String) {
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.next_seq += 1;
        let seq = ring.next_seq;
        if ring.events.len() == CAPACITY {
            ring.events.pop_front();
        }
        if let Some(t) = target.as_ref().filter(|_| ADMIN_KINDS.contains(&kind)) {
            ring.last_admin.insert(t.clone(), (seq, kind));
        }
        ring.events.push_back(Event {
            seq,
            at_ms,
            kind,
            target,
            text,
        });
    }

    /// The events kept, oldest first.
    pub fn list(&self) -> Vec<Event> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.events.iter().cloned().collect()
    }

    /// The kind of the last operator change (`drain`, `enable`, `disable`) to any of
    /// `targets` (a virtual server and its site), if any: tells a drained
    /// virtual server from a disabled one, however many events came since.
    pub fn last_change_to(&self, targets: &[&str]) -> Option<&'static str> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        targets
            .iter()
            .filter_map(|t| ring.last_admin.get(*t))
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, kind)| *kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_numbers_them() {
        let r = RecentEvents::default();
        for i in 0..CAPACITY + 3 {
            r.record(i as u64, "publication", None, format!("{i}"));
        }
        let l = r.list();
        assert_eq!(l.len(), CAPACITY);
        assert_eq!(l[0].seq, 4);
        assert_eq!(l.last().map(|e| e.seq), Some(CAPACITY as u64 + 3));
    }

    #[test]
    fn the_last_change_to_a_target_wins() {
        let r = RecentEvents::default();
        assert_eq!(r.last_change_to(&["a", "site"]), None);
        r.record(1, "drain", Some("a".into()), "drain a".into());
        r.record(2, "vs_out", Some("a".into()), "a out".into());
        assert_eq!(r.last_change_to(&["a", "site"]), Some("drain"));
        r.record(3, "enable", Some("site".into()), "enable site".into());
        assert_eq!(r.last_change_to(&["a", "site"]), Some("enable"));
        assert_eq!(r.last_change_to(&["b"]), None);
    }

    #[test]
    fn a_drain_is_remembered_after_the_ring_forgot_it() {
        let r = RecentEvents::default();
        r.record(1, "drain", Some("a".into()), "drain a".into());
        for i in 0..CAPACITY {
            r.record(2 + i as u64, "publication", None, format!("{i}"));
        }
        assert!(r.list().iter().all(|e| e.kind != "drain"));
        assert_eq!(r.last_change_to(&["a", "site"]), Some("drain"));
    }
}
