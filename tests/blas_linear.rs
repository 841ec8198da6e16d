//! The BLAS matmul backend (`src/kernels/blas.rs`) against candle's plain
//! matmul: the product x Wᵀ and both of its gradients on random shapes, a
//! frozen weight getting no gradient at all, and the forward-only products
//! in every transpose combination. The comparisons need the library
//! (`bash scripts/get-blas.sh`), so they are ignored unless asked for
//! (`cargo test --test blas_linear -- --ignored`; CI does), and fail when run
//! without it; `linear` must still work on candle's path either way.

use candle_core::{Device, Tensor, Var};
use promot::kernels::blas;
use promot::kernels::linear;
use promot::params::Param;

/// Shapes (m rows, d input width, o output width), odd ones included.
const SHAPES: [(usize, usize, usize); 5] = [(1, 1, 1), (17, 5, 3), (3, 33, 70), (64, 128, 96), (200, 64, 513)];

fn randn(shape: (usize, usize), seed: u64) -> Tensor {
    // A seeded, deterministic fill (candle's randn draws from a global rng).
    let n = shape.0 * shape.1;
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

/// The library; its absence fails the test, naming the fetch command.
fn library() -> blas::Gemm {
    blas::here().unwrap_or_else(|| panic!("no BLAS library: {}", blas::backend()))
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn forward_and_both_gradients_match_candle() {
    library();
    for (i, &(m, d, o)) in SHAPES.iter().enumerate() {
        let seed = 10 * i as u64;
        let x = Var::from_tensor(&randn((m, d), seed)).unwrap();
        let w = Var::from_tensor(&randn((o, d), seed + 1)).unwrap();
        // A weighted sum makes every output element's gradient different.
        let r = randn((m, o), seed + 2);
        let ours = blas::linear_wt(x.as_tensor(), w.as_tensor()).unwrap();
        let theirs = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        assert!(rel_diff(&ours, &theirs) < 1e-5, "forward {m}x{d}x{o}");
        let g_ours = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("W", &w)] {
            let a = g_ours.get(v.as_tensor()).expect("a gradient from blas");
            let b = g_theirs.get(v.as_tensor()).expect("a gradient from candle");
            assert!(rel_diff(a, b) < 1e-5, "grad {name} {m}x{d}x{o}: {}", rel_diff(a, b));
        }
    }
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn a_frozen_weight_gets_no_gradient() {
    library();
    let (m, d, o) = (40, 24, 56);
    let x = Var::from_tensor(&randn((m, d), 1)).unwrap();
    let w = randn((o, d), 2); // not a variable: a frozen weight's detached view
    let r = randn((m, o), 3);
    let y = blas::linear_wt(x.as_tensor(), &w).unwrap();
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&w).is_none(), "a frozen weight got a gradient");
    let expect = r.matmul(&w).unwrap();
    let got = grads.get(x.as_tensor()).expect("x has a gradient");
    assert!(rel_diff(got, &expect) < 1e-5);
}

