//! The seed's toy task and a small model that learns it, with xent computing the loss and the
//! logits' gradient. Shared by `examples/train_toy/main.rs` and `tests/train_toy.rs`.
#![allow(dead_code)]

/// The seed's 20-token vocabulary.
pub const VOCAB: [&str; 20] = [
    "[PAD]", "[EOS]", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "First", "Second", "Last",
    "Max", "Min", "(", ")", ",",
];
pub const OPS: [&str; 5] = ["First", "Second", "Last", "Max", "Min"];
const OPEN: u8 = 17;
const CLOSE: u8 = 18;
const COMMA: u8 = 19;
/// Tokens per example: `Op ( a , b , c )`.
pub const SEQ: usize = 8;

pub fn digit_token(d: u8) -> u8 {
    d + 2
}

/// One example: its 8 input tokens, the answer token, and the operation index.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    pub tokens: [u8; SEQ],
    pub target: u8,
    pub op: usize,
}

impl Example {
    pub fn new(op: usize, a: u8, b: u8, c: u8) -> Example {
        let answer = match op {
            0 => a,
            1 => b,
            2 => c,
            3 => a.max(b).max(c),
            _ => a.min(b).min(c),
        };
        Example {
            tokens: [
                12 + op as u8,
                OPEN,
                digit_token(a),
                COMMA,
                digit_token(b),
                COMMA,
                digit_token(c),
                CLOSE,
            ],
            target: digit_token(answer),
            op,
        }
    }

    /// `Max(1,6,2)`.
    pub fn text(&self) -> String {
        let t = |i: usize| VOCAB[self.tokens[i] as usize];
        format!("{}({},{},{})", t(0), t(2), t(4), t(6))
    }
}

/// A small deterministic generator (xorshift64*), so runs are reproducible without a crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Every (operation, three digits) combination: 5 × 1000 examples, shuffled with `seed` and
/// split into (training, held-out) with `held_out` of them held out.
pub fn dataset(seed: u64, held_out: usize) -> (Vec<Example>, Vec<Example>) {
    let mut all = Vec::with_capacity(5000);
    for op in 0..5 {
        for a in 0..10 {
            for b in 0..10 {
                for c in 0..10 {
                    all.push(Example::new(op, a, b, c));
                }
            }
        }
    }
    Rng::new(seed).shuffle(&mut all);
    let test = all.split_off(all.len() - held_out);
    (all, test)
}

