//! Making new tensors: zeros, ones, full, randn, rand, arange, tensor([...]).

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhai::{Array, Dynamic, Engine, FLOAT, INT};

use super::{check, check_count, dtype_arg, number_arg, reg, reg_volatile, shape_arg, type_name};
use crate::script::{to_rhai, RResult};

/// Deepest nesting `tensor([...])` accepts; real tensors rarely pass 5.
const MAX_NESTING: usize = 32;

pub(super) fn register(engine: &mut Engine) {
    reg(
        engine,
        "zeros",
        &["shape: Array", "Tensor"],
        "An f32 tensor of zeros, e.g. zeros([2, 3]).",
        |s: Array| filled("zeros", &s, 0.0, DType::F32),
    );
    reg(
        engine,
        "zeros",
        &["n: i64", "Tensor"],
        "A 1-D f32 tensor of n zeros.",
        |n: INT| filled("zeros", &[Dynamic::from(n)], 0.0, DType::F32),
    );
    reg(
        engine,
        "zeros",
        &["shape: Array", "dtype: &str", "Tensor"],
        "A tensor of zeros with the given dtype (\"f32\", \"f16\", \"bf16\", \"f64\", \"u8\", \"u32\", \"i64\").",
        |s: Array, dt: &str| filled("zeros", &s, 0.0, dtype_arg("zeros", dt)?),
    );
    reg(
        engine,
        "ones",
        &["shape: Array", "Tensor"],
        "An f32 tensor of ones, e.g. ones([2, 3]).",
        |s: Array| filled("ones", &s, 1.0, DType::F32),
    );
    reg(
        engine,
        "ones",
        &["n: i64", "Tensor"],
        "A 1-D f32 tensor of n ones.",
        |n: INT| filled("ones", &[Dynamic::from(n)], 1.0, DType::F32),
    );
    reg(
        engine,
        "ones",
        &["shape: Array", "dtype: &str", "Tensor"],
        "A tensor of ones with the given dtype.",
        |s: Array, dt: &str| filled("ones", &s, 1.0, dtype_arg("ones", dt)?),
    );
    reg(
        engine,
        "full",
        &["shape: Array", "value: f64", "Tensor"],
        "An f32 tensor with every element equal to value.",
        |s: Array, v: FLOAT| filled("full", &s, v, DType::F32),
    );
    reg(
        engine,
        "full",
        &["shape: Array", "value: i64", "Tensor"],
        "An f32 tensor with every element equal to value.",
        |s: Array, v: INT| filled("full", &s, v as f64, DType::F32),
    );

    reg_volatile(
        engine,
        "randn",
        &["shape: Array", "Tensor"],
        "Standard normal f32 samples, fresh each call.",
        |s: Array| random("randn", &s, None, true),
    );
    reg(
        engine,
        "randn",
        &["shape: Array", "seed: i64", "Tensor"],
        "Standard normal f32 samples; the same seed gives the same tensor.",
        |s: Array, seed: INT| random("randn", &s, Some(seed as u64), true),
    );
    reg_volatile(
        engine,
        "rand",
        &["shape: Array", "Tensor"],
        "Uniform [0, 1) f32 samples, fresh each call.",
        |s: Array| random("rand", &s, None, false),
    );
    reg(
        engine,
        "rand",
        &["shape: Array", "seed: i64", "Tensor"],
        "Uniform [0, 1) f32 samples; the same seed gives the same tensor.",
        |s: Array, seed: INT| random("rand", &s, Some(seed as u64), false),
    );

    reg(
        engine,
        "arange",
        &["end: number", "Tensor"],
        "0, 1, ..., end-1 as a 1-D f32 tensor.",
        |end: Dynamic| arange(0.0, number_arg("arange", &end)?, 1.0),
    );
    reg(
        engine,
        "arange",
        &["start: number", "end: number", "Tensor"],
        "start, start+1, ... up to (not including) end, as f32.",
        |start: Dynamic, end: Dynamic| arange(number_arg("arange", &start)?, number_arg("arange", &end)?, 1.0),
    );
    reg(
        engine,
        "arange",
        &["start: number", "end: number", "step: number", "Tensor"],
        "start, start+step, ... up to (not including) end, as f32.",
        |start: Dynamic, end: Dynamic, step: Dynamic| {
            arange(
                number_arg("arange", &start)?,
                number_arg("arange", &end)?,
                number_arg("arange", &step)?,
            )
        },
    );

    reg(
        engine,
        "tensor",
        &["values: Array", "Tensor"],
        "An f32 tensor from nested arrays of numbers: tensor([[1, 2], [3, 4]]).",
        |v: Array| from_nested(&v),
    );
    reg(
        engine,
        "tensor",
        &["value: f64", "Tensor"],
        "A scalar (rank 0) f32 tensor.",
        |v: FLOAT| scalar(v),
    );
    reg(
        engine,
        "tensor",
        &["value: i64", "Tensor"],
        "A scalar (rank 0) f32 tensor.",
        |v: INT| scalar(v as f64),
    );
}

