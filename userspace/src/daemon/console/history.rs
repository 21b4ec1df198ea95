//! What the console remembers between requests, sampled every [`INTERVAL`]: each wide IP's
//! XDP answers by leading virtual server (summed over client classes) as differences
//! between samples, for the last [`KEEP`]; and, as they are seen, virtual servers going in
//! and out of rotation and publications, recorded in the daemon's recent events.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::daemon::{ingest::now_ms, prometheus::Sources};

/// Between two samples.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// How far back the history goes.
pub const KEEP: Duration = Duration::from_secs(15 * 60);
/// Samples kept.
const SAMPLES: usize = (KEEP.as_secs() / INTERVAL.as_secs()) as usize;

/// One sample: when, and each wide IP's answers since the sample before, by leading VS.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    /// Wide IP → VS (or fallback address) → answers in the interval.
    pub answers: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The samples of the last [`KEEP`], and what the next one is compared with.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    samples: VecDeque<Sample>,
    /// The totals at the last sample, by (wide IP, VS).
    last_totals: Option<HashMap<(String, String), u64>>,
    /// Each VS's availability reason ("" in rotation) at the last sample.
    last_rotation: Option<HashMap<String, String>>,
    last_generation: Option<u64>,
}

impl History {
    /// The samples kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.samples.iter().cloned().collect()
    }

    /// Takes one sample from `sources` at `at_ms` (reads the pinned maps: blocks briefly).
    pub fn sample(&self, sources: &Sources, at_ms: u64) {
        let totals = answer_totals(sources);
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(totals) = totals {
            if let Some(last) = &s.last_totals {
                let sample = Sample {
                    at_ms,
                    answers: differences(last, &totals),
                };
                if s.samples.len() == SAMPLES {
                    s.samples.pop_front();
                }
                s.samples.push_back(sample);
            }
            s.last_totals = Some(totals);
        }
        self.record_changes(&mut s, sources, at_ms);
    }

    /// Records rotation changes and publications since the last sample.
    fn record_changes(&self, s: &mut State, sources: &Sources, at_ms: u64) {
        let recent = sources.handle.recent_events();
        let rotation: HashMap<String, String> = sources
            .handle
            .vs_availability()
            .into_iter()
            .map(|(vs, _, a)| (vs, a.err().map(|w| w.to_string()).unwrap_or_default()))
            .collect();
        if let Some(last) = &s.last_rotation {
            let mut changed: Vec<(&String, &String)> = rotation
                .iter()
                .filter(|(vs, why)| last.get(*vs) != Some(*why))
                .collect();
            changed.sort();
            for (vs, why) in changed {
                let (kind, text) = if why.is_empty() {
                    ("vs_up", format!("{vs} back in rotation"))
                } else {
                    ("vs_out", format!("{vs} out of rotation: {why}"))
                };
                recent.record(at_ms, kind, Some(vs.clone()), text);
            }
        }
        s.last_rotation = Some(rotation);
        let generation = sources.handle.published().generation;
        if let Some(last) = s.last_generation
            && generation != last
        {
            recent.record(
                at_ms,
                "publication",
                None,
                format!("published generation {generation}"),
            );
        }
        s.last_generation = Some(generation);
    }
}

/// Totals by (wide IP, VS): the answers since `last`, by wide IP and VS.
fn differences(
    last: &HashMap<(String, String), u64>,
    totals: &HashMap<(String, String), u64>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut answers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for ((wideip, vs), n) in totals {
        // A slot reused after a reload may count from less: no negative shares.
        let before = last
            .get(&(wideip.clone(), vs.clone()))
            .copied()
            .unwrap_or(0);
        *answers
            .entry(wideip.clone())
            .or_default()
            .entry(vs.clone())
            .or_default() += n.saturating_sub(before);
    }
    answers
}

/// The XDP answer counters summed over client classes, by (wide IP, leading VS); `None`
/// when XDP is not loaded (or its maps cannot be read).
fn answer_totals(sources: &Sources) -> Option<HashMap<(String, String), u64>> {
    let mut guard = sources.counters.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none()
        && let Some(dir) = &sources.pin_dir
    {
        *guard = crate::maps::dataplane::PinnedCounters::open(dir).ok();
    }
    let pinned = guard.as_ref()?;
    let mut totals = HashMap::new();
    for label in sources.handle.answer_stats() {
        for (i, lead) in label.leads.iter().enumerate() {
            let at = label.slot * xgslb_common::MAX_ADDRS as u32 + i as u32;
            let n = pinned.answer_count(at).unwrap_or(0);
            *totals
                .entry((label.wideip.clone(), lead.clone()))
                .or_default() += n;
        }
    }
    Some(totals)
}

/// Samples every [`INTERVAL`] until `shutdown`.
pub async fn run_sampler(
    history: Arc<History>,
    sources: Arc<Sources>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let (h, s) = (history.clone(), sources.clone());
        // Reading the pinned maps blocks: off the I/O threads.
        let _ = tokio::task::spawn_blocking(move || h.sample(&s, now_ms())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(list: &[(&str, &str, u64)]) -> HashMap<(String, String), u64> {
        list.iter()
            .map(|(w, v, n)| (((*w).to_owned(), (*v).to_owned()), *n))
            .collect()
    }

    #[test]
    fn a_sample_counts_the_answers_since_the_last_and_never_less_than_none() {
        let last = totals(&[("w.", "a", 10), ("w.", "b", 5), ("x.", "a", 7)]);
        let now = totals(&[
            ("w.", "a", 25),
            ("w.", "b", 5),
            ("x.", "a", 3),
            ("x.", "c", 4),
        ]);
        let d = differences(&last, &now);
        assert_eq!(d["w."]["a"], 15);
        assert_eq!(d["w."]["b"], 0);
        // A counter that went back (its slot reused) counts nothing, a new one all it has.
        assert_eq!(d["x."]["a"], 0);
        assert_eq!(d["x."]["c"], 4);
    }
}
