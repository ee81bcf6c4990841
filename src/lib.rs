//! # xent: the last stage of a classifier, at memory speed
//!
//! Hand-vectorised, cache-aware CPU kernels for max, exp, log-sum-exp, softmax and log-softmax
//! over batches of rows (tokens or examples) × columns (classes or vocabulary), in `f32` and `f64`,
//! dispatched at run time to the best instruction set the CPU has (AVX-512 or AVX2 + FMA on
//! x86-64, or a portable scalar path), parallel over rows with rayon, and tested against a scalar
//! oracle that computes in higher precision ([`mod@reference`]).
//!
//! Rows are row-major and contiguous: a batch of `rows` rows with `cols` columns is a slice of
//! length `rows * cols`.
//!
//! ## The worked example
//!
//! The logits a model produces for `Max(1,6,2)` over a 20-token vocabulary; the answer is token
//! 8 (`'6'`). The exponentials sum to 61.6043, so p\[8\] = 0.690229 and the cross-entropy loss is
//! −ln p\[8\] = 0.370732:
//!
//! ```
//! let logits: [f32; 20] = [
//!     -2.34, -1.56, -0.82, -0.31, 1.23, 0.78, 0.94, 1.52, 3.75, 0.41,
//!     0.23, -0.08, -1.92, -1.67, -1.43, -2.01, -1.78, -2.34, -2.12, -2.45,
//! ];
//! let mut p = [0f32; 20];
//! xent::softmax_rows(&logits, 20, &mut p)?;
//! assert!((p[8] - 0.690229).abs() < 1e-6);
//!
//! let mut logp = [0f32; 20];
//! xent::log_softmax_rows(&logits, 20, &mut logp)?;
//! assert!((-logp[8] - 0.370732).abs() < 1e-6);
//!
//! let lse = xent::logsumexp(&logits);
//! assert!((lse - 61.6043f32.ln()).abs() < 1e-6);
//! # Ok::<(), xent::Error>(())
//! ```
//!
//! ## Special values
//!
//! NaN anywhere in a row makes that row's results NaN; −inf logits get probability 0; a row of
//! only −inf has log-sum-exp −inf and softmax 0 (not NaN); +inf logits share the probability
//! mass equally. The full table is in `docs/semantics.md`.
//!
//! ## Choosing the instruction set
//!
//! The best path the CPU runs is picked at run time: AVX-512 (sixteen f32 lanes), AVX2 + FMA
//! (eight), or scalar. [`isa`] names the path in use. [`force_isa`] pins the calling thread to a
//! path (tests and benchmarks use it to compare the paths); work it starts on rayon's threads
//! follows the same path.

#![warn(missing_docs)]

mod cross_entropy;
mod element;
mod error;
#[doc(hidden)]
pub mod fuzz_checks;
mod kernels;
mod parallel;
pub mod reference;
mod simd;

pub use cross_entropy::{CrossEntropy, GradOutput, Output, Reduction, Target};
pub use element::Element;
pub use error::Error;
/// The half-precision element types ([`half::f16`], [`half::bf16`]), re-exported.
pub use half;
pub use simd::IsaPath;

use kernels::row::Scale;
use kernels::RowOp;

/// The instruction-set path kernels called from this thread use now.
pub fn isa() -> IsaPath {
    simd::current()
}

/// Pins the calling thread to `path` until the returned guard is dropped.
///
/// ```
/// let _scalar = xent::force_isa(xent::IsaPath::Scalar)?;
/// assert_eq!(xent::isa(), xent::IsaPath::Scalar);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn force_isa(path: IsaPath) -> Result<IsaGuard, Error> {
    if !path.is_available() {
        return Err(Error::IsaUnavailable { path });
    }
    Ok(IsaGuard {
        previous: simd::set_forced(Some(path)),
    })
}

/// Restores the previous instruction-set choice of the thread when dropped (see [`force_isa`]).
#[must_use = "the path is only forced while the guard lives"]
#[derive(Debug)]
pub struct IsaGuard {
    previous: Option<IsaPath>,
}

