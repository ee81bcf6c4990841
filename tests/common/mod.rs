//! Helpers shared by the integration tests: they live in the library (`xent::fuzz_checks`) so
//! that the fuzz targets run exactly the same checks.
#![allow(unused_imports)]

pub use xent::fuzz_checks::*;

pub mod rows {
    pub use xent::fuzz_checks::{bounds, check_rows, Bounds, Worst};
}
