//! `xgslbd --replace`: a running xgslbd hands its listening sockets and its pin-directory
//! lock to a new one over the control socket, so that during an upgrade no socket closes
//! (nothing queued in one is lost, TCP's accept queue carries over) and the lock is never
//! free (no third xgslbd can take the pins in between).
//!
//! The conversation, on one control connection (N the new xgslbd, O the running one):
//! 1. N → O: a `handover` request line. N has loaded its config, zones and XDP program but
//!    written nothing yet.
//! 2. O stops reading its control, agents', peers' and metrics sockets, pauses its balancer
//!    (state saved, no map written from then on) and sends a manifest line naming each
//!    descriptor, the descriptors attached (SCM_RIGHTS): the pin-directory lock (the same
//!    open file, so flock's lock is N's too), each UDP group socket and TCP listener, the
//!    control listener, and the rest. O's UDP workers and TCP keep answering meanwhile.
//! 3. N publishes (the only map writer from now), attaches (adopting the link), starts its
//!    servers on the same sockets, then sends `serving`.
//! 4. O stops accepting, lets its open TCP connections finish (bounded), stops its workers
//!    (each ends with the batch it read), sends `bye` and exits, the program left attached.
//!
//! If N goes away before `serving`, O resumes (balancer and servers) as before.
use std::{
    io::{BufRead, BufReader, IoSlice, IoSliceMut, Write},
    net::SocketAddr,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
        unix::net::UnixStream,
    },
    path::Path,
    time::Duration,
};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// Descriptors per message: the kernel takes at most 253 (SCM_MAX_FD) in one.
const FDS_PER_MESSAGE: usize = 200;
/// How long either side waits for the other's next step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// N's word once it serves; O's once it has stopped.
const SERVING: &str = "serving";
const BYE: &str = "bye";

/// What a handed descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "addr")]
pub enum Role {
    /// The pin directory, flock-ed.
    Lock,
    /// The control socket's listener.
    Control,
    /// One socket of a listen address's UDP reuseport group.
    Udp(SocketAddr),
    /// A listen address's TCP listener.
    Tcp(SocketAddr),
    /// The agents' ingest socket.
    Agents(SocketAddr),
    /// The peers' socket.
    Peers(SocketAddr),
    /// The Prometheus endpoint's listener.
    Metrics(SocketAddr),
}

/// The manifest line: who sends, and each descriptor's role, in the order they come.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    pid: u32,
    fds: Vec<Role>,
}

/// The first line O sends: the manifest.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestLine {
    handover: Manifest,
}

/// Why a handover failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandoverError {
    /// The running xgslbd refused (or does not know the command).
    #[error("the running xgslbd refused the handover: {0}")]
    Refused(String),
    /// The conversation broke: a socket error, a timeout, a malformed line.
    #[error("handover over {path}: {what}")]
    Broken { path: String, what: String },
}

/// The descriptors a new xgslbd took over, by role.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The xgslbd that handed them over.
    pub pid: u32,
    fds: Vec<(Role, OwnedFd)>,
}

impl Inherited {
    /// The descriptor of `role` (the first, if several), taken out.
    pub fn take(&mut self, role: Role) -> Option<OwnedFd> {
        let i = self.fds.iter().position(|(r, _)| *r == role)?;
        Some(self.fds.remove(i).1)
    }

    /// Every descriptor of `role`, taken out, in the order they were sent.
    pub fn take_all(&mut self, role: Role) -> Vec<OwnedFd> {
        let (taken, rest) = std::mem::take(&mut self.fds)
            .into_iter()
            .partition(|(r, _)| *r == role);
        self.fds = rest;
        taken.into_iter().map(|(_, fd)| fd).collect()
    }

    /// The roles not taken (their descriptors close when this drops).
    pub fn left(&self) -> Vec<Role> {
        self.fds.iter().map(|(r, _)| *r).collect()
    }
}

/// N's side of an ongoing handover: told `serving`, then waits for O's `bye`.
pub struct Successor {
    stream: UnixStream,
    path: String,
}

impl Successor {
    /// Tells O that this xgslbd serves: O stops and exits.
    pub fn serving(mut self) -> Result<Predecessor, HandoverError> {
        let path = self.path.clone();
        writeln!(self.stream, "{SERVING}").map_err(|e| broken(&path, format!("send: {e}")))?;
        Ok(Predecessor {
            stream: self.stream,
            path,
        })
    }
}

