//! The agent's one error type: why the config was refused, why the agent could not start,
//! and why a check, a load source, a probe or a reply failed. Each message names what failed
//! and why, so a log line or a check's failure reason reads on its own.
use std::{io, net::SocketAddr, path::PathBuf, process::ExitStatus, time::Duration};

use hickory_proto::op::ResponseCode;

/// Everything that can fail in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    ConfigRead { path: PathBuf, source: io::Error },
    /// TOML syntax, an unknown key or a wrong type (the message has line and column).
    #[error("{path}: {message}")]
    ConfigSyntax { path: PathBuf, message: String },
    /// A config value that parses but is not acceptable.
    #[error("{path}: {key}: {why}")]
    ConfigInvalid {
        path: PathBuf,
        key: String,
        why: String,
    },
    /// A secret file that is not a regular file.
    #[error("{0} is not a regular file")]
    SecretNotAFile(PathBuf),
    /// A secret file the group or others may access.
    #[error("{path} has mode {mode:04o}: the group and others must have no access (chmod 600)")]
    SecretMode { path: PathBuf, mode: u32 },
    /// A secret shorter than `min` bytes.
    #[error("{path} holds {len} bytes: at least {min}")]
    SecretShort {
        path: PathBuf,
        len: usize,
        min: usize,
    },
    /// No socket toward an EDNS (the agent does not start).
    #[error("socket toward EDNS {address}: {source}")]
    Socket {
        address: SocketAddr,
        source: io::Error,
    },
    /// A system call, a file or a peer failed; `what` names the operation and its object.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// A URL the agent cannot GET.
    #[error("{url:?}: {why}")]
    Url { url: String, why: String },
    /// The TLS client config could not be built.
    #[error("TLS setup: {0}")]
    TlsSetup(#[source] rustls::Error),
    /// A host that is neither a DNS name nor an address, as TLS needs it.
    #[error("{host:?} as a TLS server name: {source}")]
    TlsServerName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The TLS handshake failed (a bad certificate, no TLS at the other end).
    #[error("TLS handshake: {0}")]
    TlsHandshake(#[source] io::Error),
    /// The HTTP exchange failed; `what` says at which step. The message carries hyper's
    /// error with its causes (hyper's own message names only the step).
    #[error("{what}: {}", chain(error))]
    Http {
        what: &'static str,
        error: hyper::Error,
    },
    /// An HTTP status other than the one expected.
    #[error("status {got}, want {want}")]
    Status { got: u16, want: u16 },
    /// An HTTP body without the expected text.
    #[error("the body lacks {0:?}")]
    BodyLacks(String),
    /// A DNS query could not be encoded.
    #[error("encode query: {0}")]
    DnsEncode(#[source] hickory_proto::ProtoError),
    /// A DNS check's answer with another rcode than the one expected.
    #[error("{server} answered {got}, want {want}")]
    Rcode {
        server: SocketAddr,
        got: ResponseCode,
        want: ResponseCode,
    },
    /// A check or a load source that took longer than its timeout.
    #[error("no result within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A kernel file's text that does not parse; the message says which part.
    #[error("{0}")]
    Malformed(String),
    /// Load JSON that does not parse, or has an unknown field.
    #[error("load JSON: {0}")]
    LoadJson(#[source] serde_json::Error),
    /// Load JSON with a CPU percent outside 0 to 100.
    #[error("load JSON: cpu_percent {0} is not 0 to 100")]
    CpuPercent(f64),
    /// A load command without a program.
    #[error("empty command")]
    EmptyCommand,
    /// A load command that exited with a failure.
    #[error("{program}: {status}")]
    CommandFailed { program: String, status: ExitStatus },
    /// An EDNS reply that does not verify or decode.
    #[error("reply refused: {0}")]
    ReplyRefused(&'static str),
    /// An EDNS datagram that is not a reply.
    #[error("not a reply")]
    NotAReply,
    /// A lock whose holder panicked.
    #[error("{0} lock poisoned")]
    Poisoned(&'static str),
    /// Another error, with what was being done (a URL, a program).
    #[error("{what}: {source}")]
    Context { what: String, source: Box<Error> },
}

impl Error {
    /// An I/O error with what failed.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// This error, with what was being done.
    pub fn context(self, what: impl std::fmt::Display) -> Error {
        Error::Context {
            what: what.to_string(),
            source: Box::new(self),
        }
    }
}

/// An error and its causes, joined by ": ".
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