fn filled(op: &str, shape: &[Dynamic], value: f64, dtype: DType) -> RResult<Tensor> {
    let dims = shape_arg(op, shape)?;
    let dev = &default_device()?;
    if value == 0.0 {
        check(op, &[], Tensor::zeros(dims, dtype, dev))
    } else if value == 1.0 {
        check(op, &[], Tensor::ones(dims, dtype, dev))
    } else {
        let t = check(op, &[], Tensor::full(value as f32, dims, dev))?;
        check(op, &[&t], t.to_dtype(dtype))
    }
}

/// Where a script's new tensors live (`promot --device`, `device(NAME)`).
fn default_device() -> RResult<Device> {
    crate::device::default_device().map_err(to_rhai)
}

fn scalar(v: f64) -> RResult<Tensor> {
    check("tensor", &[], Tensor::new(v as f32, &default_device()?))
}

/// Random values from ChaCha8 (seeded or from the OS), normals by Box-Muller,
/// so a seed reproduces the same tensor on every platform and device.
fn random(op: &str, shape: &Array, seed: Option<u64>, normal: bool) -> RResult<Tensor> {
    let dims = shape_arg(op, shape)?;
    let n = check_count(op, &dims)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.unwrap_or_else(rand::random));
    let mut values = Vec::with_capacity(n);
    if normal {
        while values.len() < n {
            // u1 in (0, 1] keeps ln(u1) finite.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f64::consts::PI * u2;
            values.push((r * theta.cos()) as f32);
            if values.len() < n {
                values.push((r * theta.sin()) as f32);
            }
        }
    } else {
        values.extend((0..n).map(|_| rng.random::<f32>()));
    }
    check(op, &[], Tensor::from_vec(values, dims, &default_device()?))
}

fn arange(start: f64, end: f64, step: f64) -> RResult<Tensor> {
    if !(start.is_finite() && end.is_finite() && step.is_finite()) {
        return Err(to_rhai(format!(
            "arange: start {start}, end {end} and step {step} must be finite"
        )));
    }
    if step == 0.0 {
        return Err(to_rhai("arange: step must not be 0"));
    }
    let count = ((end - start) / step).ceil();
    if !count.is_finite() || count > super::MAX_ELEMENTS as f64 {
        return Err(to_rhai(format!("arange({start}, {end}, {step}): too many elements")));
    }
    let n = if count > 0.0 { count as usize } else { 0 };
    let values: Vec<f32> = (0..n).map(|i| (start + i as f64 * step) as f32).collect();
    check("arange", &[], Tensor::from_vec(values, n, &default_device()?))
}

/// Build a tensor from nested arrays: every array at one depth must have the
/// same length (ragged input is an error naming where it went wrong).
fn from_nested(v: &Array) -> RResult<Tensor> {
    let mut dims = Vec::new();
    probe_dims(v, &mut dims)?;
    check_count("tensor", &dims)?;
    let mut values = Vec::new();
    collect(v, &dims, 0, &mut String::new(), &mut values)?;
    check("tensor", &[], Tensor::from_vec(values, dims, &default_device()?))
}

/// The shape implied by the first element at each depth.
fn probe_dims(v: &Array, dims: &mut Vec<usize>) -> RResult<()> {
    dims.push(v.len());
    if dims.len() > MAX_NESTING {
        return Err(to_rhai(format!("tensor: arrays nested deeper than {MAX_NESTING}")));
    }
    if let Some(inner) = v.first().and_then(|d| d.read_lock::<Array>()) {
        probe_dims(&inner, dims)?;
    }
    Ok(())
}

fn collect(v: &Array, dims: &[usize], depth: usize, path: &mut String, out: &mut Vec<f32>) -> RResult<()> {
    if v.len() != dims[depth] {
        return Err(to_rhai(format!(
            "tensor: ragged array: element{path} has length {} but {} was expected",
            v.len(),
            dims[depth]
        )));
    }
    for (i, d) in v.iter().enumerate() {
        let len = path.len();
        path.push_str(&format!("[{i}]"));
        if depth + 1 < dims.len() {
            match d.read_lock::<Array>() {
                Some(inner) => collect(&inner, dims, depth + 1, path, out)?,
                None => {
                    return Err(to_rhai(format!(
                        "tensor: ragged array: element{path} is a {}, expected an array",
                        type_name(d)
                    )))
                }
            }
        } else if let Ok(x) = d.as_float() {
            out.push(x as f32);
        } else if let Ok(x) = d.as_int() {
            out.push(x as f32);
        } else {
            return Err(to_rhai(format!(
                "tensor: element{path} is a {}, expected a number",
                type_name(d)
            )));
        }
        path.truncate(len);
    }
    Ok(())
}
