//! The control socket in xgslbd: a Unix stream listener (mode 0600) that answers requests
//! from root (or xgslbd's own user) line by line. A bad request gets an error response and
//! the connection goes on; a peer of another user is told why and closed. At most
//! `MAX_CONNECTIONS` are open (one more is told so and closed), a connection idle for
//! `IDLE_TIMEOUT` is closed, and a failed accept (no file descriptors) pauses the loop.
use std::{io, os::unix::fs::PermissionsExt, path::Path, sync::Arc};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    net::{UnixListener, UnixStream},
};
use tokio_util::{
    codec::{Decoder, FramedRead, LinesCodec, LinesCodecError},
    sync::CancellationToken,
};

use super::protocol::{Command, MAX_REQUEST, RequestError, Response, parse_request};
use crate::backoff::{LogLimiter, accept_failed};

/// Open control connections at most: an operator needs a few, and each holds memory.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What answers a command (it may block: it runs off the I/O threads).
pub type Handler = Arc<dyn Fn(Command) -> Response + Send + Sync>;

/// Binds `path` (replacing a stale socket file, never one a running xgslbd answers on),
/// owner-only.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another xgslbd answers on it",
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Where the control server sends a connection that asked for a handover (`--replace`):
/// the daemon holds the sockets to hand over.
pub type HandoverRequests = tokio::sync::mpsc::UnboundedSender<UnixStream>;

/// Serves `listener` until `shutdown` (the socket file stays: a successor may serve on it;
/// the daemon removes it when it stops for good). A `handover` request goes to `handover`
/// with its connection, or is refused without one.
pub async fn serve_control(
    listener: UnixListener,
    handler: Handler,
    handover: Option<HandoverRequests>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut accept_log = LogLimiter::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((mut stream, _)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        let busy = Response::error(format!(
                            "{MAX_CONNECTIONS} control connections are open already"
                        ));
                        tokio::spawn(async move { write(&mut stream, &busy).await });
                        continue;
                    };
                    let (handler, shutdown) = (handler.clone(), shutdown.clone());
                    let handover = handover.clone();
                    tokio::spawn(async move {
                        connection(stream, handler, handover, shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => accept_failed("control socket", &e, &mut accept_log).await,
            },
        }
    }
    Ok(())
}

/// Why a peer may not drive xgslbd.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("cannot read the peer's credentials: {0}")]
    Credentials(io::Error),
    #[error("permission denied: uid {0} is not root")]
    NotRoot(u32),
}

/// Whether the peer may drive xgslbd: root, or the user xgslbd runs as.
fn allowed(stream: &UnixStream) -> Result<(), Refused> {
    let cred = stream.peer_cred().map_err(Refused::Credentials)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid() == 0 || cred.uid() == me {
        Ok(())
    } else {
        Err(Refused::NotRoot(cred.uid()))
    }
}

async fn connection(
    mut stream: UnixStream,
    handler: Handler,
    handover: Option<HandoverRequests>,
    shutdown: CancellationToken,
) {
    if let Err(why) = allowed(&stream) {
        let _ = write(&mut stream, &Response::error(why.to_string())).await;
        return;
    }
    {
        let (read, mut write_half) = stream.split();
        let mut lines = FramedRead::new(read, RequestLines::default());
        loop {
            let line = tokio::select! {
                () = shutdown.cancelled() => return,
                r = tokio::time::timeout(IDLE_TIMEOUT, lines.next()) => match r {
                    Ok(Some(Ok(line))) => line,
                    Ok(None) | Ok(Some(Err(_))) => return,
                    Err(_) => {
                        let idle = Response::error(format!("idle for {IDLE_TIMEOUT:?}: closing"));
                        let _ = write(&mut write_half, &idle).await;
                        return;
                    }
                },
            };
            let response = match line.map(|l| parse_request(l.as_bytes())) {
                // The successor sends nothing more until it has the descriptors: no line
                // is left in the reader's buffer.
                Ok(Ok(r)) if r.command == Command::Handover && handover.is_some() => break,
                Ok(Ok(r)) => answer(r.command, &handler).await,
                Ok(Err(why)) => Response::error(why.to_string()),
                Err(why) => Response::error(why.to_string()),
            };
            if write(&mut write_half, &response).await.is_err() {
                return;
            }
        }
    }
    if let Some(to) = handover
        && let Err(e) = to.send(stream)
    {
        // The daemon stopped taking handovers (it is stopping or handing over already).
        let mut stream = e.0;
        let busy = Response::error("xgslbd is stopping or handing over already");
        let _ = write(&mut stream, &busy).await;
    }
}

/// Request lines of at most [`MAX_REQUEST`] bytes. A line that is too long (the rest of it
/// is skipped) or not UTF-8 is an item that says why, so the connection goes on: the codec's
/// own errors would end the stream.
struct RequestLines(LinesCodec);