/// The xgslbd that handed over, stopping.
pub struct Predecessor {
    stream: UnixStream,
    path: String,
}

impl Predecessor {
    /// Waits (blocking, at most `STEP_TIMEOUT`) until O says it has stopped.
    pub fn wait_stopped(self) -> Result<(), HandoverError> {
        let path = self.path;
        self.stream
            .set_read_timeout(Some(STEP_TIMEOUT))
            .map_err(|e| broken(&path, e.to_string()))?;
        let mut line = String::new();
        BufReader::new(self.stream)
            .read_line(&mut line)
            .map_err(|e| broken(&path, format!("waiting for it to stop: {e}")))?;
        if line.trim() == BYE {
            Ok(())
        } else {
            Err(broken(
                &path,
                format!("it ended with {line:?}, not {BYE:?}"),
            ))
        }
    }
}

fn broken(path: &str, what: String) -> HandoverError {
    HandoverError::Broken {
        path: path.to_owned(),
        what,
    }
}

/// N: asks the xgslbd answering on the control socket `path` to hand over. `Ok(None)` when
/// nothing answers there (no xgslbd runs: start as usual).
pub fn request(path: &Path) -> Result<Option<(Successor, Inherited)>, HandoverError> {
    let shown = path.display().to_string();
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(broken(&shown, format!("connect: {e}"))),
    };
    let err = |what: String| broken(&shown, what);
    stream
        .set_read_timeout(Some(STEP_TIMEOUT))
        .map_err(|e| err(e.to_string()))?;
    let request = crate::control::protocol::Request {
        version: crate::control::protocol::VERSION,
        command: crate::control::protocol::Command::Handover,
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| err(e.to_string()))?;
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .map_err(|e| err(format!("send the request: {e}")))?;
    let (manifest, fds) = receive(&stream).map_err(|e| match e {
        Received::Refused(why) => HandoverError::Refused(why),
        Received::Broken(what) => err(what),
    })?;
    let inherited = Inherited {
        pid: manifest.pid,
        fds: manifest.fds.into_iter().zip(fds).collect(),
    };
    for (role, fd) in &inherited.fds {
        if !bound_as(*role, fd.as_fd()) {
            return Err(err(format!(
                "a descriptor is not the {role:?} it was sent as"
            )));
        }
    }
    Ok(Some((
        Successor {
            stream,
            path: shown,
        },
        inherited,
    )))
}

/// Whether `fd` is a socket bound where `role` says (a configured port 0 matches any).
fn bound_as(role: Role, fd: BorrowedFd<'_>) -> bool {
    let (Role::Udp(want)
    | Role::Tcp(want)
    | Role::Agents(want)
    | Role::Peers(want)
    | Role::Metrics(want)) = role
    else {
        return true;
    };
    let Some(got) = socket2::SockRef::from(&fd)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
    else {
        return false;
    };
    got.ip() == want.ip() && (want.port() == 0 || got.port() == want.port())
}

enum Received {
    Refused(String),
    Broken(String),
}

/// Reads the manifest line and every descriptor it names.
fn receive(stream: &UnixStream) -> Result<(Manifest, Vec<OwnedFd>), Received> {
    let mut bytes = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(m) = &manifest
            && fds.len() >= m.fds.len()
        {
            break;
        }
        let mut space = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| Received::Broken(format!("receive: {e}")))?;
        let n = msg.bytes;
        for cmsg in msg
            .cmsgs()
            .map_err(|e| Received::Broken(format!("control messages: {e}")))?
        {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors in this process; each
                // is owned here once.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if n == 0 {
            return Err(Received::Broken(
                "the running xgslbd closed the connection".into(),
            ));
        }
        if manifest.is_none() {
            bytes.extend_from_slice(&buf[..n]);
            if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                manifest = Some(parse_manifest(&bytes[..end])?);
            }
        }
    }
    let manifest = manifest.unwrap_or(Manifest {
        pid: 0,
        fds: Vec::new(),
    });
    if fds.len() != manifest.fds.len() {
        return Err(Received::Broken(format!(
            "{} descriptors for a manifest of {}",
            fds.len(),
            manifest.fds.len()
        )));
    }
    Ok((manifest, fds))
}

