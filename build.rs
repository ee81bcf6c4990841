//! Tells the crate when it is compiled without optimisation.
//!
//! The kernels mark every layer of their bodies `#[inline(always)]` so that, once optimised, each
//! kernel is one function compiled with the target features of its instruction set (an
//! out-of-line helper would lose them, and every intrinsic in it would become a call). At
//! opt-level 0 that same inlining gives one stack slot to every temporary of the whole kernel:
//! frames of megabytes, a stack overflow on a rayon worker thread (2 MiB) in any debug build.
//! So at opt-level 0, and only there, the kernel layers stay separate functions
//! (`cfg(xent_unoptimized)`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(xent_unoptimized)");
    // Set by `cargo fuzz` (see `kernel_instances!` in src/element.rs).
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    // Opts a fuzz build into the AVX-512 path (see src/simd/mod.rs).
    println!("cargo::rustc-check-cfg=cfg(xent_fuzz_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("OPT_LEVEL").as_deref() == Ok("0") {
        println!("cargo::rustc-cfg=xent_unoptimized");
    }
}
