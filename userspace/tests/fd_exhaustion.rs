//! Out of file descriptors (the real xgslbd under a lowered RLIMIT_NOFILE, loopback, XDP
//! off), xgslbd neither spins nor floods its log: a failed accept pauses and is logged once
//! per interval, UDP queries are answered meanwhile (they need no new descriptor), and the
//! control socket serves again once descriptors are free (issue 16, item 1).
use std::{
    os::unix::{net::UnixStream, process::CommandExt},
    process::Command,
    time::{Duration, Instant},
};

use xgslb::test_model::TestModel;

mod support;

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};

/// Descriptors xgslbd may hold: enough to start (sockets, epoll, pipes), few enough that the
/// test's control connections exhaust them.
const NOFILE: libc::rlim_t = 48;

/// A loopback port free for both UDP and TCP now.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn ask_udp(port: u16) -> Option<Message> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut q = Message::new(7, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii("www.example.test.").expect("name"),
        RecordType::A,
    ));
    socket
        .send_to(&q.to_vec().expect("encode"), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

#[test]
fn out_of_descriptors_xgslbd_pauses_logs_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let control = dir.path().join("control.sock");
    let listen = format!("127.0.0.1:{port}");
    let config = TestModel::new(&[&listen])
        .set("server", "xdp_mode = \"off\"")
        .set(
            "server",
            &format!("control_socket = {:?}", control.display().to_string()),
        )
        .demo_zone()
        .write(dir.path());
    let mut cmd = support::xgslbd(&config);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut child, rx) = support::start(cmd);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("\"serving") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("xgslbd did not start under {NOFILE} descriptors: {seen:?}"),
        }
    }
    assert!(
        ask_udp(port).is_some(),
        "no UDP answer before the exhaustion"
    );

    // Control connections until xgslbd has no descriptor left: the connects succeed (the
    // kernel queues them), xgslbd's accepts start failing.
    let held: Vec<UnixStream> = (0..2 * NOFILE)
        .map(|_| UnixStream::connect(&control).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let warned = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("accept failed") => break line,
            Ok(_) => {}
            Err(_) => panic!(
                "no accept failure logged with {} connections held",
                held.len()
            ),
        }
    };
    assert!(warned.contains("control socket"), "{warned}");
    // A second of exhaustion: the failure is not logged again (one line per interval, not
    // thousands), and UDP is answered throughout.
    let window = Instant::now() + Duration::from_secs(1);
    let mut answered = 0;
    while Instant::now() < window {
        if ask_udp(port).is_some() {
            answered += 1;
        }
    }
    assert!(answered > 0, "UDP unanswered while out of descriptors");
    let repeated: Vec<String> = rx
        .try_iter()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert!(
        repeated.is_empty(),
        "the failure was logged again: {repeated:?}"
    );

    // Descriptors back: the control socket serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_xgslbctl"))
            .args(["status", "--json", "--socket", control.to_str().unwrap()])
            .output()
            .expect("run xgslbctl");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the control socket did not recover: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
