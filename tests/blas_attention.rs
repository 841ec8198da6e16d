//! Attention's products through BLAS (`kernels::batched_matmul`) and the fused
//! attention weights (`kernels::attention_weights`, softmax(q kᵀ + bias)) against the
//! composed candle ops they replace: values and every gradient, on odd sizes,
//! each transpose combination, and each way the bias broadcasts (T5's encoder
//! bias (b, h, n, m), its decoder bias (1, h, n, m), the padding bias
//! (b, 1, 1, m)), and the whole fused attention (`kernels::attend`, heads in
//! place, dropout on the weights). Without the BLAS library the entry points run the
//! device-generic path (`kernels::composed`), which is then what these compare.

use candle_core::{Device, Tensor, Var, D};
use promot::kernels::{self, blas, Dropout, Heads};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// max |a - b| relative to max |b| (at least 1).
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
    diff / scale
}

fn note_backend() {
    if blas::get().is_none() {
        eprintln!("no BLAS library ({}): both sides are candle's ops", blas::backend());
    }
}

/// Value of Σ f(vars) ⊙ probe's inputs' gradients, and f's value.
fn value_and_grads(inputs: &[Tensor], probe_seed: u64, f: impl Fn(&[Tensor]) -> Tensor) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let probe = random(y.dims(), probe_seed);
    let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let g = ts.iter().map(|t| grads.get(t).unwrap().clone()).collect();
    (y.detach(), g)
}

fn op(t: &Tensor, transposed: bool) -> Tensor {
    if transposed {
        t.t().unwrap()
    } else {
        t.clone()
    }
}

#[test]
fn batched_products_and_gradients_match_candle() {
    note_backend();
    for (batch, m, k, n) in [(1, 1, 1, 1), (6, 17, 5, 3), (2, 33, 64, 70)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a_shape = if ta { [batch, k, m] } else { [batch, m, k] };
            let b_shape = if tb { [batch, n, k] } else { [batch, k, n] };
            let inputs = [random(&a_shape, 1), random(&b_shape, 2)];
            let (y1, g1) = value_and_grads(&inputs, 3, |x| kernels::batched_matmul(&x[0], &x[1], ta, tb).unwrap());
            let (y2, g2) = value_and_grads(&inputs, 3, |x| op(&x[0], ta).matmul(&op(&x[1], tb)).unwrap());
            let at = format!("batch {batch}, m {m}, k {k}, n {n}, ta {ta}, tb {tb}");
            assert!(rel_diff(&y1, &y2) < 1e-5, "product differs at {at}");
            for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
                assert!(rel_diff(a, b) < 1e-5, "gradient {i} differs at {at}");
            }
        }
    }
}

fn composed_weights(q: &Tensor, keys: &Tensor, bias: &Tensor) -> Tensor {
    let scores = q.matmul(&keys.t().unwrap()).unwrap().broadcast_add(bias).unwrap();
    candle_nn::ops::softmax(&scores, D::Minus1).unwrap()
}

#[test]
fn fused_attention_weights_match_the_composed_ops() {
    note_backend();
    let (b, h, n, m, k) = (3, 2, 7, 11, 5);
    for bias_shape in [[b, h, n, m], [1, h, n, m], [b, 1, 1, m], [1, 1, n, m]] {
        let inputs = [
            random(&[b, h, n, k], 1),
            random(&[b, h, m, k], 2),
            (random(&bias_shape, 3) * 4.0).unwrap(),
        ];
        let (y1, g1) = value_and_grads(&inputs, 4, |x| kernels::attention_weights(&x[0], &x[1], &x[2]).unwrap());
        let (y2, g2) = value_and_grads(&inputs, 4, |x| composed_weights(&x[0], &x[1], &x[2]));
        assert!(rel_diff(&y1, &y2) < 1e-5, "weights differ with bias {bias_shape:?}");
        for (name, (a, c)) in ["q", "keys", "bias"].iter().zip(g1.iter().zip(&g2)) {
            assert!(rel_diff(a, c) < 1e-5, "d{name} differs with bias {bias_shape:?}");
        }
    }
}

#[test]
fn masked_keys_get_no_weight() {
    // A padding bias of -1e9 on the last two keys: their weights are exactly 0.
    let (q, keys) = (random(&[1, 2, 3, 4], 1), random(&[1, 2, 5, 4], 2));
    let mask: Vec<f32> = vec![0.0, 0.0, 0.0, -1e9, -1e9];
    let bias = Tensor::from_vec(mask, (1, 1, 1, 5), &Device::Cpu).unwrap();
    let w = kernels::attention_weights(&q, &keys, &bias).unwrap();
    let masked = w
        .narrow(3, 3, 2)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(masked, 0.0);
    let sums = w.sum(3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6), "rows sum to {sums:?}");
}

