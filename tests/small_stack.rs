//! Every entry point, every element type and every instruction-set path this CPU has, run on a
//! thread with a 256 KiB stack (a rayon worker has 2 MiB). Kernels inline every layer of their
//! bodies when optimised; unoptimised, that same inlining gave one function frames of 5 MB and a
//! stack overflow in any debug build (build.rs). `cargo test --test small_stack` (a debug
//! build; `.ci/run` runs it so, without the rayon feature) checks the unoptimised frames,
//! `cargo test --release` the optimised ones. An overflow aborts the test binary: that is the
//! failure.

use xent::half::{bf16, f16};
use xent::{CrossEntropy, Element, GradOutput, IsaPath, Reduction, Softmax};

const STACK_BYTES: usize = 256 * 1024;

fn every_entry_point<E: Element>(cols: usize) {
    let rows = 3;
    let x: Vec<E> = (0..rows * cols)
        .map(|i| E::from_f64(((i * 7) % 11) as f64 - 5.0))
        .collect();
    let mut out = x.clone();
    let mut per_row = vec![E::from_f64(0.0); rows];
    assert!(xent::max(&x).is_some());
    assert!(xent::argmax(&x).is_some());
    xent::exp(&x, &mut out).unwrap();
    xent::exp_inplace(&mut out);
    assert!(xent::logsumexp(&x).to_f64().is_finite());
    for tau in [1.0, 0.5] {
        let sm = Softmax::new().temperature(tau);
        sm.logsumexp_rows(&x, cols, &mut per_row).unwrap();
        sm.softmax_rows(&x, cols, &mut out).unwrap();
        sm.log_softmax_rows(&x, cols, &mut out).unwrap();
        out.copy_from_slice(&x);
        sm.softmax_rows_inplace(&mut out, cols).unwrap();
        out.copy_from_slice(&x);
        sm.log_softmax_rows_inplace(&mut out, cols).unwrap();
    }
    let targets: Vec<u32> = (0..rows as u32).map(|r| r % cols as u32).collect();
    let options = [
        CrossEntropy::new(),
        CrossEntropy::new()
            .label_smoothing(0.1)
            .z_loss(1e-4)
            .temperature(0.7)
            .ignore_index(0),
        CrossEntropy::new().softcap(30.0).reduction(Reduction::Sum),
    ];
    for ce in options {
        let fwd = ce.forward(&x, cols, &targets).unwrap();
        let mut grad = x.clone();
        ce.forward_backward(&x, cols, &targets, &mut grad).unwrap();
        let mut inplace = x.clone();
        ce.forward_backward_inplace(&mut inplace, cols, &targets)
            .unwrap();
        ce.backward(
            &x,
            cols,
            &targets,
            &fwd.lse,
            GradOutput::Scalar(1.0),
            &mut grad,
        )
        .unwrap();
    }
}

fn every_type(cols: usize) {
    every_entry_point::<f32>(cols);
    every_entry_point::<f64>(cols);
    every_entry_point::<f16>(cols);
    every_entry_point::<bf16>(cols);
}

#[test]
fn kernels_run_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(|| {
            for path in IsaPath::ALL {
                let Ok(_forced) = xent::force_isa(path) else {
                    continue;
                };
                // A few lanes (the small-row paths), a few hundred (rows kept in cache), and a
                // row long enough to take the blocked statistics pass.
                for cols in [3, 40, 5000] {
                    every_type(cols);
                }
            }
        })
        .expect("spawn")
        .join()
        .expect("no panic");
}
