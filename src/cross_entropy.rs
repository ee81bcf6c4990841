//! Fused softmax cross-entropy: the loss and its gradient in as few passes as possible.
//!
//! The formula (PyTorch's `F.cross_entropy`, extended the way LLM trainers use it; the same as
//! `make_golden.py`, whose PyTorch results the tests check):
//!
//! ```text
//! y      = x / τ, then c · tanh(y / c) when soft-capping
//! lse_i  = ln Σ_j e^(y_ij)
//! ce_i   = (1 − ε) w[t_i] (lse_i − y_i,t_i) + ε/C Σ_j w[j] (lse_i − y_ij)
//! z_i    = z · w[t_i] · lse_i²
//! row_i  = ce_i + z_i                      (0 for rows whose target is ignore_index)
//! mean   = Σ row_i / Σ w[t_i] over valid rows  (0 when that sum is 0: not NaN)
//! ```
//!
//! See [`CrossEntropy`] for the entry points and `docs/semantics.md` for special values.

use crate::element::{Element, VecOf};
use crate::kernels::ce::{self, CeParams, RowForward};
use crate::kernels::row::{Scale, Stats, TermsRow, SEGMENT, SMALL_VECTORS};
use crate::parallel::{self, SendPtr};
use crate::simd::{FloatVec, Isa, Kernel, Real};
use crate::Error;

/// How per-row losses are reduced (PyTorch's `reduction`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Σ row losses / Σ w\[target\] over non-ignored rows (0 if that sum is 0).
    #[default]
    Mean,
    /// Σ row losses.
    Sum,
    /// Per-row losses; [`Output::loss`] then holds their sum, and gradients take one upstream
    /// value per row ([`GradOutput::Rows`]).
    None,
}

/// A target class index type: `u32`, `i32`, `i64` or `usize`.
pub trait Target: Copy + Send + Sync + sealed::Sealed {
    /// The target as an i64 (saturating).
    fn to_i64(self) -> i64;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
    impl Sealed for usize {}
}

impl Target for u32 {
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}
impl Target for i32 {
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}
impl Target for i64 {
    fn to_i64(self) -> i64 {
        self
    }
}
impl Target for usize {
    fn to_i64(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
}

/// The upstream gradient for [`CrossEntropy::backward`].
#[derive(Copy, Clone, Debug)]
pub enum GradOutput<'a> {
    /// d(final loss)/d(reduced loss): 1.0 for a plain training step.
    Scalar(f64),
    /// One value per row (reduction `None`): the gradient of Σ g_i · row_i.
    Rows(&'a [f64]),
}

/// The results of a forward pass. Reuse one across calls (the `_into` methods) to keep its
/// per-row buffers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// The reduced loss (for reduction `None`: the sum of the row losses), accumulated in f64.
    pub loss: f64,
    /// The z-loss part of `loss`, reduced the same way.
    pub z_loss: f64,
    /// Per-row loss: cross-entropy plus z-loss (0 for ignored rows).
    pub row_losses: Vec<f64>,
    /// Per-row z-loss part.
    pub row_z_losses: Vec<f64>,
    /// Per-row log-sum-exp of the transformed logits (also for ignored rows); what
    /// [`CrossEntropy::backward`] takes.
    pub lse: Vec<f64>,
    /// Rows whose target is not `ignore_index`.
    pub valid_rows: usize,
    /// Σ w\[target\] over valid rows: the denominator of the mean.
    pub weight_sum: f64,
    /// Valid rows whose first maximal (transformed) logit is the target: accuracy is
    /// `correct / valid_rows`.
    pub correct: usize,
}

/// Softmax cross-entropy with PyTorch's options and defaults, plus z-loss, soft-capping and
/// temperature.
///
/// ```
/// use xent::{CrossEntropy, Reduction};
/// // Two rows of three classes; targets 2 and 0.
/// let logits = [1.0f32, 2.0, 3.0, 0.5, 0.0, -1.0];
/// let ce = CrossEntropy::new().label_smoothing(0.1);
/// let out = ce.forward(&logits, 3, &[2u32, 0]).unwrap();
/// assert!(out.loss > 0.0 && out.valid_rows == 2);
///
/// // The gradient of the mean loss, written over the logits (no extra buffer).
/// let mut g = logits;
/// let out2 = ce.forward_backward_inplace(&mut g, 3, &[2u32, 0]).unwrap();
/// assert_eq!(out.loss, out2.loss);
/// let row_sum: f32 = g[..3].iter().sum();
/// assert!(row_sum.abs() < 1e-6); // softmax − smoothed one-hot sums to 0
///
/// // Ignored rows contribute nothing; an all-ignored batch has mean 0, not NaN.
/// let out = CrossEntropy::new().forward(&logits, 3, &[-100i64, -100]).unwrap();
/// assert_eq!((out.loss, out.valid_rows), (0.0, 0));
/// # let _ = Reduction::Sum;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropy {
    reduction: Reduction,
    ignore_index: i64,
    weights: Option<Vec<f64>>,
    label_smoothing: f64,
    z_loss: f64,
    softcap: Option<f64>,
    temperature: f64,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        CrossEntropy {
            reduction: Reduction::Mean,
            ignore_index: -100,
            weights: None,
            label_smoothing: 0.0,
            z_loss: 0.0,
            softcap: None,
            temperature: 1.0,
        }
    }
}

