//! `xgslbd --check`: the config and its zones validated without serving (what the package's
//! first start and an operator's edit are checked with): 0 and a line for a good config,
//! 1 and the reason for a broken one, and nothing bound either way.
use std::process::Command;

use xgslb::test_model::TestModel;

fn check(config: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xgslbd"))
        .arg("--check")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run xgslbd --check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_config_passes_and_a_broken_one_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let config = TestModel::loopback(&socket).write(dir.path());
    let (code, stdout, stderr) = check(&config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("valid (1 zones)"), "{stdout}");
    assert!(!socket.exists(), "nothing served");

    std::fs::remove_file(dir.path().join("example.test.zone")).unwrap();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("xgslbd: ") && stderr.contains("example.test.zone"),
        "{stderr}"
    );
}
