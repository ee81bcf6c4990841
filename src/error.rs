//! The error type: every invalid input is reported, never a panic, and no output is touched.

use core::fmt;

/// Why a call was rejected. When a function returns an error, it has not written to any of its
/// output buffers.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer has the wrong length.
    LengthMismatch {
        /// Which buffer (`"out"`, `"x"`, …).
        what: &'static str,
        /// The length the shape requires.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The input length is not a multiple of the number of columns.
    NotMultipleOfCols {
        /// Input length.
        len: usize,
        /// Columns per row.
        cols: usize,
    },
    /// `cols == 0` with a non-empty input.
    ZeroCols {
        /// Input length.
        len: usize,
    },
    /// The temperature is not finite and positive, or its reciprocal is not representable in
    /// the element type's compute precision.
    InvalidTemperature {
        /// The temperature given.
        value: f64,
    },
    /// A forced instruction-set path is not available on this CPU.
    IsaUnavailable {
        /// The path asked for.
        path: crate::IsaPath,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LengthMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "`{what}` has length {actual}, but the shape requires {expected}"
            ),
            Error::NotMultipleOfCols { len, cols } => write!(
                f,
                "input length {len} is not a multiple of cols = {cols} (rows must be complete)"
            ),
            Error::ZeroCols { len } => {
                write!(
                    f,
                    "cols = 0 with an input of length {len} (cols must be > 0)"
                )
            }
            Error::InvalidTemperature { value } => write!(
                f,
                "temperature {value} is invalid: it must be finite and > 0, with 1/temperature \
                 finite and non-zero in the element's compute precision"
            ),
            Error::IsaUnavailable { path } => {
                write!(f, "instruction set `{path}` is not available on this CPU")
            }
        }
    }
}

impl std::error::Error for Error {}