/// Target index of an ignored row.
const IGNORED: usize = usize::MAX;

impl CrossEntropy {
    /// PyTorch's defaults: mean reduction, `ignore_index = -100`, no weights, no smoothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }

    /// Rows whose target equals this contribute 0 loss and 0 gradient (default −100).
    pub fn ignore_index(mut self, i: i64) -> Self {
        self.ignore_index = i;
        self
    }

    /// Class weights (one per class, finite, ≥ 0), PyTorch's `weight`.
    pub fn weights(mut self, w: &[f64]) -> Self {
        self.weights = Some(w.to_vec());
        self
    }

    /// Label smoothing ε ∈ [0, 1] (PyTorch's convention: ε/C on every class).
    pub fn label_smoothing(mut self, eps: f64) -> Self {
        self.label_smoothing = eps;
        self
    }

    /// z-loss coefficient z ≥ 0 (PaLM): adds z · w\[t\] · lse² per row.
    pub fn z_loss(mut self, z: f64) -> Self {
        self.z_loss = z;
        self
    }

    /// Soft-capping c > 0 (Gemma 2): logits → c · tanh(logits / c) after the temperature.
    pub fn softcap(mut self, c: f64) -> Self {
        self.softcap = Some(c);
        self
    }

    /// Temperature τ > 0: logits / τ.
    pub fn temperature(mut self, tau: f64) -> Self {
        self.temperature = tau;
        self
    }

