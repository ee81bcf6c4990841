#![no_main]
//! Fuzz target `half`: every kernel family on f16 / bf16 inputs against the oracle; the checks
//! live in `xent::fuzz_checks`; see docs/fuzzing.md.

#[path = "inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|input: inputs::HalfInput| {
    inputs::run_half(&input);
});
