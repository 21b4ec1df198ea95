//! Helpers shared by the integration tests in `tests/tests/`: frame building with an
//! independent checksum implementation, unique bpffs pin directories, and network namespaces.
pub mod daemon;
pub mod frame;
pub mod netns;
pub mod pins;

/// Fails loudly when the test cannot run here (not root): under CI=true a skip would hide a
/// missing capability, so it is an error; elsewhere too, since the suite needs root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (BPF, netns, XDP); run it with `sudo` or as root");
    }
}