    /// The loss in one read of the logits.
    ///
    /// ```
    /// use xent::CrossEntropy;
    /// // Class weights and label smoothing, as in PyTorch; an ignored row.
    /// let logits = [0.2f32, 1.5, -0.3, 0.9, 0.1, 0.0];
    /// let ce = CrossEntropy::new().weights(&[1.0, 2.0, 0.5]).label_smoothing(0.1);
    /// let out = ce.forward(&logits, 3, &[1i64, -100])?;
    /// assert_eq!((out.valid_rows, out.weight_sum), (1, 2.0));
    /// assert_eq!(out.row_losses[1], 0.0);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn forward<E: Element, T: Target>(
        &self,
        logits: &[E],
        cols: usize,
        targets: &[T],
    ) -> Result<Output, Error> {
        let mut out = Output::default();
        self.forward_into(logits, cols, targets, &mut out)?;
        Ok(out)
    }

    /// [`forward`](Self::forward) into a reused [`Output`].
    pub fn forward_into<E: Element, T: Target>(
        &self,
        logits: &[E],
        cols: usize,
        targets: &[T],
        out: &mut Output,
    ) -> Result<(), Error> {
        let call = self.prepare::<E, T>(logits.len(), cols, targets)?;
        call.run(
            logits.as_ptr(),
            core::ptr::null_mut(),
            Some(out),
            None,
            GradOutput::Scalar(1.0),
        );
        Ok(())
    }

    /// The loss and the gradient of the reduced loss (of Σ row losses for reduction `None`)
    /// into `grad`: two reads of each row (the second from cache) and one write.
    ///
    /// ```
    /// use xent::CrossEntropy;
    /// let logits = [1.0f64, 2.0, 3.0];
    /// let mut grad = [0.0; 3];
    /// let out = CrossEntropy::new().forward_backward(&logits, 3, &[2u32], &mut grad)?;
    /// // d loss / d logits = softmax − one-hot.
    /// let p2 = 3f64.exp() / (1f64.exp() + 2f64.exp() + 3f64.exp());
    /// assert!((grad[2] - (p2 - 1.0)).abs() < 1e-15);
    /// assert!((out.loss + p2.ln()).abs() < 1e-15);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn forward_backward<E: Element, T: Target>(
        &self,
        logits: &[E],
        cols: usize,
        targets: &[T],
        grad: &mut [E],
    ) -> Result<Output, Error> {
        let mut out = Output::default();
        self.forward_backward_into(logits, cols, targets, grad, &mut out)?;
        Ok(out)
    }

    /// [`forward_backward`](Self::forward_backward) into a reused [`Output`].
    pub fn forward_backward_into<E: Element, T: Target>(
        &self,
        logits: &[E],
        cols: usize,
        targets: &[T],
        grad: &mut [E],
        out: &mut Output,
    ) -> Result<(), Error> {
        let call = self.prepare::<E, T>(logits.len(), cols, targets)?;
        check_len("grad", logits.len(), grad.len())?;
        call.run(
            logits.as_ptr(),
            grad.as_mut_ptr(),
            Some(out),
            None,
            GradOutput::Scalar(1.0),
        );
        Ok(())
    }

    /// As [`forward_backward`](Self::forward_backward), with the gradient written over the
    /// logits: no buffer proportional to rows × cols is allocated.
    pub fn forward_backward_inplace<E: Element, T: Target>(
        &self,
        logits: &mut [E],
        cols: usize,
        targets: &[T],
    ) -> Result<Output, Error> {
        let mut out = Output::default();
        self.forward_backward_inplace_into(logits, cols, targets, &mut out)?;
        Ok(out)
    }

    /// [`forward_backward_inplace`](Self::forward_backward_inplace) into a reused [`Output`].
    pub fn forward_backward_inplace_into<E: Element, T: Target>(
        &self,
        logits: &mut [E],
        cols: usize,
        targets: &[T],
        out: &mut Output,
    ) -> Result<(), Error> {
        let call = self.prepare::<E, T>(logits.len(), cols, targets)?;
        let p = logits.as_mut_ptr();
        call.run(p, p, Some(out), None, GradOutput::Scalar(1.0));
        Ok(())
    }

    /// The gradient from the per-row log-sum-exp a [`forward`](Self::forward) saved
    /// (`Output::lse`), scaled by `grad_output`. Bitwise equal to the fused kernels' gradient
    /// for the same inputs.
    ///
    /// ```
    /// use xent::{CrossEntropy, GradOutput, Reduction};
    /// let logits = [2.0f32, 0.5, -1.0, 0.0, 3.0, 1.0];
    /// let targets = [0u32, 2];
    /// let ce = CrossEntropy::new().reduction(Reduction::None);
    /// let saved = ce.forward(&logits, 3, &targets)?;
    /// // Later, with the upstream gradient of each row's loss:
    /// let mut grad = [0f32; 6];
    /// ce.backward(&logits, 3, &targets, &saved.lse, GradOutput::Rows(&[1.0, 0.5]), &mut grad)?;
    /// assert!(grad[0] < 0.0 && grad[5] < 0.0); // the targets' logits are pushed up
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn backward<E: Element, T: Target>(
        &self,
        logits: &[E],
        cols: usize,
        targets: &[T],
        saved_lse: &[f64],
        grad_output: GradOutput,
        grad: &mut [E],
    ) -> Result<(), Error> {
        let call = self.prepare::<E, T>(logits.len(), cols, targets)?;
        check_len("saved_lse", call.rows, saved_lse.len())?;
        check_len("grad", logits.len(), grad.len())?;
        match grad_output {
            GradOutput::Rows(g) => check_len("grad_output", call.rows, g.len())?,
            GradOutput::Scalar(_) => {}
        }
        call.run(
            logits.as_ptr(),
            grad.as_mut_ptr(),
            None,
            Some(saved_lse),
            grad_output,
        );
        Ok(())
    }

    /// Validates everything and converts the targets.
    fn prepare<E: Element, T: Target>(
        &self,
        len: usize,
        cols: usize,
        targets: &[T],
    ) -> Result<Call<'_, E>, Error> {
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::InvalidOption {
                name: "label_smoothing",
                value: eps,
                expected: "in [0, 1]",
            });
        }
        if !(self.z_loss >= 0.0 && self.z_loss.is_finite()) {
            return Err(Error::InvalidOption {
                name: "z_loss",
                value: self.z_loss,
                expected: "finite and >= 0",
            });
        }
        if let Some(c) = self.softcap {
            if !(c > 0.0 && c.is_finite()) {
                return Err(Error::InvalidOption {
                    name: "softcap",
                    value: c,
                    expected: "finite and > 0",
                });
            }
        }
        let sc = Scale::<E::Real>::new(self.temperature).ok_or(Error::InvalidTemperature {
            value: self.temperature,
        })?;
        if cols == 0 && len > 0 {
            return Err(Error::ZeroCols { len });
        }
        if cols > 0 && !len.is_multiple_of(cols) {
            return Err(Error::NotMultipleOfCols { len, cols });
        }
        let rows = len.checked_div(cols).unwrap_or(0);
        check_len("targets", rows, targets.len())?;
        if let Some(w) = &self.weights {
            check_len("weights", cols, w.len())?;
            if let Some((class, &value)) = w
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(Error::InvalidWeight { class, value });
            }
        }
        // One pass over the targets: validated, made indices, and counted (the weight sum in
        // row order, as the reduction needs it bitwise; unweighted it is the count itself).
        let weights_f64 = self.weights.clone();
        let mut idx = vec![0usize; rows];
        let (mut valid_rows, mut weighted_sum) = (0usize, 0f64);
        for (row, (slot, t)) in idx.iter_mut().zip(targets).enumerate() {
            let t = t.to_i64();
            *slot = if t == self.ignore_index {
                IGNORED
            } else if t >= 0 && (t as u64) < cols as u64 {
                valid_rows += 1;
                if let Some(w) = &weights_f64 {
                    weighted_sum += w[t as usize];
                }
                t as usize
            } else {
                return Err(Error::TargetOutOfRange {
                    row,
                    target: t,
                    classes: cols,
                });
            };
        }
        let weight_sum = if weights_f64.is_some() {
            weighted_sum
        } else {
            valid_rows as f64
        };
        let weights_real: Option<Vec<E::Real>> = self
            .weights
            .as_ref()
            .map(|w| w.iter().map(|&v| E::Real::from_f64(v)).collect());
        let weight_total = weights_f64
            .as_ref()
            .map_or(cols as f64, |w| w.iter().sum::<f64>());
        Ok(Call {
            opts: self,
            sc,
            rows,
            cols,
            targets: idx,
            weights_real,
            weights_f64,
            weight_total,
            valid_rows,
            weight_sum,
        })
    }
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

