//! Optimiser tests: trajectories against PyTorch / transformers references
//! (tests/fixtures/optim/reference.safetensors, made by
//! tests/fixtures/make_adafactor_fixture.py), Adafactor with T5X's rule against
//! optax (tests/fixtures/optim/t5x_adafactor.safetensors, made by
//! tests/fixtures/make_t5x_adafactor_fixture.py), freezing, checkpoint round
//! trips, schedules and gradient clipping.

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use promot::optim::{
    self, clip_grad_norm, grad_norm, AdafactorConfig, GroupSettings, Optimizer, OptimizerConfig, Schedule, SgdConfig,
};
use promot::params::Param;

const FIXTURE: &str = "tests/fixtures/optim/reference.safetensors";
const PARAM_NAMES: [&str; 3] = ["matrix", "vector", "tensor3"];
const STEPS: usize = 5;

fn reference() -> HashMap<String, Tensor> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture loads")
}

fn get<'a>(refs: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    refs.get(key).unwrap_or_else(|| panic!("fixture has no tensor {key}"))
}

fn initial_params(refs: &HashMap<String, Tensor>) -> Vec<Param> {
    PARAM_NAMES
        .iter()
        .map(|n| Param::new(n, get(refs, &format!("init/{n}")).copy().unwrap()).unwrap())
        .collect()
}

/// The gradients the reference fed at `step` (1-based), keyed to our params.
fn fixture_grads(refs: &HashMap<String, Tensor>, params: &[Param], step: usize) -> GradStore {
    let mut grads = GradStore::default();
    for p in params {
        grads.insert(
            p.var().as_tensor(),
            get(refs, &format!("grad/{step}/{}", p.name())).clone(),
        );
    }
    grads
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn assert_close(what: &str, ours: &Tensor, want: &Tensor) {
    assert_eq!(ours.dims(), want.dims(), "{what}: shape");
    for (i, (a, b)) in values(ours).iter().zip(values(want)).enumerate() {
        let tol = 1e-6 + 1e-5 * b.abs();
        assert!(
            (a - b).abs() <= tol,
            "{what}[{i}]: ours {a}, reference {b}, diff {}",
            (a - b).abs()
        );
    }
}

/// Run `opt` over the fixture's 5 gradients and compare with `case` after every step.
fn check_against_reference(case: &str, mut opt: Box<dyn Optimizer>) {
    let refs = reference();
    let params = initial_params(&refs);
    for step in 1..=STEPS {
        let grads = fixture_grads(&refs, &params, step);
        opt.step(&params, &grads).unwrap();
        for p in &params {
            let key = format!("{case}/{step}/{}", p.name());
            assert_close(&key, p.var().as_tensor(), get(&refs, &key));
        }
    }
}

#[test]
fn adafactor_matches_transformers_lr_0_2() {
    check_against_reference("adafactor_lr0.2", optim::by_name("adafactor", 0.2).unwrap());
}

#[test]
fn adafactor_matches_transformers_lr_1e_3() {
    check_against_reference("adafactor_lr0.001", optim::by_name("adafactor", 1e-3).unwrap());
}

#[test]
fn adafactor_with_momentum_decay_and_parameter_scale_matches_transformers() {
    let cfg = AdafactorConfig {
        lr: 0.05,
        beta1: Some(0.9),
        weight_decay: 0.1,
        multiply_by_parameter_scale: true,
        ..Default::default()
    };
    check_against_reference("adafactor_extra", OptimizerConfig::Adafactor(cfg).build().unwrap());
}

#[test]
fn adamw_matches_torch() {
    check_against_reference("adamw", optim::by_name("adamw", 1e-2).unwrap());
}

#[test]
fn sgd_with_momentum_matches_torch() {
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    };
    check_against_reference("sgd_momentum", OptimizerConfig::Sgd(cfg).build().unwrap());
}

#[test]
fn plain_sgd_matches_torch() {
    check_against_reference("sgd_plain", optim::by_name("sgd", 0.1).unwrap());
}

fn all_optimizers() -> Vec<Box<dyn Optimizer>> {
    let adafactor = AdafactorConfig {
        lr: 0.05,
        beta1: Some(0.9),
        weight_decay: 0.1,
        ..Default::default()
    };
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    };
    vec![
        optim::by_name("adafactor", 0.2).unwrap(),
        OptimizerConfig::Adafactor(adafactor).build().unwrap(),
        optim::by_name("adamw", 1e-2).unwrap(),
        OptimizerConfig::Sgd(sgd).build().unwrap(),
    ]
}

