//! The element types the kernels accept, and how each is loaded into and stored from vectors.
//!
//! An element type names its compute precision ([`Element::Real`]: f32 for f32, and for the
//! half-precision types a later release adds; f64 for f64) and converts vectors of itself to and
//! from that precision. The kernels are written once against this trait, so a new storage type
//! only has to say how it loads and stores.

use crate::cross_entropy::{CeRowPart, CeTask};
use crate::kernels::ce::RowForward;
use crate::kernels::row::Stats;
use crate::kernels::{ExpTask, FirstIndexTask, MaxTask, RowsTask, SegmentStats, SegmentWrite};
use crate::simd::{FloatVec, Isa, IsaPath, Real};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// The vector of `E`'s compute precision under instruction set `S`.
pub(crate) type VecOf<S, E> = <<E as Element>::Real as Real>::Vec<S>;

/// A floating-point element type xent computes on: `f32`, `f64`, or the half-precision storage
/// types [`half::f16`] and [`half::bf16`] (computed in f32, each output rounded once).
///
/// Sealed: the kernels' accuracy proofs depend on each type's exact conversion rules.
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + PartialEq + core::fmt::Debug + 'static
{
    /// The precision arithmetic is done in.
    #[doc(hidden)]
    type Real: Real;

    /// The type intermediate terms are kept in between two passes over a row (the compute
    /// precision: the element type itself, f32 for f16 / bf16).
    #[doc(hidden)]
    type Terms: Element<Real = Self::Real>;

    /// A short name (`"f32"`).
    const NAME: &'static str;

    /// The pattern of +inf where the type is 16-bit sign-magnitude (f16, bf16): a scan for the
    /// maximum and NaN can then compare the stored patterns as integers. `None` for f32, f64.
    #[doc(hidden)]
    const HALF_INF_BITS: Option<u16> = None;

    /// Converts to the compute precision (exact).
    #[doc(hidden)]
    fn to_real(self) -> Self::Real;

    /// Rounds from the compute precision (once, to nearest even).
    #[doc(hidden)]
    fn from_real(x: Self::Real) -> Self;

    /// Converts to f64 (exact for every element type).
    fn to_f64(self) -> f64;

    /// Rounds from f64 to nearest even.
    fn from_f64(x: f64) -> Self;

    /// Loads `LANES` elements.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `VecOf::<S, Self>::LANES` elements.
    #[doc(hidden)]
    unsafe fn load<S: Isa>(isa: S, ptr: *const Self) -> VecOf<S, Self>;

    /// Stores `LANES` elements.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `VecOf::<S, Self>::LANES` elements.
    #[doc(hidden)]
    unsafe fn store<S: Isa>(v: VecOf<S, Self>, ptr: *mut Self);

    /// [`Element::store`] of lanes none of which is NaN: the same bits, without the NaN
    /// handling where a type has one (bfloat16's integer rounding).
    ///
    /// # Safety
    /// As [`Element::store`]; no lane of `v` may be NaN (a NaN lane would be stored as some
    /// other value).
    #[doc(hidden)]
    unsafe fn store_no_nan<S: Isa>(v: VecOf<S, Self>, ptr: *mut Self) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::store::<S>(v, ptr) }
    }

    /// Stores two vectors to `2 · LANES` consecutive elements, `low` first: the bits of
    /// [`Element::store`] (or of [`Element::store_no_nan`] when `NAN` is false, with its
    /// promise) of each, in fewer operations where a path converts pairs at once.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `2 · LANES` elements; with `NAN == false` no lane may be
    /// NaN.
    #[doc(hidden)]
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    unsafe fn store_pair<S: Isa, const NAN: bool>(
        isa: S,
        low: VecOf<S, Self>,
        high: VecOf<S, Self>,
        ptr: *mut Self,
    ) {
        let _ = isa;
        let lanes = <VecOf<S, Self> as FloatVec>::LANES;
        // SAFETY: forwarded from the caller.
        unsafe {
            if NAN {
                Self::store::<S>(low, ptr);
                Self::store::<S>(high, ptr.add(lanes));
            } else {
                Self::store_no_nan::<S>(low, ptr);
                Self::store_no_nan::<S>(high, ptr.add(lanes));
            }
        }
    }

    /// [`Element::store_pair`] (with NaN lanes allowed) by non-temporal stores.
    ///
    /// # Safety
    /// `ptr` valid for writing `2 · LANES` elements and aligned to their size or to 64 bytes,
    /// whichever is smaller (each non-temporal store writes one aligned vector).
    #[doc(hidden)]
    unsafe fn stream_pair<S: Isa>(
        isa: S,
        low: VecOf<S, Self>,
        high: VecOf<S, Self>,
        ptr: *mut Self,
    );

    /// Loads `n < LANES` elements; the other lanes are `pad`.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `n` elements.
    #[doc(hidden)]
    unsafe fn load_partial<S: Isa>(
        isa: S,
        ptr: *const Self,
        n: usize,
        pad: Self::Real,
    ) -> VecOf<S, Self>;

    /// Stores the first `n < LANES` lanes.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `n` elements.
    #[doc(hidden)]
    unsafe fn store_partial<S: Isa>(v: VecOf<S, Self>, ptr: *mut Self, n: usize);

    /// Loads four elements into lanes 0..4 (the other lanes unspecified; `FloatVec::load_quad`).
    ///
    /// # Safety
    /// `ptr` must be valid for reading four elements; `LANES ≥ 4`.
    #[doc(hidden)]
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    unsafe fn load_quad<S: Isa>(isa: S, ptr: *const Self) -> VecOf<S, Self> {
        // SAFETY: forwarded.
        unsafe { Self::load_partial(isa, ptr, 4, <Self::Real as Real>::ZERO) }
    }

    /// Stores lanes 0..4.
    ///
    /// # Safety
    /// `ptr` must be valid for writing four elements; `LANES ≥ 4`.
    #[doc(hidden)]
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    unsafe fn store_quad<S: Isa>(v: VecOf<S, Self>, ptr: *mut Self) {
        // SAFETY: forwarded.
        unsafe { Self::store_partial(v, ptr, 4) }
    }

    // The kernel tasks of this element type, one method per task kind, implemented for each type
    // by `kernel_instances!`. The public functions are generic, but they reach the kernels only
    // through these non-generic methods, so every kernel is compiled once, in this crate, at
    // this crate's optimisation level, never re-instantiated in a caller's crate (a doctest or a
    // debug build would compile it there unoptimised, with megabyte stack frames; see build.rs).
    #[doc(hidden)]
    fn run_rows_task(path: IsaPath, task: RowsTask<Self>);
    #[doc(hidden)]
    fn run_segment_stats(path: IsaPath, task: SegmentStats<Self>) -> Stats;
    #[doc(hidden)]
    fn run_segment_write(path: IsaPath, task: SegmentWrite<Self>);
    #[doc(hidden)]
    fn run_exp_task(path: IsaPath, task: ExpTask<Self>);
    #[doc(hidden)]
    fn run_max_task(path: IsaPath, task: MaxTask<'_, Self>) -> (Self::Real, bool);
    #[doc(hidden)]
    fn run_first_index_task(path: IsaPath, task: FirstIndexTask<'_, Self>) -> Option<usize>;
    #[doc(hidden)]
    fn run_ce_task(path: IsaPath, task: CeTask<'_, Self>) -> usize;
    #[doc(hidden)]
    fn run_ce_row_part(path: IsaPath, task: CeRowPart<'_, Self>) -> (RowForward, f64);
}

/// The bodies of [`Element`]'s `run_*` methods: each enters the dispatcher with a task of the
/// implementing type. `#[inline(never)]`: the call must stay a call into this crate's code.
///
/// Except under `cargo fuzz` (`cfg(fuzzing)`: AddressSanitizer, coverage instrumentation, one
/// codegen unit): compiling every instance into this crate there took more than 15 minutes of
/// one core, so they are `#[inline]` and each fuzz target compiles, optimised, only the kernels
/// it calls, the targets side by side.
macro_rules! kernel_instances {
    () => {
        kernel_instances! {
            run_rows_task(RowsTask<Self>);
            run_segment_stats(SegmentStats<Self>) -> Stats;
            run_segment_write(SegmentWrite<Self>);
            run_exp_task(ExpTask<Self>);
            run_max_task(MaxTask<'_, Self>) -> (Self::Real, bool);
            run_first_index_task(FirstIndexTask<'_, Self>) -> Option<usize>;
            run_ce_task(CeTask<'_, Self>) -> usize;
            run_ce_row_part(CeRowPart<'_, Self>) -> (RowForward, f64);
        }
    };
    ($($name:ident($task:ty) $(-> $out:ty)?;)*) => {
        $(
            #[cfg_attr(not(fuzzing), inline(never))]
            #[cfg_attr(fuzzing, inline)]
            fn $name(path: IsaPath, task: $task) $(-> $out)? {
                crate::simd::dispatch(path, task)
            }
        )*
    };
}

macro_rules! native_element {
    ($t:ty, $vec:ident) => {
        impl Element for $t {
            type Real = $t;
            type Terms = $t;
            const NAME: &'static str = stringify!($t);

            kernel_instances!();

            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn to_real(self) -> $t {
                self
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn from_real(x: $t) -> Self {
                x
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn load<S: Isa>(isa: S, ptr: *const Self) -> S::$vec {
                // SAFETY: forwarded from the caller.
                unsafe { <S::$vec as FloatVec>::load(isa, ptr) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store<S: Isa>(v: S::$vec, ptr: *mut Self) {
                // SAFETY: forwarded from the caller.
                unsafe { v.store(ptr) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn stream_pair<S: Isa>(_: S, low: S::$vec, high: S::$vec, ptr: *mut Self) {
                // SAFETY: forwarded from the caller; each vector (at most 64 bytes) is aligned to
                // its own size.
                unsafe {
                    low.stream(ptr);
                    high.stream(ptr.add(<S::$vec as FloatVec>::LANES));
                }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn load_partial<S: Isa>(isa: S, ptr: *const Self, n: usize, pad: $t) -> S::$vec {
                // SAFETY: forwarded from the caller.
                unsafe { <S::$vec as FloatVec>::load_partial(isa, ptr, n, pad) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store_partial<S: Isa>(v: S::$vec, ptr: *mut Self, n: usize) {
                // SAFETY: forwarded from the caller.
                unsafe { v.store_partial(ptr, n) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn load_quad<S: Isa>(isa: S, ptr: *const Self) -> S::$vec {
                // SAFETY: forwarded from the caller.
                unsafe { <S::$vec as FloatVec>::load_quad(isa, ptr) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store_quad<S: Isa>(v: S::$vec, ptr: *mut Self) {
                // SAFETY: forwarded from the caller.
                unsafe { v.store_quad(ptr) }
            }
        }
    };
}

native_element!(f32, F32);
native_element!(f64, F64);

/// Half-precision storage: loaded into f32 lanes exactly, computed in f32, stored with one
/// round-to-nearest-even (`Isa::load_half` / `Isa::store_half`: F16C for binary16 and integer
/// code for bfloat16 on AVX2, the `half` crate's identical conversions on the scalar path).
macro_rules! half_element {
    ($t:ty, $bf16:expr, $name:expr) => {
        impl Element for $t {
            type Real = f32;
            type Terms = f32;
            const NAME: &'static str = $name;
            const HALF_INF_BITS: Option<u16> = Some(<$t>::INFINITY.to_bits());

            kernel_instances!();

            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn to_real(self) -> f32 {
                // Exactly as the vector loads widen it (NaN payloads included).
                // SAFETY: `self` is one readable 16-bit value.
                unsafe {
                    crate::simd::scalar::Scalar
                        .load_half::<$bf16>(&self as *const Self as *const u16)
                }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn from_real(x: f32) -> Self {
                <$t>::from_f32(x)
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn to_f64(self) -> f64 {
                f64::from(self.to_real())
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            fn from_f64(x: f64) -> Self {
                // One rounding, straight from f64.
                <$t>::from_f64(x)
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn load<S: Isa>(isa: S, ptr: *const Self) -> S::F32 {
                // SAFETY: forwarded from the caller; the types are 16-bit patterns.
                unsafe { isa.load_half::<$bf16>(ptr as *const u16) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store<S: Isa>(v: S::F32, ptr: *mut Self) {
                // SAFETY: forwarded from the caller.
                unsafe { S::store_half::<$bf16, true>(v, ptr as *mut u16) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store_no_nan<S: Isa>(v: S::F32, ptr: *mut Self) {
                // SAFETY: forwarded from the caller, who guarantees no NaN lane.
                unsafe { S::store_half::<$bf16, false>(v, ptr as *mut u16) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store_pair<S: Isa, const NAN: bool>(
                isa: S,
                low: S::F32,
                high: S::F32,
                ptr: *mut Self,
            ) {
                // SAFETY: forwarded from the caller.
                unsafe { isa.store_half_pair::<$bf16, NAN>(low, high, ptr as *mut u16) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn stream_pair<S: Isa>(isa: S, low: S::F32, high: S::F32, ptr: *mut Self) {
                // SAFETY: forwarded from the caller.
                unsafe { isa.stream_half_pair::<$bf16>(low, high, ptr as *mut u16) }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn load_partial<S: Isa>(isa: S, ptr: *const Self, n: usize, pad: f32) -> S::F32 {
                let mut buf = [<$t>::from_f32(pad); 16];
                // SAFETY: the caller guarantees n < LANES ≤ 16 readable values.
                unsafe {
                    core::ptr::copy_nonoverlapping(ptr, buf.as_mut_ptr(), n);
                    isa.load_half::<$bf16>(buf.as_ptr() as *const u16)
                }
            }
            #[cfg_attr(not(xent_unoptimized), inline(always))]
            unsafe fn store_partial<S: Isa>(v: S::F32, ptr: *mut Self, n: usize) {
                let mut buf = [<$t>::from_f32(0.0); 16];
                // SAFETY: buf holds 16 ≥ LANES values; the caller guarantees n writable ones.
                unsafe {
                    Self::store::<S>(v, buf.as_mut_ptr());
                    core::ptr::copy_nonoverlapping(buf.as_ptr(), ptr, n);
                }
            }
        }
    };
}

half_element!(half::f16, false, "f16");
half_element!(half::bf16, true, "bf16");

/// Loads the `src.len()` (< LANES) trailing elements into a vector, the other lanes set to `pad`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn load_tail<S: Isa, E: Element>(isa: S, src: &[E], pad: E::Real) -> VecOf<S, E> {
    // SAFETY: `src` is valid for its length.
    unsafe { E::load_partial(isa, src.as_ptr(), src.len(), pad) }
}

/// Stores the first `dst.len()` (< LANES) lanes of `v`.
#[cfg_attr(not(xent_unoptimized), inline(always))]
pub(crate) fn store_tail<S: Isa, E: Element>(v: VecOf<S, E>, dst: &mut [E]) {
    // SAFETY: `dst` is valid for its length.
    unsafe { E::store_partial(v, dst.as_mut_ptr(), dst.len()) }
}