#[test]
fn mismatched_attention_shapes_are_an_error_not_a_crash() {
    let q = random(&[2, 2, 3, 4], 1);
    assert!(kernels::attention_weights(&q, &random(&[2, 2, 5, 3], 2), &random(&[2, 2, 3, 5], 3)).is_err());
    assert!(kernels::attention_weights(&q, &random(&[2, 2, 5, 4], 2), &random(&[2, 2, 2, 5], 3)).is_err());
    assert!(kernels::batched_matmul(&q, &random(&[2, 3, 4, 5], 2), false, false).is_err());
}

/// The composed reference of `kernels::attend`: split heads, repeat each
/// key/value head for its query heads, weights, dropout on the weights,
/// weighted values, heads merged.
fn composed_attend(q: &Tensor, kv: &Tensor, bias: &Tensor, heads: Heads, drop: &Dropout) -> Tensor {
    let (b, n, hk) = q.dims3().unwrap();
    let m = kv.dim(1).unwrap();
    let (h, g) = (heads.query, heads.kv);
    let k = hk / h;
    let split = |t: Tensor, len: usize, heads: usize| {
        t.reshape((b, len, heads, k))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    // Key/value head j / r for query head j: repeat each one r times along the head axis.
    let repeat = |t: Tensor| {
        let parts: Vec<Tensor> = (0..h).map(|j| t.narrow(1, j / (h / g), 1).unwrap()).collect();
        Tensor::cat(&parts, 1).unwrap()
    };
    let q4 = (split(q.clone(), n, h) * heads.scale as f64).unwrap();
    let k4 = repeat(split(kv.narrow(2, 0, g * k).unwrap(), m, g));
    let v4 = repeat(split(kv.narrow(2, g * k, g * k).unwrap(), m, g));
    let w = composed_weights(&q4, &k4, bias);
    let w = drop.apply(&w, true).unwrap();
    w.matmul(&v4)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, n, hk))
        .unwrap()
}

#[test]
fn fused_attention_matches_the_composed_ops_with_and_without_dropout() {
    note_backend();
    let (b, n, m, k) = (2, 5, 7, 4);
    // Multi-head (T5: scale 1) and grouped-query (Llama: 6 query heads over 2 key/value heads, 1/sqrt(k)).
    for (h, g, scale) in [(3, 3, 1.0), (6, 2, 0.5)] {
        let heads = Heads { query: h, kv: g, scale };
        for p in [0.0, 0.3] {
            for bias_shape in [[b, h, n, m], [1, h, n, m], [b, 1, 1, m], [b, 1, n, m]] {
                let inputs = [
                    random(&[b, n, h * k], 1),
                    random(&[b, m, 2 * g * k], 2),
                    (random(&bias_shape, 3) * 4.0).unwrap(),
                ];
                let fused = |x: &[Tensor]| {
                    let drop = Dropout::new(p, 7);
                    kernels::attend(&x[0], &x[1], &x[2], heads, &drop, true).unwrap()
                };
                let composed = |x: &[Tensor]| composed_attend(&x[0], &x[1], &x[2], heads, &Dropout::new(p, 7));
                let (y1, g1) = value_and_grads(&inputs, 4, fused);
                let (y2, g2) = value_and_grads(&inputs, 4, composed);
                let at = format!("{heads:?}, p {p}, bias {bias_shape:?}");
                assert!(rel_diff(&y1, &y2) < 1e-5, "context differs at {at}");
                for (name, (a, c)) in ["q", "kv", "bias"].iter().zip(g1.iter().zip(&g2)) {
                    assert!(rel_diff(a, c) < 1e-5, "d{name} differs at {at}");
                }
            }
        }
    }
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn fused_attention_rejects_widths_that_are_not_whole_heads() {
    assert!(blas::get().is_some(), "no BLAS library: {}", blas::backend());
    let drop = Dropout::new(0.0, 1);
    let heads = |query, kv| Heads { query, kv, scale: 1.0 };
    let (q, bias) = (random(&[1, 2, 6], 1), random(&[1, 1, 1, 3], 3));
    assert!(kernels::attend(&q, &random(&[1, 3, 12], 2), &bias, heads(4, 4), &drop, true).is_err());
    assert!(kernels::attend(&q, &random(&[1, 3, 10], 2), &bias, heads(3, 3), &drop, true).is_err());
    assert!(kernels::attend(&q, &random(&[1, 3, 12], 2), &bias, heads(3, 2), &drop, true).is_err());
    assert!(kernels::attend(&q, &random(&[1, 3, 12], 2), &bias, heads(3, 0), &drop, true).is_err());
}