impl Drop for IsaGuard {
    fn drop(&mut self) {
        simd::set_forced(self.previous);
    }
}

/// Sets the largest row (in bytes) for which softmax stores the exponentials in the statistics
/// pass and rescales them in cache, instead of recomputing them in a second read (default
/// 1 MiB, also the largest value accepted). A tuning knob for benchmarks; results stay within the documented bounds either way.
#[doc(hidden)]
pub fn set_softmax_store_limit_bytes(bytes: usize) {
    kernels::row::set_store_limit_bytes(bytes);
}

/// The maximum of `x`; `None` when empty, NaN (the first NaN of `x`) when any element is NaN.
///
/// NaN propagates whatever its position (unlike x86 `maxps`, which drops a NaN in one operand).
/// When the maximum is zero, its sign is unspecified.
///
/// ```
/// assert_eq!(xent::max(&[1.0f32, 3.0, -2.0]), Some(3.0));
/// assert!(xent::max(&[1.0f32, f32::NAN, 3.0]).unwrap().is_nan());
/// assert_eq!(xent::max::<f64>(&[]), None);
/// ```
pub fn max<E: Element>(x: &[E]) -> Option<E> {
    if x.is_empty() {
        return None;
    }
    let path = isa();
    let (m, nan) = kernels::run_max(path, x);
    if nan {
        let i = kernels::run_first_index(path, x, <E::Real as simd::Real>::NAN)?;
        return Some(x[i]);
    }
    Some(E::from_real(m))
}

/// The index of the first maximal element of `x` (the first NaN's index if any element is NaN,
/// as `torch.argmax` does); `None` when empty.
///
/// ```
/// assert_eq!(xent::argmax(&[1.0f32, 3.0, 3.0, -2.0]), Some(1));
/// assert_eq!(xent::argmax(&[1.0f32, f32::NAN, 3.0, f32::NAN]), Some(1));
/// ```
pub fn argmax<E: Element>(x: &[E]) -> Option<usize> {
    if x.is_empty() {
        return None;
    }
    let path = isa();
    let (m, nan) = kernels::run_max(path, x);
    let target = if nan { <E::Real as simd::Real>::NAN } else { m };
    kernels::run_first_index(path, x, target)
}

/// Writes e^x for every element of `x` into `out` (within 1 ULP of the exact value).
///
/// ```
/// let mut out = [0f32; 3];
/// xent::exp(&[0.0f32, 1.0, f32::NEG_INFINITY], &mut out)?;
/// assert_eq!(out[0], 1.0);
/// assert!((out[1] - std::f32::consts::E).abs() <= f32::EPSILON * 3.0);
/// assert_eq!(out[2], 0.0);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn exp<E: Element>(x: &[E], out: &mut [E]) -> Result<(), Error> {
    check_len("out", x.len(), out.len())?;
    // SAFETY: x and out are distinct borrows of x.len() elements.
    unsafe { kernels::run_exp(isa(), x.as_ptr(), out.as_mut_ptr(), x.len()) };
    Ok(())
}

/// Replaces every element of `x` by e^x.
///
/// ```
/// let mut x = [0.0f64, 2.0];
/// xent::exp_inplace(&mut x);
/// assert_eq!(x[0], 1.0);
/// assert!((x[1] - 2f64.exp()).abs() <= 2.0 * f64::EPSILON * x[1]);
/// ```
pub fn exp_inplace<E: Element>(x: &mut [E]) {
    let p = x.as_mut_ptr();
    // SAFETY: in place over x.len() elements of one exclusive borrow.
    unsafe { kernels::run_exp(isa(), p, p, x.len()) };
}

/// ln Σ e^x over all of `x` (−inf when empty). See [`Softmax`] for a temperature.
///
/// ```
/// let lse = xent::logsumexp(&[1000.0f32, 1000.0]);
/// assert!((lse - (1000.0 + 2f32.ln())).abs() < 1e-3);
/// assert_eq!(xent::logsumexp::<f32>(&[]), f32::NEG_INFINITY);
/// ```
pub fn logsumexp<E: Element>(x: &[E]) -> E {
    Softmax::new()
        .logsumexp(x)
        .expect("temperature 1 is always valid")
}

