//! Embeds the XDP object in the binaries. The object is built from `../ebpf` (nightly,
//! bpfel-unknown-none, build-std=core, bpf-linker), as `cargo xtask build` does, unless
//! `XGSLB_EBPF_OBJ` names one already built.
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("userspace/ sits in the workspace root");
    let ebpf = root.join("ebpf");
    for p in [
        "src",
        "Cargo.toml",
        ".cargo/config.toml",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", ebpf.join(p).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("common/src").display()
    );
    println!("cargo:rerun-if-env-changed=XGSLB_EBPF_OBJ");

    let obj = match env::var_os("XGSLB_EBPF_OBJ") {
        Some(p) => PathBuf::from(p),
        None => build_ebpf(&ebpf),
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("xgslb.bpf.o");
    if let Err(e) = std::fs::copy(&obj, &out) {
        panic!("cannot copy the XDP object {}: {e}", obj.display());
    }
}

/// Runs the eBPF crate's own cargo build. The outer cargo's variables (toolchain, rustc,
/// flags, target dir) are removed so the inner build uses ebpf/rust-toolchain.toml (nightly)
/// and ebpf/.cargo/config.toml (target, build-std, linker).
fn build_ebpf(ebpf: &Path) -> PathBuf {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(ebpf).args(["build", "--release"]);
    for (k, _) in env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        let keep = k == "CARGO_HOME" || k == "RUSTUP_HOME";
        if !keep && (k.starts_with("CARGO") || k.starts_with("RUST")) {
            cmd.env_remove(k);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the XDP program in {} failed ({s}); run `cargo xtask setup` to install \
             the nightly rust-src and bpf-linker it needs",
            ebpf.display()
        ),
        Err(e) => panic!("cannot run cargo for the XDP program: {e}"),
    }
    ebpf.join("target/bpfel-unknown-none/release/xgslb-ebpf")
}
