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
    scale, topology, vs_name,
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
    notes: &mut Vec<String>,
    what: &str,
    better: Better,
    metric: impl Fn(VsId) -> Option<f64>,
) -> MethodResult {
    let mut raw: Vec<(VsId, f64)> = Vec::new();
    let mut seen: Vec<f64> = Vec::new();
    for m in input.members {
        let name = vs_name(input.model, m.vs);
        // A negative or non-finite value is a broken report: treat it as unknown.
        match metric(m.vs).filter(|x| x.is_finite() && *x >= 0.0) {
            None => notes.push(format!("{name} out (no {what})")),
            Some(x) if better == Better::Higher && x == 0.0 => {
                notes.push(format!("{name} out ({what} 0)"))
            }
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
        return MethodResult::Next(format!("no available member has {what}"));
    }
    let weights = scale(&raw);
    for (&(vs, w), x) in weights.iter().zip(&seen) {
        notes.push(format!(
            "{} {what} {x}: weight {w}",
            vs_name(input.model, vs)
        ));
    }
    MethodResult::Members {
        members: weights,
        persist: false,
    }
}

fn path_method(
    input: &Input,
    notes: &mut Vec<String>,
    what: &str,
    better: Better,
    metric: impl Fn(PathMetrics) -> f64,
) -> MethodResult {
    if input.client.paths.is_none() {
        return MethodResult::Next("no path metrics for this client".into());
    }
    by_metric(input, notes, what, better, |vs| {
        path(input, vs).map(&metric)
    })
}

/// Least Connections: weight ∝ 1/(connections + 1).
pub fn least_connections(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    by_metric(input, notes, "connections", Better::Lower, |vs| {
        vs_metrics(input, vs).connections.map(|c| c as f64)
    })
}

/// Packet Rate: weight ∝ 1/(packets/s + 1).
pub fn packet_rate(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    by_metric(input, notes, "packets/s", Better::Lower, |vs| {
        vs_metrics(input, vs).packets_per_second.map(|c| c as f64)
    })
}

/// Kilobytes/s: weight ∝ 1/(reported kilobits/s + 1) (the same order as kilobytes).
pub fn kilobytes_per_second(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    by_metric(input, notes, "kbit/s", Better::Lower, |vs| {
        vs_metrics(input, vs).kilobits_per_second.map(|c| c as f64)
    })
}

/// CPU: weight ∝ 1/(cpu percent + 1).
pub fn cpu(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    by_metric(input, notes, "cpu %", Better::Lower, |vs| {
        vs_metrics(input, vs).cpu_percent
    })
}

/// VS Capacity: weight ∝ the reported capacity, else the configured one; 0 is out.
pub fn vs_capacity(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    by_metric(input, notes, "capacity", Better::Higher, |vs| {
        capacity(input, vs).map(|c| c as f64)
    })
}

fn capacity(input: &Input, vs: VsId) -> Option<u64> {
    vs_metrics(input, vs)
        .capacity
        .or_else(|| input.model.vss.get(vs).and_then(|v| v.capacity))
}

/// VS Score: weight ∝ the reported score; 0 is out.
pub fn vs_score(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    by_metric(input, notes, "score", Better::Higher, |vs| {
        vs_metrics(input, vs).score.map(|c| c as f64)
    })
}

/// Round Trip Time: weight ∝ 1/(rtt ms + 1) of the path from the member's site to the client.
pub fn round_trip_time(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    path_method(input, notes, "rtt ms", Better::Lower, |p| p.rtt_ms)
}

/// Hops: weight ∝ 1/(hops + 1) of the path from the member's site to the client.
pub fn hops(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    path_method(input, notes, "hops", Better::Lower, |p| p.hops as f64)
}

/// Completion Rate: weight ∝ the share of probes from the member's site that the client's
/// LDNS answered; 0 is out.
pub fn completion_rate(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    path_method(input, notes, "completion", Better::Higher, |p| p.completion)
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
pub fn quality_of_service(input: &Input, notes: &mut Vec<String>) -> MethodResult {
    let q = input.pool.qos;
    type Value<'a> = Box<dyn Fn(VsId) -> Option<f64> + 'a>;
    let terms: [(&str, f64, Norm, Value); 8] = [
        (
            "rtt",
            q.round_trip_time,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| path(input, vs).map(|p| p.rtt_ms)),
        ),
        (
            "completion",
            q.completion_rate,
            Norm::MinMax(Better::Higher),
            Box::new(|vs| path(input, vs).map(|p| p.completion)),
        ),
        (
            "packet_rate",
            q.packet_rate,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| vs_metrics(input, vs).packets_per_second.map(|x| x as f64)),
        ),
        (
            "kilobytes_per_second",
            q.kilobytes_per_second,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| vs_metrics(input, vs).kilobits_per_second.map(|x| x as f64)),
        ),
        (
            "hops",
            q.hops,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| path(input, vs).map(|p| p.hops as f64)),
        ),
        (
            "vs_capacity",
            q.vs_capacity,
            Norm::MinMax(Better::Higher),
            Box::new(|vs| capacity(input, vs).map(|x| x as f64)),
        ),
        (
            "topology",
            q.topology,
            Norm::OverMax,
            Box::new(|vs| Some(topology::score(input.model, input.client, vs) as f64)),
        ),
        (
            "connections",
            q.connections,
            Norm::MinMax(Better::Lower),
            Box::new(|vs| vs_metrics(input, vs).connections.map(|x| x as f64)),
        ),
    ];
    let mut score = vec![0.0f64; input.members.len()];
    let mut any_term = false;
    for (name, coef, norm, value) in &terms {
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
            notes.push(format!("qos: no member has {name}"));
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
        return MethodResult::Next("no member has any quality of service metric".into());
    }
    let mut raw = Vec::new();
    for (m, &s) in input.members.iter().zip(&score) {
        let name = vs_name(input.model, m.vs);
        if s > 0.0 {
            notes.push(format!("{name} qos score {s:.3}"));
            raw.push((m.vs, s));
        } else {
            notes.push(format!("{name} out (qos score 0)"));
        }
    }
    if raw.is_empty() {
        return MethodResult::Next("every member has qos score 0".into());
    }
    MethodResult::Members {
        members: scale(&raw),
        persist: false,
    }
}
