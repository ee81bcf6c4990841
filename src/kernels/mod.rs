//! The kernels, each written once over an element type and an instruction set, and the drivers
//! that run them over rows and threads.

pub(crate) mod ce;
pub(crate) mod exp;
pub(crate) mod reduce;
pub(crate) mod row;

use crate::element::Element;
use crate::parallel::{self, SendPtr};
use crate::simd::{dispatch, IsaPath, Kernel, Real};
use row::{RowCase, Scale, Stats, SEGMENT};

/// Which row operation a driver runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RowOp {
    LogSumExp,
    Softmax,
    LogSoftmax,
}

/// A group of whole rows, run on one thread.
pub struct RowsTask<E: Element> {
    op: RowOp,
    src: *const E,
    /// Row outputs (softmax / log-softmax); unused for log-sum-exp.
    dst: *mut E,
    /// One output per row (log-sum-exp); unused otherwise.
    lse: *mut E,
    /// A scratch row for softmax's stored terms when they do not fit in the output row (f16,
    /// bf16) or when the call streams its output; null otherwise.
    terms: *mut E::Terms,
    rows: usize,
    cols: usize,
    sc: Scale<E::Real>,
    /// Write the outputs with non-temporal stores.
    stream: bool,
    /// The batch is at least [`row::STREAM_MIN_BYTES`], so it comes from memory: the passes
    /// hint lines further ahead (the next row, or four blocks into L2).
    from_memory: bool,
}

impl<E: Element> Kernel for RowsTask<E> {
    type Output = ();

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) {
        let cols = self.cols;
        let scratch = row::terms_need_scratch::<E>();
        let store = cols <= row::store_limit::<E>() && !(scratch && self.terms.is_null());
        let lanes = <crate::element::VecOf<S, E> as crate::simd::FloatVec>::LANES;
        let small = cols <= row::SMALL_VECTORS * lanes;
        if small {
            // LANES rows at a time, column-major (`row::small_rows_batch`); the rows it hands
            // back take the general path.
            let op = match self.op {
                RowOp::Softmax => row::SmallOp::Softmax,
                RowOp::LogSoftmax => row::SmallOp::LogSoftmax,
                RowOp::LogSumExp => row::SmallOp::LogSumExp,
            };
            let mut columns = [<E::Real as Real>::ZERO; row::SMALL_BATCH_SCRATCH];
            let mut r = 0;
            while r < self.rows {
                let count = lanes.min(self.rows - r);
                // From memory, the rows `SMALL_ROWS_AHEAD` on are hinted (8 to 32 measured
                // alike: 8-10 % for softmax at 1048576 × 20, 18 % for log-sum-exp).
                if self.from_memory {
                    self.hint_ahead(isa, r, count);
                }
                // SAFETY: rows r .. r + count lie inside the task's rows (see `row_at`), and
                // `columns` is this call's own.
                let special = unsafe {
                    row::small_rows_batch(
                        isa,
                        op,
                        self.src.wrapping_add(r * cols),
                        self.dst.wrapping_add(r * cols),
                        self.lse.wrapping_add(r),
                        count,
                        cols,
                        &self.sc,
                        columns.as_mut_ptr(),
                    )
                };
                for i in 0..count {
                    if special >> i & 1 != 0 {
                        // SAFETY: r + i < rows.
                        unsafe { self.row_at(isa, r + i, store) };
                    }
                }
                r += count;
            }
        } else {
            for r in 0..self.rows {
                // SAFETY: r < rows.
                unsafe { self.row_at(isa, r, store) };
            }
        }
        if self.stream {
            isa.store_fence();
        }
    }
}