/// A validated call.
struct Call<'a, E: Element> {
    opts: &'a CrossEntropy,
    sc: Scale<E::Real>,
    rows: usize,
    cols: usize,
    /// Class per row, [`IGNORED`] for ignored rows.
    targets: Vec<usize>,
    weights_real: Option<Vec<E::Real>>,
    weights_f64: Option<Vec<f64>>,
    weight_total: f64,
    valid_rows: usize,
    weight_sum: f64,
}

impl<E: Element> Call<'_, E> {
    /// The factor from a row's loss to the reduced loss.
    fn reduce_factor(&self) -> f64 {
        match self.opts.reduction {
            Reduction::Mean if self.weight_sum == 0.0 => 0.0,
            Reduction::Mean => 1.0 / self.weight_sum,
            Reduction::Sum | Reduction::None => 1.0,
        }
    }

    /// Runs the forward pass (when `out` is given), the gradient (when `grad` is not null,
    /// from `saved_lse` when given, else from the forward's lse) and the reduction.
    fn run(
        &self,
        x: *const E,
        grad: *mut E,
        out: Option<&mut Output>,
        saved_lse: Option<&[f64]>,
        grad_output: GradOutput,
    ) {
        let rows = self.rows;
        let mut scratch_out = Output::default();
        let out = out.unwrap_or(&mut scratch_out);
        let forward = saved_lse.is_none();
        if forward {
            out.row_losses.clear();
            out.row_losses.resize(rows, 0.0);
            out.row_z_losses.clear();
            out.row_z_losses.resize(rows, 0.0);
            out.lse.clear();
            out.lse.resize(rows, 0.0);
        }
        let factor = self.reduce_factor();
        let (g_scalar, g_rows) = match grad_output {
            GradOutput::Scalar(g) => (g * factor, None),
            GradOutput::Rows(r) => (factor, Some(r)),
        };
        let p = CeParams {
            sc: self.sc,
            weights: self.weights_real.as_deref(),
            weights_f64: self.weights_f64.as_deref(),
            weight_total: self.weight_total,
            eps: self.opts.label_smoothing,
            z: self.opts.z_loss,
        };
        let lse = if forward {
            out.lse.as_mut_ptr()
        } else {
            saved_lse.map_or(core::ptr::null_mut(), |s| s.as_ptr() as *mut f64)
        };
        let path = crate::simd::current();
        let threads = parallel::threads();
        let shared = CallRows::<E> {
            path,
            x,
            grad,
            forward,
            lse,
            loss: out.row_losses.as_mut_ptr(),
            z: out.row_z_losses.as_mut_ptr(),
            g_scalar,
            g_rows,
            p,
        };
        let correct = if threads > 1
            && rows < 2 * threads
            && self.cols >= 2 * SEGMENT
            && self.opts.softcap.is_none()
            && !ce::takes_cached_path::<E>(self.cols, &p)
        {
            // A few huge rows: each split into segments across the threads.
            (0..rows).map(|r| shared.row(self, r)).sum()
        } else {
            self.row_tasks(shared)
        };
        if !forward {
            return;
        }
        // A fixed order: the reduced loss does not depend on the thread count.
        let total = fixed_order_sum(&out.row_losses);
        let z_total = fixed_order_sum(&out.row_z_losses);
        out.loss = total * factor;
        out.z_loss = z_total * factor;
        out.valid_rows = self.valid_rows;
        out.weight_sum = self.weight_sum;
        out.correct = correct;
    }

    /// The rows grouped into tasks that run in parallel; returns the count of correct rows.
    fn row_tasks(&self, h: CallRows<'_, E>) -> usize {
        let CallRows {
            path,
            x,
            grad,
            forward,
            lse,
            loss,
            z,
            g_scalar,
            g_rows,
            p,
        } = h;
        let rows = self.rows;
        let identity = Scale::<f64>::new(1.0).expect("1 is a valid temperature");
        let p64 = CeParams {
            sc: identity,
            weights: self.weights_f64.as_deref(),
            ..p_f64(&p)
        };
        let per_task = parallel::rows_per_task(self.cols, core::mem::size_of::<E>());
        let tasks = rows.div_ceil(per_task);
        let (lse_ptr, loss_ptr, z_ptr) = (SendPtr(lse), SendPtr(loss), SendPtr(z));
        let (xp, gp) = (SendPtr(x as *mut E), SendPtr(grad));
        let fused = forward && !grad.is_null() && self.opts.softcap.is_none();
        let new_scratch = || RowScratch::<E>::new(self.cols, fused, self.opts.softcap.is_some());
        parallel::map_indices_with(tasks, new_scratch, |scratch, k| {
            let first = k * per_task;
            let n = per_task.min(rows - first);
            // Each task owns rows first..first + n of every buffer.
            let job = CeJob::<E> {
                x: xp.get().wrapping_add(first * self.cols),
                grad: if gp.get().is_null() {
                    gp.get()
                } else {
                    gp.get().wrapping_add(first * self.cols)
                },
                rows: n,
                cols: self.cols,
                targets: &self.targets[first..first + n],
                forward,
                lse: lse_ptr.get().wrapping_add(first),
                loss: loss_ptr.get().wrapping_add(first),
                z: z_ptr.get().wrapping_add(first),
                g_scalar,
                g_rows: g_rows.map(|r| &r[first..first + n]),
                p,
                p64,
                softcap: self.opts.softcap,
                tau: self.opts.temperature,
            };
            E::run_ce_task(path, CeTask { job, scratch })
        })
        .into_iter()
        .sum()
    }
}

