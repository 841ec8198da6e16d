//! Tensor operations for scripts: properties, arithmetic with broadcasting,
//! elementwise math, reductions, matmul, indexing and shape changes.

use candle_core::{DType, Tensor, D};
use rhai::{Array, Dynamic, Engine, FLOAT, INT};

use super::{
    check, dim_arg, dim_in, dtype_arg, fail, index_arg, is_native_float, reg, shape_arg, tensor_list, MAX_ELEMENTS,
};
use crate::script::{to_rhai, RResult};

pub(super) fn register(engine: &mut Engine) {
    register_properties(engine);
    register_arithmetic(engine);
    register_math(engine);
    register_reductions(engine);
    register_shape_ops(engine);
}

fn register_properties(engine: &mut Engine) {
    let shape = |t: Tensor| -> Array { t.dims().iter().map(|&d| Dynamic::from(d as INT)).collect() };
    let dtype = |t: Tensor| -> String { t.dtype().as_str().to_string() };
    let device = |t: Tensor| -> String { device_name(&t) };
    let rank = |t: Tensor| -> INT { t.rank() as INT };
    reg(
        engine,
        "shape",
        &["t: Tensor", "Array"],
        "The tensor's dimensions, e.g. [2, 3] (also t.shape).",
        shape,
    );
    reg(
        engine,
        "get$shape",
        &["t: Tensor", "Array"],
        "The tensor's dimensions.",
        shape,
    );
    reg(
        engine,
        "dtype",
        &["t: Tensor", "String"],
        "The element type: \"f32\", \"f16\", \"bf16\", \"f64\", \"u8\", \"u32\" or \"i64\".",
        dtype,
    );
    reg(
        engine,
        "get$dtype",
        &["t: Tensor", "String"],
        "The element type.",
        dtype,
    );
    reg(
        engine,
        "device",
        &["t: Tensor", "String"],
        "Where the tensor lives: \"cpu\", \"cuda:0\", \"metal:0\".",
        device,
    );
    reg(
        engine,
        "get$device",
        &["t: Tensor", "String"],
        "Where the tensor lives.",
        device,
    );
    reg(engine, "rank", &["t: Tensor", "i64"], "The number of dimensions.", rank);
    reg(
        engine,
        "get$rank",
        &["t: Tensor", "i64"],
        "The number of dimensions.",
        rank,
    );
    reg(
        engine,
        "numel",
        &["t: Tensor", "i64"],
        "The number of elements.",
        |t: Tensor| t.elem_count() as INT,
    );
    reg(
        engine,
        "len",
        &["t: Tensor", "i64"],
        "The size of dimension 0.",
        |t: Tensor| -> RResult<INT> {
            match t.dims().first() {
                Some(&n) => Ok(n as INT),
                None => Err(fail("len", &[&t], "a scalar tensor has no length")),
            }
        },
    );
    reg(
        engine,
        "to_dtype",
        &["t: Tensor", "dtype: &str", "Tensor"],
        "Convert elements to another dtype: t.to_dtype(\"f16\").",
        |t: Tensor, name: &str| {
            let dt = dtype_arg("to_dtype", name)?;
            check("to_dtype", &[&t], t.to_dtype(dt))
        },
    );
    reg(
        engine,
        "to_device",
        &["t: Tensor", "device: &str", "Tensor"],
        "Copy the tensor to \"cpu\", \"cuda\" or \"metal\".",
        |t: Tensor, name: &str| {
            let dev = crate::device::device(name).map_err(|e| fail("to_device", &[&t], e))?;
            check("to_device", &[&t], t.to_device(&dev))
        },
    );
}

/// "cpu", "cuda:0", "metal:0".
pub(crate) fn device_name(t: &Tensor) -> String {
    match t.device().location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[derive(Clone, Copy)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
}

impl Bin {
    fn symbol(self) -> &'static str {
        match self {
            Bin::Add => "+",
            Bin::Sub => "-",
            Bin::Mul => "*",
            Bin::Div => "/",
        }
    }
}