impl<E: Element> RowsTask<E> {
    /// Hints the `count` rows `SMALL_ROWS_AHEAD` after row `r` (those inside the task).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn hint_ahead<S: crate::simd::Isa>(&self, isa: S, r: usize, count: usize) {
        if r + SMALL_ROWS_AHEAD < self.rows {
            let first = self.src.wrapping_add((r + SMALL_ROWS_AHEAD) * self.cols);
            let rows = count.min(self.rows - r - SMALL_ROWS_AHEAD);
            row::prefetch_span(isa, first, first.wrapping_add(rows * self.cols));
        }
    }

    /// Row `r` of the task by the general path (blocks; rows of any length).
    ///
    /// # Safety
    /// `r < rows`.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    unsafe fn row_at<S: crate::simd::Isa>(&self, isa: S, r: usize, store: bool) {
        let cols = self.cols;
        let src = self.src.wrapping_add(r * cols);
        let dst = self.dst.wrapping_add(r * cols);
        // SAFETY: the driver guarantees `src` is valid for rows * cols elements, `dst` (for
        // the softmax ops) likewise and equal to or disjoint from `src`, `lse` valid for
        // `rows` outputs (log-sum-exp), and `terms`, when not null, valid for `cols`
        // elements and disjoint from both (this task's own scratch row).
        unsafe {
            if self.op == RowOp::Softmax && store {
                // With a scratch row (half precision, or a streamed call) the terms go
                // there and the rescale writes the output once, streamed when the call
                // streams; otherwise into the output row, rescaled in place.
                let hint_next = self.from_memory;
                if self.terms.is_null() {
                    let terms = dst as *mut E::Terms;
                    row::softmax_row_stored(isa, src, dst, terms, cols, &self.sc, false, hint_next);
                } else {
                    row::softmax_row_stored(
                        isa,
                        src,
                        dst,
                        self.terms,
                        cols,
                        &self.sc,
                        self.stream,
                        hint_next,
                    );
                }
                return;
            }
            // Half-precision rows are bound by arithmetic, not memory: their statistics
            // keep the L1 hints (the L2 ones measured slower for bf16 log-sum-exp).
            let far = self.from_memory && core::mem::size_of::<E>() > 2;
            let x = core::slice::from_raw_parts(src, cols);
            // A streamed log-softmax shares the next row's hints between its two passes,
            // half each, as softmax does: the write pass reads from cache and would leave
            // the memory idle. Not for half precision on AVX2, bound by arithmetic there
            // (measured up to 5 % slower; 10 % faster on AVX-512; section 27).
            let lanes = <crate::element::VecOf<S, E> as crate::simd::FloatVec>::LANES;
            let share_next = self.op == RowOp::LogSoftmax
                && self.stream
                && cols <= SEGMENT
                && (core::mem::size_of::<E>() > 2 || lanes >= 16);
            let (st, hint) = if share_next {
                (
                    row::row_stats_next(isa, x, &self.sc, 2),
                    row::Lookahead::next_row(src, cols, cols / 2, 0, 2),
                )
            } else {
                (row::row_stats(isa, x, &self.sc, far), row::Lookahead::NONE)
            };
            finish_row(
                isa,
                self.op,
                src,
                dst,
                self.lse.wrapping_add(r),
                cols,
                st,
                &self.sc,
                self.stream,
                hint,
            );
        }
    }
}

/// Rows ahead of the current one that a task over short rows from memory hints.
const SMALL_ROWS_AHEAD: usize = 16;

/// Writes a row's outputs from its statistics.
///
/// # Safety
/// As `RowsTask`, for one row.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(xent_unoptimized), inline(always))]
unsafe fn finish_row<S: crate::simd::Isa, E: Element>(
    isa: S,
    op: RowOp,
    src: *const E,
    dst: *mut E,
    lse: *mut E,
    cols: usize,
    st: Stats,
    sc: &Scale<E::Real>,
    stream: bool,
    hint: row::Lookahead<E>,
) {
    // SAFETY: forwarded.
    unsafe {
        match op {
            RowOp::LogSumExp => *lse = E::from_f64(st.logsumexp(sc.tau.inv)),
            RowOp::Softmax | RowOp::LogSoftmax => {
                let log = op == RowOp::LogSoftmax;
                match row::row_case(st) {
                    RowCase::Regular => {
                        row::write_regular(isa, src, dst, cols, st, sc, log, stream, hint)
                    }
                    case => row::write_special_row(src, dst, cols, case, st, log),
                }
            }
        }
    }
}

/// Statistics of one segment of a huge row.
pub struct SegmentStats<E: Element> {
    src: *const E,
    n: usize,
    sc: Scale<E::Real>,
}

impl<E: Element> Kernel for SegmentStats<E> {
    type Output = Stats;
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) -> Stats {
        // SAFETY: the driver passes a valid segment.
        row::segment_stats(
            isa,
            unsafe { core::slice::from_raw_parts(self.src, self.n) },
            &self.sc,
            false,
        )
    }
}

/// The output pass over one segment of a huge regular row.
pub struct SegmentWrite<E: Element> {
    src: *const E,
    dst: *mut E,
    n: usize,
    st: Stats,
    sc: Scale<E::Real>,
    log: bool,
    stream: bool,
}

