//! Reads a VS's load sources each interval and keeps the previous counter samples that rates
//! need. Built-in sources win over the command's JSON, which wins over the endpoint's. A
//! source that fails is left out of that sample (logged at debug), never fatal.
use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::io::AsyncReadExt;

use super::{
    error::Error,
    http::{self, Url},
    load::{self, CpuTimes, InterfaceCounters},
};
use crate::metrics::wire::Load;

/// Most bytes of a load command's output read.
const MAX_COMMAND_OUTPUT: u64 = 64 * 1024;

/// Where a VS's load comes from; every source is optional. Built-in sources win over the
/// command's JSON, which wins over the HTTP endpoint's, field by field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadConfig {
    /// Established TCP connections to this local port.
    pub connections_port: Option<u16>,
    /// Packets/s and kbit/s from this interface's counters (received plus sent).
    pub interface: Option<String>,
    /// This host's CPU busy percent.
    pub cpu: bool,
    /// A fixed capacity.
    pub capacity: Option<u64>,
    /// A command whose stdout is load JSON.
    pub command: Option<Vec<String>>,
    /// A local http:// URL that returns load JSON.
    pub http_json: Option<Url>,
    /// Limit for the command and the HTTP endpoint.
    pub timeout: Duration,
}

impl LoadConfig {
    /// No source at all.
    pub fn is_empty(&self) -> bool {
        self.connections_port.is_none()
            && self.interface.is_none()
            && !self.cpu
            && self.capacity.is_none()
            && self.command.is_none()
            && self.http_json.is_none()
    }
}

/// Where the kernel files are (tests point this at a directory of samples).
#[derive(Clone, Debug)]
pub struct Roots {
    /// `/proc`
    pub proc: PathBuf,
    /// The socket tables of the calling thread's network namespace:
    /// `/proc/thread-self/net`. (`/proc/net` is the process's: the namespace of its first
    /// thread, not of a thread that entered another one, as an agent run in-process does.)
    pub proc_net: PathBuf,
    /// `/sys/class/net`
    pub net: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: PathBuf::from("/proc"),
            proc_net: PathBuf::from("/proc/thread-self/net"),
            net: PathBuf::from("/sys/class/net"),
        }
    }
}

/// One VS's load sources and the last counter samples.
pub struct Sampler {
    vs: String,
    config: LoadConfig,
    roots: Roots,
    interface: Option<(Instant, InterfaceCounters)>,
    cpu: Option<CpuTimes>,
}

impl Sampler {
    pub fn new(vs: String, config: LoadConfig, roots: Roots) -> Sampler {
        Sampler {
            vs,
            config,
            roots,
            interface: None,
            cpu: None,
        }
    }

    /// One sample: what every source says now (rates from the second sample on).
    pub async fn sample(&mut self) -> Load {
        let mut own = Load {
            capacity: self.config.capacity,
            ..Load::default()
        };
        if let Some(port) = self.config.connections_port {
            match self.connections(port).await {
                Ok(c) => own.connections = Some(c),
                Err(e) => tracing::debug!(vs = self.vs, "connections: {e}"),
            }
        }
        if let Some(ifname) = self.config.interface.clone() {
            match self.interface_counters(&ifname).await {
                Ok(now) => {
                    let at = Instant::now();
                    if let Some((then, before)) = self.interface
                        && let Some((pps, kbps)) =
                            load::interface_rates(&before, &now, at.duration_since(then))
                    {
                        own.packets_per_second = Some(pps);
                        own.kilobits_per_second = Some(kbps);
                    }
                    self.interface = Some((at, now));
                }
                Err(e) => tracing::debug!(vs = self.vs, "interface {ifname}: {e}"),
            }
        }
        if self.config.cpu {
            match read(self.roots.proc.join("stat"))
                .await
                .and_then(|t| load::parse_proc_stat(&t))
            {
                Ok(now) => {
                    if let Some(before) = self.cpu {
                        own.cpu_percent = load::cpu_busy_percent(&before, &now);
                    }
                    self.cpu = Some(now);
                }
                Err(e) => tracing::debug!(vs = self.vs, "cpu: {e}"),
            }
        }
        let mut merged = own;
        if let Some(command) = &self.config.command {
            match run_command(command, self.config.timeout).await {
                Ok(l) => merged = load::merge(merged, l),
                Err(e) => tracing::debug!(vs = self.vs, "load command: {e}"),
            }
        }
        if let Some(url) = &self.config.http_json {
            match fetch_json(url, self.config.timeout).await {
                Ok(l) => merged = load::merge(merged, l),
                Err(e) => tracing::debug!(vs = self.vs, "load endpoint {url}: {e}"),
            }
        }
        merged
    }