/// a (op) b with numpy broadcasting. Both must have the same dtype; integer
/// tensors are computed in f64 and converted back (candle's integer kernels
/// panic on overflow and division by zero).
fn binary(op: Bin, a: &Tensor, b: &Tensor) -> RResult<Tensor> {
    let name = op.symbol();
    if a.dtype() != b.dtype() {
        return Err(fail(
            name,
            &[a, b],
            format!(
                "dtypes differ ({} vs {}); convert one with to_dtype",
                a.dtype().as_str(),
                b.dtype().as_str()
            ),
        ));
    }
    let (x, y) = if is_native_float(a.dtype()) {
        (a.clone(), b.clone())
    } else {
        (
            check(name, &[a, b], a.to_dtype(DType::F64))?,
            check(name, &[a, b], b.to_dtype(DType::F64))?,
        )
    };
    let r = match op {
        Bin::Add => x.broadcast_add(&y),
        Bin::Sub => x.broadcast_sub(&y),
        Bin::Mul => x.broadcast_mul(&y),
        Bin::Div => x.broadcast_div(&y),
    };
    let r = check(name, &[a, b], r)?;
    check(name, &[a, b], r.to_dtype(a.dtype()))
}

/// A rank-0 tensor holding `x`, with `like`'s dtype and device (made as f32
/// unless f64 is needed, since Metal has no f64).
fn scalar_like(op: &str, x: f64, like: &Tensor) -> RResult<Tensor> {
    let s = if matches!(like.dtype(), DType::F16 | DType::BF16 | DType::F32) {
        Tensor::new(x as f32, like.device())
    } else {
        Tensor::new(x, like.device())
    };
    let s = check(op, &[like], s)?;
    check(op, &[like], s.to_dtype(like.dtype()))
}

fn register_arithmetic(engine: &mut Engine) {
    for op in [Bin::Add, Bin::Sub, Bin::Mul, Bin::Div] {
        let s = op.symbol();
        let doc = format!("Elementwise a {s} b with broadcasting; either side may be a number.");
        reg(
            engine,
            s,
            &["a: Tensor", "b: Tensor", "Tensor"],
            &doc,
            move |a: Tensor, b: Tensor| binary(op, &a, &b),
        );
        reg(
            engine,
            s,
            &["a: Tensor", "b: f64", "Tensor"],
            &doc,
            move |a: Tensor, b: FLOAT| binary(op, &a, &scalar_like(s, b, &a)?),
        );
        reg(
            engine,
            s,
            &["a: Tensor", "b: i64", "Tensor"],
            &doc,
            move |a: Tensor, b: INT| binary(op, &a, &scalar_like(s, b as f64, &a)?),
        );
        reg(
            engine,
            s,
            &["a: f64", "b: Tensor", "Tensor"],
            &doc,
            move |a: FLOAT, b: Tensor| binary(op, &scalar_like(s, a, &b)?, &b),
        );
        reg(
            engine,
            s,
            &["a: i64", "b: Tensor", "Tensor"],
            &doc,
            move |a: INT, b: Tensor| binary(op, &scalar_like(s, a as f64, &b)?, &b),
        );
    }
    reg(
        engine,
        "-",
        &["t: Tensor", "Tensor"],
        "Elementwise negation.",
        |t: Tensor| keep_dtype("neg", &t, |x| x.neg()),
    );
    reg(
        engine,
        "matmul",
        &["a: Tensor", "b: Tensor", "Tensor"],
        "Matrix product with batch broadcasting; 1-D operands act as vectors.",
        |a: Tensor, b: Tensor| matmul(&a, &b),
    );
    reg(
        engine,
        "powf",
        &["t: Tensor", "e: f64", "Tensor"],
        "Elementwise t^e.",
        |t: Tensor, e: FLOAT| float_op("powf", &t, |x| x.powf(e)),
    );
}

/// Matrix product. Batch dims broadcast; a 1-D left operand is a row vector
/// and a 1-D right operand a column vector, and that dim is dropped again.
fn matmul(a: &Tensor, b: &Tensor) -> RResult<Tensor> {
    let op = "matmul";
    if a.rank() == 0 || b.rank() == 0 {
        return Err(fail(op, &[a, b], "operands must have at least one dimension"));
    }
    if a.dtype() != b.dtype() || !is_native_float(a.dtype()) {
        return Err(fail(op, &[a, b], "both operands need the same float dtype"));
    }
    let x = if a.rank() == 1 {
        check(op, &[a, b], a.unsqueeze(0))?
    } else {
        a.clone()
    };
    let y = if b.rank() == 1 {
        check(op, &[a, b], b.unsqueeze(1))?
    } else {
        b.clone()
    };
    let k_left = x.dims()[x.rank() - 1];
    let k_right = y.dims()[y.rank() - 2];
    if k_left != k_right {
        return Err(fail(
            op,
            &[a, b],
            format!("inner dimensions differ ({k_left} vs {k_right})"),
        ));
    }
    let (x, y) = (check(op, &[a, b], x.contiguous())?, check(op, &[a, b], y.contiguous())?);
    let mut r = if x.rank() == 2 && y.rank() == 2 {
        check(op, &[a, b], x.matmul(&y))?
    } else {
        check(op, &[a, b], x.broadcast_matmul(&y))?
    };
    if b.rank() == 1 {
        r = check(op, &[a, b], r.squeeze(D::Minus1))?;
    }
    if a.rank() == 1 {
        let d = if b.rank() == 1 {
            r.rank().saturating_sub(1)
        } else {
            r.rank().saturating_sub(2)
        };
        if r.rank() > 0 {
            r = check(op, &[a, b], r.squeeze(d))?;
        }
    }
    Ok(r)
}