impl<E: Element> Kernel for SegmentWrite<E> {
    type Output = ();
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) {
        // SAFETY: the driver passes a valid segment of src and the matching one of dst.
        unsafe {
            row::write_regular(
                isa,
                self.src,
                self.dst,
                self.n,
                self.st,
                &self.sc,
                self.log,
                self.stream,
                row::Lookahead::NONE,
            )
        }
        if self.stream {
            isa.store_fence();
        }
    }
}

/// Runs a row operation over `rows` rows of `cols` elements.
///
/// # Safety
/// `src` is valid for reading `rows * cols` elements. For softmax / log-softmax, `dst` is valid
/// for writing `rows * cols` elements and is either `src` or disjoint from it; for log-sum-exp,
/// `lse` is valid for writing `rows` elements. No other thread accesses these buffers.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_rows<E: Element>(
    path: IsaPath,
    op: RowOp,
    src: *const E,
    dst: *mut E,
    lse: *mut E,
    rows: usize,
    cols: usize,
    sc: Scale<E::Real>,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    let threads = parallel::threads();
    let from_memory = rows * cols * core::mem::size_of::<E>() >= row::STREAM_MIN_BYTES;
    let stream = !core::ptr::eq(src, dst) && from_memory;
    // A row that store-and-rescale handles is never split: the split path recomputes, and
    // results must not depend on the thread count.
    let stored = op == RowOp::Softmax && cols <= row::store_limit::<E>();
    if threads > 1 && cols >= 2 * SEGMENT && rows < 2 * threads && !stored {
        for r in 0..rows {
            // SAFETY: row r lies inside the buffers described above.
            unsafe {
                huge_row(
                    path,
                    op,
                    src.wrapping_add(r * cols),
                    dst.wrapping_add(r * cols),
                    lse.wrapping_add(r),
                    cols,
                    sc,
                    stream,
                )
            };
        }
        return;
    }
    let per_task = parallel::rows_per_task(cols, core::mem::size_of::<E>());
    let tasks = rows.div_ceil(per_task);
    let (src, dst, lse) = (SendPtr(src as *mut E), SendPtr(dst), SendPtr(lse));
    // Streamed calls keep the terms in a scratch row too: stored in the output row, each
    // output line would be read from memory before its first write, a third transfer that
    // streaming stores exist to avoid.
    let scratch_terms = stored && (row::terms_need_scratch::<E>() || stream);
    let new_scratch = || row::TermsRow::<E::Terms>::new(if scratch_terms { cols } else { 0 });
    parallel::map_indices_with(tasks, new_scratch, |terms, t| {
        let terms = terms.get();
        let first = t * per_task;
        let n = per_task.min(rows - first);
        // Each task owns rows first..first + n: disjoint parts of dst and lse.
        let task = RowsTask {
            op,
            src: src.get().wrapping_add(first * cols),
            dst: dst.get().wrapping_add(first * cols),
            lse: lse.get().wrapping_add(first),
            terms: if terms.is_empty() {
                core::ptr::null_mut()
            } else {
                terms.as_mut_ptr()
            },
            rows: n,
            cols,
            sc,
            stream,
            from_memory,
        };
        E::run_rows_task(path, task);
    });
}

/// The statistics of the `n` elements at `src` (valid for reading them): their segments'
/// statistics computed in parallel and merged in segment order, bit for bit what
/// `row::row_stats` computes serially.
pub(crate) fn parallel_stats<E: Element>(
    path: IsaPath,
    src: *const E,
    n: usize,
    sc: Scale<E::Real>,
) -> Stats {
    let srcp = SendPtr(src as *mut E);
    parallel::map_indices(n.div_ceil(SEGMENT), |k| {
        let start = k * SEGMENT;
        E::run_segment_stats(
            path,
            SegmentStats {
                src: srcp.get().wrapping_add(start),
                n: SEGMENT.min(n - start),
                sc,
            },
        )
    })
    .into_iter()
    .fold(Stats::EMPTY, |acc, p| acc.merge(p, sc.tau))
}

