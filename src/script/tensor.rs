//! Tensors in scripts. The Rhai type `Tensor` is candle's `Tensor` itself
//! (registered under the name "Tensor"), so other binding files can take and
//! return `candle_core::Tensor` directly in their registered functions; `wrap`
//! and `unwrap` are there for code that handles `Dynamic` values.
//!
//! Rules every function here follows:
//! - shapes are Rhai arrays of ints (a single int means a 1-D shape);
//! - dims and element indices may be negative, counting from the end;
//! - every bad argument is a Rhai runtime error naming the function and the
//!   shapes involved, never a panic: indices and sizes are checked here before
//!   candle sees them, and integer tensors are computed in f64 because candle's
//!   integer kernels panic on overflow and lack unary ops;
//! - new tensors are f32 on the CPU unless a dtype is given; `to_device` moves them.
//!
//! The functions are registered in three files: `tensor/create.rs` (zeros,
//! randn, tensor, ...), `tensor/ops.rs` (arithmetic, reductions, shape ops) and
//! `tensor/format.rs` (display, to_array, item).

use candle_core::{DType, Tensor};
use rhai::{Array, Dynamic, Engine, FuncRegistration, RhaiNativeFunc, INT};

use super::{to_rhai, RResult};

mod create;
mod format;
mod ops;

pub use format::format_tensor;

/// The name scripts see for tensors (`type_of(t)`, signatures in `help()`).
pub const TENSOR_TYPE: &str = "Tensor";

/// The most elements a script may ask for in one tensor: 2^31. Larger
/// requests are refused with an error instead of an allocation abort.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Register the Tensor type and every tensor function.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Tensor>(TENSOR_TYPE);
    create::register(engine);
    ops::register(engine);
    format::register(engine);
}

/// Hand a tensor to a script.
pub fn wrap(t: Tensor) -> Dynamic {
    Dynamic::from(t)
}

/// Take a tensor out of a script value; any other value is an error naming its type.
pub fn unwrap(d: &Dynamic) -> RResult<Tensor> {
    match d.read_lock::<Tensor>() {
        Some(t) => Ok(t.clone()),
        None => Err(to_rhai(format!("expected a Tensor, got {}", type_name(d)))),
    }
}

/// The script-facing name of a value's type.
pub fn type_name(d: &Dynamic) -> String {
    if d.is::<Tensor>() {
        TENSOR_TYPE.to_string()
    } else if d.is_int() {
        "int".into()
    } else if d.is_float() {
        "float".into()
    } else if d.is_unit() {
        "()".into()
    } else {
        d.type_name().rsplit("::").next().unwrap_or("?").to_string()
    }
}

/// Register `f` under `name` with parameter info ("name: Type", the last entry
/// being the return type) and a one-line doc, so `help()` can show it.
pub(crate) fn reg<A: 'static, const N: usize, const X: bool, R: Clone + Send + Sync + 'static, const F: bool>(
    engine: &mut Engine,
    name: &str,
    params: &[&str],
    doc: &str,
    f: impl RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
) {
    registration(name, params, doc, false).register_into_engine(engine, f);
}

/// Like `reg`, for functions whose result changes from call to call (random
/// numbers), so the optimizer never folds them into constants.
pub(crate) fn reg_volatile<
    A: 'static,
    const N: usize,
    const X: bool,
    R: Clone + Send + Sync + 'static,
    const F: bool,
>(
    engine: &mut Engine,
    name: &str,
    params: &[&str],
    doc: &str,
    f: impl RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
) {
    registration(name, params, doc, true).register_into_engine(engine, f);
}

fn registration(name: &str, params: &[&str], doc: &str, volatile: bool) -> FuncRegistration {
    FuncRegistration::new(name)
        .in_global_namespace()
        .with_volatility(volatile)
        .with_params_info(params)
        .with_comments([format!("/// {doc}")])
}

/// `Tensor[2, 3] f32`: how error messages name a tensor argument.
pub fn describe(t: &Tensor) -> String {
    format!("{TENSOR_TYPE}{:?} {}", t.dims(), t.dtype().as_str())
}

/// A runtime error "op(Tensor[2, 3] f32, ...): message" (first line of the
/// message only: candle may append a backtrace).
pub(crate) fn fail(op: &str, args: &[&Tensor], msg: impl std::fmt::Display) -> Box<rhai::EvalAltResult> {
    let msg = msg.to_string();
    let first = msg.lines().next().unwrap_or("").trim();
    let shapes: Vec<String> = args.iter().map(|t| describe(t)).collect();
    to_rhai(format!("{op}({}): {first}", shapes.join(", ")))
}

