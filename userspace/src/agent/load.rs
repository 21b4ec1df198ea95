//! Load parsers, pure functions over the text of kernel files and load JSON: established
//! connections from /proc/net/tcp{,6}, interface rates from two samples of
//! /sys/class/net/IF/statistics, CPU busy percent from two samples of /proc/stat, and the
//! JSON a load command or endpoint returns. [`super::sampler`] does the reading.
use std::time::Duration;

use serde::Deserialize;

use super::error::Error;
use crate::metrics::wire::Load;

/// Counts sockets in state ESTABLISHED (01) whose local port is `port`, in the text of
/// /proc/net/tcp or /proc/net/tcp6 (the header line is skipped; malformed lines are errors).
pub fn established_connections(text: &str, port: u16) -> Result<u64, Error> {
    let mut count = 0;
    for (n, line) in text.lines().enumerate().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(Error::Malformed(format!("line {}: too few fields", n + 1)));
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            .ok_or_else(|| Error::Malformed(format!("line {}: local address {local:?}", n + 1)))?;
        let state = u8::from_str_radix(state, 16)
            .map_err(|_| Error::Malformed(format!("line {}: state {state:?}", n + 1)))?;
        if state == 0x01 && local_port == port {
            count += 1;
        }
    }
    Ok(count)
}

/// One sample of an interface's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// One counter file's text (a decimal number and a newline).
pub fn parse_counter(text: &str) -> Result<u64, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::Malformed(format!("{:?} is not a counter", text.trim())))
}

/// Packets/s and kbit/s, received plus sent, between two samples `elapsed` apart. A counter
/// that went back (interface reset) gives None.
pub fn interface_rates(
    before: &InterfaceCounters,
    after: &InterfaceCounters,
    elapsed: Duration,
) -> Option<(u64, u64)> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let packets = after.rx_packets.checked_sub(before.rx_packets)?
        + after.tx_packets.checked_sub(before.tx_packets)?;
    let bytes = after.rx_bytes.checked_sub(before.rx_bytes)?
        + after.tx_bytes.checked_sub(before.tx_bytes)?;
    let pps = (packets as f64 / secs).round() as u64;
    let kbps = (bytes as f64 * 8.0 / 1000.0 / secs).round() as u64;
    Some((pps, kbps))
}

/// CPU time from the aggregate `cpu` line of /proc/stat, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// idle + iowait.
    pub idle: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is already
    /// inside user and nice).
    pub total: u64,
}

/// Reads the `cpu ` line of /proc/stat.
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes, Error> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| Error::Malformed("no aggregate cpu line".into()))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Error::Malformed(format!("cpu field {v:?}")))
        })
        .collect::<Result<_, _>>()?;
    if values.len() < 4 {
        return Err(Error::Malformed(format!(
            "cpu line has {} fields, want 4 or more",
            values.len()
        )));
    }
    let idle = values[3] + values.get(4).copied().unwrap_or(0);
    Ok(CpuTimes {
        idle,
        total: values.iter().sum(),
    })
}

/// Busy percent (0..=100) between two samples; None when no time passed or it went back.
pub fn cpu_busy_percent(before: &CpuTimes, after: &CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let idle = after.idle.checked_sub(before.idle)?;
    if total == 0 || idle > total {
        return None;
    }
    Some((total - idle) as f64 * 100.0 / total as f64)
}

/// The JSON a load command or endpoint returns; every field optional, unknown fields refused
/// (a misspelt field should not pass for an absent one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadJson {
    connections: Option<u64>,
    packets_per_second: Option<u64>,
    kilobits_per_second: Option<u64>,
    cpu_percent: Option<f64>,
    capacity: Option<u64>,
    score: Option<u64>,
}

/// Parses load JSON: `{"connections": .., "packets_per_second": .., "kilobits_per_second":
/// .., "cpu_percent": .., "capacity": .., "score": ..}`.
pub fn parse_load_json(text: &[u8]) -> Result<Load, Error> {
    let j: LoadJson = serde_json::from_slice(text).map_err(Error::LoadJson)?;
    if let Some(c) = j.cpu_percent
        && !(0.0..=100.0).contains(&c)
    {
        return Err(Error::CpuPercent(c));
    }
    Ok(Load {
        connections: j.connections,
        packets_per_second: j.packets_per_second,
        kilobits_per_second: j.kilobits_per_second,
        cpu_percent: j.cpu_percent,
        capacity: j.capacity,
        score: j.score,
    })
}

/// `first`'s fields, with `second`'s where `first` has none.
pub fn merge(first: Load, second: Load) -> Load {
    Load {
        connections: first.connections.or(second.connections),
        packets_per_second: first.packets_per_second.or(second.packets_per_second),
        kilobits_per_second: first.kilobits_per_second.or(second.kilobits_per_second),
        cpu_percent: first.cpu_percent.or(second.cpu_percent),
        capacity: first.capacity.or(second.capacity),
        score: first.score.or(second.score),
    }
}

/// Whether a load says anything at all.
pub fn is_empty(load: &Load) -> bool {
    *load == Load::default()
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
