//! A pool's tiers: preferred, then alternate, then fallback, until one yields an outcome.
//!
//! A tier yields nothing (and the next is tried) when its method is None, when no member is
//! available, when a dynamic method finds no member with its metric, when Topology finds no
//! member scoring above 0, or when Fallback IP has no address configured. Fallback IP, Drop
//! Packet and Return to DNS are terminal: they decide the pool without looking at members.
//! When no tier yields anything, the pool yields nothing (the wide IP moves on).
use super::{
    Outcome, available,
    methods::{self, Input, MethodResult},
    trace::{Step, TierStep, Trace, Why},
};
use crate::model::{ClientContext, Metrics, Model, PoolId, PoolMember};

/// What a pool yields.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolDecision {
    pub outcome: Outcome,
    /// The weights came from a dynamic method (and so are damped).
    pub dynamic: bool,
}

/// Runs pool `pool`'s tiers for `client`. `None`: no tier yielded anything.
pub fn pool_outcome(
    model: &Model,
    pool: PoolId,
    metrics: &Metrics,
    client: &ClientContext,
    trace: &mut Trace,
) -> Option<PoolDecision> {
    let Some(p) = model.pools.get(pool) else {
        trace.push(Step::NoPool(pool));
        return None;
    };
    // Availability once per pool: it does not depend on the method.
    let mut up: Vec<PoolMember> = Vec::with_capacity(p.members.len());
    let mut out: Vec<TierStep> = Vec::new();
    for m in &p.members {
        match available(model, m.vs, metrics) {
            Ok(()) => up.push(*m),
            Err(why) => out.push(TierStep::Out {
                vs: m.vs,
                why: Why::Unavailable(why),
            }),
        }
    }
    let input = Input {
        model,
        pool: p,
        members: &up,
        metrics,
        client,
    };
    for (tier, &method) in p.tiers.iter().enumerate() {
        let step = |step| Step::Tier {
            pool,
            tier,
            method,
            step,
        };
        if methods::picks_members(method) {
            trace.extend(out.iter().cloned().map(step));
        }
        let mut notes = Vec::new();
        let result = methods::run(method, &input, &mut notes);
        trace.extend(notes.into_iter().map(step));
        let outcome = match result {
            MethodResult::Next(why) => {
                trace.push(step(TierStep::Next(why)));
                continue;
            }
            MethodResult::Members { members, persist } => {
                trace.push(step(TierStep::Answer {
                    members: members.clone(),
                    persist,
                }));
                Outcome::Answer {
                    members,
                    ttl: p.ttl,
                    records: p.records,
                    persist,
                }
            }
            MethodResult::FallbackIp(addr) => {
                trace.push(step(TierStep::FallbackIp(addr)));
                Outcome::FallbackIp { addr, ttl: p.ttl }
            }
            MethodResult::Drop => {
                trace.push(step(TierStep::Drop));
                Outcome::Drop
            }
            MethodResult::ReturnToDns => {
                trace.push(step(TierStep::ReturnToDns));
                Outcome::ReturnToDns
            }
        };
        return Some(PoolDecision {
            outcome,
            dynamic: method.is_dynamic(),
        });
    }
    trace.push(Step::NoTierAnswers(pool));
    None
}
