//! The metrics file: until agents report (issue 5), an operator or a script writes what is
//! known of the virtual servers and of the paths to LDNS prefixes into a TOML file that xgslbd
//! watches (`balancer.metrics_file` in the config). See `config/metrics.example.toml`.
//!
//! ```toml
//! [[vs]]                     # one per virtual server that something is known of
//! name = "tokyo-www"         # a [[virtual_server]] name of the config
//! up = true                  # health: false takes it out of rotation; left out = unknown (up)
//! connections = 120          # current connections (whole number)
//! packets_per_second = 1000  # packets/s (a number >= 0, rounded)
//! kilobits_per_second = 5000 # kbit/s (a number >= 0, rounded)
//! cpu_percent = 40.5         # 0..=100
//! capacity = 1000            # connections it can take: overrides the configured capacity
//! score = 80                 # an operator's score, higher is better
//!
//! [[path]]                   # one per (LDNS prefix, site) probed
//! ldns = "198.18.64.0/24"    # the LDNS prefix (CIDR, host bits zero; an address is a /32, /128)
//! site = "tokyo"             # a [[site]] name of the config
//! rtt_ms = 12.5              # round-trip time, milliseconds, >= 0
//! hops = 7                   # hop count
//! completion = 0.99          # share of probes answered, 0..=1
//! ```
//! Every key of `[[vs]]` but `name` is optional (unknown); every key of `[[path]]` is required.
//! Unknown keys, a virtual server or a (prefix, site) twice, and names the config does not
//! have are errors that name the key (`vs[2].name: no virtual server "x"`); a file with an
//! error is refused as a whole.
//!
//! [`MetricsWatcher`] notices a change by the file's modification time and length: write the
//! new file beside the old and rename it over, so the watcher never reads half a file.
use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::SystemTime,
};

use ipnet::IpNet;
use serde::Deserialize;

use crate::model::{Metrics, Model, PathMetrics, VsMetrics};

/// Why a metrics file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The file could not be read (or is missing).
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (the message has line and column).
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value that parses but is not acceptable.
    #[error("{path}: {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: String,
        why: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default)]
    vs: Vec<RawVs>,
    #[serde(default)]
    path: Vec<RawPath>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVs {
    name: String,
    #[serde(default)]
    up: Option<bool>,
    #[serde(default)]
    connections: Option<u64>,
    #[serde(default)]
    packets_per_second: Option<f64>,
    #[serde(default)]
    kilobits_per_second: Option<f64>,
    #[serde(default)]
    cpu_percent: Option<f64>,
    #[serde(default)]
    capacity: Option<u64>,
    #[serde(default)]
    score: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    ldns: String,
    site: String,
    rtt_ms: f64,
    hops: u32,
    completion: f64,
}

/// Reads and validates the metrics file at `path` against `model`.
pub fn load_metrics(path: &Path, model: &Model) -> Result<Metrics, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_metrics(path, &text, model)
}