/// What every row of a call shares, and where its results go.
#[derive(Copy, Clone)]
struct CallRows<'a, E: Element> {
    path: crate::simd::IsaPath,
    x: *const E,
    /// Null when no gradient is wanted.
    grad: *mut E,
    /// Forward: write lse / loss / z; otherwise read lse (saved).
    forward: bool,
    lse: *mut f64,
    loss: *mut f64,
    z: *mut f64,
    g_scalar: f64,
    g_rows: Option<&'a [f64]>,
    p: CeParams<'a, E::Real>,
}

impl<E: Element> CallRows<'_, E> {
    /// Row `r` of a call whose few rows are huge, each pass split into `SEGMENT`s that run in
    /// parallel, with the same results as the row-by-row kernels (`CeJob::general_row`): the
    /// forward takes the segments' statistics of the two stretches around the target and merges
    /// them in order, as `row::row_stats` does, and the gradient sums the segments' shares in
    /// order, as `ce::row_gradient` does. Returns 1 when the target is the row's first maximum.
    fn row(&self, call: &Call<'_, E>, r: usize) -> usize {
        let cols = call.cols;
        let t = call.targets[r];
        let src = self.x.wrapping_add(r * cols);
        let dst = if self.grad.is_null() {
            self.grad
        } else {
            self.grad.wrapping_add(r * cols)
        };
        let g = self.g_scalar * self.g_rows.map_or(1.0, |g| g[r]);
        let part = |step: PartStep| {
            E::run_ce_row_part(
                self.path,
                CeRowPart {
                    src,
                    dst,
                    cols,
                    t,
                    p: self.p,
                    step,
                },
            )
        };
        let mut correct = 0;
        let lse = if self.forward {
            let f = if t == IGNORED {
                let st = self.stats(src, cols);
                RowForward {
                    lse: st.logsumexp(self.p.sc.tau.inv),
                    ..RowForward::default()
                }
            } else {
                let left = self.stats(src, t);
                let right = self.stats(src.wrapping_add(t + 1), cols - t - 1);
                let gaps = (self.p.eps > 0.0).then(|| {
                    // SAFETY: t < cols: the row's target logit.
                    let xt = unsafe { *src.add(t) }.to_f64();
                    let m = ce::row_max(xt, left.merge(right, self.p.sc.tau));
                    self.in_parallel(src, dst, cols, t, |k| PartStep::Gaps { k, m })
                });
                part(PartStep::Forward { left, right, gaps }).0
            };
            // SAFETY: lse / loss / z hold `rows` entries (the caller's buffers), r < rows.
            unsafe {
                *self.lse.add(r) = f.lse;
                *self.loss.add(r) = f.loss;
                *self.z.add(r) = f.z;
            }
            correct += usize::from(f.correct);
            f.lse
        } else {
            // SAFETY: as above (the saved lse).
            unsafe { *self.lse.add(r) }
        };
        if self.grad.is_null() {
            return correct;
        }
        if t == IGNORED {
            // SAFETY: row r of grad is valid for cols writes.
            unsafe { core::ptr::write_bytes(dst, 0, cols) };
        } else if ce::gradient_splits::<E>(cols, lse, &self.p) {
            // Each task writes its own segment (the target's entry is written last).
            let others = self.in_parallel(src, dst, cols, t, |k| PartStep::Gradient { k, lse, g });
            part(PartStep::Finish { others, lse, g });
        } else {
            part(PartStep::RowGradient { lse, g });
        }
        correct
    }

    /// Runs `step(k)` on every segment `k` of the row at `src` (the gradient's row at `dst`)
    /// in parallel, and sums the segments' shares in segment order.
    fn in_parallel(
        &self,
        src: *const E,
        dst: *mut E,
        cols: usize,
        t: usize,
        step: impl Fn(usize) -> PartStep + Sync + Send,
    ) -> f64 {
        let (srcp, dstp) = (SendPtr(src as *mut E), SendPtr(dst));
        let (p, path) = (self.p, self.path);
        parallel::map_indices(cols.div_ceil(SEGMENT), |k| {
            E::run_ce_row_part(
                path,
                CeRowPart {
                    src: srcp.get(),
                    dst: dstp.get(),
                    cols,
                    t,
                    p,
                    step: step(k),
                },
            )
            .1
        })
        .into_iter()
        .fold(0.0, |acc, s| acc + s)
    }

    /// The statistics of `n` entries at `src`: their segments' in parallel, merged in order.
    fn stats(&self, src: *const E, n: usize) -> Stats {
        crate::kernels::parallel_stats(self.path, src, n, self.p.sc)
    }
}

