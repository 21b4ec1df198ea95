//! The dynamic pool methods: weights from metrics, integers summing to about
//! [`WEIGHT_SCALE`](super::WEIGHT_SCALE), each >= 1.
//!
//! - Lower is better (Least Connections, Packet Rate, Kilobytes/s, CPU, Round Trip Time,
//!   Hops): weight ∝ 1/(metric + 1), so a 0 never divides by zero and an idle member is not
//!   infinitely preferred.
//! - Higher is better (VS Capacity, VS Score, Completion Rate): weight ∝ metric; a member at 0
//!   is left out.
//! - Quality of Service: see [`quality_of_service`].
//!
//! A member lacking the metric is left out (and traced); if no member has it, the method
//! yields nothing and the next tier is tried. Path methods (Round Trip Time, Hops, Completion
//! Rate) read the client's path metrics to each member's site: a client without path metrics
//! falls through.
use super::{
    method::{Input, MethodResult},
    scale, topology,
    trace::{Metric, Next, QosTerm, TierStep, Why},
};
use crate::model::{PathMetrics, VsId, VsMetrics};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

fn vs_metrics(input: &Input, vs: VsId) -> VsMetrics {
    input.metrics.vs.get(&vs).copied().unwrap_or_default()
}

/// Path metrics from the VS's site to the client's LDNS prefix.
fn path(input: &Input, vs: VsId) -> Option<PathMetrics> {
    let site = input.model.vss.get(vs)?.site;
    input.client.paths.as_ref()?.get(&site).copied()
}

/// The common shape of the single-metric methods.
fn by_metric(
    input: &Input,
    notes: &mut Vec<TierStep>,
    what: Metric,
    better: Better,
    metric: impl Fn(VsId) -> Option<f64>,
) -> MethodResult {
    let mut raw: Vec<(VsId, f64)> = Vec::new();
    let mut seen: Vec<f64> = Vec::new();
    for m in input.members {
        let out = |why| TierStep::Out { vs: m.vs, why };
        // A negative or non-finite value is a broken report: treat it as unknown.
        match metric(m.vs).filter(|x| x.is_finite() && *x >= 0.0) {
            None => notes.push(out(Why::NoMetric(what))),
            Some(x) if better == Better::Higher && x == 0.0 => notes.push(out(Why::Zero(what))),
            Some(x) => {
                let score = match better {
                    Better::Lower => 1.0 / (x + 1.0),
                    Better::Higher => x,
                };
                raw.push((m.vs, score));
                seen.push(x);
            }
        }
    }
    if raw.is_empty() {
        return MethodResult::Next(Next::NoMetric(what));
    }
    let weights = scale(&raw);
    notes.extend(
        weights
            .iter()
            .zip(&seen)
            .map(|(&(vs, weight), &value)| TierStep::Weight {
                vs,
                metric: what,
                value,
                weight,
            }),
    );
    MethodResult::Members {
        members: weights,
        persist: false,
    }
}

fn path_method(
    input: &Input,
    notes: &mut Vec<TierStep>,
    what: Metric,
    better: Better,
    metric: impl Fn(PathMetrics) -> f64,
) -> MethodResult {
    if input.client.paths.is_none() {
        return MethodResult::Next(Next::NoPathMetrics);
    }
    by_metric(input, notes, what, better, |vs| {
        path(input, vs).map(&metric)
    })
}

/// Least Connections: weight ∝ 1/(connections + 1).
pub fn least_connections(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    by_metric(input, notes, Metric::Connections, Better::Lower, |vs| {
        vs_metrics(input, vs).connections.map(|c| c as f64)
    })
}

/// Packet Rate: weight ∝ 1/(packets/s + 1).
pub fn packet_rate(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    by_metric(
        input,
        notes,
        Metric::PacketsPerSecond,
        Better::Lower,
        |vs| vs_metrics(input, vs).packets_per_second.map(|c| c as f64),
    )
}

/// Kilobytes/s: weight ∝ 1/(reported kilobits/s + 1) (the same order as kilobytes).
pub fn kilobytes_per_second(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    by_metric(
        input,
        notes,
        Metric::KilobitsPerSecond,
        Better::Lower,
        |vs| vs_metrics(input, vs).kilobits_per_second.map(|c| c as f64),
    )
}

/// CPU: weight ∝ 1/(cpu percent + 1).
pub fn cpu(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    by_metric(input, notes, Metric::Cpu, Better::Lower, |vs| {
        vs_metrics(input, vs).cpu_percent
    })
}

/// VS Capacity: weight ∝ the reported capacity, else the configured one; 0 is out.
pub fn vs_capacity(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    by_metric(input, notes, Metric::Capacity, Better::Higher, |vs| {
        capacity(input, vs).map(|c| c as f64)
    })
}

fn capacity(input: &Input, vs: VsId) -> Option<u64> {
    vs_metrics(input, vs)
        .capacity
        .or_else(|| input.model.vss.get(vs).and_then(|v| v.capacity))
}

