//! bf16 products (`dtype: "bf16"`): the rounding is round-to-nearest-even,
//! the AVX512-BF16 kernel equals the exact sum of the rounded operands'
//! products on every layout and edge (odd depths, partial tiles, several
//! packed blocks, strided operands, α and β), and the library's linear map
//! and its gradients under a bf16 scope equal f32 products of the rounded
//! operands. The kernel cases need a CPU with AVX512-BF16 and the library
//! cases a BLAS library (`bash scripts/get-blas.sh`; on other CPUs the
//! fallback rounds copies for sgemm, so they check that): both are ignored
//! unless asked for (`cargo test --test bf16 -- --ignored`; CI does), and fail
//! when run where they cannot.

use candle_core::{Device, Tensor, Var};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use promot::kernels::bf16::{self, Operand};
use promot::kernels::blas;
use promot::kernels::precision::{self, MatmulDtype};

#[test]
fn rounding_is_to_nearest_even() {
    assert_eq!(bf16::bits(1.0), 0x3f80);
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa.
    assert_eq!(bf16::round(1.0 + 2f32.powi(-8)), 1.0);
    assert_eq!(bf16::round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2.0 * 2f32.powi(-7));
    assert_eq!(bf16::round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 1.0 + 2f32.powi(-7));
    assert_eq!(bf16::round(-2.5), -2.5);
    assert_eq!(bf16::round(f32::INFINITY), f32::INFINITY);
    assert_eq!(bf16::round(f32::MAX), f32::INFINITY);
    assert!(bf16::round(f32::NAN).is_nan());
    assert_eq!(bf16::round(0.0).to_bits(), 0);
    assert_eq!(bf16::round(-0.0).to_bits(), (-0.0f32).to_bits());
}

proptest! {
    #[test]
    fn rounding_is_within_half_a_unit_and_idempotent(x in -1e30f32..1e30) {
        let r = bf16::round(x);
        prop_assert!((r - x).abs() <= x.abs() * 2f32.powi(-8));
        prop_assert_eq!(bf16::round(r), r);
        prop_assert_eq!(r.to_bits() & 0xffff, 0);
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// C = α op(A) op(B) + β C from the rounded operands, summed in f64.
#[allow(clippy::too_many_arguments)]
fn reference(
    (m, n, k): (usize, usize, usize),
    (a, lda, ta): (&[f32], usize, bool),
    (b, ldb, tb): (&[f32], usize, bool),
    (c, ldc): (&mut [f32], usize),
    (alpha, beta): (f32, f32),
) {
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|p| {
                    let x = if ta { a[p * lda + i] } else { a[i * lda + p] };
                    let y = if tb { b[j * ldb + p] } else { b[p * ldb + j] };
                    bf16::round(x) as f64 * bf16::round(y) as f64
                })
                .sum();
            let at = &mut c[i * ldc + j];
            *at = (alpha as f64 * s + if beta == 0.0 { 0.0 } else { beta as f64 * *at as f64 }) as f32;
        }
    }
}

#[test]
#[ignore = "needs a CPU with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids or later)"]
fn kernel_equals_the_rounded_operands_exact_products() {
    assert!(
        bf16::has_kernel(),
        "no AVX512-BF16 on this CPU (or PROMOT_BF16_KERNEL=off): the kernel cannot run here"
    );
    // Shapes around the tile (12 × 32), depth block (256) and column block (2048) edges.
    let shapes = [
        (1, 1, 1),
        (12, 32, 2),
        (13, 33, 3),
        (7, 5, 257),
        (25, 70, 513),
        (100, 40, 64),
        (3, 2100, 9),
    ];
    let mut case = 0;
    for &(m, n, k) in &shapes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (alpha, beta) in [(1.0, 0.0), (0.5, 2.0)] {
                case += 1;
                // Strided operands: two spare values at the end of every stored row.
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (ac + 2, bc + 2, n + 3);
                let a = values(ar * lda, case);
                let b = values(br * ldb, case + 1000);
                let c0 = values(m * ldc, case + 2000);
                let mut ours = c0.clone();
                let mut want = c0.clone();
                // SAFETY: the kernel exists; the operands hold these extents.
                unsafe {
                    bf16::gemm(
                        (m, n, k),
                        Operand {
                            ptr: a.as_ptr(),
                            ld: lda,
                            trans: ta,
                        },
                        Operand {
                            ptr: b.as_ptr(),
                            ld: ldb,
                            trans: tb,
                        },
                        (ours.as_mut_ptr(), ldc),
                        (alpha, beta),
                    )
                };
                reference((m, n, k), (&a, lda, ta), (&b, ldb, tb), (&mut want, ldc), (alpha, beta));
                for i in 0..m {
                    for j in 0..ldc {
                        let (o, w) = (ours[i * ldc + j], want[i * ldc + j]);
                        if j >= n {
                            assert_eq!(o, c0[i * ldc + j], "({m},{n},{k}) wrote past column {n}");
                            continue;
                        }
                        // f32 sums of exact products: error within k ulps of the terms' scale.
                        let tol = 1e-6 * (k as f32) * 4.0 * (alpha.abs() + beta.abs()) + 1e-6;
                        assert!(
                            (o - w).abs() <= tol,
                            "({m},{n},{k}) ta {ta} tb {tb} α {alpha} β {beta}: C[{i},{j}] = {o}, want {w}"
                        );
                    }
                }
            }
        }
    }
}