/// Attach the function name and argument shapes to a candle error.
pub(crate) fn check<T>(op: &str, args: &[&Tensor], r: candle_core::Result<T>) -> RResult<T> {
    r.map_err(|e| fail(op, args, e))
}

/// A shape from a script value: an array of non-negative ints, or one int.
/// The element count must stay within `MAX_ELEMENTS`.
pub(crate) fn shape_arg(op: &str, v: &[Dynamic]) -> RResult<Vec<usize>> {
    let mut dims = Vec::with_capacity(v.len());
    for d in v {
        let Some(n) = d.as_int().ok() else {
            return Err(to_rhai(format!(
                "{op}: shape entries must be ints, got {}",
                type_name(d)
            )));
        };
        if n < 0 {
            return Err(to_rhai(format!("{op}: negative size {n} in shape {}", show_array(v))));
        }
        dims.push(n as usize);
    }
    check_count(op, &dims)?;
    Ok(dims)
}

/// Refuse shapes whose element count overflows or exceeds `MAX_ELEMENTS`.
pub(crate) fn check_count(op: &str, dims: &[usize]) -> RResult<usize> {
    let mut count: usize = 1;
    for &d in dims {
        count = match count.checked_mul(d) {
            Some(c) if c <= MAX_ELEMENTS => c,
            _ => {
                return Err(to_rhai(format!(
                    "{op}: shape {dims:?} is too large (at most {MAX_ELEMENTS} elements)"
                )))
            }
        };
    }
    Ok(count)
}

fn show_array(v: &[Dynamic]) -> String {
    let parts: Vec<String> = v.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A dimension index for `t`: 0..rank, or negative counting from the end.
pub(crate) fn dim_arg(op: &str, t: &Tensor, dim: INT) -> RResult<usize> {
    dim_in(op, t, dim, t.rank())
}

/// A dimension index in 0..n (n = rank, or rank + 1 for unsqueeze).
pub(crate) fn dim_in(op: &str, t: &Tensor, dim: INT, n: usize) -> RResult<usize> {
    let d = if dim < 0 { dim + n as INT } else { dim };
    if d < 0 || d >= n as INT {
        return Err(fail(
            op,
            &[t],
            format!("dim {dim} is out of range for a tensor of rank {}", t.rank()),
        ));
    }
    Ok(d as usize)
}

/// An element index into a dimension of size `size`; negative counts from the end.
pub(crate) fn index_arg(op: &str, t: &Tensor, dim: usize, i: INT) -> RResult<usize> {
    let size = t.dims().get(dim).copied().unwrap_or(0);
    let j = if i < 0 { i + size as INT } else { i };
    if j < 0 || j >= size as INT {
        return Err(fail(
            op,
            &[t],
            format!("index {i} is out of range for dim {dim} of size {size}"),
        ));
    }
    Ok(j as usize)
}

/// Parse a dtype name as scripts write it.
pub fn dtype_arg(op: &str, name: &str) -> RResult<DType> {
    crate::session::dtype_named(name).map_err(|e| to_rhai(format!("{op}: {e}")))
}

/// The dtypes candle's kernels fully support; everything else (integers, fp8
/// and smaller floats) is computed in f64 or f32 by the bindings.
pub(crate) fn is_native_float(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// A number from a script value (int or float).
pub(crate) fn number_arg(op: &str, d: &Dynamic) -> RResult<f64> {
    if let Ok(i) = d.as_int() {
        Ok(i as f64)
    } else if let Ok(f) = d.as_float() {
        Ok(f)
    } else {
        Err(to_rhai(format!("{op}: expected a number, got {}", type_name(d))))
    }
}

/// The tensors in a script array (for cat and stack).
pub(crate) fn tensor_list(op: &str, v: &Array) -> RResult<Vec<Tensor>> {
    if v.is_empty() {
        return Err(to_rhai(format!("{op}: needs at least one tensor, got an empty array")));
    }
    v.iter()
        .enumerate()
        .map(|(i, d)| unwrap(d).map_err(|_| to_rhai(format!("{op}: element {i} is a {}, not a Tensor", type_name(d)))))
        .collect()
}