/// Math that needs floats: integer tensors are promoted to f32 first.
fn float_op(op: &str, t: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> RResult<Tensor> {
    if is_native_float(t.dtype()) {
        check(op, &[t], f(t))
    } else {
        let x = check(op, &[t], t.to_dtype(DType::F32))?;
        check(op, &[t], f(&x))
    }
}

/// Ops that keep the dtype (neg, abs, relu, sqr): non-float tensors go
/// through f64 and back.
fn keep_dtype(op: &str, t: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> RResult<Tensor> {
    if is_native_float(t.dtype()) {
        check(op, &[t], f(t))
    } else {
        let x = check(op, &[t], t.to_dtype(DType::F64))?;
        let y = check(op, &[t], f(&x))?;
        check(op, &[t], y.to_dtype(t.dtype()))
    }
}

fn register_math(engine: &mut Engine) {
    type F = fn(&Tensor) -> candle_core::Result<Tensor>;
    let float_ops: [(&str, &str, F); 8] = [
        ("exp", "Elementwise e^x.", |x| x.exp()),
        ("log", "Elementwise natural logarithm.", |x| x.log()),
        ("sqrt", "Elementwise square root.", |x| x.sqrt()),
        ("tanh", "Elementwise tanh.", |x| x.tanh()),
        ("sigmoid", "Elementwise 1 / (1 + e^-x).", |x| candle_nn::ops::sigmoid(x)),
        ("gelu", "Elementwise GELU (tanh approximation).", |x| x.gelu()),
        ("sin", "Elementwise sine.", |x| x.sin()),
        ("cos", "Elementwise cosine.", |x| x.cos()),
    ];
    for (name, doc, f) in float_ops {
        reg(engine, name, &["t: Tensor", "Tensor"], doc, move |t: Tensor| {
            float_op(name, &t, f)
        });
    }
    let same_dtype_ops: [(&str, &str, F); 4] = [
        ("abs", "Elementwise absolute value.", |x| x.abs()),
        ("relu", "Elementwise max(x, 0).", |x| x.relu()),
        ("sqr", "Elementwise x * x.", |x| x.sqr()),
        ("neg", "Elementwise -x.", |x| x.neg()),
    ];
    for (name, doc, f) in same_dtype_ops {
        reg(engine, name, &["t: Tensor", "Tensor"], doc, move |t: Tensor| {
            keep_dtype(name, &t, f)
        });
    }
    reg(
        engine,
        "softmax",
        &["t: Tensor", "dim: i64", "Tensor"],
        "Softmax along dim (negative dims count from the end).",
        |t: Tensor, dim: INT| {
            let d = dim_arg("softmax", &t, dim)?;
            float_op("softmax", &t, |x| candle_nn::ops::softmax(x, d))
        },
    );
    reg(
        engine,
        "log_softmax",
        &["t: Tensor", "dim: i64", "Tensor"],
        "Log of the softmax along dim.",
        |t: Tensor, dim: INT| {
            let d = dim_arg("log_softmax", &t, dim)?;
            float_op("log_softmax", &t, |x| candle_nn::ops::log_softmax(x, d))
        },
    );
    reg(
        engine,
        "norm",
        &["t: Tensor", "f64"],
        "The L2 norm of all elements, as a number.",
        |t: Tensor| norm("norm", &t),
    );
    reg(
        engine,
        "cosine",
        &["a: Tensor", "b: Tensor", "f64"],
        "Cosine similarity of the two tensors flattened (0 if either is all zeros).",
        |a: Tensor, b: Tensor| cosine(&a, &b),
    );
}

/// `t` flattened, in f64 for accurate sums (f32 on Metal, which lacks f64).
fn as_f64_flat(op: &str, args: &[&Tensor], t: &Tensor) -> RResult<Tensor> {
    let acc = if t.device().is_metal() { DType::F32 } else { DType::F64 };
    let x = check(op, args, t.to_dtype(acc))?;
    check(op, args, x.flatten_all())
}

fn norm(op: &str, t: &Tensor) -> RResult<FLOAT> {
    let x = as_f64_flat(op, &[t], t)?;
    let s = x
        .sqr()
        .and_then(|s| s.sum_all())
        .and_then(|s| s.to_device(&candle_core::Device::Cpu))
        .and_then(|s| s.to_dtype(DType::F64))
        .and_then(|s| s.to_scalar::<f64>());
    Ok(check(op, &[t], s)?.sqrt())
}

fn cosine(a: &Tensor, b: &Tensor) -> RResult<FLOAT> {
    let op = "cosine";
    if a.elem_count() != b.elem_count() {
        return Err(fail(op, &[a, b], "element counts differ"));
    }
    let x = as_f64_flat(op, &[a, b], a)?;
    let y = as_f64_flat(op, &[a, b], b)?;
    let x = check(op, &[a, b], x.to_device(y.device()))?;
    let dot = check(
        op,
        &[a, b],
        (&x * &y)
            .and_then(|p| p.sum_all())
            .and_then(|s| s.to_device(&candle_core::Device::Cpu))
            .and_then(|s| s.to_dtype(DType::F64))
            .and_then(|s| s.to_scalar::<f64>()),
    )?;
    let (na, nb) = (norm(op, a)?, norm(op, b)?);
    if na == 0.0 || nb == 0.0 {
        return Ok(0.0);
    }
    Ok(dot / (na * nb))
}

#[derive(Clone, Copy)]
enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    ArgMax,
    ArgMin,
}

impl Reduce {
    fn name(self) -> &'static str {
        match self {
            Reduce::Sum => "sum",
            Reduce::Mean => "mean",
            Reduce::Max => "max",
            Reduce::Min => "min",
            Reduce::ArgMax => "argmax",
            Reduce::ArgMin => "argmin",
        }
    }
}