fn rounded(t: &Tensor) -> Tensor {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    Tensor::from_vec(
        v.into_iter().map(bf16::round).collect::<Vec<_>>(),
        t.shape(),
        t.device(),
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn linear_in_a_bf16_scope_multiplies_the_rounded_operands() {
    assert!(blas::get().is_some(), "no BLAS library: {}", blas::backend());
    let dev = Device::Cpu;
    let (rows, d, o) = (37, 300, 70);
    let x = Var::from_tensor(&Tensor::from_vec(values(rows * d, 1), (rows, d), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::from_vec(values(o * d, 2), (o, d), &dev).unwrap()).unwrap();
    let g = Tensor::from_vec(values(rows * o, 3), (rows, o), &dev).unwrap();

    let (y, grads) = {
        let _bf16 = precision::scope(MatmulDtype::Bf16, &Device::Cpu).unwrap();
        let y = blas::linear_wt(x.as_tensor(), w.as_tensor()).unwrap();
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        (y, grads)
    };
    assert_eq!(precision::current(), MatmulDtype::F32, "the scope restores f32");
    // The same products in f32 on rounded operands (what autocast computes, before rounding its output).
    let want_y = rounded(x.as_tensor())
        .matmul(&rounded(w.as_tensor()).t().unwrap())
        .unwrap();
    let want_gx = rounded(&g).matmul(&rounded(w.as_tensor())).unwrap();
    let want_gw = rounded(&g).t().unwrap().matmul(&rounded(x.as_tensor())).unwrap();
    assert!(max_diff(&y, &want_y) < 1e-4, "forward: {}", max_diff(&y, &want_y));
    let gx = grads.get(x.as_tensor()).unwrap();
    let gw = grads.get(w.as_tensor()).unwrap();
    assert!(max_diff(gx, &want_gx) < 1e-4, "grad x: {}", max_diff(gx, &want_gx));
    assert!(max_diff(gw, &want_gw) < 1e-4, "grad w: {}", max_diff(gw, &want_gw));
    // And it is not the f32 product: bf16 rounding shows at this size.
    let f32_y = blas::linear_wt(x.as_tensor(), w.as_tensor()).unwrap();
    assert!(max_diff(&y, &f32_y) > 1e-3);
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn the_precision_belongs_to_the_thread_that_sets_it() {
    // A bf16 scope needs the library (without it asking for bf16 is an error).
    assert!(blas::get().is_some(), "no BLAS library: {}", blas::backend());
    let _bf16 = precision::scope(MatmulDtype::Bf16, &Device::Cpu).unwrap();
    assert_eq!(precision::current(), MatmulDtype::Bf16);
    let other = std::thread::spawn(precision::current).join().unwrap();
    assert_eq!(other, MatmulDtype::F32);
    {
        let _f32 = precision::scope(MatmulDtype::F32, &Device::Cpu).unwrap();
        assert_eq!(precision::current(), MatmulDtype::F32);
    }
    assert_eq!(
        precision::current(),
        MatmulDtype::Bf16,
        "nested scopes restore the outer one"
    );
}
