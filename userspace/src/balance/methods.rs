//! One pure function per pool method: the static methods here, the dynamic ones in
//! [`super::dynamic`], and [`run`] dispatching a `Method` to its function.
pub use super::method::{Input, MethodResult};
use super::{
    dynamic, topology,
    trace::{Next, TierStep},
};
use crate::model::{Method, VsId};

/// Whether a method picks among the pool's members (so their availability matters to it).
pub const fn picks_members(m: Method) -> bool {
    !matches!(
        m,
        Method::FallbackIp | Method::DropPacket | Method::ReturnToDns | Method::None
    )
}

/// Runs `method` over `input`. Steps explaining the choice (members left out and why, weights)
/// are pushed to `notes`.
pub fn run(method: Method, input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    if picks_members(method) && input.members.is_empty() {
        return MethodResult::Next(Next::NoAvailableMember);
    }
    match method {
        Method::RoundRobin => round_robin(input),
        Method::Ratio => ratio(input),
        Method::GlobalAvailability => global_availability(input),
        Method::Topology => topology(input, notes),
        Method::StaticPersist => static_persist(input),
        Method::FallbackIp => fallback_ip(input),
        Method::DropPacket => MethodResult::Drop,
        Method::ReturnToDns => MethodResult::ReturnToDns,
        Method::None => MethodResult::Next(Next::MethodNone),
        Method::LeastConnections => dynamic::least_connections(input, notes),
        Method::PacketRate => dynamic::packet_rate(input, notes),
        Method::KilobytesPerSecond => dynamic::kilobytes_per_second(input, notes),
        Method::VsCapacity => dynamic::vs_capacity(input, notes),
        Method::VsScore => dynamic::vs_score(input, notes),
        Method::Cpu => dynamic::cpu(input, notes),
        Method::RoundTripTime => dynamic::round_trip_time(input, notes),
        Method::Hops => dynamic::hops(input, notes),
        Method::CompletionRate => dynamic::completion_rate(input, notes),
        Method::QualityOfService => dynamic::quality_of_service(input, notes),
    }
}

/// Round Robin: every available member, weight 1 each.
pub fn round_robin(input: &Input) -> MethodResult {
    MethodResult::members(input.members.iter().map(|m| (m.vs, 1)).collect())
}

/// Ratio: every available member, weighted by its ratio (at least 1).
pub fn ratio(input: &Input) -> MethodResult {
    MethodResult::members(
        input
            .members
            .iter()
            .map(|m| (m.vs, m.ratio.max(1)))
            .collect(),
    )
}

/// Global Availability: the first available member in pool order, alone.
pub fn global_availability(input: &Input) -> MethodResult {
    MethodResult::members(input.members.iter().take(1).map(|m| (m.vs, 1)).collect())
}

/// Topology: the available members with the highest topology score (> 0) for the client,
/// weight 1 each (ties share equally). No member scoring above 0: next tier.
pub fn topology(input: &Input, notes: &mut Vec<TierStep>) -> MethodResult {
    let scored: Vec<(VsId, u32)> = input
        .members
        .iter()
        .map(|m| (m.vs, topology::score(input.model, input.client, m.vs)))
        .collect();
    notes.extend(
        scored
            .iter()
            .map(|&(vs, score)| TierStep::TopologyScore { vs, score }),
    );
    let best = scored.iter().map(|s| s.1).max().unwrap_or(0);
    if best == 0 {
        return MethodResult::Next(Next::NoTopologyScore);
    }
    MethodResult::members(
        scored
            .into_iter()
            .filter(|s| s.1 == best)
            .map(|s| (s.0, 1))
            .collect(),
    )
}

/// Static Persist: every available member, weight 1 each, picked by a hash of the client's
/// masked LDNS address so that one LDNS keeps getting the same member while it stays up.
pub fn static_persist(input: &Input) -> MethodResult {
    MethodResult::Members {
        members: input.members.iter().map(|m| (m.vs, 1)).collect(),
        persist: true,
    }
}

/// Fallback IP: the pool's fallback address (not health checked); without one, next tier.
pub fn fallback_ip(input: &Input) -> MethodResult {
    match input.pool.fallback_ip {
        Some(addr) => MethodResult::FallbackIp(addr),
        None => MethodResult::Next(Next::NoFallbackIp),
    }
}
