//! The fused CPU kernels (src/kernels/fused.rs, activation.rs) against the composed candle ops
//! they replace: the same values and the same gradients, on shapes with odd
//! sizes, rows of one element, large magnitudes, and the fallback paths
//! (non-contiguous and f64 inputs).

use candle_core::{DType, Device, Tensor, Var, D};
use proptest::prelude::*;

use promot::kernels;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn random(shape: &[usize], scale: f64, seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 * scale as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Value and input gradient of `f` at `x`, the gradient of Σ f(x) ⊙ probe.
fn value_and_grad(x: &Tensor, probe: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let v = Var::from_tensor(x).unwrap();
    let y = f(v.as_tensor());
    let grads = (&y * probe).unwrap().sum_all().unwrap().backward().unwrap();
    (y.detach(), grads.get(v.as_tensor()).unwrap().clone())
}

fn composed_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let mean_sq = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    x.broadcast_div(&(mean_sq + eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap()
}

fn check_unary(shape: &[usize], scale: f64, seed: u64, fused: fn(&Tensor) -> Tensor, composed: fn(&Tensor) -> Tensor) {
    let x = random(shape, scale, seed);
    let probe = random(shape, 1.0, seed + 1);
    let (y1, g1) = value_and_grad(&x, &probe, fused);
    let (y2, g2) = value_and_grad(&x, &probe, composed);
    let tol = 1e-5 * (1.0 + scale as f32);
    assert!(
        max_diff(&y1, &y2) <= tol,
        "values differ by {} on {shape:?}",
        max_diff(&y1, &y2)
    );
    assert!(
        max_diff(&g1, &g2) <= tol,
        "gradients differ by {} on {shape:?}",
        max_diff(&g1, &g2)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn softmax_matches_composed(rows in 1usize..40, d in 1usize..70, scale in 0.1f64..30.0, seed in 0u64..1000) {
        check_unary(&[rows, d], scale, seed,
            |x| kernels::softmax(x).unwrap(),
            |x| candle_nn::ops::softmax(x, D::Minus1).unwrap());
    }

    #[test]
    fn gelu_matches_composed(rows in 1usize..40, d in 1usize..70, scale in 0.1f64..8.0, seed in 0u64..1000) {
        check_unary(&[rows, d], scale, seed, |x| kernels::gelu_tanh(x).unwrap(), |x| x.gelu().unwrap());
    }

    #[test]
    fn silu_matches_composed(rows in 1usize..40, d in 1usize..70, scale in 0.1f64..8.0, seed in 0u64..1000) {
        check_unary(&[rows, d], scale, seed,
            |x| kernels::silu(x).unwrap(),
            |x| candle_nn::ops::silu(x).unwrap());
    }

    #[test]
    fn relu_matches_composed(rows in 1usize..40, d in 1usize..70, scale in 0.1f64..8.0, seed in 0u64..1000) {
        check_unary(&[rows, d], scale, seed, |x| kernels::relu(x).unwrap(), |x| x.relu().unwrap());
    }

    #[test]
    fn rms_norm_matches_composed(rows in 1usize..200, d in 1usize..70, scale in 0.01f64..10.0, seed in 0u64..1000) {
        let x = random(&[rows, d], scale, seed);
        let w0 = (random(&[d], 1.0, seed + 2) + 1.0).unwrap();
        let probe = random(&[rows, d], 1.0, seed + 3);
        let eps = 1e-6;
        let run = |fused_path: bool| {
            let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w0).unwrap());
            let y = if fused_path {
                kernels::rms_norm(xv.as_tensor(), wv.as_tensor(), eps).unwrap()
            } else {
                composed_rms_norm(xv.as_tensor(), wv.as_tensor(), eps)
            };
            let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            (y.detach(), grads.get(xv.as_tensor()).unwrap().clone(), grads.get(wv.as_tensor()).unwrap().clone())
        };
        let (y1, gx1, gw1) = run(true);
        let (y2, gx2, gw2) = run(false);
        prop_assert!(max_diff(&y1, &y2) <= 1e-5 * (1.0 + scale as f32));
        prop_assert!(max_diff(&gx1, &gx2) <= 1e-4, "dx differs by {}", max_diff(&gx1, &gx2));
        prop_assert!(max_diff(&gw1, &gw2) <= 1e-4 * rows as f32, "dw differs by {}", max_diff(&gw1, &gw2));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn cross_entropy_matches_composed(rows in 1usize..30, v in 2usize..300, scale in 0.1f64..20.0, smooth in prop_oneof![Just(0.0), Just(0.1), 0.0f64..0.5], seed in 0u64..1000) {
        use rand::{Rng, SeedableRng};
        let logits = random(&[rows, v], scale, seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 5);
        let ids: Vec<u32> = (0..rows).map(|_| rng.random_range(0..v as u32)).collect();
        let targets = Tensor::from_vec(ids, rows, &Device::Cpu).unwrap();
        let probe = random(&[rows], 1.0, seed + 6);
        let (l1, g1) = value_and_grad(&logits, &probe, |x| {
            kernels::cross_entropy(x, &targets, smooth).unwrap()
        });
        let (l2, g2) = value_and_grad(&logits, &probe, |x| {
            kernels::composed::cross_entropy(x, &targets, smooth).unwrap()
        });
        prop_assert!(max_diff(&l1, &l2) <= 1e-4 * (1.0 + scale as f32), "loss differs by {}", max_diff(&l1, &l2));
        prop_assert!(max_diff(&g1, &g2) <= 1e-5, "gradient differs by {}", max_diff(&g1, &g2));
    }
}

#[test]
fn cross_entropy_rejects_an_out_of_range_target() {
    let logits = random(&[2, 5], 1.0, 0);
    let targets = Tensor::from_vec(vec![1u32, 5], 2, &Device::Cpu).unwrap();
    let err = kernels::cross_entropy(&logits, &targets, 0.1).unwrap_err().to_string();
    assert!(err.contains("target id 5 at row 1"), "{err}");
}

#[test]
fn higher_rank_and_fallbacks() {
    // Rank 4, as attention scores are.
    check_unary(
        &[2, 3, 5, 7],
        4.0,
        9,
        |x| kernels::softmax(x).unwrap(),
        |x| candle_nn::ops::softmax(x, D::Minus1).unwrap(),
    );
    // A transposed (non-contiguous) input and an f64 one take the composed path.
    let x = random(&[6, 9], 3.0, 1);
    let t = x.t().unwrap();
    assert!(!t.is_contiguous());
    let want = candle_nn::ops::softmax(&t.contiguous().unwrap(), D::Minus1).unwrap();
    assert!(max_diff(&kernels::softmax(&t).unwrap(), &want) < 1e-6);
    let x64 = x.to_dtype(DType::F64).unwrap();
    let y64 = kernels::silu(&x64).unwrap();
    assert_eq!(y64.dtype(), DType::F64);
    let n64 = kernels::rms_norm(&x64, &Tensor::ones(9, DType::F64, &Device::Cpu).unwrap(), 1e-6).unwrap();
    assert_eq!(n64.dtype(), DType::F64);
}

#[test]
fn softmax_keeps_masked_rows_finite() {
    // A row that is all -1e9 (fully masked attention) is uniform, not NaN.
    let x = Tensor::full(-1e9f32, (2, 5), &Device::Cpu).unwrap();
    let y = kernels::softmax(&x).unwrap().to_vec2::<f32>().unwrap();
    assert!(y.iter().flatten().all(|v| (v - 0.2).abs() < 1e-6));
}

#[test]
fn frozen_norm_weight_gets_no_gradient() {
    // A plain tensor (not a Var) as the weight: no gradient is produced for it.
    let x = Var::from_tensor(&random(&[4, 8], 1.0, 3)).unwrap();
    let w = Tensor::ones(8, DType::F32, &Device::Cpu).unwrap();
    let y = kernels::rms_norm(x.as_tensor(), &w, 1e-6).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(x.as_tensor()).is_some());
    assert!(grads.get(&w).is_none());
}

#[test]
fn swiglu_matches_composed() {
    let (gate, up) = (random(&[7, 33], 4.0, 1), random(&[7, 33], 2.0, 2));
    let probe = random(&[7, 33], 1.0, 3);
    let run = |fused_path: bool| {
        let (g, u) = (Var::from_tensor(&gate).unwrap(), Var::from_tensor(&up).unwrap());
        let y = if fused_path {
            kernels::swiglu(g.as_tensor(), u.as_tensor()).unwrap()
        } else {
            candle_nn::ops::silu(g.as_tensor()).unwrap().mul(u.as_tensor()).unwrap()
        };
        let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        (
            y,
            grads.get(g.as_tensor()).unwrap().clone(),
            grads.get(u.as_tensor()).unwrap().clone(),
        )
    };
    let (a, b) = (run(true), run(false));
    assert!(max_diff(&a.0, &b.0) < 1e-5, "values");
    assert!(max_diff(&a.1, &b.1) < 1e-5, "d gate");
    assert!(max_diff(&a.2, &b.2) < 1e-5, "d up");
}
