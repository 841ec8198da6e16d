//! Tensor bindings seen from scripts: values, shapes, errors.

use candle_core::{Device, Tensor};
use promot::script::{new_engine, tensor};
use rhai::{Array, Dynamic, Engine};

fn engine() -> Engine {
    new_engine()
}

fn eval(src: &str) -> Dynamic {
    match engine().eval::<Dynamic>(src) {
        Ok(v) => v,
        Err(e) => panic!("script failed: {src}\n{e}"),
    }
}

fn err(src: &str) -> String {
    match engine().eval::<Dynamic>(src) {
        Ok(v) => panic!("expected an error from {src}, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn floats(d: Dynamic) -> Vec<f64> {
    let arr: Array = d.into_array().expect("an array");
    arr.into_iter()
        .flat_map(|x| {
            if x.is_array() {
                floats(x)
            } else {
                vec![x
                    .as_float()
                    .or_else(|_| x.as_int().map(|i| i as f64))
                    .expect("a number")]
            }
        })
        .collect()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

fn ints(d: Dynamic) -> Vec<i64> {
    d.into_array()
        .expect("an array")
        .into_iter()
        .map(|x| x.as_int().expect("an int"))
        .collect()
}

#[test]
fn creation_and_shapes() {
    assert_eq!(ints(eval("zeros([2, 3]).shape()")), vec![2, 3]);
    assert_eq!(ints(eval("ones(4).shape")), vec![4]);
    close(&floats(eval("ones([2, 2]).to_array()")), &[1.0; 4]);
    assert_eq!(eval("zeros([2, 3], \"f16\").dtype()").into_string().unwrap(), "f16");
    assert_eq!(eval("zeros([1]).device()").into_string().unwrap(), "cpu");
    assert_eq!(eval("zeros([2, 3, 4]).rank()").as_int().unwrap(), 3);
    assert_eq!(eval("zeros([2, 3, 4]).numel()").as_int().unwrap(), 24);
    assert_eq!(eval("len(zeros([5, 2]))").as_int().unwrap(), 5);
    close(&floats(eval("full([2], 7.5).to_array()")), &[7.5, 7.5]);
    close(&floats(eval("arange(4).to_array()")), &[0.0, 1.0, 2.0, 3.0]);
    close(&floats(eval("arange(1, 2, 0.25).to_array()")), &[1.0, 1.25, 1.5, 1.75]);
    close(&floats(eval("arange(3, 0, -1).to_array()")), &[3.0, 2.0, 1.0]);
    assert_eq!(eval("tensor(2.5).rank()").as_int().unwrap(), 0);
    assert_eq!(ints(eval("tensor([]).shape()")), vec![0]);
}

#[test]
fn nested_arrays_round_trip() {
    let v = eval("tensor([[1, 2.5], [3, -4]]).to_array()");
    assert_eq!(v.to_string(), "[[1.0, 2.5], [3.0, -4.0]]");
    let e = err("tensor([[1, 2], [3]])");
    assert!(e.contains("ragged") && e.contains("[1]"), "{e}");
    let e = err("tensor([[1, 2], 3])");
    assert!(e.contains("ragged"), "{e}");
    let e = err("tensor([1, \"x\"])");
    assert!(e.contains("expected a number"), "{e}");
}

#[test]
fn arithmetic_broadcasts_with_numbers_on_either_side() {
    let t = "let t = tensor([[1, 2], [3, 4]]);";
    close(
        &floats(eval(&format!("{t} (t + tensor([10, 20])).to_array()"))),
        &[11.0, 22.0, 13.0, 24.0],
    );
    close(&floats(eval(&format!("{t} (2 * t).to_array()"))), &[2.0, 4.0, 6.0, 8.0]);
    close(
        &floats(eval(&format!("{t} (t * 0.5).to_array()"))),
        &[0.5, 1.0, 1.5, 2.0],
    );
    close(
        &floats(eval(&format!("{t} (1 - t).to_array()"))),
        &[0.0, -1.0, -2.0, -3.0],
    );
    close(&floats(eval(&format!("{t} (t / 2).to_array()"))), &[0.5, 1.0, 1.5, 2.0]);
    close(
        &floats(eval(&format!("{t} (12.0 / t).to_array()"))),
        &[12.0, 6.0, 4.0, 3.0],
    );
    close(
        &floats(eval(&format!("{t} (-t).to_array()"))),
        &[-1.0, -2.0, -3.0, -4.0],
    );
    close(
        &floats(eval(&format!("{t} t += 1; t.to_array()"))),
        &[2.0, 3.0, 4.0, 5.0],
    );
    let e = err("tensor([1, 2, 3]) + tensor([1, 2])");
    assert!(e.contains("+(Tensor[3] f32, Tensor[2] f32)"), "{e}");
    let e = err("zeros([2]) + zeros([2], \"f16\")");
    assert!(e.contains("dtypes differ"), "{e}");
}

#[test]
fn integer_tensors_do_not_overflow_or_panic() {
    // argmax gives u32; arithmetic on it goes through f64.
    close(
        &floats(eval("(tensor([[1, 5], [7, 2]]).argmax(1) + 1).to_array()")),
        &[2.0, 1.0],
    );
    close(&floats(eval("(ones([2], \"u8\") * 300).to_array()")), &[255.0, 255.0]);
    close(
        &floats(eval("(ones([2], \"i64\") / 0).to_array()")),
        &[i64::MAX as f64, i64::MAX as f64],
    );
    close(
        &floats(eval("ones([2], \"u32\").exp().to_array()")),
        &[std::f64::consts::E; 2],
    );
    close(&floats(eval("(-ones([2], \"i64\")).abs().to_array()")), &[1.0, 1.0]);
    assert_eq!(eval("ones([3], \"u8\").sum().item()").as_float().unwrap(), 3.0);
}

#[test]
fn matmul_rules() {
    close(
        &floats(eval("matmul(tensor([[1, 2], [3, 4]]), tensor([[5], [6]])).to_array()")),
        &[17.0, 39.0],
    );
    close(
        &floats(eval("tensor([1, 2]).matmul(tensor([[1, 0], [0, 1]])).to_array()")),
        &[1.0, 2.0],
    );
    assert_eq!(
        ints(eval("tensor([1, 2]).matmul(tensor([[1, 0], [0, 1]])).shape()")),
        vec![2]
    );
    assert_eq!(
        eval("tensor([1, 2]).matmul(tensor([3, 4])).item()").as_float().unwrap(),
        11.0
    );
    assert_eq!(
        ints(eval("matmul(ones([5, 2, 3]), ones([3, 4])).shape()")),
        vec![5, 2, 4]
    );
    let e = err("matmul(ones([2, 3]), ones([4, 5]))");
    assert!(
        e.contains("matmul(Tensor[2, 3] f32, Tensor[4, 5] f32)") && e.contains("3 vs 4"),
        "{e}"
    );
}

#[test]
fn indexing_and_slicing() {
    let t = "let t = arange(6).reshape([2, 3]);";
    close(&floats(eval(&format!("{t} t[1].to_array()"))), &[3.0, 4.0, 5.0]);
    close(&floats(eval(&format!("{t} t[-2].to_array()"))), &[0.0, 1.0, 2.0]);
    assert_eq!(eval(&format!("{t} t.get(1, 2).item()")).as_float().unwrap(), 5.0);
    assert_eq!(eval(&format!("{t} t.get([1, -1]).item()")).as_float().unwrap(), 5.0);
    close(&floats(eval(&format!("{t} t.select(1, 0).to_array()"))), &[0.0, 3.0]);
    close(
        &floats(eval(&format!("{t} t.narrow(1, 1, 2).to_array()"))),
        &[1.0, 2.0, 4.0, 5.0],
    );
    let e = err(&format!("{t} t[2]"));
    assert!(
        e.contains("index 2 is out of range") && e.contains("Tensor[2, 3]"),
        "{e}"
    );
    let e = err(&format!("{t} t.narrow(1, 2, 5)"));
    assert!(e.contains("narrow") && e.contains("does not fit"), "{e}");
    let e = err(&format!("{t} t.narrow(5, 0, 1)"));
    assert!(e.contains("dim 5 is out of range"), "{e}");
}

#[test]
fn reductions() {
    let t = "let t = tensor([[1, 5, 3], [4, 2, 6]]);";
    assert_eq!(eval(&format!("{t} t.sum().item()")).as_float().unwrap(), 21.0);
    close(&floats(eval(&format!("{t} t.sum(0).to_array()"))), &[5.0, 7.0, 9.0]);
    close(&floats(eval(&format!("{t} t.mean(1).to_array()"))), &[3.0, 4.0]);
    close(&floats(eval(&format!("{t} t.max(-1).to_array()"))), &[5.0, 6.0]);
    close(&floats(eval(&format!("{t} t.min(0).to_array()"))), &[1.0, 2.0, 3.0]);
    assert_eq!(eval(&format!("{t} t.argmax(1).to_array()")).to_string(), "[1, 2]");
    assert_eq!(eval(&format!("{t} t.argmax().item()")).as_int().unwrap(), 5);
    assert_eq!(eval(&format!("{t} t.max().item()")).as_float().unwrap(), 6.0);
    let e = err("zeros([0]).max()");
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn elementwise_math() {
    close(&floats(eval("tensor([1, 2, 3]).softmax(0).sum(0).to_array()")), &[1.0]);
    close(
        &floats(eval(
            "let t = tensor([[1, 2], [0, 0]]); (t.log_softmax(-1).exp() - t.softmax(-1)).abs().max().to_array()",
        )),
        &[0.0],
    );
    close(&floats(eval("tensor([-1, 0, 2]).relu().to_array()")), &[0.0, 0.0, 2.0]);
    close(&floats(eval("tensor([4, 9]).sqrt().to_array()")), &[2.0, 3.0]);
    close(&floats(eval("tensor([-3]).abs().to_array()")), &[3.0]);
    close(&floats(eval("tensor([0]).exp().log().to_array()")), &[0.0]);
    close(&floats(eval("tensor([0]).tanh().to_array()")), &[0.0]);
    assert!((eval("tensor([3, 4]).norm()").as_float().unwrap() - 5.0).abs() < 1e-9);
    assert!((eval("cosine(tensor([1, 0]), tensor([[0, 1]]))").as_float().unwrap()).abs() < 1e-9);
    assert!((eval("cosine(tensor([1, 2]), tensor([2, 4]))").as_float().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(eval("cosine(zeros([2]), ones([2]))").as_float().unwrap(), 0.0);
    assert!(err("cosine(zeros([2]), ones([3]))").contains("element counts differ"));
}

#[test]
fn shape_changes() {
    assert_eq!(ints(eval("zeros([2, 3]).transpose(0, 1).shape()")), vec![3, 2]);
    assert_eq!(ints(eval("zeros([4, 2, 3]).t().shape()")), vec![4, 3, 2]);
    assert_eq!(ints(eval("zeros([2, 6]).reshape([3, -1]).shape()")), vec![3, 4]);
    assert!(err("zeros([2, 6]).reshape([5, -1])").contains("reshape"));
    assert!(err("zeros([2, 6]).reshape([5, 2])").contains("different number"));
    assert_eq!(ints(eval("zeros([1, 3, 1]).squeeze().shape()")), vec![3]);
    assert_eq!(ints(eval("zeros([1, 3, 1]).squeeze(0).shape()")), vec![3, 1]);
    assert_eq!(ints(eval("zeros([3]).unsqueeze(-1).shape()")), vec![3, 1]);
    assert_eq!(ints(eval("zeros([2, 3, 4]).permute([2, 0, 1]).shape()")), vec![4, 2, 3]);
    assert!(err("zeros([2, 3]).permute([0, 0])").contains("not a permutation"));
    assert_eq!(ints(eval("cat([zeros([2, 3]), ones([1, 3])], 0).shape()")), vec![3, 3]);
    assert_eq!(ints(eval("stack([zeros([3]), ones([3])], 0).shape()")), vec![2, 3]);
    assert!(err("cat([], 0)").contains("at least one tensor"));
    assert!(err("cat([zeros([2]), 1], 0)").contains("element 1"));
    assert_eq!(ints(eval("zeros([2, 3]).flatten().shape()")), vec![6]);
}

#[test]
fn dtype_and_device_conversion() {
    assert_eq!(
        eval("ones([2]).to_dtype(\"bf16\").dtype()").into_string().unwrap(),
        "bf16"
    );
    assert_eq!(
        eval("ones([2]).to_dtype(\"f64\").sum().item()").as_float().unwrap(),
        2.0
    );
    assert!(err("ones([2]).to_dtype(\"f13\")").contains("unknown dtype"));
    assert_eq!(
        eval("ones([2]).to_device(\"cpu\").device()").into_string().unwrap(),
        "cpu"
    );
    assert!(err("ones([2]).to_device(\"tpu\")").contains("unknown device"));
    assert!(err("ones([2]).item()").contains("exactly one element"));
}

#[test]
fn random_tensors_are_seeded() {
    let a = floats(eval("randn([3, 4], 7).to_array()"));
    let b = floats(eval("randn([3, 4], 7).to_array()"));
    let c = floats(eval("randn([3, 4], 8).to_array()"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let u = floats(eval("rand([1000], 1).to_array()"));
    assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
    let mean = u.iter().sum::<f64>() / u.len() as f64;
    assert!((mean - 0.5).abs() < 0.05, "{mean}");
    let n = floats(eval("randn([4000], 3).to_array()"));
    let mean = n.iter().sum::<f64>() / n.len() as f64;
    let var = n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.len() as f64;
    assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "{mean} {var}");
    // Unseeded calls differ.
    assert_ne!(
        floats(eval("randn([8]).to_array()")),
        floats(eval("randn([8]).to_array()"))
    );
}

#[test]
fn display_shows_shape_dtype_device_and_truncates() {
    let s = eval("tensor([[1, 2, 3], [4, 5, 6]]).to_string()")
        .into_string()
        .unwrap();
    assert_eq!(s, "Tensor[2, 3] f32 cpu\n[[1.0, 2.0, 3.0],\n [4.0, 5.0, 6.0]]");
    let s = eval("arange(100).to_string()").into_string().unwrap();
    assert_eq!(s, "Tensor[100] f32 cpu [0.0, 1.0, 2.0, ..., 97.0, 98.0, 99.0]");
    let s = eval("`${tensor(0.25)}`").into_string().unwrap();
    assert_eq!(s, "Tensor[] f32 cpu 0.25");
    let s = eval("tensor([1, 2]).argmax(0).to_string()").into_string().unwrap();
    assert_eq!(s, "Tensor[] u32 cpu 1");
    let s = eval("zeros([10, 10]).to_string()").into_string().unwrap();
    assert_eq!(s.lines().count(), 8, "{s}");
    assert!(s.contains(" ...,"), "{s}");
}

#[test]
fn wrap_and_unwrap_from_rust() {
    let t = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
    let d = tensor::wrap(t);
    let back = tensor::unwrap(&d).unwrap();
    assert_eq!(back.to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
    let e = tensor::unwrap(&Dynamic::from(3_i64)).unwrap_err().to_string();
    assert!(e.contains("expected a Tensor, got int"), "{e}");
    // Rust code can pass tensors to scripts through a scope.
    let engine = engine();
    let mut scope = rhai::Scope::new();
    scope.push_dynamic("x", tensor::wrap(Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()));
    let n: f64 = engine.eval_with_scope(&mut scope, "x.norm()").unwrap();
    assert!((n - 5.0).abs() < 1e-9);
}

#[test]
fn huge_and_negative_sizes_are_errors() {
    assert!(err("zeros([-1])").contains("negative size"));
    assert!(err("zeros([1 << 40, 1 << 40])").contains("too large"));
    assert!(err("randn([9223372036854775807])").contains("too large"));
    assert!(err("arange(0, 1 << 40)").contains("too many"));
    assert!(err("arange(0, 1, 0)").contains("step"));
    assert!(err("zeros([\"a\"])").contains("must be ints"));
}
