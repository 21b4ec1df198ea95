//! The capabilities xgslbd needs to run as an unprivileged user, which of them this process
//! lacks, and the hint an operation the kernel refused for want of one gets: an operator who
//! left one out of a unit file reads its name in the error, not a bare EPERM.
//!
//! What needs what (the README's "Running as an unprivileged user" has the list):
//! - CAP_BPF: creating the BPF maps and loading the program (the kernel refuses every bpf()
//!   call without it when unprivileged BPF is disabled, as Debian's kernels have it);
//! - CAP_PERFMON: the verifier allows the program's arithmetic on packet pointers only with it;
//! - CAP_NET_ADMIN: loading an XDP program and attaching it to an interface;
//! - CAP_NET_BIND_SERVICE: binding port 53 (any port below 1024).
use std::error::Error;

/// A Linux capability (the numbers of include/uapi/linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    NetBindService = 10,
    NetAdmin = 12,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Capability {
    /// The name as capabilities(7) and systemd spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NetBindService => "CAP_NET_BIND_SERVICE",
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::Perfmon => "CAP_PERFMON",
            Self::Bpf => "CAP_BPF",
        }
    }

    fn bit(self) -> u64 {
        1 << self as u32
    }
}

/// What an operation needs: each capability with why (the hint's words).
#[derive(Debug)]
pub struct Needs {
    pub caps: &'static [(Capability, &'static str)],
}

use Capability::{Bpf, NetAdmin, NetBindService, Perfmon, SysAdmin};

/// Every capability xgslbd needs to serve from XDP as an unprivileged user: what the unit
/// file (contrib/systemd/xgslbd.service) grants.
pub const XGSLBD: [Capability; 4] = [Bpf, Perfmon, NetAdmin, NetBindService];

/// Creating the maps and loading the XDP program.
pub const XDP_LOAD: Needs = Needs {
    caps: &[
        (Bpf, "to create BPF maps and load programs"),
        (
            Perfmon,
            "the verifier allows the program's packet-pointer arithmetic only with it",
        ),
        (NetAdmin, "to load an XDP program"),
    ],
};

/// Attaching the program to an interface (or replacing the program of a pinned link).
pub const XDP_ATTACH: Needs = Needs {
    caps: &[
        (Bpf, "to create the XDP link"),
        (NetAdmin, "to attach XDP to an interface"),
    ],
};

/// Mounting bpffs where none is mounted.
pub const BPFFS_MOUNT: Needs = Needs {
    caps: &[(
        SysAdmin,
        "to mount bpffs: mount it at /sys/fs/bpf before xgslbd starts, as systemd does at boot",
    )],
};

/// Binding a port below 1024 (53).
pub const LOW_PORT: Needs = Needs {
    caps: &[(NetBindService, "to bind a port below 1024")],
};

/// Where the README lists the capabilities.
const SEE: &str = "see \"Running as an unprivileged user\" in the README";

/// This process's effective capabilities (`CapEff` of /proc/self/status), or none when it
/// cannot be read.
pub fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// The capabilities of `needs` that the effective set `effective` lacks, with why each is
/// needed. CAP_SYS_ADMIN stands in for CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, as the kernel
/// lets it for BPF.
pub fn missing(needs: &Needs, effective: u64) -> Vec<(Capability, &'static str)> {
    let has = |c: Capability| effective & c.bit() != 0;
    let stood_in = |c: Capability| matches!(c, Bpf | Perfmon | NetAdmin) && has(SysAdmin);
    needs
        .caps
        .iter()
        .copied()
        .filter(|&(c, _)| !has(c) && !stood_in(c))
        .collect()
}

/// Whether `err`, or an error under it, is the kernel's refusal (EPERM or EACCES).
pub fn refused(err: &(dyn Error + 'static)) -> bool {
    std::iter::successors(Some(err), |&e| e.source()).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|n| n == libc::EPERM || n == libc::EACCES)
    })
}

/// The hint for `err`, an error of an operation that `needs` capabilities: `Some` when the
/// kernel refused it and this process lacks some of them, naming those.
pub fn hint(err: &(dyn Error + 'static), needs: &Needs) -> Option<String> {
    if !refused(err) {
        return None;
    }
    hint_for(&missing(needs, effective()))
}

fn hint_for(missing: &[(Capability, &'static str)]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let each: Vec<String> = missing
        .iter()
        .map(|(c, why)| format!("{} ({why})", c.name()))
        .collect();
    Some(format!("missing {}; {SEE}", each.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn set(caps: &[Capability]) -> u64 {
        let mut bits = 0;
        let mut i = 0;
        while i < caps.len() {
            bits |= 1 << caps[i] as u32;
            i += 1;
        }
        bits
    }

    #[test]
    fn the_missing_ones_are_named_and_sys_admin_stands_in_for_bpf_ones() {
        let names = |m: Vec<(Capability, &str)>| m.into_iter().map(|(c, _)| c).collect::<Vec<_>>();
        let all = set(&[Bpf, Perfmon, NetAdmin, NetBindService]);
        assert!(missing(&XDP_LOAD, all).is_empty());
        assert_eq!(names(missing(&XDP_LOAD, all & !Perfmon.bit())), [Perfmon]);
        assert_eq!(names(missing(&XDP_LOAD, 0)), [Bpf, Perfmon, NetAdmin]);
        assert!(missing(&XDP_LOAD, SysAdmin.bit()).is_empty());
        assert_eq!(names(missing(&LOW_PORT, SysAdmin.bit())), [NetBindService]);
        let hint = hint_for(&missing(&XDP_ATTACH, Bpf.bit())).unwrap();
        assert!(
            hint.starts_with("missing CAP_NET_ADMIN (to attach XDP to an interface); see "),
            "{hint}"
        );
        assert_eq!(hint_for(&[]), None);
    }

    #[test]
    fn a_refusal_is_found_under_other_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let eperm = Outer(std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(refused(&eperm));
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(refused(&eacces));
        let enoent = Outer(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(!refused(&enoent));
        assert_eq!(hint(&enoent, &XDP_LOAD), None);
    }

    #[test]
    fn the_effective_set_is_read() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        // Root has capabilities (which ones depends on the container); a user none.
        assert_eq!(effective() != 0, root);
    }
}