fn bits(t: &Tensor) -> Vec<u32> {
    values(t).iter().map(|v| v.to_bits()).collect()
}

#[test]
fn frozen_and_gradless_params_are_untouched_and_get_no_state() {
    let refs = reference();
    for mut opt in all_optimizers() {
        let params = initial_params(&refs);
        let frozen = &params[0];
        frozen.set_trainable(false);
        let before_frozen = bits(frozen.var().as_tensor());
        let before_gradless = bits(params[2].var().as_tensor());
        for step in 1..=3 {
            // The frozen param even has a gradient in the store; the third has none.
            let mut grads = fixture_grads(&refs, &params, step);
            grads.remove(params[2].var().as_tensor());
            opt.step(&params, &grads).unwrap();
        }
        assert_eq!(
            bits(frozen.var().as_tensor()),
            before_frozen,
            "{}: frozen param changed",
            opt.name()
        );
        assert_eq!(
            bits(params[2].var().as_tensor()),
            before_gradless,
            "{}: gradless param changed",
            opt.name()
        );
        assert_ne!(
            bits(params[1].var().as_tensor()),
            bits(get(&refs, "init/vector")),
            "{}: trainable param did not move",
            opt.name()
        );
        let (state, steps) = opt.state().unwrap();
        assert_eq!(steps, 3);
        assert!(
            state.keys().any(|k| k.ends_with("/vector")),
            "{}: no state for the trained param",
            opt.name()
        );
        for key in state.keys() {
            assert!(
                !key.ends_with("/matrix") && !key.ends_with("/tensor3"),
                "{}: state {key} for an untouched param",
                opt.name()
            );
        }
    }
}

#[test]
fn frozen_param_gets_no_gradient_from_backward() {
    let w = Param::new("w", Tensor::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap()).unwrap();
    let f = Param::new("f", Tensor::new(&[0.5f32, 0.25, -1.0], &Device::Cpu).unwrap()).unwrap();
    f.set_trainable(false);
    let before = bits(f.var().as_tensor());
    let mut opt = optim::by_name("adafactor", 0.1).unwrap();
    for _ in 0..3 {
        let loss = w.tensor().mul(&f.tensor()).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        assert!(grads.get(f.var().as_tensor()).is_none());
        opt.step(&[w.clone(), f.clone()], &grads).unwrap();
    }
    assert_eq!(bits(f.var().as_tensor()), before);
    // d/dw sum((w f)^2) = 2 w f^2 points away from 0, so |w| shrinks.
    let w_now = values(w.var().as_tensor());
    assert!(
        w_now.iter().zip([1.0f32, -2.0, 3.0]).all(|(a, b)| a.abs() < b.abs()),
        "{w_now:?}"
    );
}

#[test]
fn state_round_trip_resumes_bit_identically() {
    let refs = reference();
    let fresh = all_optimizers;
    let n = fresh().len();
    for which in 0..n {
        // Uninterrupted run.
        let mut straight = fresh().remove(which);
        let params = initial_params(&refs);
        for step in 1..=STEPS {
            straight.step(&params, &fixture_grads(&refs, &params, step)).unwrap();
        }
        // Two steps, checkpoint (through a safetensors file), then a new optimizer and new params.
        let mut first = fresh().remove(which);
        let early = initial_params(&refs);
        for step in 1..=2 {
            first.step(&early, &fixture_grads(&refs, &early, step)).unwrap();
        }
        let (state, steps) = first.state().unwrap();
        let path = std::env::temp_dir().join(format!("promot-optim-state-{}-{which}.safetensors", std::process::id()));
        let as_map: HashMap<String, Tensor> = state.into_iter().collect();
        candle_core::safetensors::save(&as_map, &path).unwrap();
        let loaded: BTreeMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
            .unwrap()
            .into_iter()
            .collect();
        std::fs::remove_file(&path).ok();

        let mut resumed = fresh().remove(which);
        resumed.load_state(&loaded, steps).unwrap();
        let later: Vec<Param> = early
            .iter()
            .map(|p| Param::new(p.name(), p.var().as_tensor().copy().unwrap()).unwrap())
            .collect();
        for step in 3..=STEPS {
            resumed.step(&later, &fixture_grads(&refs, &later, step)).unwrap();
        }
        for (a, b) in params.iter().zip(&later) {
            assert_eq!(
                bits(a.var().as_tensor()),
                bits(b.var().as_tensor()),
                "{}: {} differs after resume",
                straight.name(),
                a.name()
            );
        }
        let (s1, n1) = straight.state().unwrap();
        let (s2, n2) = resumed.state().unwrap();
        assert_eq!(n1, n2);
        assert_eq!(s1.keys().collect::<Vec<_>>(), s2.keys().collect::<Vec<_>>());
        for (k, t) in &s1 {
            assert_eq!(bits(t), bits(&s2[k]), "{}: state {k} differs", straight.name());
        }
    }
}

