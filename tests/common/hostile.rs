//! Hostile script values for the robustness tests (`no_panic`, `fuzz`): for
//! each parameter type, Rhai expressions that build malformed or extreme
//! values of it, the script text that calls a registered function, and a
//! small deterministic generator. Values are kept as expressions so that a
//! failing case can be printed as a script that reproduces it.

use promot::script::help::FnDoc;

pub const TINY_MT5: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5");
pub const TINY_LLAMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-llama");

/// Expressions that build a value of a custom type, by the type's script name.
pub const FIXTURES: &[(&str, &[&str])] = &[
    ("Tensor", &[
        "zeros([2, 3])",
        "ones([4])",
        "tensor(1.5)",
        "zeros([0])",
        "zeros([2, 0])",
        "ones([2, 3], \"f16\")",
        "ones([3], \"u8\")",
        "ones([3], \"i64\")",
        "tensor([[1, 2], [3, 4]]).argmax(1)",
        "randn([1, 2, 1, 3], 1)",
        "tensor([0.0, -1.0]).log()",
    ]),
    ("Model", &[
        concat!("load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5\")"),
        concat!("load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-llama\")"),
    ]),
    ("Prompt", &[
        concat!("soft_prompt(load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5\"), 3, \"uniform\")"),
        concat!("soft_prompt(load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-llama\"), 2, \"uniform\")"),
    ]),
    ("Results", &[concat!(
        "load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5\").evaluate(",
        "#{name: \"t\", metric: \"accuracy\", kind: \"classification\", max_new_tokens: 2, examples: [#{input: \"a\", target: \"True\"}]},",
        "#{shots: [0], quiet: true, cache: false})"
    )]),
];

pub const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "-7",
    "1 << 40",
    "9223372036854775807",
    "-9223372036854775807 - 1",
];
pub const FLOATS: &[&str] = &["0.5", "0.0", "-1.0", "1e300", "-1e300", "0.0 / 0.0", "1.0 / 0.0"];
pub const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "0.5",
    "-1e300",
    "0.0 / 0.0",
    "1.0 / 0.0",
];
pub const ARRAYS: &[&str] = &[
    "[2, 3]",
    "[]",
    "[[1], [2, 3]]",
    "[\"x\"]",
    "[-1]",
    "[1 << 40, 1 << 40]",
    "[9223372036854775807]",
    "[0]",
    "[zeros([2])]",
    "[()]",
    "[1.5]",
    "[[]]",
    "[[1, 2], [3, 4]]",
];
pub const STRINGS: &[&str] = &[
    "\"bogus\"",
    "\"\"",
    "\"f16\"",
    "\"cpu\"",
    "\"cuda\"",
    "\"/nonexistent_promot_dir/x\"",
    "\"*\"",
    "\"-1\"",
];
pub const MAPS: &[&str] = &[
    "#{}",
    "#{a: 1}",
    "#{dtype: \"bogus\", device: \"tpu\", seed: -1, steps: -1, lr: -1.0, batch_size: 0, beams: 0, max_new_tokens: -1}",
    "#{steps: \"x\", lr: \"y\", prompt: 3, train: 5}",
];
pub const FN_PTRS: &[&str] = &["Fn(\"zeros\")", "|x| x"];

/// "&mut Model" -> "Model".
pub fn base_type(ty: &str) -> String {
    ty.trim()
        .trim_start_matches('&')
        .trim()
        .trim_start_matches("mut ")
        .trim()
        .to_string()
}

/// Expressions of malformed values for a parameter type ("A|B", a doc-only
/// union, takes both); empty for a type with none.
pub fn exprs_for(ty: &str) -> Vec<&'static str> {
    ty.split('|')
        .flat_map(|t| exprs_for_one(&base_type(t)))
        .copied()
        .collect()
}

fn exprs_for_one(ty: &str) -> &'static [&'static str] {
    match ty {
        "i64" | "int" | "INT" | "usize" | "i32" | "u64" => INTS,
        "f64" | "float" | "FLOAT" | "f32" => FLOATS,
        "number" => NUMBERS,
        "bool" => &["true", "false"],
        "Array" | "array" | "Vec<Dynamic>" => ARRAYS,
        "String" | "str" | "ImmutableString" | "string" => STRINGS,
        "Map" | "map" => MAPS,
        "FnPtr" | "Fn" => FN_PTRS,
        _ => FIXTURES
            .iter()
            .find(|(name, _)| *name == ty)
            .map_or(&[], |(_, list)| list),
    }
}

/// The script text calling `f` with `args` (expressions or variable names),
/// by its syntax: a plain call, a property, an indexer or an operator.
pub fn call_text(f: &FnDoc, args: &[String]) -> Option<String> {
    let n = args.len();
    let name = f.name.as_str();
    if let Some(prop) = name.strip_prefix("get$") {
        return (n == 1).then(|| format!("{}.{prop}", args[0]));
    }
    if let Some(prop) = name.strip_prefix("set$") {
        return (n == 2).then(|| format!("{}.{prop} = {}", args[0], args[1]));
    }
    if name == "index$get$" {
        return (n == 2).then(|| format!("{}[{}]", args[0], args[1]));
    }
    if name == "index$set$" {
        return (n == 3).then(|| format!("{}[{}] = {}", args[0], args[1], args[2]));
    }
    if f.is_plain_function() {
        return Some(format!("{name}({})", args.join(", ")));
    }
    match n {
        1 => Some(format!("{name} {}", args[0])),
        2 => Some(format!("{} {name} {}", args[0], args[1])),
        _ => None,
    }
}

/// Small deterministic generator (a 64-bit LCG) for argument combinations.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in 0..n (0 for n = 0).
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }

    /// True with probability `p` (in percent).
    pub fn chance(&mut self, percent: usize) -> bool {
        self.next(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next(items.len())]
    }
}

/// A scratch folder for a test, emptied first, that a test process's files
/// (junk paths, caches) land in.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