    async fn connections(&self, port: u16) -> Result<u64, Error> {
        let mut total = 0;
        for file in ["tcp", "tcp6"] {
            let path = self.roots.proc_net.join(file);
            match tokio::fs::read_to_string(&path).await {
                Ok(text) => total += load::established_connections(&text, port)?,
                // No IPv6 in this kernel: no tcp6 file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == "tcp6" => {}
                Err(source) => {
                    return Err(Error::Io {
                        what: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(total)
    }

    async fn interface_counters(&self, ifname: &str) -> Result<InterfaceCounters, Error> {
        let dir = self.roots.net.join(ifname).join("statistics");
        let counter = |name: &'static str| {
            let path = dir.join(name);
            async move { read(path).await.and_then(|t| load::parse_counter(&t)) }
        };
        Ok(InterfaceCounters {
            rx_packets: counter("rx_packets").await?,
            tx_packets: counter("tx_packets").await?,
            rx_bytes: counter("rx_bytes").await?,
            tx_bytes: counter("tx_bytes").await?,
        })
    }
}

async fn read(path: PathBuf) -> Result<String, Error> {
    tokio::fs::read_to_string(&path)
        .await
        .map_err(Error::io(path.display().to_string()))
}

/// Runs a load command (no shell, stdin closed, stderr discarded) and parses its stdout;
/// killed at the timeout.
pub async fn run_command(command: &[String], timeout: Duration) -> Result<Load, Error> {
    let (program, args) = command.split_first().ok_or(Error::EmptyCommand)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io(program))?;
    let mut stdout = child.stdout.take().ok_or_else(|| Error::Io {
        what: format!("{program}: stdout"),
        source: std::io::ErrorKind::BrokenPipe.into(),
    })?;
    let run = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(MAX_COMMAND_OUTPUT)
            .read_to_end(&mut out)
            .await
            .map_err(Error::io(format!("{program}: reading stdout")))?;
        let status = child.wait().await.map_err(Error::io(program))?;
        if !status.success() {
            return Err(Error::CommandFailed {
                program: program.clone(),
                status,
            });
        }
        load::parse_load_json(&out)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        // Dropping the child kills it.
        Err(_) => Err(Error::Timeout(timeout).context(program)),
    }
}

/// GETs load JSON from a local endpoint, within the timeout.
pub async fn fetch_json(url: &Url, timeout: Duration) -> Result<Load, Error> {
    let get = async {
        let tcp = http::connect(url).await?;
        let r = http::get(tcp, url).await?;
        if r.status != 200 {
            return Err(Error::Status {
                got: r.status,
                want: 200,
            });
        }
        load::parse_load_json(&r.body)
    };
    match tokio::time::timeout(timeout, get).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, time::Duration};

    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st\n   0: 0100007F:0050 0100007F:D2F0 01\n   1: 0100007F:0050 0100007F:D2F1 01\n";

    fn write_sample(root: &std::path::Path, packets: u64, bytes: u64, stat: &str) {
        fs::create_dir_all(root.join("proc/net")).unwrap();
        fs::write(root.join("proc/net/tcp"), TCP).unwrap();
        fs::write(root.join("proc/stat"), stat).unwrap();
        let s = root.join("net/eth0/statistics");
        fs::create_dir_all(&s).unwrap();
        for (f, v) in [
            ("rx_packets", packets),
            ("tx_packets", packets),
            ("rx_bytes", bytes),
            ("tx_bytes", bytes),
        ] {
            fs::write(s.join(f), format!("{v}\n")).unwrap();
        }
    }

    #[tokio::test]
    async fn samples_read_the_kernel_files_and_rates_need_two() {
        let d = tempfile::tempdir().unwrap();
        write_sample(d.path(), 100, 10_000, "cpu  100 0 0 100 0 0 0 0\n");
        let config = LoadConfig {
            connections_port: Some(80),
            interface: Some("eth0".into()),
            cpu: true,
            capacity: Some(1000),
            ..LoadConfig::default()
        };
        let roots = Roots {
            proc: d.path().join("proc"),
            proc_net: d.path().join("proc/net"),
            net: d.path().join("net"),
        };
        let mut s = Sampler::new("www".into(), config, roots);
        let first = s.sample().await;
        // No tcp6 file: IPv4 only.
        assert_eq!(first.connections, Some(2));
        assert_eq!(first.capacity, Some(1000));
        assert_eq!((first.packets_per_second, first.cpu_percent), (None, None));
        write_sample(d.path(), 1_100, 1_010_000, "cpu  150 0 0 150 0 0 0 0\n");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = s.sample().await;
        assert_eq!(second.cpu_percent, Some(50.0));
        let pps = second.packets_per_second.unwrap();
        assert!(pps > 0 && pps <= 2_000 * 20, "{pps}");
        assert!(second.kilobits_per_second.unwrap() > 0);
    }

    #[tokio::test]
    async fn a_failing_source_is_left_out() {
        let d = tempfile::tempdir().unwrap();
        let config = LoadConfig {
            connections_port: Some(80),
            capacity: Some(5),
            ..LoadConfig::default()
        };
        let roots = Roots {
            proc: d.path().join("nothing"),
            proc_net: d.path().join("nothing"),
            net: d.path().join("nothing"),
        };
        let l = Sampler::new("www".into(), config, roots).sample().await;
        assert_eq!((l.connections, l.capacity), (None, Some(5)));
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn commands_give_json_within_the_timeout() {
        let t = Duration::from_secs(5);
        let l = run_command(&sh(r#"echo '{"score": 9, "connections": 3}'"#), t)
            .await
            .unwrap();
        assert_eq!((l.score, l.connections), (Some(9), Some(3)));
        let e = run_command(&sh("exit 3"), t).await.unwrap_err().to_string();
        assert!(e.contains("exit status: 3"), "{e}");
        let e = run_command(&sh("echo nope"), t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("load JSON"), "{e}");
        let e = run_command(&sh("sleep 5"), Duration::from_millis(100))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("/bin/sh: no result within 100 ms"), "{e}");
        assert!(run_command(&["/nonexistent/load".into()], t).await.is_err());
    }

    #[tokio::test]
    async fn endpoints_give_json() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                let body = r#"{"cpu_percent": 12.5}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/load")).unwrap();
        let load = fetch_json(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(load.cpu_percent, Some(12.5));
    }
}