/// ln Σ_j e^x[r, j] for every row r of `x` (`rows = x.len() / cols`), into `out[r]`.
///
/// ```
/// let x = [0.0f32, 0.0, 1.0, f32::NEG_INFINITY];
/// let mut lse = [0f32; 2];
/// xent::logsumexp_rows(&x, 2, &mut lse)?;
/// assert!((lse[0] - 2f32.ln()).abs() < 1e-6);
/// assert_eq!(lse[1], 1.0);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn logsumexp_rows<E: Element>(x: &[E], cols: usize, out: &mut [E]) -> Result<(), Error> {
    Softmax::new().logsumexp_rows(x, cols, out)
}

/// Softmax of every row of `x` into `out` (same shape).
///
/// ```
/// let x = [1.0f32, 1.0, 0.0, f32::NEG_INFINITY];
/// let mut p = [0f32; 4];
/// xent::softmax_rows(&x, 2, &mut p)?;
/// assert_eq!(p, [0.5, 0.5, 1.0, 0.0]);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn softmax_rows<E: Element>(x: &[E], cols: usize, out: &mut [E]) -> Result<(), Error> {
    Softmax::new().softmax_rows(x, cols, out)
}

/// Softmax of every row of `x`, in place.
///
/// ```
/// let mut x = [0.0f64, 0.0, 0.0, 0.0];
/// xent::softmax_rows_inplace(&mut x, 4)?;
/// assert_eq!(x, [0.25; 4]);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn softmax_rows_inplace<E: Element>(x: &mut [E], cols: usize) -> Result<(), Error> {
    Softmax::new().softmax_rows_inplace(x, cols)
}

/// Log-softmax of every row of `x` into `out` (same shape).
///
/// ```
/// let x = [0.0f32, 0.0];
/// let mut out = [0f32; 2];
/// xent::log_softmax_rows(&x, 2, &mut out)?;
/// assert_eq!(out, [-(2f32.ln()); 2]);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn log_softmax_rows<E: Element>(x: &[E], cols: usize, out: &mut [E]) -> Result<(), Error> {
    Softmax::new().log_softmax_rows(x, cols, out)
}

/// Log-softmax of every row of `x`, in place.
///
/// ```
/// let mut x = [5.0f32, f32::NEG_INFINITY];
/// xent::log_softmax_rows_inplace(&mut x, 2)?;
/// assert_eq!(x, [0.0, f32::NEG_INFINITY]);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn log_softmax_rows_inplace<E: Element>(x: &mut [E], cols: usize) -> Result<(), Error> {
    Softmax::new().log_softmax_rows_inplace(x, cols)
}

/// Options of the softmax family: the temperature τ (the kernels compute softmax(x / τ)).
///
/// τ must be finite and > 0 (and 1/τ representable in the element type); a call with an invalid
/// τ returns [`Error::InvalidTemperature`] without touching its outputs.
///
/// ```
/// let x = [2.0f32, 0.0];
/// let mut p = [0f32; 2];
/// xent::Softmax::new().temperature(2.0).softmax_rows(&x, 2, &mut p)?;
/// let e = 1f32.exp();
/// assert!((p[0] - e / (e + 1.0)).abs() < 1e-6);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Softmax {
    temperature: f64,
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax::new()
    }
}

impl Softmax {
    /// Temperature 1.
    pub fn new() -> Self {
        Softmax { temperature: 1.0 }
    }

    /// Sets the temperature τ (validated when a kernel runs).
    pub fn temperature(mut self, tau: f64) -> Self {
        self.temperature = tau;
        self
    }

    /// The temperature τ.
    pub fn get_temperature(&self) -> f64 {
        self.temperature
    }

    fn scale<E: Element>(&self) -> Result<Scale<E::Real>, Error> {
        Scale::new(self.temperature).ok_or(Error::InvalidTemperature {
            value: self.temperature,
        })
    }