/// One step of a huge row's cross-entropy ([`CallRows::row`]).
#[derive(Copy, Clone)]
enum PartStep {
    /// The forward results, from the statistics of the stretches around the target (and the
    /// smoothing gaps' sum when already taken).
    Forward {
        left: Stats,
        right: Stats,
        gaps: Option<f64>,
    },
    /// Segment `k`'s share of the smoothing gaps relative to the row's maximum `m`.
    Gaps { k: usize, m: f64 },
    /// The gradient entries of segment `k`, all but the target's.
    Gradient { k: usize, lse: f64, g: f64 },
    /// The whole row's gradient, serially (`ce::row_gradient`).
    RowGradient { lse: f64, g: f64 },
    /// The target's gradient entry from the segments' shares summed in order.
    Finish { others: f64, lse: f64, g: f64 },
}

/// One step of one huge row, on the dispatched path.
pub struct CeRowPart<'a, E: Element> {
    src: *const E,
    dst: *mut E,
    cols: usize,
    t: usize,
    p: CeParams<'a, E::Real>,
    step: PartStep,
}

impl<E: Element> Kernel for CeRowPart<'_, E> {
    /// The forward results (`Forward`), or a segment's share of the gradient's sum.
    type Output = (RowForward, f64);

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: Isa>(self, isa: S) -> (RowForward, f64) {
        let (src, dst, n, t, p) = (self.src, self.dst, self.cols, self.t, &self.p);
        // SAFETY: `CallRows::row` passes one row of the call's buffers (`cols` entries, the
        // gradient equal to or disjoint from the logits), t < cols, and runs the gradient
        // steps of different segments (disjoint writes) before the finishing step.
        unsafe {
            match self.step {
                PartStep::Forward { left, right, gaps } => {
                    let x = core::slice::from_raw_parts(src, n);
                    (
                        ce::forward_from_stretches(isa, x, t, left, right, gaps, p),
                        0.0,
                    )
                }
                PartStep::Gaps { k, m } => {
                    let x = core::slice::from_raw_parts(src, n);
                    (RowForward::default(), ce::segment_gaps(isa, x, k, m, p))
                }
                PartStep::RowGradient { lse, g } => {
                    ce::row_gradient(isa, src, dst, n, t, lse, g, p);
                    (RowForward::default(), 0.0)
                }
                PartStep::Gradient { k, lse, g } => {
                    let share = ce::segment_gradient(isa, src, dst, n, t, k, lse, g, p);
                    (RowForward::default(), share)
                }
                PartStep::Finish { others, lse, g } => {
                    ce::finish_gradient(isa, src, dst, n, t, others, lse, g, p);
                    (RowForward::default(), 0.0)
                }
            }
        }
    }
}

/// The f64 parameters for a soft-capped row (weights and scale filled in by the caller).
fn p_f64<'a, R: Real>(p: &CeParams<'a, R>) -> CeParams<'a, f64> {
    CeParams {
        sc: Scale::<f64>::new(1.0).expect("1 is a valid temperature"),
        weights: None,
        weights_f64: p.weights_f64,
        weight_total: p.weight_total,
        eps: p.eps,
        z: p.z,
    }
}

/// The longest row whose f32 terms a half-precision fused task keeps in a scratch row (the
/// cached path's own limit for f32 rows).
const TERMS_LIMIT_BYTES: usize = crate::kernels::row::STORE_LIMIT_BYTES;

/// A task's scratch rows: the soft-capped logits (f64), and the terms of the fused kernel for
/// element types that cannot hold them (f16 / bf16: one exponential per entry, as in f32).
struct RowScratch<E: Element> {
    capped: Vec<f64>,
    /// On a cache line (`TermsRow`).
    terms: TermsRow<E::Terms>,
}

impl<E: Element> RowScratch<E> {
    /// Scratch for rows of `cols`: the capped row when soft-capping, the terms when a fused
    /// call on half-precision rows can use them.
    fn new(cols: usize, fused: bool, capped: bool) -> Self {
        let terms_bytes = cols * core::mem::size_of::<E::Terms>();
        let scratch_terms = crate::kernels::row::terms_need_scratch::<E>();
        RowScratch {
            capped: if capped { vec![0f64; cols] } else { Vec::new() },
            terms: TermsRow::new(
                if fused && !capped && scratch_terms && terms_bytes <= TERMS_LIMIT_BYTES {
                    cols
                } else {
                    0
                },
            ),
        }
    }
}

/// A group of rows on one thread, with the scratch rows it may use.
pub struct CeTask<'a, E: Element> {
    job: CeJob<'a, E>,
    scratch: &'a mut RowScratch<E>,
}

impl<E: Element> Kernel for CeTask<'_, E> {
    type Output = usize;

    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run<S: Isa>(self, isa: S) -> usize {
        self.job.run_rows(isa, self.scratch)
    }
}