/// The manifest, or the running xgslbd's refusal (a control error response).
fn parse_manifest(line: &[u8]) -> Result<Manifest, Received> {
    if let Ok(m) = serde_json::from_slice::<ManifestLine>(line) {
        return Ok(m.handover);
    }
    match serde_json::from_slice::<crate::control::protocol::Response>(line) {
        Ok(r) => Err(Received::Refused(
            r.error_text()
                .unwrap_or("an answer that is not a manifest")
                .to_owned(),
        )),
        Err(e) => Err(Received::Broken(format!("not a manifest: {e}"))),
    }
}

/// O: sends the manifest and `fds` (each with its role) on `stream`, then waits (blocking,
/// at most `STEP_TIMEOUT`) for N's `serving`. `Ok(true)`: N serves, stop; `Ok(false)`: N
/// went away or said something else (resume).
pub fn hand_over(stream: &UnixStream, fds: &[(Role, BorrowedFd<'_>)]) -> std::io::Result<bool> {
    let manifest = ManifestLine {
        handover: Manifest {
            pid: std::process::id(),
            fds: fds.iter().map(|(r, _)| *r).collect(),
        },
    };
    let mut line = serde_json::to_vec(&manifest).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let raw: Vec<RawFd> = fds.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let mut chunks = raw.chunks(FDS_PER_MESSAGE);
    send_with(stream, &line, chunks.next().unwrap_or(&[]))?;
    for chunk in chunks {
        send_with(stream, b".", chunk)?;
    }
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    let mut answer = String::new();
    match BufReader::new(stream).read_line(&mut answer) {
        Ok(_) => Ok(answer.trim() == SERVING),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// O: tells N that it has stopped.
pub fn stopped(mut stream: &UnixStream) -> std::io::Result<()> {
    writeln!(stream, "{BYE}")
}

/// Sends `bytes` with `fds` attached, whole.
fn send_with(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    if sent != bytes.len() {
        // The descriptors went with the first bytes; the rest would arrive without them.
        return Err(std::io::Error::other(format!(
            "sent {sent} of {} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest and every descriptor arrive, in order, over several messages; each
    /// received descriptor is the same socket (same local address) as the one sent.
    #[test]
    fn descriptors_round_trip_in_order() {
        let (o, n) = UnixStream::pair().unwrap();
        let sockets: Vec<std::net::UdpSocket> = (0..FDS_PER_MESSAGE + 7)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let sender = std::thread::spawn(move || {
            let fds: Vec<(Role, BorrowedFd<'_>)> = sockets
                .iter()
                .map(|s| (Role::Udp(s.local_addr().unwrap()), s.as_fd()))
                .collect();
            let serving = hand_over(&o, &fds).unwrap();
            assert!(serving);
            stopped(&o).unwrap();
        });
        let (manifest, fds) = match receive(&n) {
            Ok(r) => r,
            Err(Received::Refused(w) | Received::Broken(w)) => panic!("{w}"),
        };
        assert_eq!(manifest.pid, std::process::id());
        assert_eq!(fds.len(), FDS_PER_MESSAGE + 7);
        for (role, fd) in manifest.fds.iter().zip(&fds) {
            let local = socket2::SockRef::from(fd).local_addr().unwrap();
            assert_eq!(*role, Role::Udp(local.as_socket().unwrap()));
        }
        let successor = Successor {
            stream: n,
            path: "test".into(),
        };
        successor.serving().unwrap().wait_stopped().unwrap();
        sender.join().unwrap();
    }

    /// A control error in place of the manifest is the running xgslbd's refusal, in its words.
    #[test]
    fn an_error_response_is_a_refusal() {
        let (o, n) = UnixStream::pair().unwrap();
        let mut line =
            serde_json::to_vec(&crate::control::protocol::Response::error("not now")).unwrap();
        line.push(b'\n');
        (&o).write_all(&line).unwrap();
        match receive(&n) {
            Err(Received::Refused(why)) => assert_eq!(why, "not now"),
            _ => panic!("not a refusal"),
        }
    }

    /// N going away before `serving` is not a go-ahead: O resumes.
    #[test]
    fn no_serving_means_resume() {
        let (o, n) = UnixStream::pair().unwrap();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let taker = std::thread::spawn(move || {
            let _ = receive(&n);
            drop(n);
        });
        let fds = [(Role::Lock, s.as_fd())];
        assert!(!hand_over(&o, &fds).unwrap());
        taker.join().unwrap();
    }
}