/// Validates `text` (as read from `path`, for messages) against `model`: names become ids.
pub fn parse_metrics(path: &Path, text: &str, model: &Model) -> Result<Metrics, MetricsError> {
    let raw: RawMetrics = toml::from_str(text).map_err(|e| MetricsError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let invalid = |key: String, why: String| MetricsError::Invalid {
        path: path.to_owned(),
        key,
        why,
    };
    let vs_ids: HashMap<&str, usize> = model
        .vss
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.as_str(), i))
        .collect();
    let site_ids: HashMap<&str, usize> = model
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();

    let mut metrics = Metrics::default();
    let mut vs_at: HashMap<usize, usize> = HashMap::new();
    for (i, v) in raw.vs.iter().enumerate() {
        let key = |k: &str| format!("vs[{i}].{k}");
        let Some(&id) = vs_ids.get(v.name.as_str()) else {
            return Err(invalid(
                key("name"),
                format!("no virtual server {:?}", v.name),
            ));
        };
        if let Some(j) = vs_at.insert(id, i) {
            return Err(invalid(
                key("name"),
                format!("{:?} twice (also vs[{j}])", v.name),
            ));
        }
        let rate = |k: &str, x: Option<f64>| match x {
            Some(x) if !(x.is_finite() && x >= 0.0) => {
                Err(invalid(key(k), format!("{x} is not a finite number >= 0")))
            }
            x => Ok(x.map(|x| x.round() as u64)),
        };
        let cpu_percent = match v.cpu_percent {
            Some(c) if !(0.0..=100.0).contains(&c) => {
                return Err(invalid(
                    key("cpu_percent"),
                    format!("{c} is not in 0..=100"),
                ));
            }
            c => c,
        };
        metrics.vs.insert(
            id,
            VsMetrics {
                up: v.up,
                connections: v.connections,
                packets_per_second: rate("packets_per_second", v.packets_per_second)?,
                kilobits_per_second: rate("kilobits_per_second", v.kilobits_per_second)?,
                cpu_percent,
                capacity: v.capacity,
                score: v.score,
            },
        );
    }

    let mut path_at: HashMap<(IpNet, usize), usize> = HashMap::new();
    for (i, p) in raw.path.iter().enumerate() {
        let key = |k: &str| format!("path[{i}].{k}");
        let ldns: IpNet = match p.ldns.parse() {
            Ok(n) => n,
            // A bare address is a host prefix.
            Err(_) => match p.ldns.parse::<IpAddr>() {
                Ok(a) => IpNet::from(a),
                Err(_) => {
                    return Err(invalid(
                        key("ldns"),
                        format!("{:?} is not a prefix (address/length)", p.ldns),
                    ));
                }
            },
        };
        if ldns.trunc() != ldns {
            return Err(invalid(
                key("ldns"),
                format!("{ldns} has host bits set (the prefix is {})", ldns.trunc()),
            ));
        }
        let Some(&site) = site_ids.get(p.site.as_str()) else {
            return Err(invalid(key("site"), format!("no site {:?}", p.site)));
        };
        if let Some(j) = path_at.insert((ldns, site), i) {
            return Err(invalid(
                format!("path[{i}]"),
                format!("{ldns} from {:?} twice (also path[{j}])", p.site),
            ));
        }
        if !(p.rtt_ms.is_finite() && p.rtt_ms >= 0.0) {
            return Err(invalid(
                key("rtt_ms"),
                format!("{} is not a finite number >= 0", p.rtt_ms),
            ));
        }
        if !(0.0..=1.0).contains(&p.completion) {
            return Err(invalid(
                key("completion"),
                format!("{} is not in 0..=1", p.completion),
            ));
        }
        metrics.paths.entry(ldns).or_default().insert(
            site,
            PathMetrics {
                rtt_ms: p.rtt_ms,
                hops: p.hops,
                completion: p.completion,
            },
        );
    }
    Ok(metrics)
}

/// What the watcher last saw of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// It could not be stat'ed (and that was reported).
    Missing,
    /// Its modification time and length.
    File(SystemTime, u64),
}

/// Watches the metrics file: [`poll`](Self::poll) (each balancer tick) yields the file's
/// metrics when it changed.
#[derive(Debug)]
pub struct MetricsWatcher {
    path: PathBuf,
    last: Option<Seen>,
}

impl MetricsWatcher {
    /// A watcher of `path` that has seen nothing yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            last: None,
        }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forgets what was seen, so the next poll reads the file again (after a config reload:
    /// the same file may name other objects, or the same names other ids).
    pub fn invalidate(&mut self) {
        self.last = None;
    }

    /// `Some` when the file's modification time or length changed since the last poll (the
    /// first poll: when it exists), with the file's metrics or why they were refused. A
    /// missing (or unreadable) file is `Some(Err)` once, then `None` until it appears again.
    pub fn poll(&mut self, model: &Model) -> Option<Result<Metrics, MetricsError>> {
        let seen = match std::fs::metadata(&self.path) {
            Ok(md) => Seen::File(md.modified().unwrap_or(SystemTime::UNIX_EPOCH), md.len()),
            Err(source) => {
                if self.last == Some(Seen::Missing) {
                    return None;
                }
                self.last = Some(Seen::Missing);
                return Some(Err(MetricsError::Read {
                    path: self.path.clone(),
                    source,
                }));
            }
        };
        if self.last == Some(seen) {
            return None;
        }
        // Stat'ed before reading: a change during the read shows at the next poll.
        self.last = Some(seen);
        Some(load_metrics(&self.path, model))
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