/// The rows of one task.
struct CeJob<'a, E: Element> {
    x: *const E,
    /// Null when no gradient is wanted.
    grad: *mut E,
    rows: usize,
    cols: usize,
    targets: &'a [usize],
    /// Forward: write lse / loss / z; otherwise read lse (saved).
    forward: bool,
    lse: *mut f64,
    loss: *mut f64,
    z: *mut f64,
    g_scalar: f64,
    g_rows: Option<&'a [f64]>,
    p: CeParams<'a, E::Real>,
    p64: CeParams<'a, f64>,
    softcap: Option<f64>,
    tau: f64,
}

impl<E: Element> CeJob<'_, E> {
    /// Every row of the task; returns how many targets are their row's first maximum.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn run_rows<S: Isa>(&self, isa: S, scratch: &mut RowScratch<E>) -> usize {
        let cols = self.cols;
        let mut correct = 0;
        let lanes = <VecOf<S, E> as FloatVec>::LANES;
        let small = self.softcap.is_none() && cols <= SMALL_VECTORS * lanes;
        if !small {
            for r in 0..self.rows {
                correct += self.general_row(isa, r, scratch);
            }
            return correct;
        }
        // Rows of a few vectors go through `ce::small_batch`, LANES rows with a target at a
        // time; ignored rows, and rows the batch hands back, take the general path.
        let mut batch = [ce::SmallRow {
            src: self.x,
            dst: self.grad,
            t: 0,
            saved_lse: 0.0,
            g: 0.0,
        }; ce::BATCH_MAX];
        let mut index = [0usize; ce::BATCH_MAX];
        let mut count = 0;
        let mut small_scratch = vec![<E::Real as Real>::ZERO; ce::small_scratch_len(lanes)];
        // The rows two batches on are hinted into the L1 at the start of each batch: without
        // the hints a fifth of the time went to loads waiting on memory (1 and 4 batches
        // measured alike; docs/performance.md, section 27).
        let ahead = 2 * lanes;
        for r in 0..self.rows {
            if r % lanes == 0 && r + ahead < self.rows {
                let from = self.x.wrapping_add((r + ahead) * cols);
                let to = self
                    .x
                    .wrapping_add((r + ahead + lanes).min(self.rows) * cols);
                crate::kernels::row::prefetch_span(isa, from, to);
            }
            let t = self.targets[r];
            if t == IGNORED {
                correct += self.general_row(isa, r, scratch);
                continue;
            }
            batch[count] = ce::SmallRow {
                src: self.x.wrapping_add(r * cols),
                dst: if self.grad.is_null() {
                    self.grad
                } else {
                    self.grad.wrapping_add(r * cols)
                },
                t,
                // SAFETY: lse is valid for `rows` entries (see `general_row`).
                saved_lse: if self.forward {
                    0.0
                } else {
                    unsafe { *self.lse.add(r) }
                },
                g: self.g_scalar * self.g_rows.map_or(1.0, |g| g[r]),
            };
            index[count] = r;
            count += 1;
            if count == lanes {
                correct += self.flush(
                    isa,
                    &batch[..lanes],
                    &index[..count],
                    scratch,
                    &mut small_scratch,
                );
                count = 0;
            }
        }
        if count > 0 {
            correct += self.flush(
                isa,
                &batch[..lanes],
                &index[..count],
                scratch,
                &mut small_scratch,
            );
        }
        correct
    }
}

