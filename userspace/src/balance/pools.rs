//! The wide IP's pool method: which of its pools' outcomes (or which merge of them) answers.
//!
//! - Global Availability: the first pool, in order, that yields anything, as it is.
//! - Round Robin / Ratio: every pool that yields an answer set is merged: each pool's weights
//!   are normalised to shares and multiplied by the pool's share (equal, or pool ratio over
//!   the ratios of the answering pools); the result is scaled to about
//!   [`WEIGHT_SCALE`] in total (each >= 1; a VS in two pools adds up). TTL is the smallest,
//!   records per response the first answering pool's, persist if any part persists. A single
//!   answering pool is used as it is.
//! - Topology: among the pools that yield an answer set, the one whose best available member
//!   has the highest topology score for the client (the first in order on ties, including
//!   when every score is 0), as it is.
//!
//! Pools that yield only a terminal non-answer (Fallback IP, Drop, Return to DNS) are used,
//! first in order, only when no pool yields an answer set: a real answer always wins over a
//! pool's last resort.
use super::{
    Outcome, WEIGHT_SCALE, available,
    tiers::{PoolDecision, pool_outcome},
    topology,
    trace::{PoolStep, Step, Trace},
};
use crate::model::{ClientContext, Metrics, Model, PoolId, PoolMethod, VsId, WideIp};

/// Chooses the wide IP's outcome among its pools. `None`: no pool yields anything.
/// `wideip` is `w`'s index, for the trace.
pub fn pick(
    model: &Model,
    wideip: usize,
    w: &WideIp,
    metrics: &Metrics,
    client: &ClientContext,
    trace: &mut Trace,
) -> Option<PoolDecision> {
    let step = |step| Step::Pools {
        wideip,
        method: w.pool_method,
        step,
    };
    if w.pool_method == PoolMethod::GlobalAvailability {
        for &p in &w.pools {
            if let Some(d) = pool_outcome(model, p, metrics, client, trace) {
                trace.push(step(PoolStep::Picked(p)));
                return Some(d);
            }
        }
        return None;
    }
    let all: Vec<(PoolId, PoolDecision)> = w
        .pools
        .iter()
        .filter_map(|&p| pool_outcome(model, p, metrics, client, trace).map(|d| (p, d)))
        .collect();
    let (answers, others): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(_, d)| matches!(d.outcome, Outcome::Answer { .. }));
    if answers.is_empty() {
        let (p, d) = others.into_iter().next()?;
        trace.push(step(PoolStep::Decides(p)));
        return Some(d);
    }
    match w.pool_method {
        PoolMethod::Topology => {
            let mut best: Option<(u32, PoolId, PoolDecision)> = None;
            for (p, d) in answers {
                let s = best_score(model, p, metrics, client);
                trace.push(step(PoolStep::BestScore { pool: p, score: s }));
                if best.as_ref().is_none_or(|b| s > b.0) {
                    best = Some((s, p, d));
                }
            }
            let (_, p, d) = best?;
            trace.push(step(PoolStep::Picked(p)));
            Some(d)
        }
        _ if answers.len() == 1 => {
            let (p, d) = answers.into_iter().next()?;
            trace.push(step(PoolStep::Only(p)));
            Some(d)
        }
        _ => Some(merge(model, w, answers, |s| trace.push(step(s)))),
    }
}

/// Highest topology score of pool `p`'s available members.
fn best_score(model: &Model, p: PoolId, metrics: &Metrics, client: &ClientContext) -> u32 {
    model.pools.get(p).map_or(0, |pool| {
        pool.members
            .iter()
            .filter(|m| available(model, m.vs, metrics).is_ok())
            .map(|m| topology::score(model, client, m.vs))
            .max()
            .unwrap_or(0)
    })
}

/// Merges the answer sets of several pools (Round Robin: equal shares; Ratio: pool ratios).
fn merge(
    model: &Model,
    w: &WideIp,
    answers: Vec<(PoolId, PoolDecision)>,
    mut trace: impl FnMut(PoolStep),
) -> PoolDecision {
    let share = |p: PoolId| match w.pool_method {
        PoolMethod::Ratio => model.pools.get(p).map_or(1, |p| p.ratio.max(1)) as f64,
        _ => 1.0,
    };
    let total: f64 = answers.iter().map(|(p, _)| share(*p)).sum();
    let mut acc: Vec<(VsId, f64)> = Vec::new();
    let (mut ttl, mut records, mut persist, mut dynamic) = (u32::MAX, None, false, false);
    for (p, d) in &answers {
        let Outcome::Answer {
            members,
            ttl: t,
            records: r,
            persist: ps,
        } = &d.outcome
        else {
            continue;
        };
        ttl = ttl.min(*t);
        records.get_or_insert(*r);
        persist |= *ps;
        dynamic |= d.dynamic;
        let sum: f64 = members.iter().map(|m| m.1 as f64).sum::<f64>().max(1.0);
        let part = share(*p) / total;
        trace(PoolStep::Share {
            pool: *p,
            share: part,
        });
        for &(vs, wt) in members {
            let x = part * wt as f64 / sum;
            match acc.iter_mut().find(|a| a.0 == vs) {
                Some(a) => a.1 += x,
                None => acc.push((vs, x)),
            }
        }
    }
    let members: Vec<(VsId, u32)> = acc
        .iter()
        .map(|&(vs, x)| (vs, ((x * WEIGHT_SCALE as f64).round() as u32).max(1)))
        .collect();
    trace(PoolStep::Merged(members.clone()));
    PoolDecision {
        outcome: Outcome::Answer {
            members,
            ttl,
            records: records.unwrap_or(1),
            persist,
        },
        dynamic,
    }
}
