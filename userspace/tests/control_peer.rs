//! The control socket refuses a peer that is not root (nor xgslbd's own user), even one that
//! gets through the socket file's mode: the real `xgslbctl` binary, run as nobody.
use std::{os::unix::fs::PermissionsExt, process::Command, sync::Arc};

use tokio_util::sync::CancellationToken;
use xgslb::control::{
    protocol::{Response, Status},
    server::{Handler, bind, serve_control},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_peer_is_refused_and_root_is_answered() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (it runs xgslbctl as another user)");
    }
    let dir = tempfile::tempdir().unwrap();
    // nobody must be able to reach the socket file: a directory it can enter.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("control.sock");
    let listener = bind(&path).unwrap();
    // Open the file itself up, so that only the peer check stands in the way.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let handler: Handler = Arc::new(|_| {
        Response::status(Status {
            generation: 42,
            ..Status::default()
        })
    });
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_control(listener, handler, None, shutdown.clone()));
    let ctl = env!("CARGO_BIN_EXE_xgslbctl");
    let socket = path.display().to_string();
    let run = move |as_nobody: bool| {
        let mut args: Vec<&str> = Vec::new();
        if as_nobody {
            args.extend(["--reuid=65534", "--regid=65534", "--clear-groups", ctl]);
        }
        args.extend(["status", "--json", "--socket", &socket]);
        let out = if as_nobody {
            Command::new("setpriv").args(&args).output()
        } else {
            Command::new(ctl).args(&args).output()
        }
        .expect("run xgslbctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run2 = run.clone();
    let (nobody, root) = tokio::task::spawn_blocking(move || (run(true), run(false)))
        .await
        .unwrap();
    assert_eq!(nobody.0, Some(1), "{nobody:?}");
    assert!(
        nobody.2.contains("permission denied: uid 65534"),
        "{nobody:?}"
    );
    assert_eq!(root.0, Some(0), "{root:?}");
    assert!(root.1.contains("\"generation\":42"), "{root:?}");
    // The socket file as xgslbd makes it (0600): nobody cannot even connect, and is told
    // so, not asked whether xgslbd runs.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || run2(true))
        .await
        .unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("permission denied on") && !stderr.contains("is it running"),
        "{stderr}"
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
