//! Splitting work across rayon's threads so that results never depend on the thread count.
//!
//! * Many rows: rows are grouped into tasks of about [`TASK_BYTES`] of input (so each task is
//!   worth a scheduling step) and the tasks run in parallel. Each row is computed by exactly the
//!   same code whatever task it lands in, so results are bitwise identical for any pool size.
//! * Few, huge rows: each row is cut into fixed segments (`kernels::row::SEGMENT` elements, the
//!   same cut the serial code uses), the segments' (max, sum) statistics are computed in
//!   parallel and merged **in segment order**, then the output pass runs over the segments in
//!   parallel. Cross-entropy does the same for rows off its cached path, the gradient pass
//!   returning each segment's share of the sum the target's entry needs (`CallRows::row` in
//!   `cross_entropy.rs`).
//!
//! Without the `rayon` feature every loop here runs serially, with the same chunking.

/// Input bytes per task when rows are grouped.
pub(crate) const TASK_BYTES: usize = 64 * 1024;

/// A raw pointer that may cross threads. The code that sends one guarantees that the tasks
/// touch disjoint parts of the buffer.
#[derive(Copy, Clone, Debug)]
pub(crate) struct SendPtr<T>(pub *mut T);
// SAFETY: tasks receiving a SendPtr access disjoint element ranges (see each use).
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// The number of threads parallel loops may use here.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Calls `f(i)` for every `i < count`, in parallel when rayon is enabled.
pub(crate) fn for_each_index(count: usize, f: impl Fn(usize) + Sync + Send) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        // With one thread, handing the work to the pool only adds a round trip.
        if count > 1 && threads() > 1 {
            (0..count).into_par_iter().for_each(f);
            return;
        }
    }
    (0..count).for_each(f);
}

/// `(0..count).map(f)` collected in index order, computed in parallel when rayon is enabled.
pub(crate) fn map_indices<R: Send>(count: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        if count > 1 && threads() > 1 {
            return (0..count).into_par_iter().map(f).collect();
        }
    }
    (0..count).map(f).collect()
}

/// As [`map_indices`], with a scratch value made by `init` and lent to `f`: one per rayon job
/// (a few per thread), not one per index. `f` must not let results depend on the scratch's
/// earlier contents.
pub(crate) fn map_indices_with<T, R: Send>(
    count: usize,
    init: impl Fn() -> T + Sync + Send,
    f: impl Fn(&mut T, usize) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        if count > 1 && threads() > 1 {
            return (0..count).into_par_iter().map_init(init, f).collect();
        }
    }
    let mut scratch = init();
    (0..count).map(|i| f(&mut scratch, i)).collect()
}

/// How many rows of `cols` elements of `elem_bytes` bytes make one task.
pub(crate) fn rows_per_task(cols: usize, elem_bytes: usize) -> usize {
    (TASK_BYTES / (cols.max(1) * elem_bytes)).max(1)
}
