//! Showing tensors and getting numbers out of them: the `Tensor[2, 3] f32 cpu
//! [...]` display (long dims are cut to their first and last 3 entries, as
//! numpy does), to_array() and item().

use candle_core::{DType, Device, Tensor};
use rhai::{Array, Dynamic, Engine, INT};

use super::ops::device_name;
use super::{check, fail, reg, TENSOR_TYPE};
use crate::script::RResult;

/// Dims longer than this are shown as first 3, "...", last 3.
const SHOW_EDGE: usize = 3;
/// to_array() refuses tensors larger than this (a Rhai array of 16M values
/// already takes about 256 MB).
const MAX_ARRAY_ELEMENTS: usize = 1 << 24;

pub(super) fn register(engine: &mut Engine) {
    reg(
        engine,
        "to_string",
        &["t: Tensor", "String"],
        "Shape, dtype, device and (a preview of) the values.",
        |t: Tensor| format_tensor(&t),
    );
    reg(
        engine,
        "to_debug",
        &["t: Tensor", "String"],
        "Same as to_string.",
        |t: Tensor| format_tensor(&t),
    );
    reg(
        engine,
        "to_array",
        &["t: Tensor", "Array"],
        "The values as nested arrays (floats, or ints for integer dtypes).",
        |t: Tensor| to_array(&t),
    );
    reg(
        engine,
        "item",
        &["t: Tensor", "number"],
        "The single value of a one-element tensor, as a number.",
        |t: Tensor| item(&t),
    );
}

/// `Tensor[2, 3] f32 cpu` followed by the values: on the same line for rank
/// 0 and 1, numpy-style rows below the header for higher ranks.
pub fn format_tensor(t: &Tensor) -> String {
    let header = format!("{TENSOR_TYPE}{:?} {} {}", t.dims(), t.dtype().as_str(), device_name(t));
    match preview(t) {
        Ok((values, shown)) => {
            let is_int = t.dtype().is_int();
            let mut body = String::new();
            let mut next = 0;
            write_block(&mut body, &values, &shown, t.dims(), 0, is_int, &mut next);
            if t.rank() <= 1 {
                format!("{header} {body}")
            } else {
                format!("{header}\n{body}")
            }
        }
        Err(e) => format!("{header} <values unavailable: {e}>"),
    }
}

/// The values to print (as f64, row-major) and the shown size of each dim.
/// Long dims are cut before copying, so printing a huge GPU tensor copies
/// only a few numbers.
fn preview(t: &Tensor) -> candle_core::Result<(Vec<f64>, Vec<usize>)> {
    let mut x = t.clone();
    let mut shown = Vec::with_capacity(t.rank());
    for (d, &n) in t.dims().iter().enumerate() {
        if n > 2 * SHOW_EDGE {
            let head = x.narrow(d, 0, SHOW_EDGE)?;
            let tail = x.narrow(d, n - SHOW_EDGE, SHOW_EDGE)?;
            x = Tensor::cat(&[&head, &tail], d)?;
            shown.push(2 * SHOW_EDGE);
        } else {
            shown.push(n);
        }
    }
    let x = x.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?;
    Ok((x.to_vec1::<f64>()?, shown))
}

fn write_block(
    out: &mut String,
    values: &[f64],
    shown: &[usize],
    dims: &[usize],
    depth: usize,
    is_int: bool,
    next: &mut usize,
) {
    if depth == dims.len() {
        let v = values.get(*next).copied().unwrap_or(f64::NAN);
        *next += 1;
        out.push_str(&format_number(v, is_int));
        return;
    }
    let cut = dims[depth] > 2 * SHOW_EDGE;
    let inner_rank = dims.len() - depth - 1;
    // Between rows: a newline and indentation; a blank line between 2-D blocks.
    let sep = if inner_rank == 0 {
        ", ".to_string()
    } else {
        format!(
            ",{}{}",
            "\n".repeat(if inner_rank >= 2 { 2 } else { 1 }),
            " ".repeat(depth + 1)
        )
    };
    out.push('[');
    for i in 0..shown[depth] {
        if i > 0 {
            out.push_str(&sep);
        }
        if cut && i == SHOW_EDGE {
            out.push_str("...");
            out.push_str(&sep);
        }
        write_block(out, values, shown, dims, depth + 1, is_int, next);
    }
    out.push(']');
}

/// Short, readable numbers: "1.0", "0.1235", "-3.0e-7", "nan".
pub fn format_number(v: f64, is_int: bool) -> String {
    if is_int {
        return format!("{}", v as i64);
    }
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if v == v.trunc() && a < 1e16 {
        format!("{v:.1}")
    } else if (1e-4..1e6).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0');
        if s.ends_with('.') {
            format!("{s}0")
        } else {
            s.to_string()
        }
    } else {
        format!("{v:.3e}")
    }
}

fn to_array(t: &Tensor) -> RResult<Array> {
    let op = "to_array";
    if t.elem_count() > MAX_ARRAY_ELEMENTS {
        return Err(fail(
            op,
            &[t],
            format!("too many elements for an array (at most {MAX_ARRAY_ELEMENTS})"),
        ));
    }
    let cpu = check(op, &[t], t.to_device(&Device::Cpu))?;
    let flat = check(op, &[t], cpu.flatten_all())?;
    let values: Vec<Dynamic> = if t.dtype().is_int() {
        let v = check(op, &[t], flat.to_dtype(DType::I64).and_then(|x| x.to_vec1::<i64>()))?;
        v.into_iter().map(|x| Dynamic::from(x as INT)).collect()
    } else {
        let v = check(op, &[t], flat.to_dtype(DType::F64).and_then(|x| x.to_vec1::<f64>()))?;
        v.into_iter().map(Dynamic::from_float).collect()
    };
    if t.rank() == 0 {
        return Ok(values);
    }
    Ok(nest(&values, t.dims()))
}

/// Split a flat row-major list into nested arrays of the given dims.
fn nest(values: &[Dynamic], dims: &[usize]) -> Array {
    match dims {
        [] | [_] => values.to_vec(),
        [n, rest @ ..] => {
            let stride: usize = rest.iter().product();
            (0..*n)
                .map(|i| {
                    let part = values.get(i * stride..(i + 1) * stride).unwrap_or(&[]);
                    Dynamic::from_array(nest(part, rest))
                })
                .collect()
        }
    }
}

fn item(t: &Tensor) -> RResult<Dynamic> {
    let op = "item";
    if t.elem_count() != 1 {
        return Err(fail(op, &[t], "item() needs a tensor with exactly one element"));
    }
    let flat = check(op, &[t], t.to_device(&Device::Cpu).and_then(|x| x.flatten_all()))?;
    if t.dtype().is_int() {
        let v = check(op, &[t], flat.to_dtype(DType::I64).and_then(|x| x.to_vec1::<i64>()))?;
        Ok(Dynamic::from(v.first().copied().unwrap_or(0) as INT))
    } else {
        let v = check(op, &[t], flat.to_dtype(DType::F64).and_then(|x| x.to_vec1::<f64>()))?;
        Ok(Dynamic::from_float(v.first().copied().unwrap_or(f64::NAN)))
    }
}
