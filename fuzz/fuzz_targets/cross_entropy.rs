#![no_main]
//! Fuzz target `cross_entropy`: every entry point and option against the oracle; the checks
//! live in `xent::fuzz_checks`; see docs/fuzzing.md.

#[path = "inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|input: inputs::CrossEntropyInput| {
    inputs::run_cross_entropy(&input);
});