/// One row split into segments across threads.
///
/// # Safety
/// As [`run_rows`] for a single row.
#[allow(clippy::too_many_arguments)]
unsafe fn huge_row<E: Element>(
    path: IsaPath,
    op: RowOp,
    src: *const E,
    dst: *mut E,
    lse: *mut E,
    cols: usize,
    sc: Scale<E::Real>,
    stream: bool,
) {
    let segments = cols.div_ceil(SEGMENT);
    let seg = |s: usize| (s * SEGMENT, SEGMENT.min(cols - s * SEGMENT));
    let (srcp, dstp) = (SendPtr(src as *mut E), SendPtr(dst));
    let st = parallel_stats(path, src, cols, sc);
    let log = op == RowOp::LogSoftmax;
    match (op, row::row_case(st)) {
        // SAFETY: lse is valid for one write.
        (RowOp::LogSumExp, _) => unsafe { *lse = E::from_f64(st.logsumexp(sc.tau.inv)) },
        (_, RowCase::Regular) => parallel::for_each_index(segments, |s| {
            let (start, n) = seg(s);
            // Segments are disjoint parts of the row.
            E::run_segment_write(
                path,
                SegmentWrite {
                    src: srcp.get().wrapping_add(start),
                    dst: dstp.get().wrapping_add(start),
                    n,
                    st,
                    sc,
                    log,
                    stream,
                },
            )
        }),
        // SAFETY: forwarded.
        (_, case) => unsafe { row::write_special_row(src, dst, cols, case, st, log) },
    }
}

/// Element-wise e^x over a chunk.
pub struct ExpTask<E> {
    src: *const E,
    dst: *mut E,
    n: usize,
    stream: bool,
}

impl<E: Element> Kernel for ExpTask<E> {
    type Output = ();
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) {
        // SAFETY: the driver passes a valid chunk.
        unsafe { exp::exp_slice(isa, self.src, self.dst, self.n, self.stream) }
        if self.stream {
            isa.store_fence();
        }
    }
}

/// e^x for `n` elements.
///
/// # Safety
/// `src` valid for reading and `dst` for writing `n` elements; equal or disjoint.
pub(crate) unsafe fn run_exp<E: Element>(path: IsaPath, src: *const E, dst: *mut E, n: usize) {
    let chunk = parallel::TASK_BYTES / core::mem::size_of::<E>();
    let stream = !core::ptr::eq(src, dst) && n * core::mem::size_of::<E>() >= row::STREAM_MIN_BYTES;
    let (srcp, dstp) = (SendPtr(src as *mut E), SendPtr(dst));
    parallel::for_each_index(n.div_ceil(chunk), |c| {
        let start = c * chunk;
        // Chunks are disjoint.
        E::run_exp_task(
            path,
            ExpTask {
                src: srcp.get().wrapping_add(start),
                dst: dstp.get().wrapping_add(start),
                n: chunk.min(n - start),
                stream,
            },
        )
    });
}

/// (maximum ignoring NaN, any NaN) of a chunk.
pub struct MaxTask<'a, E> {
    x: &'a [E],
}

impl<E: Element> Kernel for MaxTask<'_, E> {
    type Output = (E::Real, bool);
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) -> (E::Real, bool) {
        reduce::max_scan::<S, E, true>(isa, self.x)
    }
}

pub struct FirstIndexTask<'a, E: Element> {
    x: &'a [E],
    target: E::Real,
}

impl<E: Element> Kernel for FirstIndexTask<'_, E> {
    type Output = Option<usize>;
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) -> Option<usize> {
        reduce::first_index_of::<S, E>(isa, self.x, self.target)
    }
}

/// (maximum ignoring NaN, any NaN) of a slice, chunked by segments and combined in order.
pub(crate) fn run_max<E: Element>(path: IsaPath, x: &[E]) -> (E::Real, bool) {
    let chunks = x.len().div_ceil(SEGMENT);
    let parts = parallel::map_indices(chunks, |c| {
        let start = c * SEGMENT;
        let end = (start + SEGMENT).min(x.len());
        E::run_max_task(path, MaxTask { x: &x[start..end] })
    });
    parts.into_iter().fold(
        (<E::Real as Real>::NEG_INFINITY, false),
        |(m, nan), (pm, pnan)| (if pm > m { pm } else { m }, nan | pnan),
    )
}

/// First index of `target` (or of the first NaN when `target` is NaN).
pub(crate) fn run_first_index<E: Element>(
    path: IsaPath,
    x: &[E],
    target: E::Real,
) -> Option<usize> {
    E::run_first_index_task(path, FirstIndexTask { x, target })
}

