//! Damping of dynamic weights between balancer intervals, so that a site that looks best is
//! not flooded at once, and small metric noise does not rewrite maps.
//!
//! Work is in shares (weight / sum of weights):
//! - health is never damped: a member absent from the target is out at once, and the shares
//!   of the members still present are renormalised before moving;
//! - a member new in the target starts from share 0 and ramps up (unless nothing was
//!   published before, or no previous member is still present: then the target is taken as
//!   it is);
//! - hysteresis: when no member's share would move by `hysteresis` or more, nothing moves;
//! - bounded step: otherwise every share moves toward its target by the same fraction of its
//!   distance, chosen so that the largest move is at most `max_step`. Moving every share by
//!   the same fraction keeps the shares summing to 1, so no renormalisation afterwards can
//!   push a share further than `max_step` (clamping each share separately and renormalising
//!   could). A `max_step` of 0 or less (or not a number) means no bound.
//!
//! The result is integer weights totalling about [`WEIGHT_SCALE`], each member >= 1.
use std::collections::HashMap;

use super::{Outcome, WEIGHT_SCALE};
use crate::model::{Damping, VsId};

/// Moves `prev` one damped step toward `target`. Members are those of `target`, in its order.
pub fn damp(prev: &[(VsId, u32)], target: &[(VsId, u32)], d: &Damping) -> Vec<(VsId, u32)> {
    let tsum: f64 = target.iter().map(|t| t.1 as f64).sum();
    let kept_sum: f64 = prev
        .iter()
        .filter(|p| target.iter().any(|t| t.0 == p.0))
        .map(|p| p.1 as f64)
        .sum();
    if target.is_empty() || tsum <= 0.0 || kept_sum <= 0.0 {
        // Nothing to ramp from.
        return target.to_vec();
    }
    let share = |list: &[(VsId, u32)], vs: VsId, sum: f64| {
        list.iter()
            .find(|p| p.0 == vs)
            .map_or(0.0, |p| p.1 as f64 / sum)
    };
    let start: Vec<f64> = target.iter().map(|t| share(prev, t.0, kept_sum)).collect();
    let goal: Vec<f64> = target.iter().map(|t| t.1 as f64 / tsum).collect();
    let largest = start
        .iter()
        .zip(&goal)
        .map(|(s, g)| (g - s).abs())
        .fold(0.0, f64::max);
    let fraction = if largest < d.hysteresis {
        0.0
    } else if d.max_step > 0.0 && largest > d.max_step {
        d.max_step / largest
    } else {
        1.0
    };
    target
        .iter()
        .zip(start.iter().zip(&goal))
        .map(|(t, (s, g))| {
            let share = s + fraction * (g - s);
            (t.0, ((share * WEIGHT_SCALE as f64).round() as u32).max(1))
        })
        .collect()
}

/// Key of a damped answer set: (wide IP index, hash of the client class key).
pub type DampKey = (usize, u64);

/// The last published dynamic weights per (wide IP, client class), to damp the next ones from.
#[derive(Clone, Debug, Default)]
pub struct Damper {
    state: HashMap<DampKey, Vec<(VsId, u32)>>,
}

