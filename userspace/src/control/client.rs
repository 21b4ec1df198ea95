//! The client side of the control socket: one request, one response.
use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::protocol::{Command, Request, Response, VERSION};

/// How long xgslbd may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to the socket at `path` and reads the response.
pub fn request(path: &Path, request: &Request) -> io::Result<Response> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    // A refused peer is told why and closed at once: the write may then fail while the
    // reason waits to be read.
    let written = stream.write_all(&line);
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    match reader.read_line(&mut answer) {
        Ok(n) if n > 0 => {}
        Ok(_) => {
            return Err(written
                .err()
                .unwrap_or_else(|| io::ErrorKind::UnexpectedEof.into()));
        }
        Err(e) => return Err(written.err().unwrap_or(e)),
    }
    serde_json::from_str(&answer)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {e}")))
}

/// Sends `command` in a request of this build's protocol version.
pub fn command(path: &Path, command: Command) -> io::Result<Response> {
    request(
        path,
        &Request {
            version: VERSION,
            command,
        },
    )
}