#[test]
fn load_state_rejects_foreign_or_incomplete_state() {
    let refs = reference();
    let params = initial_params(&refs);
    let mut adamw = optim::by_name("adamw", 1e-2).unwrap();
    adamw.step(&params, &fixture_grads(&refs, &params, 1)).unwrap();
    let (state, steps) = adamw.state().unwrap();

    let mut adafactor = optim::by_name("adafactor", 0.2).unwrap();
    assert!(adafactor.load_state(&state, steps).is_err());

    let mut incomplete = state.clone();
    incomplete.remove("adamw.v/matrix");
    assert!(optim::by_name("adamw", 1e-2)
        .unwrap()
        .load_state(&incomplete, steps)
        .is_err());

    // State of the wrong shape for a parameter is an error at the step, not a panic.
    let mut swapped = state.clone();
    let m_vector = swapped["adamw.m/vector"].clone();
    let v_vector = swapped["adamw.v/vector"].clone();
    swapped.insert("adamw.m/matrix".into(), m_vector);
    swapped.insert("adamw.v/matrix".into(), v_vector);
    let mut opt = optim::by_name("adamw", 1e-2).unwrap();
    opt.load_state(&swapped, steps).unwrap();
    assert!(opt.step(&params, &fixture_grads(&refs, &params, 2)).is_err());
}

#[test]
fn names_options_and_learning_rate() {
    for name in ["adafactor", "adamw", "sgd"] {
        let mut opt = optim::by_name(name, 0.5).unwrap();
        assert_eq!(opt.name(), name);
        assert_eq!(opt.learning_rate(), 0.5);
        opt.set_learning_rate(0.25);
        assert_eq!(opt.learning_rate(), 0.25);
    }
    assert!(optim::by_name("adam", 0.1).is_err());
    assert!(optim::by_name("sgd", -1.0).is_err());
    assert!(optim::by_name("sgd", f64::NAN).is_err());
    let adafactor = OptimizerConfig::named("adafactor", 0.1).unwrap();
    let err = adafactor.with("betta", 0.9.into()).unwrap_err().to_string();
    assert!(err.contains("no option 'betta'") && err.contains("beta1"), "{err}");
    assert!(adafactor.with("beta2", 0.99.into()).is_err());
    let adamw = OptimizerConfig::named("adamw", 0.1).unwrap();
    assert!(adamw.with("beta2", 0.99.into()).unwrap().build().is_ok());
    let sgd = OptimizerConfig::named("sgd", 0.1).unwrap();
    assert!(sgd.with("momentum", 1.5.into()).unwrap().build().is_err());
}