impl Damper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Damps `outcome` when it is an answer set whose weights are dynamic (`damped`, e.g.
    /// [`Decision::dynamic`](super::Decision::dynamic)), remembering the result for the next
    /// interval. Any other outcome passes unchanged and forgets the key's state, so that
    /// dynamic weights coming back start from their target.
    pub fn apply(&mut self, key: DampKey, outcome: Outcome, damped: bool, d: &Damping) -> Outcome {
        match outcome {
            Outcome::Answer {
                members,
                ttl,
                records,
                persist,
            } if damped => {
                let prev = self.state.get(&key).map_or(&[][..], |p| &p[..]);
                let members = damp(prev, &members, d);
                self.state.insert(key, members.clone());
                Outcome::Answer {
                    members,
                    ttl,
                    records,
                    persist,
                }
            }
            other => {
                self.state.remove(&key);
                other
            }
        }
    }

    /// Starts `key` from `from`'s weights when `key` has none: a class that appears (its LDNS
    /// prefixes regrouped because path rankings changed) is damped from what its clients
    /// were served under the default class, instead of jumping to its target.
    pub fn seed(&mut self, key: DampKey, from: DampKey) {
        if self.state.contains_key(&key) {
            return;
        }
        if let Some(w) = self.state.get(&from).cloned() {
            self.state.insert(key, w);
        }
    }

    /// Keeps only the keys `keep` accepts (drop wide IPs or classes that no longer exist).
    pub fn retain(&mut self, mut keep: impl FnMut(&DampKey) -> bool) {
        self.state.retain(|k, _| keep(k));
    }

    /// Keys with remembered weights.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Damping = Damping {
        max_step: 0.10,
        hysteresis: 0.02,
    };

    #[test]
    fn a_step_change_moves_at_most_max_step_per_call() {
        // 50/50 -> 90/10: +-0.10 per call, four calls, then it stays.
        let target = [(0, 9000), (1, 1000)];
        let mut w = vec![(0, 5000), (1, 5000)];
        let mut seen = Vec::new();
        for _ in 0..5 {
            w = damp(&w, &target, &D);
            seen.push(w.clone());
        }
        assert_eq!(
            seen,
            vec![
                vec![(0, 6000), (1, 4000)],
                vec![(0, 7000), (1, 3000)],
                vec![(0, 8000), (1, 2000)],
                vec![(0, 9000), (1, 1000)],
                vec![(0, 9000), (1, 1000)],
            ]
        );
    }

    #[test]
    fn three_way_moves_keep_the_sum_and_the_bound() {
        // Shares .8/.1/.1 -> .2/.4/.4: largest distance .6, fraction 1/6:
        // .8-.1 = .7, .1+.05 = .15, .15.
        let w = damp(
            &[(0, 8000), (1, 1000), (2, 1000)],
            &[(0, 2), (1, 4), (2, 4)],
            &D,
        );
        assert_eq!(w, vec![(0, 7000), (1, 1500), (2, 1500)]);
    }

    #[test]
    fn hysteresis_holds_small_moves() {
        let prev = [(0, 5000), (1, 5000)];
        // .01 < .02: nothing moves.
        assert_eq!(damp(&prev, &[(0, 5100), (1, 4900)], &D), prev.to_vec());
        // .03: moves all the way (under max_step).
        assert_eq!(
            damp(&prev, &[(0, 5300), (1, 4700)], &D),
            vec![(0, 5300), (1, 4700)]
        );
    }

    #[test]
    fn a_down_member_drops_at_once() {
        // VS 2 (20%) is gone: 5000/3000 renormalise to .625/.375, which is the target.
        let w = damp(
            &[(0, 5000), (1, 3000), (2, 2000)],
            &[(0, 6250), (1, 3750)],
            &D,
        );
        assert_eq!(w, vec![(0, 6250), (1, 3750)]);
        // Even against a target that moves the others a lot, VS 2 is out at once and the
        // others are bounded: .625/.375 -> .1/.9 moves by .1: .525/.475.
        let w = damp(&[(0, 5000), (1, 3000), (2, 2000)], &[(0, 1), (1, 9)], &D);
        assert_eq!(w, vec![(0, 5250), (1, 4750)]);
    }

    #[test]
    fn a_new_member_ramps_up_from_zero() {
        // .5/.5/0 -> .34/.33/.33: largest distance .33 (VS 2), fraction .1/.33:
        // .5 - .16*.30303 = .451515, .5 - .17*.30303 = .448485, 0 + .1.
        let w = damp(
            &[(0, 5000), (1, 5000)],
            &[(0, 3400), (1, 3300), (2, 3300)],
            &D,
        );
        assert_eq!(w, vec![(0, 4515), (1, 4485), (2, 1000)]);
    }

    #[test]
    fn nothing_before_takes_the_target() {
        let t = [(0, 5714), (1, 2857), (2, 1429)];
        assert_eq!(damp(&[], &t, &D), t.to_vec());
        // No previous member left: nothing to ramp from either.
        assert_eq!(damp(&[(7, 10_000)], &t, &D), t.to_vec());
    }

    #[test]
    fn a_member_held_at_zero_keeps_weight_one() {
        // New member with target share .01 < hysteresis: nothing moves, it stays at 0 but is
        // kept with weight 1.
        let w = damp(&[(0, 10_000)], &[(0, 9900), (1, 100)], &D);
        assert_eq!(w, vec![(0, 10_000), (1, 1)]);
    }

    #[test]
    fn damper_damps_dynamic_answers_and_forgets_otherwise() {
        let answer = |m: Vec<(VsId, u32)>| Outcome::Answer {
            members: m,
            ttl: 30,
            records: 1,
            persist: false,
        };
        let mut dm = Damper::new();
        let k = (0, 42);
        assert_eq!(
            dm.apply(k, answer(vec![(0, 5000), (1, 5000)]), true, &D),
            answer(vec![(0, 5000), (1, 5000)])
        );
        assert_eq!(
            dm.apply(k, answer(vec![(0, 9000), (1, 1000)]), true, &D),
            answer(vec![(0, 6000), (1, 4000)])
        );
        // Another key is independent.
        assert_eq!(
            dm.apply((1, 42), answer(vec![(0, 9000), (1, 1000)]), true, &D),
            answer(vec![(0, 9000), (1, 1000)])
        );
        // A static answer passes and resets the state.
        assert_eq!(
            dm.apply(k, answer(vec![(0, 1), (1, 1)]), false, &D),
            answer(vec![(0, 1), (1, 1)])
        );
        assert_eq!(
            dm.apply(k, answer(vec![(0, 9000), (1, 1000)]), true, &D),
            answer(vec![(0, 9000), (1, 1000)])
        );
        assert_eq!(dm.apply(k, Outcome::ServFail, true, &D), Outcome::ServFail);
        assert_eq!(dm.len(), 1);
        dm.retain(|k| k.0 != 1);
        assert!(dm.is_empty());
    }
}
