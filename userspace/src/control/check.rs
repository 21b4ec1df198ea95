//! `reload --check`: per wide IP, the default class's A answer now and under a new config
//! (today's metrics read against its model, undamped), where they differ. Computed here from
//! the published view, off the balancer thread.
use std::collections::BTreeMap;

use super::shares::shares;
use crate::{
    balance::{Outcome, decide},
    config::Config,
    model::{ClientContext, Metrics, Model},
    plan::publication::only_family,
    view::View,
};

/// One line per wide IP whose answer would change: `~ name A: before -> after`, `+` for a
/// new wide IP, `-` for one removed.
pub fn changes(view: &View, config: &Config, now_ms: u64) -> Vec<String> {
    let old = summarize(&view.config.model, &view.metrics_for(&view.config, now_ms));
    let new = summarize(&config.model, &view.metrics_for(config, now_ms));
    let mut lines = Vec::new();
    for (name, before) in &old {
        match new.get(name) {
            None => lines.push(format!("- {name} A: {before} (removed)")),
            Some(after) if after != before => {
                lines.push(format!("~ {name} A: {before} -> {after}"))
            }
            Some(_) => {}
        }
    }
    for (name, after) in &new {
        if !old.contains_key(name) {
            lines.push(format!("+ {name} A: {after} (new)"));
        }
    }
    lines
}

/// Each wide IP's default-class A answer as text.
fn summarize(model: &Model, metrics: &Metrics) -> BTreeMap<String, String> {
    let ctx = ClientContext::default();
    let metrics = only_family(model, metrics, false);
    let mut out = BTreeMap::new();
    for (w, wideip) in model.wideips.iter().enumerate() {
        let d = decide(model, w, &metrics, &ctx);
        let text = match &d.outcome {
            Outcome::Answer { members, .. } => {
                let mut parts = shares(
                    members,
                    |vs| model.vss.get(vs).map_or("?", |v| v.name.as_str()),
                    0,
                );
                parts.sort();
                parts.join(", ")
            }
            other => format!("{other:?}"),
        };
        out.insert(wideip.name.to_string(), text);
    }
    out
}
