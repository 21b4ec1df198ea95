//! `peers`: the peer EDNSs from the published view (contact, deferrals, subscriptions,
//! divergence, what the balancer counted) with the peer socket's counters, which its own
//! task keeps. The metrics endpoint reads the same answer.
use std::collections::BTreeMap;

use super::protocol::{Contact, PeerLine, PeerWire, Peers};
use crate::view::View;

/// What `xgslbctl peers` shows as of `now_ms` (Unix ms); `wire` holds the peer socket's
/// counters by peer name ("" for datagrams from no configured peer). Without `[peering]`,
/// only `configured: false`.
pub fn peers(view: &View, wire: &BTreeMap<String, PeerWire>, now_ms: u64) -> Peers {
    let Some(peering) = &view.config.peering else {
        return Peers::default();
    };
    let silent_after_ms = peering.silent_after_ms;
    Peers {
        configured: true,
        name: peering.name.clone(),
        site: peering.site.clone(),
        silent_after_ms,
        peers: view
            .peers
            .iter()
            .map(|p| {
                let age = p.last_contact_ms.map(|t| now_ms.saturating_sub(t));
                PeerLine {
                    name: p.name.clone(),
                    site: p.site.clone(),
                    address: p.address.to_string(),
                    state: contact(age, silent_after_ms),
                    last_contact_ms: p.last_contact_ms,
                    last_contact_age_ms: age,
                    comparable: p.comparable,
                    divergent: p.divergent.clone(),
                    deferred: p.deferred,
                    decisions_held: p.decisions_held,
                    subscriptions: p.subscriptions,
                    messages: p.messages,
                    decisions: p.decisions,
                    went_silent: p.went_silent,
                    came_back: p.came_back,
                    wire: wire.get(&p.name).cloned().unwrap_or_default(),
                }
            })
            .collect(),
        unknown_senders: wire.get("").cloned().unwrap_or_default(),
    }
}

/// A peer last heard `age_ms` ago (`None`: never), by the balancer's rule: silent past
/// `silent_after_ms`. Worked out at each answer, so a peer that fell silent since the last
/// publication already shows it.
fn contact(age_ms: Option<u64>, silent_after_ms: u64) -> Contact {
    match age_ms {
        None => Contact::NeverHeard,
        Some(age) if age > silent_after_ms => Contact::Silent,
        Some(_) => Contact::Up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_up_within_silent_after_and_silent_past_it() {
        assert_eq!(contact(None, 3000), Contact::NeverHeard);
        assert_eq!(contact(Some(0), 3000), Contact::Up);
        assert_eq!(contact(Some(3000), 3000), Contact::Up);
        assert_eq!(contact(Some(3001), 3000), Contact::Silent);
    }
}