/// VS Score: weight ∝ the reported score; 0 is out.
pub fn vs_score(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    by_metric(input, notes, Metric::Score, Better::Higher, |vs| {
        vs_metrics(input, vs).score.map(|c| c as f64)
    })
}

/// Round Trip Time: weight ∝ 1/(rtt ms + 1) of the path from the member's site to the client.
pub fn round_trip_time(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    path_method(input, notes, Metric::RoundTripTime, Better::Lower, |p| {
        p.rtt_ms
    })
}

/// Hops: weight ∝ 1/(hops + 1) of the path from the member's site to the client.
pub fn hops(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    path_method(input, notes, Metric::Hops, Better::Lower, |p| p.hops as f64)
}

/// Completion Rate: weight ∝ the share of probes from the member's site that the client's
/// LDNS answered; 0 is out.
pub fn completion_rate(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    path_method(input, notes, Metric::Completion, Better::Higher, |p| {
        p.completion
    })
}

/// How one Quality of Service term is normalised.
#[derive(Clone, Copy)]
enum Norm {
    /// Min-max over the members that have it; 1 = best; all equal: 1 for all.
    MinMax(Better),
    /// Score over the highest score (0 when every score is 0).
    OverMax,
}

/// Quality of Service: for each metric whose coefficient is > 0, the members that have it are
/// normalised to 0..=1 (1 = best; min-max; all equal gives 1 to all; topology is score over
/// the highest score); a member's score is the sum of coefficient × normalised value (a
/// metric it lacks adds nothing), and its weight is proportional to the score. Members
/// scoring 0 are out. Path terms count only for clients with path metrics; load terms still
/// count without them. No member with any term: next tier.
pub fn quality_of_service(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    let q = input.pool.qos;
    type Value<'a> = Box<dyn Fn(VsId) -> Option<f64> + 'a>;
    let terms: [(QosTerm, f64, Norm, Value); 8] = [
        (
            QosTerm::RoundTripTime,
            q.round_trip_time,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| path(input, vs).map(|p| p.rtt_ms)),
        ),
        (
            QosTerm::Completion,
            q.completion_rate,
            Norm::MinMax(Better::Higher),
            Box::new(|vs| path(input, vs).map(|p| p.completion)),
        ),
        (
            QosTerm::PacketRate,
            q.packet_rate,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| vs_metrics(input, vs).packets_per_second.map(|x| x as f64)),
        ),
        (
            QosTerm::KilobytesPerSecond,
            q.kilobytes_per_second,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| vs_metrics(input, vs).kilobits_per_second.map(|x| x as f64)),
        ),
        (
            QosTerm::Hops,
            q.hops,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| path(input, vs).map(|p| p.hops as f64)),
        ),
        (
            QosTerm::VsCapacity,
            q.vs_capacity,
            Norm::MinMax(Better::Higher),
            Box::new(|vs| capacity(input, vs).map(|x| x as f64)),
        ),
        (
            QosTerm::Topology,
            q.topology,
            Norm::OverMax,
            Box::new(|vs| Some(topology::score(input.model, input.client, vs) as f64)),
        ),
        (
            QosTerm::Connections,
            q.connections,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| vs_metrics(input, vs).connections.map(|x| x as f64)),
        ),
    ];
    let mut score = vec![0.0f64; input.members.len()];
    let mut any_term = false;
    for (term, coef, norm, value) in &terms {
        if !coef.is_finite() || *coef <= 0.0 {
            continue;
        }
        let values: Vec<Option<f64>> = input
            .members
            .iter()
            .map(|m| value(m.vs).filter(|x| x.is_finite() && *x >= 0.0))
            .collect();
        let known: Vec<f64> = values.iter().flatten().copied().collect();
        if known.is_empty() {
            notes.push(TierStep::QosMissing(*term));
            continue;
        }
        any_term = true;
        let min = known.iter().copied().fold(f64::INFINITY, f64::min);
        let max = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (s, v) in score.iter_mut().zip(&values) {
            let Some(x) = *v else { continue };
            let n = match norm {
                Norm::OverMax if max > 0.0 => x / max,
                Norm::OverMax => 0.0,
                Norm::MinMax(_) if max == min => 1.0,
                Norm::MinMax(Better::Lower) => (max - x) / (max - min),
                Norm::MinMax(Better::Higher) => (x - min) / (max - min),
            };
            *s += coef * n;
        }
    }
    if !any_term {
        return MethodResult::Next(Next::NoQosMetric);
    }
    let mut raw = Vec::new();
    for (m, &s) in input.members.iter().zip(&score) {
        if s > 0.0 {
            notes.push(TierStep::QosScore { vs: m.vs, score: s });
            raw.push((m.vs, s));
        } else {
            notes.push(TierStep::Out {
                vs: m.vs,
                why: Why::QosZero,
            });
        }
    }
    if raw.is_empty() {
        return MethodResult::Next(Next::QosAllZero);
    }
    MethodResult::Members {
        members: scale(&raw),
        persist: false,
    }
}