/// Reduce over `dim` (dropping it), or over everything when `dim` is None.
/// Sums and means of non-float tensors are computed (and returned) in f64.
fn reduce(r: Reduce, t: &Tensor, dim: Option<INT>) -> RResult<Tensor> {
    let op = r.name();
    let (x, d) = match dim {
        Some(dim) => (t.clone(), dim_arg(op, t, dim)?),
        None => (check(op, &[t], t.flatten_all())?, 0),
    };
    let is_sum = matches!(r, Reduce::Sum | Reduce::Mean);
    if !is_sum && x.dims().get(d).copied().unwrap_or(0) == 0 {
        return Err(fail(op, &[t], "cannot reduce over an empty dimension"));
    }
    let needs_f64 = !is_native_float(x.dtype()) && (is_sum || !x.dtype().is_int());
    let x = if needs_f64 {
        check(op, &[t], x.to_dtype(DType::F64))?
    } else {
        x
    };
    let out = match r {
        Reduce::Sum => x.sum(d),
        Reduce::Mean => x.mean(d),
        Reduce::Max => x.max(d),
        Reduce::Min => x.min(d),
        Reduce::ArgMax => x.argmax(d),
        Reduce::ArgMin => x.argmin(d),
    };
    check(op, &[t], out)
}

fn register_reductions(engine: &mut Engine) {
    for r in [
        Reduce::Sum,
        Reduce::Mean,
        Reduce::Max,
        Reduce::Min,
        Reduce::ArgMax,
        Reduce::ArgMin,
    ] {
        let name = r.name();
        let all = format!("The {name} over all elements, as a rank-0 tensor (use .item() for a number).");
        let along = format!("The {name} along dim, which is removed from the shape.");
        reg(engine, name, &["t: Tensor", "Tensor"], &all, move |t: Tensor| {
            reduce(r, &t, None)
        });
        reg(
            engine,
            name,
            &["t: Tensor", "dim: i64", "Tensor"],
            &along,
            move |t: Tensor, dim: INT| reduce(r, &t, Some(dim)),
        );
    }
}

