//! Replays the committed fuzz corpus and every past crash (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' own decoding and checks, on stable
//! Rust: users without nightly keep the regression coverage. See docs/fuzzing.md.

#[path = "../fuzz/fuzz_targets/inputs.rs"]
mod inputs;

use arbitrary::{Arbitrary, Unstructured};
use std::path::Path;

fn replay<T: for<'a> Arbitrary<'a>>(target: &str, run: impl Fn(&T)) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let data = std::fs::read(&path).unwrap();
            // The same decoding libfuzzer-sys uses for a structured target.
            if let Ok(input) = T::arbitrary_take_rest(Unstructured::new(&data)) {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&input)));
                assert!(result.is_ok(), "{target}: {} fails", path.display());
                count += 1;
            }
        }
    }
    count
}

#[test]
fn replay_rows() {
    let n = replay::<inputs::RowsInput>("rows", inputs::run_rows);
    println!("rows: {n} inputs replayed");
}

#[test]
fn replay_exp() {
    let n = replay::<inputs::SliceInput>("exp", |i| inputs::run_slice(i, true));
    println!("exp: {n} inputs replayed");
}

#[test]
fn replay_max() {
    let n = replay::<inputs::SliceInput>("max", |i| inputs::run_slice(i, false));
    println!("max: {n} inputs replayed");
}

#[test]
fn replay_validation() {
    let n = replay::<inputs::ValidationInput>("validation", inputs::run_validation);
    println!("validation: {n} inputs replayed");
}

/// The regression corpus is not empty: every crash found so far is kept.
#[test]
fn regressions_are_kept() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/rows");
    assert!(std::fs::read_dir(dir).unwrap().count() >= 1);
}

#[test]
fn replay_cross_entropy() {
    let n = replay::<inputs::CrossEntropyInput>("cross_entropy", inputs::run_cross_entropy);
    println!("cross_entropy: {n} inputs replayed");
}

#[test]
fn replay_half() {
    let n = replay::<inputs::HalfInput>("half", inputs::run_half);
    println!("half: {n} inputs replayed");
}

#[test]
fn replay_huge_rows() {
    let n = replay::<inputs::HugeRowsInput>("huge_rows", inputs::run_huge_rows);
    println!("huge_rows: {n} inputs replayed");
}
