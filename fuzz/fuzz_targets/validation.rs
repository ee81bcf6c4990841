#![no_main]
//! Fuzz target `validation`: the checks live in `xent::fuzz_checks`; see docs/fuzzing.md.

#[path = "inputs.rs"]
mod inputs;

libfuzzer_sys::fuzz_target!(|input: inputs::ValidationInput| {
    inputs::run_validation(&input);
});
