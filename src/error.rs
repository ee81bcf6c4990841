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
    /// A target is neither a class index in `0..classes` nor the `ignore_index`.
    TargetOutOfRange {
        /// The row.
        row: usize,
        /// Its target (saturated to `i64::MAX` for larger unsigned values).
        target: i64,
        /// The number of classes (`cols`).
        classes: usize,
    },
    /// A class weight is negative, NaN or infinite.
    InvalidWeight {
        /// The class.
        class: usize,
        /// Its weight.
        value: f64,
    },
    /// A numeric option is out of its range.
    InvalidOption {
        /// The option (`"label_smoothing"`, `"z_loss"`, `"softcap"`).
        name: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
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
            Error::TargetOutOfRange {
                row,
                target,
                classes,
            } => write!(
                f,
                "row {row} has target {target}, which is neither a class in 0..{classes} nor \
                 the ignore_index"
            ),
            Error::InvalidWeight { class, value } => write!(
                f,
                "class {class} has weight {value}: weights must be finite and >= 0"
            ),
            Error::InvalidOption {
                name,
                value,
                expected,
            } => write!(
                f,
                "option `{name}` = {value} is invalid: it must be {expected}"
            ),
            Error::IsaUnavailable { path } => {
                write!(f, "instruction set `{path}` is not available on this CPU")
            }
        }
    }
}

impl std::error::Error for Error {}
