#![no_main]
//! Fuzz target `rows`: the checks live in `xent::fuzz_checks`; see docs/fuzzing.md.

#[path = "inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|input: inputs::RowsInput| {
    inputs::run_rows(&input);
});
