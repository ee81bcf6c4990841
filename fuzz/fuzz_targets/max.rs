#![no_main]
//! Fuzz target `max`: the checks live in `xent::fuzz_checks`; see docs/fuzzing.md.

#[path = "inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|input: inputs::SliceInput| {
    inputs::run_slice(&input, false);
});
