//! Helpers shared by the integration tests in `tests/tests/`: frame building with an
//! independent checksum implementation, unique bpffs pin directories, network namespaces,
//! unbound as a real ECS resolver, and the module graph of the crates (the cycle check).
pub mod agents;
pub mod daemon;
pub mod dig;
pub mod frame;
pub mod gslb;
pub mod lan;
pub mod load;
pub mod metrics;
pub mod module_graph;
pub mod netns;
pub mod pins;
pub mod process;
pub mod servers;
pub mod unbound;
pub mod webdriver;
pub mod zone;

/// Fails loudly when the test cannot run here (not root): under CI=true a skip would hide a
/// missing capability, so it is an error; elsewhere too, since the suite needs root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (BPF, netns, XDP); run it with `sudo` or as root");
    }
}

/// One BPF_PROG_TEST_RUN of `prog` on `input` (repeat 1): the XDP action, the output frame
/// and the kernel's time for the run.
pub fn xdp_run(
    prog: &mut aya::programs::Xdp,
    input: &[u8],
) -> Result<(u32, Vec<u8>, std::time::Duration), aya::programs::ProgramError> {
    use aya::programs::{TestRun, TestRunOptions};
    let mut out = vec![0u8; 2048];
    let res = prog.test_run(TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut out),
        ..Default::default()
    })?;
    out.truncate(res.data_size_out as usize);
    Ok((res.return_value, out, res.duration))
}