/// A weight tensor with its gradient and Adam moments.
pub struct Param {
    pub w: Vec<f32>,
    pub g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Param {
    fn new(n: usize, scale: f32, rng: &mut Rng) -> Param {
        Param {
            w: (0..n)
                .map(|_| (rng.uniform() * 2.0 - 1.0) * scale)
                .collect(),
            g: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
    fn zeros(n: usize) -> Param {
        Param {
            w: vec![0.0; n],
            g: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
    fn adam(&mut self, lr: f32, step: i32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
        for i in 0..self.w.len() {
            let g = self.g[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            self.w[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
            self.g[i] = 0.0;
        }
    }
}

/// y[b][j] = Σ_k x[b][k] w[k][j] + bias[j] (row-major; the inner loop vectorises).
fn linear(x: &[f32], w: &[f32], bias: &[f32], inp: usize, out: usize, y: &mut [f32]) {
    for (xb, yb) in x.chunks_exact(inp).zip(y.chunks_exact_mut(out)) {
        yb.copy_from_slice(bias);
        for (k, &xk) in xb.iter().enumerate() {
            for (yj, wj) in yb.iter_mut().zip(&w[k * out..(k + 1) * out]) {
                *yj += xk * wj;
            }
        }
    }
}

/// Gradients of `linear`: accumulates dw, dbias; writes dx when given.
#[allow(clippy::too_many_arguments)]
fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    inp: usize,
    out: usize,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    for (xb, dyb) in x.chunks_exact(inp).zip(dy.chunks_exact(out)) {
        for (dbj, dyj) in db.iter_mut().zip(dyb) {
            *dbj += dyj;
        }
        for (k, &xk) in xb.iter().enumerate() {
            for (dwj, dyj) in dw[k * out..(k + 1) * out].iter_mut().zip(dyb) {
                *dwj += xk * dyj;
            }
        }
    }
    if let Some(dx) = dx {
        for (dxb, dyb) in dx.chunks_exact_mut(inp).zip(dy.chunks_exact(out)) {
            for (k, dxk) in dxb.iter_mut().enumerate() {
                *dxk = w[k * out..(k + 1) * out]
                    .iter()
                    .zip(dyb)
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
    }
}

/// Token embeddings of the 8 input tokens, concatenated, two ReLU layers, 20 logits.
pub struct Model {
    pub dim: usize,
    pub hidden: usize,
    emb: Param,
    w1: Param,
    b1: Param,
    w2: Param,
    b2: Param,
    w3: Param,
    b3: Param,
    step: i32,
}

/// Activations kept for the backward pass.
#[derive(Default)]
pub struct Cache {
    x0: Vec<f32>,
    h1: Vec<f32>,
    h2: Vec<f32>,
}

impl Model {
    pub fn new(dim: usize, hidden: usize, seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        let inp = SEQ * dim;
        let he = |n: usize| (6.0 / n as f32).sqrt();
        Model {
            dim,
            hidden,
            emb: Param::new(20 * dim, 1.0, &mut rng),
            w1: Param::new(inp * hidden, he(inp), &mut rng),
            b1: Param::zeros(hidden),
            w2: Param::new(hidden * hidden, he(hidden), &mut rng),
            b2: Param::zeros(hidden),
            w3: Param::new(hidden * 20, he(hidden) * 0.5, &mut rng),
            b3: Param::zeros(20),
            step: 0,
        }
    }

    /// Logits (rows × 20) of a batch.
    pub fn forward(&self, batch: &[Example], cache: &mut Cache) -> Vec<f32> {
        let (d, h, inp) = (self.dim, self.hidden, SEQ * self.dim);
        let n = batch.len();
        cache.x0.resize(n * inp, 0.0);
        for (ex, row) in batch.iter().zip(cache.x0.chunks_exact_mut(inp)) {
            for (p, &tok) in ex.tokens.iter().enumerate() {
                row[p * d..(p + 1) * d]
                    .copy_from_slice(&self.emb.w[tok as usize * d..(tok as usize + 1) * d]);
            }
        }
        cache.h1.resize(n * h, 0.0);
        linear(&cache.x0, &self.w1.w, &self.b1.w, inp, h, &mut cache.h1);
        cache.h1.iter_mut().for_each(|v| *v = v.max(0.0));
        cache.h2.resize(n * h, 0.0);
        linear(&cache.h1, &self.w2.w, &self.b2.w, h, h, &mut cache.h2);
        cache.h2.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut logits = vec![0.0; n * 20];
        linear(&cache.h2, &self.w3.w, &self.b3.w, h, 20, &mut logits);
        logits
    }

    /// Back-propagates d loss / d logits (rows × 20) and takes one Adam step.
    pub fn backward_and_step(
        &mut self,
        batch: &[Example],
        cache: &Cache,
        dlogits: &[f32],
        lr: f32,
    ) {
        let (d, h, inp) = (self.dim, self.hidden, SEQ * self.dim);
        let n = batch.len();
        let mut dh2 = vec![0.0; n * h];
        linear_backward(
            &cache.h2,
            &self.w3.w,
            dlogits,
            h,
            20,
            &mut self.w3.g,
            &mut self.b3.g,
            Some(&mut dh2),
        );
        for (g, a) in dh2.iter_mut().zip(&cache.h2) {
            if *a <= 0.0 {
                *g = 0.0;
            }
        }
        let mut dh1 = vec![0.0; n * h];
        linear_backward(
            &cache.h1,
            &self.w2.w,
            &dh2,
            h,
            h,
            &mut self.w2.g,
            &mut self.b2.g,
            Some(&mut dh1),
        );
        for (g, a) in dh1.iter_mut().zip(&cache.h1) {
            if *a <= 0.0 {
                *g = 0.0;
            }
        }
        let mut dx0 = vec![0.0; n * inp];
        linear_backward(
            &cache.x0,
            &self.w1.w,
            &dh1,
            inp,
            h,
            &mut self.w1.g,
            &mut self.b1.g,
            Some(&mut dx0),
        );
        for (ex, row) in batch.iter().zip(dx0.chunks_exact(inp)) {
            for (p, &tok) in ex.tokens.iter().enumerate() {
                let e = &mut self.emb.g[tok as usize * d..(tok as usize + 1) * d];
                for (g, v) in e.iter_mut().zip(&row[p * d..(p + 1) * d]) {
                    *g += v;
                }
            }
        }
        self.step += 1;
        for p in [
            &mut self.emb,
            &mut self.w1,
            &mut self.b1,
            &mut self.w2,
            &mut self.b2,
            &mut self.w3,
            &mut self.b3,
        ] {
            p.adam(lr, self.step);
        }
    }
}

/// Loss (mean) and accuracy of the model on a set, by xent's forward pass.
pub fn evaluate(model: &Model, set: &[Example], ce: &xent::CrossEntropy) -> (f64, f64) {
    let mut cache = Cache::default();
    let logits = model.forward(set, &mut cache);
    let targets: Vec<u32> = set.iter().map(|e| e.target as u32).collect();
    let out = ce.forward(&logits, 20, &targets).expect("valid batch");
    (out.loss, out.correct as f64 / set.len() as f64)
}

/// One epoch of mini-batch training; returns the mean training loss xent reported.
pub fn train_epoch(
    model: &mut Model,
    train: &mut [Example],
    batch: usize,
    lr: f32,
    ce: &xent::CrossEntropy,
    rng: &mut Rng,
) -> f64 {
    rng.shuffle(train);
    let mut cache = Cache::default();
    let mut out = xent::Output::default();
    let (mut total, mut count) = (0.0, 0);
    for chunk in train.chunks(batch) {
        let mut logits = model.forward(chunk, &mut cache);
        let targets: Vec<u32> = chunk.iter().map(|e| e.target as u32).collect();
        // The loss, and d(mean loss)/d(logits) written over the logits.
        ce.forward_backward_inplace_into(&mut logits, 20, &targets, &mut out)
            .expect("valid batch");
        total += out.loss * chunk.len() as f64;
        count += chunk.len();
        model.backward_and_step(chunk, &cache, &logits, lr);
    }
    total / count as f64
}