#[test]
fn step_rejects_a_param_listed_twice() {
    let p = Param::new("p", Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
    let mut grads = GradStore::default();
    grads.insert(p.var().as_tensor(), Tensor::new(&[1.0f32, 1.0], &Device::Cpu).unwrap());
    let mut opt = optim::by_name("sgd", 0.1).unwrap();
    assert!(opt.step(&[p.clone(), p.clone()], &grads).is_err());
    assert_eq!(values(p.var().as_tensor()), vec![1.0, 2.0]);
}

#[test]
fn bf16_params_are_updated_in_f32_and_keep_their_dtype() {
    let p = Param::new(
        "p",
        Tensor::new(&[1.0f32, -1.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap(),
    )
    .unwrap();
    let mut grads = GradStore::default();
    grads.insert(
        p.var().as_tensor(),
        Tensor::new(&[0.5f32, -0.5], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap(),
    );
    let mut opt = optim::by_name("sgd", 0.5).unwrap();
    opt.step(std::slice::from_ref(&p), &grads).unwrap();
    assert_eq!(p.var().dtype(), DType::BF16);
    assert_eq!(values(p.var().as_tensor()), vec![0.75, -0.75]);
}

#[test]
fn schedule_values() {
    let base = 0.2;
    assert_eq!(Schedule::Constant.lr_at(base, 0), base);
    assert_eq!(Schedule::Constant.lr_at(base, 12345), base);

    let warm = Schedule::LinearWarmup { warmup_steps: 4 };
    let got: Vec<f64> = (0..6).map(|s| warm.lr_at(base, s)).collect();
    let want = [0.05, 0.1, 0.15, 0.2, 0.2, 0.2];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?}");
    }
    assert_eq!(Schedule::LinearWarmup { warmup_steps: 0 }.lr_at(base, 0), base);

    let decay = Schedule::LinearWarmupDecay { warmup: 2, total: 6 };
    let got: Vec<f64> = (0..8).map(|s| decay.lr_at(1.0, s)).collect();
    let want = [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?}");
    }

    let rsqrt = Schedule::Rsqrt { warmup_steps: 100 };
    assert!((rsqrt.lr_at(1.0, 0) - 0.1).abs() < 1e-12);
    assert!((rsqrt.lr_at(1.0, 100) - 0.1).abs() < 1e-12);
    assert!((rsqrt.lr_at(1.0, 400) - 0.05).abs() < 1e-12);
    assert!((rsqrt.lr_at(2.0, 10_000) - 0.02).abs() < 1e-12);
    assert_eq!(Schedule::Rsqrt { warmup_steps: 0 }.lr_at(1.0, 0), 1.0);

    assert_eq!(
        Schedule::from_name("rsqrt", 10, 0).unwrap(),
        Schedule::Rsqrt { warmup_steps: 10 }
    );
    assert!(Schedule::from_name("cosine", 10, 100).is_err());
    assert!(Schedule::from_name("linear_warmup_decay", 10, 10).is_err());
}

#[test]
fn clip_grad_norm_uses_the_global_norm_of_trainable_grads() {
    let dev = Device::Cpu;
    let a = Param::new("a", Tensor::new(&[3.0f32, 4.0], &dev).unwrap()).unwrap();
    let b = Param::new("b", Tensor::new(&[[1.0f32]], &dev).unwrap()).unwrap();
    let frozen = Param::new("frozen", Tensor::new(&[1.0f32], &dev).unwrap()).unwrap();
    let gradless = Param::new("gradless", Tensor::new(&[1.0f32], &dev).unwrap()).unwrap();
    frozen.set_trainable(false);
    let params = [a.clone(), b.clone(), frozen.clone(), gradless.clone()];
    let make = || {
        let mut g = GradStore::default();
        g.insert(a.var().as_tensor(), Tensor::new(&[3.0f32, 4.0], &dev).unwrap());
        g.insert(b.var().as_tensor(), Tensor::new(&[[12.0f32]], &dev).unwrap());
        g.insert(frozen.var().as_tensor(), Tensor::new(&[100.0f32], &dev).unwrap());
        g
    };
    // sqrt(3² + 4² + 12²) = 13; the frozen param's gradient does not count.
    assert!((grad_norm(&params, &make()).unwrap() - 13.0).abs() < 1e-9);

    let (norm, clipped) = clip_grad_norm(&params, make(), 6.5).unwrap();
    assert!((norm - 13.0).abs() < 1e-9);
    let coef = (6.5 / (13.0 + 1e-6)) as f32;
    let ga = values(clipped.get(a.var().as_tensor()).unwrap());
    let gb = values(clipped.get(b.var().as_tensor()).unwrap());
    assert!(
        (ga[0] - 3.0 * coef).abs() < 1e-6 && (ga[1] - 4.0 * coef).abs() < 1e-6,
        "{ga:?}"
    );
    assert!((gb[0] - 12.0 * coef).abs() < 1e-6, "{gb:?}");
    assert_eq!(values(clipped.get(frozen.var().as_tensor()).unwrap()), vec![100.0]);
    assert!((grad_norm(&params, &clipped).unwrap() - 6.5).abs() < 1e-5);

    // Under the limit: untouched.
    let (norm, same) = clip_grad_norm(&params, make(), 100.0).unwrap();
    assert!((norm - 13.0).abs() < 1e-9);
    assert_eq!(values(same.get(b.var().as_tensor()).unwrap()), vec![12.0]);

    // A param listed twice counts once.
    let twice = [a.clone(), a.clone()];
    assert!((grad_norm(&twice, &make()).unwrap() - 5.0).abs() < 1e-9);

    assert!(clip_grad_norm(&params, make(), 0.0).is_err());
    assert_eq!(grad_norm(std::slice::from_ref(&frozen), &make()).unwrap(), 0.0);
}

// ---- T5X's Adafactor rule against optax (tests/fixtures/make_t5x_adafactor_fixture.py) ----

const T5X_FIXTURE: &str = "tests/fixtures/optim/t5x_adafactor.safetensors";
/// In the fixture script's order: a tensor's position is its generator stream id.
const T5X_PARAMS: [&str; 7] = ["wide", "tall", "narrow", "edge", "vector", "tensor3", "small3"];

fn t5x_reference() -> HashMap<String, Tensor> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(T5X_FIXTURE);
    candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture loads")
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn usizes(t: &Tensor) -> Vec<usize> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixture script's `make_input`: step 0 gives the initial values, step t
/// the gradient of step t; f64 arithmetic rounded once to f32, bit for bit.
fn t5x_input(tensor_id: u64, step: usize, dims: &[usize], amplitude: f64, grad_scale: &[f64]) -> Tensor {
    let n: usize = dims.iter().product();
    let stream = tensor_id * 16 + step as u64;
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let u = (splitmix64((stream << 32) | i as u64) >> 40) as f64 / 8_388_608.0 - 1.0;
            let v = if step == 0 {
                amplitude * u
            } else {
                grad_scale[step - 1] * u * (1.0 + ((i as f64 * 7.0) % 11.0) / 4.0)
            };
            v as f32
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn at(t: &Tensor, index: &[usize]) -> Vec<f32> {
    let all = values(t);
    index.iter().map(|&i| all[i]).collect()
}

/// Run `opts` for the fixture's 5 steps and compare with optax's trajectory for
/// `case`: every sampled value within 1e-5 relative (or 1e-5 of the step's
/// update RMS, for values near zero), each step's whole-tensor update RMS within
/// 1e-5 relative, and the final factored state (v_row, v_col) within 1e-5
/// relative. Returns the worst value error found, for the report.
fn check_against_optax(case: &str, preset: fn(f64) -> AdafactorConfig) -> f64 {
    let refs = t5x_reference();
    let grad_scale = f64s(get(&refs, "grad_scale"));
    let lr = f64s(get(&refs, &format!("lr/{case}")))[0];
    let mut opt = OptimizerConfig::Adafactor(preset(lr)).build().unwrap();
    let mut params = Vec::new();
    let mut grads_by_step = vec![Vec::new(); STEPS];
    for (id, name) in T5X_PARAMS.iter().enumerate() {
        let dims = usizes(get(&refs, &format!("shape/{name}")));
        let index = usizes(get(&refs, &format!("index/{name}")));
        let amplitude = f64s(get(&refs, &format!("amplitude/{name}")))[0];
        let init = t5x_input(id as u64, 0, &dims, amplitude, &grad_scale);
        assert_eq!(
            at(&init, &index),
            values(get(&refs, &format!("init/{name}"))),
            "{name}: initial values"
        );
        let want_grads = get(&refs, &format!("grad/{name}"));
        for (step, grads) in grads_by_step.iter_mut().enumerate() {
            let g = t5x_input(id as u64, step + 1, &dims, amplitude, &grad_scale);
            assert_eq!(
                at(&g, &index),
                values(&want_grads.get(step).unwrap()),
                "{name}: gradient {}",
                step + 1
            );
            grads.push(g);
        }
        params.push((Param::new(name, init).unwrap(), index));
    }
    let plist: Vec<Param> = params.iter().map(|(p, _)| p.clone()).collect();
    let mut worst = 0f64;
    for (step, step_grads) in grads_by_step.iter().enumerate() {
        let mut grads = GradStore::default();
        for ((p, _), g) in params.iter().zip(step_grads) {
            grads.insert(p.var().as_tensor(), g.clone());
        }
        let before: Vec<Tensor> = plist.iter().map(|p| p.var().as_tensor().copy().unwrap()).collect();
        opt.step(&plist, &grads).unwrap();
        for ((p, index), before) in params.iter().zip(&before) {
            let name = p.name();
            let now = p.var().as_tensor();
            let want_rms = f64s(get(&refs, &format!("{case}/update_rms/{name}")))[step];
            let delta: Vec<f64> = values(now)
                .iter()
                .zip(values(before))
                .map(|(a, b)| *a as f64 - b as f64)
                .collect();
            let rms = (delta.iter().map(|d| d * d).sum::<f64>() / delta.len() as f64).sqrt();
            assert!(
                (rms - want_rms).abs() <= 1e-5 * want_rms,
                "{case}/{name} step {}: update RMS {rms}, optax {want_rms}",
                step + 1
            );
            let want = values(&get(&refs, &format!("{case}/{name}")).get(step).unwrap());
            for (k, (a, b)) in at(now, index).iter().zip(&want).enumerate() {
                let err = (a - b).abs() as f64 / (b.abs() as f64 + want_rms);
                worst = worst.max(err);
                assert!(
                    err <= 1e-5,
                    "{case}/{name} step {} element {}: ours {a}, optax {b}",
                    step + 1,
                    index[k]
                );
            }
        }
    }
    // Factored state: same layout as optax's v_row / v_col, same values.
    let (state, _) = opt.state().unwrap();
    for name in T5X_PARAMS {
        match refs.get(&format!("{case}/vr/{name}")) {
            Some(vr) => {
                let vc = get(&refs, &format!("{case}/vc/{name}"));
                assert!(
                    !state.contains_key(&format!("adafactor.v/{name}")),
                    "{name} should be factored"
                );
                for (slot, want) in [("vr", vr), ("vc", vc)] {
                    let ours = &state[&format!("adafactor.{slot}/{name}")];
                    assert_eq!(ours.dims(), want.dims(), "{case}/{name}: {slot} shape");
                    for (a, b) in values(ours).iter().zip(values(want)) {
                        assert!(
                            (a - b).abs() <= 1e-5 * b.abs(),
                            "{case}/{name}: {slot} ours {a}, optax {b}"
                        );
                    }
                }
            }
            None => {
                let v = &state[&format!("adafactor.v/{name}")];
                let dims = usizes(get(&refs, &format!("shape/{name}")));
                assert_eq!(
                    v.dims(),
                    dims.as_slice(),
                    "{name} should keep its second moment in full"
                );
            }
        }
    }
    worst
}

#[test]
fn adafactor_t5x_model_preset_matches_optax() {
    let worst = check_against_optax("t5x_model", AdafactorConfig::t5x);
    eprintln!("t5x_model: worst |ours - optax| / (|optax| + update RMS) = {worst:.2e}");
}

#[test]
fn adafactor_t5x_prompt_preset_matches_optax() {
    let worst = check_against_optax("t5x_prompt", AdafactorConfig::prompt_tuning);
    eprintln!("t5x_prompt: worst |ours - optax| / (|optax| + update RMS) = {worst:.2e}");
}

#[test]
fn t5x_presets_and_options_by_name() {
    // A group's settings as a script writes them, one literal.
    let literal = serde_json::json!({
        "optimizer": "adafactor", "lr": 0.1, "multiply_by_parameter_scale": true,
        "min_dim_size_to_factor": 128, "decay_rate": -0.8, "clip_threshold": 1.0
    });
    let by_name: GroupSettings = serde_json::from_value(literal).unwrap();
    assert_eq!(by_name.optimizer, OptimizerConfig::Adafactor(AdafactorConfig::t5x(0.1)));
    let prompt = AdafactorConfig::prompt_tuning(0.1);
    assert!(!prompt.multiply_by_parameter_scale);
    assert_eq!(prompt.min_dim_size_to_factor, Some(128));
    assert_eq!(
        AdafactorConfig {
            multiply_by_parameter_scale: true,
            ..prompt
        },
        AdafactorConfig::t5x(0.1)
    );
    let adafactor = OptimizerConfig::named("adafactor", 0.1).unwrap();
    for bad in [serde_json::json!(-1), serde_json::json!(1.5), serde_json::json!("x")] {
        assert!(adafactor.with("min_dim_size_to_factor", bad.clone()).is_err(), "{bad}");
    }
    let zero = adafactor.with("min_dim_size_to_factor", 0.into()).unwrap();
    let OptimizerConfig::Adafactor(zero) = zero else {
        panic!()
    };
    assert_eq!(zero.min_dim_size_to_factor, Some(0));
    assert!(OptimizerConfig::Adafactor(AdafactorConfig::t5x(0.1)).build().is_ok());
    for other in ["adamw", "sgd"] {
        let err = OptimizerConfig::named(other, 0.1)
            .unwrap()
            .with("min_dim_size_to_factor", 128.into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no option 'min_dim_size_to_factor'"), "{other}: {err}");
        let literal = serde_json::json!({ "optimizer": other, "min_dim_size_to_factor": 128 });
        let err = serde_json::from_value::<GroupSettings>(literal)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no option 'min_dim_size_to_factor'") && err.contains("weight_decay"),
            "{other}: {err}"
        );
    }
}

/// Shapes of the second-moment state after one step of `opts` on a parameter of shape `dims`.
fn second_moment_shapes(cfg: &AdafactorConfig, dims: &[usize]) -> BTreeMap<String, Vec<usize>> {
    let p = Param::new("p", Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let mut grads = GradStore::default();
    grads.insert(
        p.var().as_tensor(),
        Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap(),
    );
    let mut opt = OptimizerConfig::Adafactor(AdafactorConfig { lr: 0.1, ..cfg.clone() })
        .build()
        .unwrap();
    opt.step(std::slice::from_ref(&p), &grads).unwrap();
    let (state, _) = opt.state().unwrap();
    state
        .into_iter()
        .filter(|(k, _)| !k.starts_with("adafactor.step/"))
        .map(|(k, t)| {
            (
                k.trim_end_matches("/p").trim_start_matches("adafactor.").to_string(),
                t.dims().to_vec(),
            )
        })
        .collect()
}

#[test]
fn which_tensors_are_factored_over_which_dims() {
    let min = |m: usize| AdafactorConfig {
        min_dim_size_to_factor: Some(m),
        ..Default::default()
    };
    let shapes = |pairs: &[(&str, &[usize])]| -> BTreeMap<String, Vec<usize>> {
        pairs.iter().map(|(k, d)| (k.to_string(), d.to_vec())).collect()
    };
    // T5X's own tests (t5x/adafactor_test.py): v_row is per smaller dim.
    assert_eq!(
        second_moment_shapes(&min(8), &[24, 16]),
        shapes(&[("vr", &[16]), ("vc", &[24])])
    );
    assert_eq!(second_moment_shapes(&min(32), &[24, 16]), shapes(&[("v", &[24, 16])]));
    assert_eq!(
        second_moment_shapes(&min(32), &[64, 64]),
        shapes(&[("vr", &[64]), ("vc", &[64])])
    );
    assert_eq!(second_moment_shapes(&min(32), &[31, 64]), shapes(&[("v", &[31, 64])]));
    // The transformers default: always the last two dims, whatever their sizes.
    let default = AdafactorConfig::default();
    assert_eq!(
        second_moment_shapes(&default, &[24, 16]),
        shapes(&[("vr", &[24]), ("vc", &[16])])
    );
    assert_eq!(
        second_moment_shapes(&default, &[7, 2, 7]),
        shapes(&[("vr", &[7, 2]), ("vc", &[7, 7])])
    );
    // T5X's rule in 3-D: the two largest dims; of equal sizes the later is the column.
    assert_eq!(
        second_moment_shapes(&min(0), &[7, 2, 7]),
        shapes(&[("vr", &[7, 2]), ("vc", &[2, 7])])
    );
    assert_eq!(
        second_moment_shapes(&min(1), &[5, 5, 5]),
        shapes(&[("vr", &[5, 5]), ("vc", &[5, 5])])
    );
    assert_eq!(
        second_moment_shapes(&min(3), &[9, 2, 4]),
        shapes(&[("vr", &[2, 4]), ("vc", &[9, 2])])
    );
    assert_eq!(second_moment_shapes(&min(5), &[9, 2, 4]), shapes(&[("v", &[9, 2, 4])]));
    // Vectors and scalars are never factored.
    assert_eq!(second_moment_shapes(&min(0), &[6]), shapes(&[("v", &[6])]));
    assert_eq!(second_moment_shapes(&default, &[]), shapes(&[("v", &[])]));
}

#[test]
fn adafactor_state_from_another_factoring_is_an_error_not_a_panic() {
    let refs = reference();
    let params = initial_params(&refs);
    let mut factored = optim::by_name("adafactor", 0.2).unwrap();
    factored.step(&params, &fixture_grads(&refs, &params, 1)).unwrap();
    let (state, steps) = factored.state().unwrap();
    // With T5X's rule at 128 none of the fixture's small tensors is factored.
    let mut t5x = OptimizerConfig::Adafactor(AdafactorConfig::t5x(0.2)).build().unwrap();
    t5x.load_state(&state, steps).unwrap();
    assert!(t5x.step(&params, &fixture_grads(&refs, &params, 2)).is_err());
    // And the other way round.
    let mut t5x = OptimizerConfig::Adafactor(AdafactorConfig::t5x(0.2)).build().unwrap();
    t5x.step(&params, &fixture_grads(&refs, &params, 1)).unwrap();
    let (state, steps) = t5x.state().unwrap();
    let mut plain = optim::by_name("adafactor", 0.2).unwrap();
    plain.load_state(&state, steps).unwrap();
    assert!(plain.step(&params, &fixture_grads(&refs, &params, 2)).is_err());
}

/// The one-pass CPU Adafactor kernel (src/optim/adafactor/cpu.rs) against the
/// composed rule, over 6 steps of random gradients, for both factoring rules
/// (both orientations of a factored matrix), a full second moment, parameter
/// scaling, weight decay, and momentum (which takes the composed path).
#[test]
fn adafactor_kernel_matches_the_composed_rule() {
    use promot::optim::{Adafactor, AdafactorConfig};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut random = |shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let shapes: [&[usize]; 5] = [&[130, 200], &[300, 129], &[64, 7], &[37], &[3, 4, 5]];
    let configs = [
        AdafactorConfig::default(),
        AdafactorConfig {
            min_dim_size_to_factor: Some(128),
            multiply_by_parameter_scale: true,
            ..Default::default()
        },
        AdafactorConfig {
            weight_decay: 0.1,
            lr: 0.3,
            clip_threshold: 0.5,
            ..Default::default()
        },
        AdafactorConfig {
            beta1: Some(0.9),
            ..Default::default()
        },
    ];
    for (ci, cfg) in configs.iter().enumerate() {
        let init: Vec<Tensor> = shapes.iter().map(|s| random(s, 0.5)).collect();
        let grads: Vec<Vec<Tensor>> = (0..6)
            .map(|_| shapes.iter().map(|s| random(s, 2.0)).collect())
            .collect();
        let run = |fused: bool| {
            let params: Vec<Param> = init
                .iter()
                .enumerate()
                .map(|(i, t)| Param::new(&format!("p{i}"), t.copy().unwrap()).unwrap())
                .collect();
            let mut opt = Adafactor::new(cfg.clone()).unwrap().with_fused_kernel(fused);
            let mut after = Vec::new();
            for step in &grads {
                let mut g = GradStore::default();
                for (p, t) in params.iter().zip(step) {
                    g.insert(p.var().as_tensor(), t.clone());
                }
                opt.step(&params, &g).unwrap();
                after.push(
                    params
                        .iter()
                        .map(|p| p.var().as_tensor().copy().unwrap())
                        .collect::<Vec<_>>(),
                );
            }
            (after, opt.state().unwrap().0)
        };
        let (fused, fused_state) = run(true);
        let (composed, composed_state) = run(false);
        for (step, (a, b)) in fused.iter().zip(&composed).enumerate() {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_close(&format!("config {ci}, step {}, p{i} {:?}", step + 1, shapes[i]), x, y);
            }
        }
        assert_eq!(
            fused_state.keys().collect::<Vec<_>>(),
            composed_state.keys().collect::<Vec<_>>()
        );
        for (k, v) in &fused_state {
            assert_close(&format!("config {ci}, state {k}"), v, &composed_state[k]);
        }
    }
}