fn register_shape_ops(engine: &mut Engine) {
    reg(
        engine,
        "narrow",
        &["t: Tensor", "dim: i64", "start: i64", "len: i64", "Tensor"],
        "The slice start..start+len of dim.",
        |t: Tensor, dim: INT, start: INT, len: INT| {
            let op = "narrow";
            let d = dim_arg(op, &t, dim)?;
            let size = t.dims()[d] as INT;
            if start < 0 || len < 0 || start > size || len > size - start {
                return Err(fail(
                    op,
                    &[&t],
                    format!("start {start} with len {len} does not fit dim {d} of size {size}"),
                ));
            }
            check(op, &[&t], t.narrow(d, start as usize, len as usize))
        },
    );
    reg(
        engine,
        "index$get$",
        &["t: Tensor", "i: i64", "Tensor"],
        "t[i]: the sub-tensor at index i of dim 0 (negative counts from the end).",
        |t: Tensor, i: INT| get_path("t[i]", &t, &[i]),
    );
    reg(
        engine,
        "get",
        &["t: Tensor", "i: i64", "Tensor"],
        "The sub-tensor at index i of dim 0.",
        |t: Tensor, i: INT| get_path("get", &t, &[i]),
    );
    reg(
        engine,
        "get",
        &["t: Tensor", "i: i64", "j: i64", "Tensor"],
        "t[i][j].",
        |t: Tensor, i: INT, j: INT| get_path("get", &t, &[i, j]),
    );
    reg(
        engine,
        "get",
        &["t: Tensor", "i: i64", "j: i64", "k: i64", "Tensor"],
        "t[i][j][k].",
        |t: Tensor, i: INT, j: INT, k: INT| get_path("get", &t, &[i, j, k]),
    );
    reg(
        engine,
        "get",
        &["t: Tensor", "index: Array", "Tensor"],
        "Index the leading dims: t.get([i, j, ...]).",
        |t: Tensor, index: Array| {
            let mut path = Vec::with_capacity(index.len());
            for d in &index {
                path.push(d.as_int().map_err(|_| fail("get", &[&t], "indices must be ints"))?);
            }
            get_path("get", &t, &path)
        },
    );
    reg(
        engine,
        "select",
        &["t: Tensor", "dim: i64", "i: i64", "Tensor"],
        "The sub-tensor at index i of dim (that dim is removed).",
        |t: Tensor, dim: INT, i: INT| {
            let d = dim_arg("select", &t, dim)?;
            let i = index_arg("select", &t, d, i)?;
            check("select", &[&t], t.get_on_dim(d, i))
        },
    );
    reg(
        engine,
        "transpose",
        &["t: Tensor", "dim1: i64", "dim2: i64", "Tensor"],
        "Swap two dims.",
        |t: Tensor, a: INT, b: INT| {
            let (a, b) = (dim_arg("transpose", &t, a)?, dim_arg("transpose", &t, b)?);
            check("transpose", &[&t], t.transpose(a, b))
        },
    );
    reg(
        engine,
        "t",
        &["t: Tensor", "Tensor"],
        "Swap the last two dims.",
        |t: Tensor| {
            if t.rank() < 2 {
                return Err(fail("t", &[&t], "needs at least 2 dims"));
            }
            check("t", &[&t], t.t())
        },
    );
    reg(
        engine,
        "reshape",
        &["t: Tensor", "shape: Array", "Tensor"],
        "The same elements in a new shape; one entry may be -1 (inferred).",
        |t: Tensor, shape: Array| reshape(&t, &shape),
    );
    reg(
        engine,
        "flatten",
        &["t: Tensor", "Tensor"],
        "All elements as a 1-D tensor.",
        |t: Tensor| check("flatten", &[&t], t.flatten_all()),
    );
    reg(
        engine,
        "squeeze",
        &["t: Tensor", "Tensor"],
        "Remove every dim of size 1.",
        |t: Tensor| {
            let dims: Vec<usize> = t.dims().iter().copied().filter(|&d| d != 1).collect();
            check("squeeze", &[&t], t.reshape(dims))
        },
    );
    reg(
        engine,
        "squeeze",
        &["t: Tensor", "dim: i64", "Tensor"],
        "Remove dim if its size is 1 (otherwise unchanged).",
        |t: Tensor, dim: INT| {
            let d = dim_arg("squeeze", &t, dim)?;
            check("squeeze", &[&t], t.squeeze(d))
        },
    );
    reg(
        engine,
        "unsqueeze",
        &["t: Tensor", "dim: i64", "Tensor"],
        "Insert a dim of size 1 at dim (0..=rank, negative from the end).",
        |t: Tensor, dim: INT| {
            let n = t.rank() + 1;
            let d = dim_in("unsqueeze", &t, dim, n)?;
            check("unsqueeze", &[&t], t.unsqueeze(d))
        },
    );
    reg(
        engine,
        "permute",
        &["t: Tensor", "dims: Array", "Tensor"],
        "Reorder dims: t.permute([2, 0, 1]).",
        |t: Tensor, dims: Array| {
            let op = "permute";
            let mut order = Vec::with_capacity(dims.len());
            for d in &dims {
                let i = d.as_int().map_err(|_| fail(op, &[&t], "dims must be ints"))?;
                order.push(dim_arg(op, &t, i)?);
            }
            let mut seen = order.clone();
            seen.sort_unstable();
            seen.dedup();
            if order.len() != t.rank() || seen.len() != t.rank() {
                return Err(fail(
                    op,
                    &[&t],
                    format!("{order:?} is not a permutation of the {} dims", t.rank()),
                ));
            }
            check(op, &[&t], t.permute(order))
        },
    );
    reg(
        engine,
        "cat",
        &["tensors: Array", "dim: i64", "Tensor"],
        "Join tensors along an existing dim.",
        |ts: Array, dim: INT| join("cat", &ts, dim, false),
    );
    reg(
        engine,
        "stack",
        &["tensors: Array", "dim: i64", "Tensor"],
        "Join same-shaped tensors along a new dim.",
        |ts: Array, dim: INT| join("stack", &ts, dim, true),
    );
}