    /// ln Σ e^(x/τ) over all of `x` (−inf when empty).
    pub fn logsumexp<E: Element>(&self, x: &[E]) -> Result<E, Error> {
        let mut out = [E::from_f64(0.0)];
        if x.is_empty() {
            self.scale::<E>()?;
            return Ok(E::from_f64(f64::NEG_INFINITY));
        }
        self.logsumexp_rows(x, x.len(), &mut out)?;
        Ok(out[0])
    }

    /// ln Σ_j e^(x[r, j]/τ) for every row into `out[r]`.
    ///
    /// With `cols == 0` the input must be empty and every row of `out` (of zero columns) gets
    /// −inf.
    pub fn logsumexp_rows<E: Element>(
        &self,
        x: &[E],
        cols: usize,
        out: &mut [E],
    ) -> Result<(), Error> {
        let sc = self.scale::<E>()?;
        if cols == 0 {
            check_cols(x.len(), cols)?;
            out.fill(E::from_f64(f64::NEG_INFINITY));
            return Ok(());
        }
        let rows = check_cols(x.len(), cols)?;
        check_len("out", rows, out.len())?;
        // SAFETY: x holds rows * cols elements; out holds rows outputs; distinct borrows.
        unsafe {
            kernels::run_rows(
                isa(),
                RowOp::LogSumExp,
                x.as_ptr(),
                core::ptr::null_mut(),
                out.as_mut_ptr(),
                rows,
                cols,
                sc,
            )
        };
        Ok(())
    }

    /// Softmax of every row of `x / τ` into `out`.
    pub fn softmax_rows<E: Element>(
        &self,
        x: &[E],
        cols: usize,
        out: &mut [E],
    ) -> Result<(), Error> {
        self.rows_out(RowOp::Softmax, x, cols, out)
    }

    /// Softmax of every row of `x / τ`, in place.
    pub fn softmax_rows_inplace<E: Element>(&self, x: &mut [E], cols: usize) -> Result<(), Error> {
        self.rows_inplace(RowOp::Softmax, x, cols)
    }

    /// Log-softmax of every row of `x / τ` into `out`.
    pub fn log_softmax_rows<E: Element>(
        &self,
        x: &[E],
        cols: usize,
        out: &mut [E],
    ) -> Result<(), Error> {
        self.rows_out(RowOp::LogSoftmax, x, cols, out)
    }

    /// Log-softmax of every row of `x / τ`, in place.
    pub fn log_softmax_rows_inplace<E: Element>(
        &self,
        x: &mut [E],
        cols: usize,
    ) -> Result<(), Error> {
        self.rows_inplace(RowOp::LogSoftmax, x, cols)
    }

    fn rows_out<E: Element>(
        &self,
        op: RowOp,
        x: &[E],
        cols: usize,
        out: &mut [E],
    ) -> Result<(), Error> {
        let sc = self.scale::<E>()?;
        let rows = check_cols(x.len(), cols)?;
        check_len("out", x.len(), out.len())?;
        // SAFETY: x and out are distinct borrows of rows * cols elements.
        unsafe {
            kernels::run_rows(
                isa(),
                op,
                x.as_ptr(),
                out.as_mut_ptr(),
                core::ptr::null_mut(),
                rows,
                cols,
                sc,
            )
        };
        Ok(())
    }

    fn rows_inplace<E: Element>(&self, op: RowOp, x: &mut [E], cols: usize) -> Result<(), Error> {
        let sc = self.scale::<E>()?;
        let rows = check_cols(x.len(), cols)?;
        let p = x.as_mut_ptr();
        // SAFETY: in place over rows * cols elements of one exclusive borrow.
        unsafe { kernels::run_rows(isa(), op, p, p, core::ptr::null_mut(), rows, cols, sc) };
        Ok(())
    }
}

/// The number of rows of a `len`-element input with `cols` columns.
fn check_cols(len: usize, cols: usize) -> Result<usize, Error> {
    if cols == 0 {
        return if len == 0 {
            Ok(0)
        } else {
            Err(Error::ZeroCols { len })
        };
    }
    if !len.is_multiple_of(cols) {
        return Err(Error::NotMultipleOfCols { len, cols });
    }
    Ok(len / cols)
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
