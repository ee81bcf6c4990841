//! Peak memory of the in-place fused cross-entropy: run it under `/usr/bin/time -v` and compare
//! "Maximum resident set size" with the logits' size (printed).
//!
//! `cargo build --release --example ce_memory && /usr/bin/time -v target/release/examples/ce_memory`
fn main() {
    let (rows, cols) = (4096usize, 32000usize);
    let mut logits: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 16.0)
        .collect();
    let targets: Vec<u32> = (0..rows as u32).map(|r| r * 7919 % cols as u32).collect();
    let ce = xent::CrossEntropy::new().label_smoothing(0.1);
    let mut out = xent::Output::default();
    for _ in 0..3 {
        ce.forward_backward_inplace_into(&mut logits, cols, &targets, &mut out)
            .unwrap();
    }
    println!(
        "logits: {:.1} MiB ({} x {} f32); loss {:.4}",
        (rows * cols * 4) as f64 / (1 << 20) as f64,
        rows,
        cols,
        out.loss
    );
}