/// t[i][j]...: index successive leading dims.
fn get_path(op: &str, t: &Tensor, path: &[INT]) -> RResult<Tensor> {
    if path.len() > t.rank() {
        return Err(fail(
            op,
            &[t],
            format!("{} indices for a tensor of rank {}", path.len(), t.rank()),
        ));
    }
    let mut x = t.clone();
    for &i in path {
        let j = index_arg(op, &x, 0, i)?;
        x = check(op, &[t], x.get(j))?;
    }
    Ok(x)
}

fn reshape(t: &Tensor, shape: &Array) -> RResult<Tensor> {
    let op = "reshape";
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, d) in shape.iter().enumerate() {
        match d.as_int() {
            Ok(-1) if infer.is_none() => {
                infer = Some(i);
                dims.push(Dynamic::from(1 as INT));
            }
            Ok(_) => dims.push(d.clone()),
            Err(_) => return Err(fail(op, &[t], "shape entries must be ints")),
        }
    }
    let mut dims = shape_arg(op, &dims)?;
    if let Some(i) = infer {
        let known: usize = dims.iter().product();
        if known == 0 || !t.elem_count().is_multiple_of(known) {
            return Err(fail(
                op,
                &[t],
                format!("cannot infer the -1 in {shape:?} for {} elements", t.elem_count()),
            ));
        }
        dims[i] = t.elem_count() / known;
    }
    if dims.iter().product::<usize>() != t.elem_count() {
        return Err(fail(
            op,
            &[t],
            format!("shape {dims:?} holds a different number of elements"),
        ));
    }
    check(op, &[t], t.reshape(dims))
}

fn join(op: &str, ts: &Array, dim: INT, new_dim: bool) -> RResult<Tensor> {
    let list = tensor_list(op, ts)?;
    let refs: Vec<&Tensor> = list.iter().collect();
    let first = &list[0];
    let n = if new_dim { first.rank() + 1 } else { first.rank() };
    let d = dim_in(op, first, dim, n)?;
    for t in &list[1..] {
        if t.rank() != first.rank() || t.dtype() != first.dtype() {
            return Err(fail(op, &refs, "tensors need the same rank and dtype"));
        }
    }
    let total: usize = list.iter().map(|t| t.elem_count()).sum();
    if total > MAX_ELEMENTS {
        return Err(fail(op, &refs, "result is too large"));
    }
    if new_dim {
        check(op, &refs, Tensor::stack(&refs, d))
    } else {
        if first.rank() == 0 {
            return Err(to_rhai(format!(
                "{op}: scalar tensors have no dim to join along; use stack"
            )));
        }
        check(op, &refs, Tensor::cat(&refs, d))
    }
}
