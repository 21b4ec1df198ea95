//! The state file: the agents' last reports (health, load, LDNS paths) with when each
//! arrived, saved by the balancer (atomically: a temporary file, fsync, rename) and read back
//! at start, so that a restarted xgslbd knows what its predecessor knew, with its age.
//!
//! JSON, versioned. What it holds is only ever a hint: a missing file is an empty state, a
//! corrupt or foreign one is refused whole with a reason (the caller warns and starts without
//! it), and entries are judged by their age when restored (`AgentMetrics::restore`).
use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The format this build writes and reads.
pub const VERSION: u32 = 1;

/// What the state file holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// When it was written (ms since the Unix epoch).
    pub saved_ms: u64,
    /// Each virtual server's last report, by name.
    pub vss: Vec<SavedVs>,
    /// Each (LDNS prefix, site) path's last report.
    #[serde(default)]
    pub paths: Vec<SavedPath>,
}

/// One virtual server's last report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedVs {
    pub name: String,
    /// The site that reported it.
    pub site: String,
    /// Health: up, down, or not reported (`null`).
    pub up: Option<bool>,
    /// When health arrived (ms since the epoch).
    pub health_ms: Option<u64>,
    pub load: Option<super::wire::Load>,
    pub load_ms: Option<u64>,
}

/// One LDNS path's last report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPath {
    /// The LDNS prefix, as `198.18.3.0/24`.
    pub prefix: String,
    pub site: String,
    pub rtt_ms: f64,
    pub hops: u32,
    pub completion: f64,
    pub at_ms: u64,
}

/// Why a state file was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// It could not be read.
    #[error("state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// It is not a state file of this format (corrupt, truncated, another version).
    #[error("state file {path} ignored: {why}")]
    Invalid { path: PathBuf, why: String },
}

/// Reads the state file at `path`: `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let invalid = |why: String| StateError::Invalid {
        path: path.to_owned(),
        why,
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if state.version != VERSION {
        return Err(invalid(format!(
            "version {} (this xgslbd reads {VERSION})",
            state.version
        )));
    }
    Ok(Some(state))
}

/// Writes `state` to `path` atomically: a temporary file beside it, written and synced, then
/// renamed over it (and the directory synced), so that a crash leaves the old file or the
/// new one, never a part. The directory is created if need be.
pub fn save(path: &Path, state: &State) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    // Unique per write: two writers (two xgslbd in one test process) never share one.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

/// The default state file of an xgslbd whose pins are in `pin_dir`: bpffs holds no plain
/// files, so under /var/lib/xgslb, named after the pin directory (two xgslbd on one host
/// have two pin directories, so two state files).
pub fn default_path(pin_dir: &Path) -> PathBuf {
    let name = pin_dir
        .file_name()
        .map_or_else(|| "xgslb".into(), |n| n.to_string_lossy().into_owned());
    PathBuf::from("/var/lib/xgslb").join(format!("{name}.state.json"))
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
