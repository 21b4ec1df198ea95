//! The in-place upgrade the package uses (SIGUSR2, see contrib/systemd/xgslbd.service): the
//! real xgslbd binary on loopback, XDP off, under a stand-in for systemd's notify socket.
//! It says READY=1 as its own main process; on SIGUSR2 it starts its binary again with
//! `--replace`, the successor takes the sockets over and says MAINPID=<itself> READY=1, the
//! old one exits cleanly, and queries are answered throughout.
use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};

use xgslb::test_model::TestModel;

mod support;

/// Kills what is left (the successor is not our child) when the test ends, passed or not.
struct Reap(Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: kill has no memory preconditions; a pid that is gone gets ESRCH.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// The next notify datagram, as text.
fn notified(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a notify datagram within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The MAINPID= of a notify message that also says READY=1.
fn ready_pid(message: &str) -> u32 {
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
    message
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no MAINPID in {message:?}"))
}

/// Asks `server` for the SOA of example.test over UDP; true when it answers NOERROR.
fn answers(server: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x07example\x04test\x00\x00\x06\x00\x01");
    socket.send_to(&query, server).unwrap();
    let mut buf = [0u8; 1500];
    match socket.recv(&mut buf) {
        Ok(n) => n >= 12 && buf[..2] == [0x12, 0x34] && buf[2] & 0x80 != 0 && buf[3] & 0x0f == 0,
        Err(_) => false,
    }
}

/// Whether `pid` runs (a zombie waiting for its parent to reap it does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn sigusr2_hands_over_to_the_new_binary_which_becomes_the_main_process() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let server = free_port();
    let control = format!("control_socket = {:?}", dir.path().join("control.sock"));
    let pins = format!("pin_dir = {:?}", dir.path().join("pins"));
    let config = TestModel::new(&[&server.to_string()])
        .set("server", "xdp_mode = \"off\"")
        .set("server", &control)
        .set("server", &pins)
        .demo_zone()
        .write(dir.path());
    let mut cmd = support::xgslbd(&config);
    cmd.env("NOTIFY_SOCKET", &notify_path);
    let (mut first, _logs) = support::start(cmd);
    let mut reap = Reap(vec![first.id()]);

    assert_eq!(ready_pid(&notified(&notify)), first.id());
    assert!(answers(server), "the first xgslbd does not answer");

    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(first.id() as i32, libc::SIGUSR2) };
    let successor = ready_pid(&notified(&notify));
    reap.0.push(successor);
    assert_ne!(successor, first.id(), "the successor is another process");
    let status = first.wait().unwrap();
    assert!(status.success(), "the replaced xgslbd: {status:?}");
    assert!(alive(successor));
    assert!(answers(server), "the successor does not answer");

    // SAFETY: as above; the successor is alive (checked just before).
    unsafe { libc::kill(successor as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(successor) {
        assert!(Instant::now() < deadline, "the successor did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}