impl Default for RequestLines {
    fn default() -> Self {
        RequestLines(LinesCodec::new_with_max_length(MAX_REQUEST))
    }
}

impl Decoder for RequestLines {
    type Item = Result<String, RequestError>;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        // Decoding reads no I/O: its errors are about the line, which it has consumed.
        Ok(match self.0.decode(buf) {
            Ok(line) => line.map(Ok),
            Err(LinesCodecError::MaxLineLengthExceeded) => Some(Err(RequestError::OverLimit)),
            Err(LinesCodecError::Io(e)) => Some(Err(RequestError::NotJson(e.to_string()))),
        })
    }
}

async fn answer(command: Command, handler: &Handler) -> Response {
    let handler = handler.clone();
    tokio::task::spawn_blocking(move || handler(command))
        .await
        .unwrap_or_else(|e| Response::error(format!("the command failed: {e}")))
}

async fn write(stream: &mut (impl AsyncWrite + Unpin), response: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::control::client;

    /// Serves `listener` with `handler` until the token is cancelled.
    fn spawn_server(
        listener: UnixListener,
        handler: Handler,
    ) -> (CancellationToken, tokio::task::JoinHandle<io::Result<()>>) {
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_control(listener, handler, None, shutdown.clone()));
        (shutdown, server)
    }

    #[tokio::test]
    async fn answers_status_and_survives_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/control.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let handler: Handler = Arc::new(|c| match c {
            Command::Status => Response::status(crate::control::protocol::Status {
                generation: 7,
                ..Default::default()
            }),
            _ => Response::error("not in this test"),
        });
        let (shutdown, server) = spawn_server(listener, handler);
        let p = path.clone();
        let lines = tokio::task::spawn_blocking(move || {
            use std::io::{BufRead, BufReader, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            let big = vec![b'x'; MAX_REQUEST + 10];
            s.write_all(b"nonsense\n").unwrap();
            s.write_all(&big).unwrap();
            s.write_all(b"\n{\"version\":1,\"command\":{\"name\":\"status\"}}\n")
                .unwrap();
            let mut r = BufReader::new(s);
            (0..3)
                .map(|_| {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    serde_json::from_str::<Response>(&l).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert!(lines[0].error_text().unwrap().contains("not JSON"));
        assert!(lines[1].error_text().unwrap().contains("bytes"));
        assert_eq!(lines[2].as_status().unwrap().generation, 7);
        // A new connection through the client works too.
        let p = path.clone();
        let r = tokio::task::spawn_blocking(move || client::command(&p, Command::Status))
            .await
            .unwrap()
            .unwrap();
        assert!(r.ok);
        shutdown.cancel();
        server.await.unwrap().unwrap();
        assert!(path.exists(), "the socket file stays for a successor");
    }

    /// Every kind of bad line is an item of its own; the lines after it are read as usual.
    #[test]
    fn bad_lines_do_not_end_the_stream() {
        let mut codec = RequestLines::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\xff\xfe\n");
        buf.extend_from_slice(&vec![b'x'; MAX_REQUEST + 1]);
        let mut items = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            items.push(item.map_err(|e| e.to_string()));
        }
        // The rest of the long line, then a good one.
        buf.extend_from_slice(b"xxx\n{}\n");
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            items.push(item.map_err(|e| e.to_string()));
        }
        assert!(items[0].as_ref().unwrap_err().starts_with("not JSON"));
        assert_eq!(
            items[1],
            Err(format!("request over {MAX_REQUEST} bytes")),
            "refused as soon as it passes the limit"
        );
        assert_eq!(items[2], Ok("{}".to_owned()));
        assert_eq!(items.len(), 3);
    }

    /// At most MAX_CONNECTIONS are served at once (the next is told why and closed), and an
    /// idle one is closed after IDLE_TIMEOUT (the paused clock jumps there when all wait).
    #[tokio::test(start_paused = true)]
    async fn connections_are_capped_and_idle_ones_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = bind(&path).unwrap();
        let handler: Handler = Arc::new(|_| Response::error("not in this test"));
        let (shutdown, server) = spawn_server(listener, handler);
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(UnixStream::connect(&path).await.unwrap());
        }
        let mut extra = UnixStream::connect(&path).await.unwrap();
        let mut text = String::new();
        extra.read_to_string(&mut text).await.unwrap();
        assert!(
            text.contains("control connections are open already"),
            "{text}"
        );
        let mut first = held.swap_remove(0);
        let mut text = String::new();
        first.read_to_string(&mut text).await.unwrap();
        assert!(text.contains("idle"), "{text}");
        // The idle ones gave their places back.
        drop(held);
        let p = path.clone();
        let r = tokio::task::spawn_blocking(move || client::command(&p, Command::Status))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.error_text(), Some("not in this test"));
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
