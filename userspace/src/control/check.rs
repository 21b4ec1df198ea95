//! `reload --check`: every answer a reload would change, with today's metrics read against
//! the new config's model (undamped): per wide IP, per family (A, AAAA) and per client
//! class, the members with their addresses and shares. Computed here from the published
//! view, off the balancer thread.
use std::collections::{BTreeMap, BTreeSet};

use super::shares::shares;
use crate::{
    balance::{Outcome, classes::client_classes, decide},
    config::Config,
    model::Metrics,
    plan::publication::only_family,
    view::View,
};

/// Which answer: wide IP, record type, client class key.
type Which = (String, &'static str, String);

/// One line per answer that would change: `~ name A [class]: before -> after`, `+` for a
/// new wide IP, `-` for one removed. A class only one config has is compared with the
/// other's default class (where its clients would land).
pub fn changes(view: &View, config: &Config, now_ms: u64) -> Vec<String> {
    let old = summarize(&view.config, &view.metrics_for(&view.config, now_ms));
    let new = summarize(config, &view.metrics_for(config, now_ms));
    let fallback = |side: &BTreeMap<Which, String>, (name, rtype, _): &Which| {
        side.get(&(
            name.clone(),
            *rtype,
            crate::balance::classes::DEFAULT_KEY.to_owned(),
        ))
        .cloned()
    };
    let keys: BTreeSet<&Which> = old.keys().chain(new.keys()).collect();
    let mut lines = Vec::new();
    for which in keys {
        let (name, rtype, class) = which;
        let before = old.get(which).cloned().or_else(|| fallback(&old, which));
        let after = new.get(which).cloned().or_else(|| fallback(&new, which));
        match (before, after) {
            (Some(b), Some(a)) if a != b => {
                lines.push(format!("~ {name} {rtype} [{class}]: {b} -> {a}"))
            }
            (Some(b), None) => lines.push(format!("- {name} {rtype} [{class}]: {b} (removed)")),
            (None, Some(a)) => lines.push(format!("+ {name} {rtype} [{class}]: {a} (new)")),
            _ => {}
        }
    }
    lines
}

/// Every wide IP's answer for each family and client class of `config`, as text: the
/// members (name, address, share) sorted, or the outcome when it is not an answer.
fn summarize(config: &Config, metrics: &Metrics) -> BTreeMap<Which, String> {
    let model = &config.model;
    let classes = client_classes(model, metrics, config.balancer.max_classes);
    let mut out = BTreeMap::new();
    for (rtype, v6) in [("A", false), ("AAAA", true)] {
        let metrics = only_family(model, metrics, v6);
        for class in &classes.classes {
            for (w, wideip) in model.wideips.iter().enumerate() {
                let d = decide(model, w, &metrics, &class.context);
                let text = match &d.outcome {
                    Outcome::Answer { members, .. } => {
                        let name = |vs: crate::model::VsId| {
                            model
                                .vss
                                .get(vs)
                                .map_or("?".to_owned(), |v| format!("{} ({})", v.name, v.addr))
                        };
                        let mut parts = shares(members, name, 0);
                        parts.sort();
                        parts.join(", ")
                    }
                    other => format!("{other:?}"),
                };
                out.insert((wideip.name.to_string(), rtype, class.key.clone()), text);
            }
        }
    }
    out
}