impl<E: Element> CeJob<'_, E> {
    /// Runs one small batch (`batch` holds LANES rows, the first `index.len()` of them this
    /// batch's) and records its results; rows it hands back take the general path.
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn flush<S: Isa>(
        &self,
        isa: S,
        batch: &[ce::SmallRow<E>],
        index: &[usize],
        scratch: &mut RowScratch<E>,
        small: &mut [E::Real],
    ) -> usize {
        let mut results = ce::BatchForward::default();
        // SAFETY: every row is one of this task's rows (valid for `cols` elements, grad equal
        // to or disjoint from the logits, rows disjoint; entries past `count` are rows of
        // earlier batches or the task's first row), its target < cols, and 0 < cols ≤
        // SMALL_VECTORS · LANES (checked by the caller).
        let special = unsafe {
            ce::small_batch(
                isa,
                batch,
                index.len(),
                self.cols,
                self.forward,
                &self.p,
                &mut results,
                small,
            )
        };
        let count = index.len();
        if self.forward && special == 0 && index[count - 1] - index[0] == count - 1 {
            // The common case, consecutive rows all done: whole arrays at once.
            let r0 = index[0];
            // SAFETY: lse / loss / z are valid for `rows` entries owned by this task, and
            // rows r0 .. r0 + count are among them; the three arrays are disjoint.
            let (lse, loss, z) = unsafe {
                (
                    core::slice::from_raw_parts_mut(self.lse.add(r0), count),
                    core::slice::from_raw_parts_mut(self.loss.add(r0), count),
                    core::slice::from_raw_parts_mut(self.z.add(r0), count),
                )
            };
            lse.copy_from_slice(&results.lse[..count]);
            z.copy_from_slice(&results.z[..count]);
            for ((loss, ce), z) in loss.iter_mut().zip(&results.ce).zip(&results.z) {
                *loss = ce + z;
            }
            return (results.correct & ((1u32 << count) - 1)).count_ones() as usize;
        }
        let mut correct = 0;
        for (i, &r) in index.iter().enumerate() {
            if special >> i & 1 != 0 {
                correct += self.general_row(isa, r, scratch);
            } else if self.forward {
                let (ce, z) = (results.ce[i], results.z[i]);
                // SAFETY: lse / loss / z are valid for `rows` entries owned by this task.
                unsafe {
                    *self.lse.add(r) = results.lse[i];
                    *self.loss.add(r) = ce + z;
                    *self.z.add(r) = z;
                }
                correct += (results.correct >> i & 1) as usize;
            }
        }
        correct
    }

    /// Row `r` through the general kernels (any length, soft-capping, special values).
    /// Returns 1 when the target is the row's first maximum (forward only).
    #[cfg_attr(not(xent_unoptimized), inline(always))]
    fn general_row<S: Isa>(&self, isa: S, r: usize, scratch: &mut RowScratch<E>) -> usize {
        let cols = self.cols;
        let t = self.targets[r];
        let target = (t != IGNORED).then_some(t);
        let src = self.x.wrapping_add(r * cols);
        let dst = if self.grad.is_null() {
            self.grad
        } else {
            self.grad.wrapping_add(r * cols)
        };
        let g = self.g_scalar * self.g_rows.map_or(1.0, |g| g[r]);
        let mut correct = 0;
        // SAFETY: the driver guarantees x (and grad, when not null) valid for rows × cols
        // elements, equal or disjoint, and lse / loss / z valid for `rows` entries, owned
        // by this task.
        unsafe {
            if let (true, false, None, Some(t)) =
                (self.forward, self.grad.is_null(), self.softcap, target)
            {
                // One exponential per entry where the row allows it (same results as below).
                if let Some(f) =
                    ce::row_fused(isa, src, dst, cols, t, g, &self.p, scratch.terms.get())
                {
                    *self.lse.add(r) = f.lse;
                    *self.loss.add(r) = f.loss;
                    *self.z.add(r) = f.z;
                    return usize::from(f.correct);
                }
            }
            let row = core::slice::from_raw_parts(src, cols);
            if let Some(c) = self.softcap {
                for (y, v) in scratch.capped.iter_mut().zip(row) {
                    *y = c * (v.to_f64() / self.tau / c).tanh();
                }
            }
            let lse = if self.forward {
                let f: RowForward = match self.softcap {
                    Some(_) => RowForward {
                        // Accuracy is judged on the logits themselves (capping can round
                        // distinct large logits to one value).
                        correct: target.is_some_and(|t| ce::first_max_is(row, t)),
                        ..ce::row_forward(isa, &scratch.capped, target, &self.p64)
                    },
                    None => ce::row_forward(isa, row, target, &self.p),
                };
                *self.lse.add(r) = f.lse;
                *self.loss.add(r) = f.loss;
                *self.z.add(r) = f.z;
                correct += usize::from(f.correct);
                f.lse
            } else {
                *self.lse.add(r)
            };
            if self.grad.is_null() {
                return correct;
            }
            let Some(t) = target else {
                core::ptr::write_bytes(dst, 0, cols);
                return correct;
            };
            match self.softcap {
                None => ce::row_gradient(isa, src, dst, cols, t, lse, g, &self.p),
                Some(c) => {
                    let y = scratch.capped.as_mut_ptr();
                    ce::row_gradient(isa, y, y, cols, t, lse, g, &self.p64);
                    // Chain rule: dy/dx = sech²(x/(τc)) / τ.
                    for (j, &gy) in scratch.capped.iter().enumerate() {
                        let ch = ((*src.add(j)).to_f64() / self.tau / c).cosh();
                        *dst.add(j) = E::from_f64(gy / (self.tau * ch * ch));
                    }
                }
            }
        }
        correct
    }
}

/// Σ x in a fixed order that does not depend on the thread count: eight interleaved partial
/// sums (entry i goes to sum i mod 8), then combined pairwise. One running sum is a chain of
/// dependent additions, four cycles per row (3.7 % of the profile of 20-column calls in cache).
fn fixed_order_sum(x: &[f64]) -> f64 {
    let mut partial = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (p, v) in partial.iter_mut().zip(chunk) {
            *p += v;
        }
    }
    for (p, v) in partial.iter_mut().zip(chunks.remainder()) {
        *p += v;
    }
    let [a, b, c, d, e, f, g, h] = partial;
    ((a + b) + (c + d)) + ((e + f) + (g + h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_terms_start_on_a_cache_line() {
        for cols in [1, 17, 32000] {
            let mut scratch = RowScratch::<half::f16>::new(cols, true, false);
            let terms = scratch.terms.get();
            assert!(terms.len() >= cols);
            assert_eq!(terms.as_ptr() as usize % 64, 0);
            // f32 keeps its terms in the row itself; soft-capped rows take the general path.
            assert!(RowScratch::<f32>::new(cols, true, false)
                .terms
                .get()
                .is_empty());
            assert!(RowScratch::<half::f16>::new(cols, true, true)
                .terms
                .get()
                .is_empty());
        }
    }
}
