#![no_main]
//! Fuzz target `huge_rows`: rows long enough to be split across threads, against the oracle
//! and across thread counts; see docs/fuzzing.md.

#[path = "inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|input: inputs::HugeRowsInput| {
    inputs::run_huge_rows(&input);
});