/// How the conversion checks (`fuzz_checks::to_f32_on_path`, `from_f32_on_path`) convert:
/// element → f32 by the vector loads, or f32 → element by one of the vector stores.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Conversion {
    /// `Element::load`.
    Load,
    /// `Element::store`, one vector at a time.
    Store,
    /// `Element::store_no_nan` (the caller's values hold no NaN).
    StoreNoNan,
    /// `Element::store_pair`, two vectors at a time.
    StorePair,
    /// `Element::store_pair` for NaN-free lanes (the caller's values hold no NaN).
    StorePairNoNan,
    /// `Element::stream_pair`, after a head that aligns the output to a pair.
    StreamPair,
}

impl Conversion {
    /// The store forms for values without NaN, which skip the NaN handling.
    pub fn assumes_no_nan(self) -> bool {
        matches!(self, Conversion::StoreNoNan | Conversion::StorePairNoNan)
    }
}

/// Element ↔ f32 through the vector loads / stores of the dispatched path: lets the tests
/// check the half-precision conversions bit for bit.
struct ConvertTask<'a, E> {
    elems: &'a mut [E],
    reals: &'a mut [f32],
    how: Conversion,
}

impl<E: Element<Real = f32>> Kernel for ConvertTask<'_, E> {
    type Output = ();
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: crate::simd::Isa>(self, isa: S) {
        use crate::simd::FloatVec;
        let lanes = <S::F32 as FloatVec>::LANES;
        let n = self.elems.len().min(self.reals.len());
        let (e, r) = (self.elems.as_mut_ptr(), self.reals.as_mut_ptr());
        let mut i = 0;
        if self.how == Conversion::Load {
            while i < n {
                let len = lanes.min(n - i);
                // SAFETY: i + len <= n for both slices; partial forms for the tail.
                unsafe {
                    if len == lanes {
                        E::load(isa, e.add(i)).store(r.add(i));
                    } else {
                        E::load_partial(isa, e.add(i), len, 0.0).store_partial(r.add(i), len);
                    }
                }
                i += len;
            }
            return;
        }
        let no_nan = self.how.assumes_no_nan();
        // SAFETY (for the stores below): each writes inside elems[..n], from reals[..n].
        let store_single = |i: usize, len: usize| unsafe {
            if len == lanes {
                let v = <S::F32 as FloatVec>::load(isa, r.add(i));
                if no_nan {
                    E::store_no_nan::<S>(v, e.add(i));
                } else {
                    E::store::<S>(v, e.add(i));
                }
            } else {
                let v = <S::F32 as FloatVec>::load_partial(isa, r.add(i), len, 0.0);
                E::store_partial::<S>(v, e.add(i), len);
            }
        };
        if self.how == Conversion::StreamPair {
            let pair_bytes = 2 * lanes * core::mem::size_of::<E>();
            let head = ((pair_bytes - e as usize % pair_bytes) % pair_bytes
                / core::mem::size_of::<E>())
            .min(n);
            while i < head {
                let len = lanes.min(head - i);
                store_single(i, len);
                i += len;
            }
        }
        if !matches!(self.how, Conversion::Store | Conversion::StoreNoNan) {
            while i + 2 * lanes <= n {
                // SAFETY: i + 2 * lanes <= n; streamed, e + i is aligned to the pair.
                unsafe {
                    let low = <S::F32 as FloatVec>::load(isa, r.add(i));
                    let high = <S::F32 as FloatVec>::load(isa, r.add(i + lanes));
                    match self.how {
                        Conversion::StreamPair => E::stream_pair(isa, low, high, e.add(i)),
                        Conversion::StorePairNoNan => {
                            E::store_pair::<S, false>(isa, low, high, e.add(i))
                        }
                        _ => E::store_pair::<S, true>(isa, low, high, e.add(i)),
                    }
                }
                i += 2 * lanes;
            }
            isa.store_fence();
        }
        while i < n {
            let len = lanes.min(n - i);
            store_single(i, len);
            i += len;
        }
    }
}

/// Converts `elems` to f32 (`how == Conversion::Load`) or `reals` to elements, on `path`.
pub(crate) fn run_convert<E: Element<Real = f32>>(
    path: IsaPath,
    elems: &mut [E],
    reals: &mut [f32],
    how: Conversion,
) {
    dispatch(path, ConvertTask { elems, reals, how })
}