#[test]
fn linear_on_params_trainable_and_frozen() {
    // Runs with or without the library: `linear` picks its path and must agree with candle either way.
    let (b, n, d, o) = (2, 20, 16, 48);
    let x = Var::from_tensor(&randn((b * n, d), 5).reshape((b, n, d)).unwrap()).unwrap();
    let r = randn((b * n, o), 7).reshape((b, n, o)).unwrap();
    for trainable in [true, false] {
        let w = Param::new("w", randn((o, d), 6)).unwrap();
        w.set_trainable(trainable);
        let y = linear(x.as_tensor(), &w.tensor()).unwrap();
        let expect = x
            .as_tensor()
            .reshape((b * n, d))
            .unwrap()
            .matmul(&w.tensor().t().unwrap())
            .unwrap()
            .reshape((b, n, o))
            .unwrap();
        assert!(rel_diff(&y, &expect) < 1e-5);
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(
            grads.get(w.var().as_tensor()).is_some(),
            trainable,
            "trainable {trainable}"
        );
        let gx = grads.get(x.as_tensor()).expect("x has a gradient");
        let expect_gx = r
            .reshape((b * n, o))
            .unwrap()
            .matmul(w.var().as_tensor())
            .unwrap()
            .reshape((b, n, d))
            .unwrap();
        assert!(rel_diff(gx, &expect_gx) < 1e-5);
    }
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn products_in_every_transpose_combination() {
    library();
    let (m, k, n) = (13, 29, 41);
    for ta in [false, true] {
        for tb in [false, true] {
            let a = if ta { randn((k, m), 11) } else { randn((m, k), 11) };
            let b = if tb { randn((n, k), 12) } else { randn((k, n), 12) };
            let op = |t: &Tensor, on: bool| if on { t.t().unwrap() } else { t.clone() };
            let expect = op(&a, ta).matmul(&op(&b, tb)).unwrap();
            let got = blas::matmul(&a, &b, ta, tb).unwrap();
            assert!(rel_diff(&got, &expect) < 1e-5, "ta {ta} tb {tb}");
        }
    }
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn leading_dimensions_are_rows() {
    // x (b, n, d) -> (b, n, o) with no reshape: values and both gradients as for (b n, d).
    library();
    let (b, n, d, o) = (3, 7, 16, 9);
    let x = Var::from_tensor(&randn((b * n, d), 1).reshape((b, n, d)).unwrap()).unwrap();
    let w = Var::from_tensor(&randn((o, d), 2)).unwrap();
    let r = randn((b * n, o), 3).reshape((b, n, o)).unwrap();
    let ours = blas::linear_wt(x.as_tensor(), w.as_tensor()).unwrap();
    assert_eq!(ours.dims(), [b, n, o]);
    let theirs = x.as_tensor().broadcast_matmul(&w.as_tensor().t().unwrap()).unwrap();
    assert!(rel_diff(&ours, &theirs) < 1e-5);
    let g_ours = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g_theirs = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&x, &w] {
        let (a, c) = (g_ours.get(v.as_tensor()).unwrap(), g_theirs.get(v.as_tensor()).unwrap());
        assert!(rel_diff(a, c) < 1e-5, "gradient of a {:?} input", v.dims());
    }
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn mismatched_shapes_are_an_error_not_a_crash() {
    let lib = library();
    assert!(lib.gemm(false, false, 2, 3, 4, &[0.0; 8], &[0.0; 11]).is_err());
    let a = randn((3, 4), 1);
    let b = randn((5, 6), 2);
    assert!(blas::matmul(&a, &b, false, false).is_err());
    assert!(blas::linear_wt(&a, &b).is_err());
}

#[test]
fn backend_names_itself() {
    // Where `blas::get` looks (src/kernels/blas.rs): $PROMOT_BLAS (a path, or off), else
    // models/cache/blas under the working directory and under the source tree.
    let (off, candidates): (bool, Vec<std::path::PathBuf>) = match std::env::var("PROMOT_BLAS") {
        Ok(v) if matches!(v.trim(), "off" | "0" | "none" | "") => (true, Vec::new()),
        Ok(v) => (false, vec![v.into()]),
        Err(_) => {
            let rel = std::path::Path::new("models/cache/blas").join(blas::LIB_NAME);
            (
                false,
                vec![rel.clone(), std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)],
            )
        }
    };
    let name = blas::backend();
    eprintln!("matmul backend: {name}");
    match candidates.iter().find(|p| p.is_file()) {
        Some(lib) if !off => {
            assert!(
                blas::get().is_some(),
                "{} is there but did not load: {name}",
                lib.display()
            );
            assert!(name.starts_with("OpenBLAS sgemm ("), "{name}");
            let file = lib.file_name().unwrap().to_string_lossy();
            assert!(name.contains(&*file) && name.contains("task(s)"), "{name}");
        }
        _ => {
            assert!(blas::get().is_none() && blas::here().is_none());
            assert_eq!(name, "candle gemm (no BLAS library: see scripts/get-blas.sh)");
        }
    }
}
