//! An XDP program on our interface that this xgslbd's pin directory does not know: another
//! xgslbd's (started with another `pin_dir`), alive or crashed, or somebody else's. A crashed
//! xgslbd's program keeps answering from maps nobody updates (frozen: health changes never
//! reach it), so start-up looks for one and detaches it; a live one is left alone and said.
//!
//! Which program it is, the kernel tells by id (rtnetlink, `link_state`); its name and its
//! link come from the BPF object ids, which need CAP_SYS_ADMIN to walk: without it the
//! program is reported by id and left as it is. Alive means some process holds the program
//! (a running xgslbd keeps it loaded): `/proc/*/fdinfo` names the `prog_id` of every BPF
//! descriptor. A crashed xgslbd's program is held only by its pinned link.
use std::{io, os::fd::AsRawFd};

use aya::programs::{links::LinkType, loaded_links, loaded_programs};
use xgslb_common::prog_names;

use super::link_state::xdp_state;

/// What runs on the interface besides what our pin directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// No XDP program, or the one behind our own pinned link.
    None,
    /// An xgslb program that some process holds (a running xgslbd with another pin directory).
    Live { prog_id: u32, pid: u32 },
    /// An xgslb program nobody holds: a crashed (or `--leave-serving`) xgslbd's, frozen.
    Frozen { prog_id: u32, link_id: Option<u32> },
    /// Another program entirely (by its name).
    Other { prog_id: u32, name: String },
    /// A program this process may not look into (no CAP_SYS_ADMIN), by id.
    Unknown { prog_id: u32, why: String },
}

/// What runs on `iface` that is not the program behind our pinned link (`ours`, its id).
pub fn inspect(iface: &str, ours: Option<u32>) -> io::Result<Foreign> {
    let prog_id = xdp_state(iface)?.prog_id;
    if prog_id == 0 || Some(prog_id) == ours {
        return Ok(Foreign::None);
    }
    let name = match program_name(prog_id) {
        Ok(Some(name)) => name,
        Ok(None) => {
            return Ok(Foreign::Unknown {
                prog_id,
                why: "it is not among the loaded programs".into(),
            });
        }
        Err(e) => {
            return Ok(Foreign::Unknown {
                prog_id,
                why: e.to_string(),
            });
        }
    };
    if name != prog_names::XGSLB {
        return Ok(Foreign::Other { prog_id, name });
    }
    Ok(match holder(prog_id) {
        Some(pid) => Foreign::Live { prog_id, pid },
        None => Foreign::Frozen {
            prog_id,
            link_id: xdp_link_of(prog_id),
        },
    })
}

/// The name of loaded program `id`, `None` when there is no such program.
fn program_name(id: u32) -> io::Result<Option<String>> {
    for info in loaded_programs() {
        let info = info.map_err(io::Error::other)?;
        if info.id() == id {
            return Ok(Some(info.name_as_str().unwrap_or_default().to_owned()));
        }
    }
    Ok(None)
}

/// The XDP link whose program is `prog_id`, if it is attached through one.
fn xdp_link_of(prog_id: u32) -> Option<u32> {
    loaded_links()
        .flatten()
        .find(|l| l.program_id() == prog_id && l.link_type().ok() == Some(LinkType::Xdp))
        .map(|l| l.id())
}

/// A process (not this one) holding a descriptor of program `prog_id`.
fn holder(prog_id: u32) -> Option<u32> {
    let me = std::process::id();
    let wanted = format!("prog_id:\t{prog_id}");
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            // Only BPF descriptors name a prog_id; a link's names its program's too, but a
            // link held by a live process is that process's program, alive as well.
            if std::fs::read_to_string(fd.path()).is_ok_and(|i| i.lines().any(|l| l == wanted)) {
                return Some(pid);
            }
        }
    }
    None
}

/// Detaches the XDP link `link_id` (BPF_LINK_DETACH): its program stops answering at once,
/// wherever its pin lies. The link object stays until its last reference goes, detached.
pub fn detach_link(link_id: u32) -> io::Result<()> {
    let fd = link_fd_by_id(link_id)?;
    // `link_detach` of `union bpf_attr`: the link's descriptor.
    #[repr(C)]
    struct LinkDetachAttr {
        link_fd: u32,
    }
    const BPF_LINK_DETACH: libc::c_long = 34;
    let attr = LinkDetachAttr {
        link_fd: fd.as_raw_fd() as u32,
    };
    // SAFETY: the attr is a valid `link_detach` member that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_DETACH,
            &attr as *const LinkDetachAttr,
            size_of::<LinkDetachAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A descriptor of link `id` (BPF_LINK_GET_FD_BY_ID).
fn link_fd_by_id(id: u32) -> io::Result<std::os::fd::OwnedFd> {
    // The `link_id` form of the `*_GET_FD_BY_ID` member of `union bpf_attr`.
    #[repr(C)]
    struct GetFdAttr {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    let attr = GetFdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: the attr is a valid member that outlives the call; a non-negative result is a
    // new descriptor this process owns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_GET_FD_BY_ID,
            &attr as *const GetFdAttr,
            size_of::<GetFdAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(rc as i32) })
}
