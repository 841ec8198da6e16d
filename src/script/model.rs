//! Models in scripts: load, tokenize, generate, compute a loss, take
//! gradients by parameter name, freeze and unfreeze, save.

use candle_core::{Device, Tensor};
use rhai::{Array, Dynamic, Engine, Map, INT};

use super::tensor::reg;
use super::{to_rhai, RResult};
use crate::model::{loading, pad_batch, GenerateOptions};
use crate::prompt::SoftPrompt;
use crate::session::{LoadOptions, Session};

/// A model as scripts see it: the library's [`Session`] (the network, its
/// tokenizer, separator and prompts); the functions here convert and forward.
pub type ScriptModel = Session;

/// Where models and script tensors go (`promot --device`, `device(NAME)`).
pub fn default_device() -> RResult<Device> {
    crate::device::default_device().map_err(to_rhai)
}

/// Strings from a Rhai value that is a string or an array of strings.
pub fn strings(what: &str, v: &Dynamic) -> RResult<Vec<String>> {
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        return Ok(vec![s.to_string()]);
    }
    let arr = v
        .read_lock::<Array>()
        .ok_or_else(|| to_rhai(format!("{what}: expected a string or an array of strings")))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.read_lock::<rhai::ImmutableString>()
                .map(|s| s.to_string())
                .ok_or_else(|| to_rhai(format!("{what}: element {i} is not a string")))
        })
        .collect()
}

pub fn map_int(m: &Map, key: &str, default: i64) -> RResult<i64> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_int()
            .or_else(|_| v.as_float().map(|f| f as i64))
            .map_err(|t| to_rhai(format!("option '{key}' must be a number, got {t}"))),
    }
}
pub fn map_float(m: &Map, key: &str, default: f64) -> RResult<f64> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_float()
            .or_else(|_| v.as_int().map(|i| i as f64))
            .map_err(|t| to_rhai(format!("option '{key}' must be a number, got {t}"))),
    }
}
pub fn map_bool(m: &Map, key: &str, default: bool) -> RResult<bool> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .map_err(|t| to_rhai(format!("option '{key}' must be true or false, got {t}"))),
    }
}
pub fn map_str(m: &Map, key: &str, default: &str) -> RResult<String> {
    match m.get(key) {
        None => Ok(default.to_string()),
        Some(v) => v
            .read_lock::<rhai::ImmutableString>()
            .map(|s| s.to_string())
            .ok_or_else(|| to_rhai(format!("option '{key}' must be a string"))),
    }
}
/// Reject option keys a function does not know (a typo should not be silently ignored).
pub fn check_keys(what: &str, m: &Map, known: &[&str]) -> RResult<()> {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            return Err(to_rhai(format!(
                "{what}: unknown option '{k}' (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}
pub fn usize_arg(what: &str, v: i64) -> RResult<usize> {
    usize::try_from(v).map_err(|_| to_rhai(format!("{what} must be non-negative, got {v}")))
}

pub fn load(spec: &str, opts: &Map) -> RResult<ScriptModel> {
    let o: LoadOptions = super::options::parse("load_model", opts, &[])?;
    Ok(Session::load(spec, &o)?)
}

/// `generate`'s options that are not `GenerateOptions` fields.
const GENERATE_EXTRA: [(&str, &str); 2] = [
    ("prompt", "a Prompt attached to the input (none)"),
    ("max_input_len", "inputs are cut to their last this many tokens (1024)"),
];

fn generate_opts(m: &Map) -> RResult<(GenerateOptions, Option<SoftPrompt>, usize)> {
    let mut opts: GenerateOptions = super::options::parse("generate", m, &GENERATE_EXTRA)?;
    opts.num_beams = opts.num_beams.max(1);
    let prompt = match m.get("prompt") {
        None => None,
        Some(p) if p.is_unit() => None,
        Some(p) => Some(
            p.read_lock::<SoftPrompt>()
                .map(|p| p.clone())
                .ok_or_else(|| to_rhai("option 'prompt' must be a Prompt (from soft_prompt)"))?,
        ),
    };
    let max_len = usize_arg("max_input_len", map_int(m, "max_input_len", 1024)?)?;
    Ok((opts, prompt, max_len))
}

fn loss(m: &mut ScriptModel, inputs: Dynamic, targets: Dynamic, opts: Map) -> RResult<Tensor> {
    check_keys("loss", &opts, &["label_smoothing", "train", "prompt"])?;
    let inputs = strings("loss inputs", &inputs)?;
    let targets = strings("loss targets", &targets)?;
    if inputs.len() != targets.len() {
        return Err(to_rhai(format!(
            "loss: {} inputs but {} targets",
            inputs.len(),
            targets.len()
        )));
    }
    let prompt = match opts.get("prompt") {
        Some(p) => Some(
            p.read_lock::<SoftPrompt>()
                .map(|p| p.clone())
                .ok_or_else(|| to_rhai("option 'prompt' must be a Prompt"))?,
        ),
        None => None,
    };
    let (embeds, mask) = m.embed_texts(&inputs, prompt.as_ref(), usize::MAX)?;
    let tgt = m.encode_targets(&targets, usize::MAX)?;
    let (tgt, tmask) = pad_batch(&tgt, m.lm().pad_id(), &m.device()).map_err(to_rhai)?;
    let out = m
        .lm()
        .loss(
            &embeds,
            &mask,
            &tgt,
            &tmask,
            map_float(&opts, "label_smoothing", 0.0)?,
            map_bool(&opts, "train", false)?,
        )
        .map_err(to_rhai)?;
    Ok(out.loss)
}

/// Gradients of a scalar (a loss) for every trainable parameter, by name.
fn grad(m: &mut ScriptModel, loss: Tensor) -> RResult<Map> {
    if loss.elem_count() != 1 {
        return Err(to_rhai(format!(
            "grad: expected a scalar loss, got shape {:?}",
            loss.dims()
        )));
    }
    let grads = loss.backward().map_err(to_rhai)?;
    let mut out = Map::new();
    for p in m.lm().params().iter() {
        if let Some(g) = grads.get(p.var().as_tensor()) {
            out.insert(p.name().into(), Dynamic::from(g.clone()));
        }
    }
    if let Ok(prompts) = m.prompts.lock() {
        for p in prompts.values() {
            if let Some(g) = grads.get(p.param().var().as_tensor()) {
                out.insert(p.param().name().into(), Dynamic::from(g.clone()));
            }
        }
    }
    Ok(out)
}

fn params_table(m: &mut ScriptModel) -> Array {
    m.lm()
        .params()
        .iter()
        .map(|p| {
            let mut row = Map::new();
            row.insert("name".into(), p.name().into());
            row.insert(
                "shape".into(),
                p.shape()
                    .iter()
                    .map(|d| Dynamic::from(*d as INT))
                    .collect::<Array>()
                    .into(),
            );
            row.insert("numel".into(), (p.numel() as INT).into());
            row.insert("trainable".into(), p.is_trainable().into());
            Dynamic::from(row)
        })
        .collect()
}

fn set_trainable(m: &ScriptModel, pattern: &str, on: bool) -> RResult<INT> {
    m.lm()
        .params()
        .set_trainable(pattern, on)
        .map(|n| n as INT)
        .map_err(to_rhai)
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptModel>("Model");
    reg(
        engine,
        "to_string",
        &["m: Model", "String"],
        "A model's one-line summary (architecture, size, trainable count, prompts).",
        |m: &mut ScriptModel| m.summary(),
    );
    reg(
        engine,
        "to_debug",
        &["m: Model", "String"],
        "A model's one-line summary.",
        |m: &mut ScriptModel| m.summary(),
    );
    reg(
        engine,
        "load_model",
        &["spec: &str", "Model"],
        "Load a model: \"toy\", a local HF directory, or a hub id from the local HF cache.",
        |s: &str| load(s, &Map::new()),
    );
    reg(
        engine,
        "load_model",
        &["spec: &str", "opts: Map", "Model"],
        "Load a model with options #{device, dtype, seed}.",
        |s: &str, o: Map| load(s, &o),
    );
    reg(
        engine,
        "device",
        &["name: &str", "String"],
        "Set the default device for models loaded and tensors made next: \"cpu\", \"cuda\" or \"metal\".",
        |name: &str| -> RResult<String> {
            crate::device::set_default(name).map_err(to_rhai)?;
            Ok(name.to_string())
        },
    );
    reg(
        engine,
        "tokenize",
        &["m: Model", "text: &str", "Array"],
        "Token ids of a text as the model's inputs are encoded (with EOS where the model wants one).",
        |m: &mut ScriptModel, t: &str| -> RResult<Array> {
            Ok(m.tokenizer
                .encode(t, m.lm().input_ends_with_eos())
                .map_err(to_rhai)?
                .into_iter()
                .map(|i| Dynamic::from(i as INT))
                .collect())
        },
    );
    reg(
        engine,
        "tokenize_target",
        &["m: Model", "text: &str", "Array"],
        "Token ids of a target as training encodes it (after the joiner for decoder-only models, with EOS).",
        |m: &mut ScriptModel, t: &str| -> RResult<Array> {
            Ok(m.encode_targets(&[t.to_string()], usize::MAX)?
                .concat()
                .into_iter()
                .map(|i| Dynamic::from(i as INT))
                .collect())
        },
    );
    reg(
        engine,
        "detokenize",
        &["m: Model", "ids: Array", "String"],
        "Text of token ids (special tokens skipped).",
        |m: &mut ScriptModel, ids: Array| -> RResult<String> {
            let ids = ids
                .iter()
                .map(|i| {
                    i.as_int()
                        .ok()
                        .and_then(|i| u32::try_from(i).ok())
                        .ok_or_else(|| to_rhai("detokenize: ids must be non-negative ints"))
                })
                .collect::<RResult<Vec<u32>>>()?;
            m.tokenizer.decode(&ids, true).map_err(to_rhai)
        },
    );
    reg(
        engine,
        "embed",
        &["m: Model", "text: &str", "Tensor"],
        "Input embeddings (1, n, d) of a text.",
        |m: &mut ScriptModel, t: &str| -> RResult<Tensor> { Ok(m.embed_texts(&[t.to_string()], None, usize::MAX)?.0) },
    );
    reg(
        engine,
        "generate",
        &["m: Model", "input: String|Array", "Dynamic"],
        "Beam-4 generation for a text (or array of texts).",
        |m: &mut ScriptModel, x: Dynamic| -> RResult<Dynamic> { gen(m, x, Map::new()) },
    );
    let doc = super::options::doc_with_options::<GenerateOptions>(
        "Generate text for a text (or array of texts).",
        &GENERATE_EXTRA,
    );
    reg(
        engine,
        "generate",
        &["m: Model", "input: String|Array", "opts: Map", "Dynamic"],
        &doc,
        |m: &mut ScriptModel, x: Dynamic, o: Map| -> RResult<Dynamic> { gen(m, x, o) },
    );
    reg(engine, "generate_scored", &["m: Model", "inputs: Array", "opts: Map", "Array"], "Generate for each text: #{text, ids, score}, the score as transformers reports it (beam: sequences_scores; greedy: sum of log-probabilities).", |m: &mut ScriptModel, x: Dynamic, o: Map| -> RResult<Array> {
        let texts = strings("generate_scored", &x)?;
        let (opts, prompt, max_len) = generate_opts(&o)?;
        m.generate_scored(&texts, prompt.as_ref(), &opts, max_len)?
            .into_iter()
            .map(|g| {
                let mut row = Map::new();
                row.insert("text".into(), m.tokenizer.decode(&g.ids, true).map_err(to_rhai)?.into());
                row.insert("ids".into(), g.ids.iter().map(|&i| Dynamic::from(i as INT)).collect::<Array>().into());
                row.insert("score".into(), Dynamic::from(g.score as f64));
                Ok(Dynamic::from(row))
            })
            .collect()
    });
    reg(
        engine,
        "loss",
        &["m: Model", "inputs: Array", "targets: Array", "Tensor"],
        "Mean token cross-entropy of targets given inputs (dropout off).",
        |m: &mut ScriptModel, i: Dynamic, t: Dynamic| loss(m, i, t, Map::new()),
    );
    reg(
        engine,
        "loss",
        &["m: Model", "inputs: Array", "targets: Array", "opts: Map", "Tensor"],
        "Loss with #{label_smoothing, train, prompt}.",
        loss,
    );
    reg(
        engine,
        "logits",
        &["m: Model", "input: &str", "target: &str", "Tensor"],
        "Teacher-forced logits (1, t, v) of a target given an input.",
        |m: &mut ScriptModel, i: &str, t: &str| logits(m, i, t, None),
    );
    reg(
        engine,
        "logits",
        &["m: Model", "input: &str", "target: &str", "prompt: Prompt", "Tensor"],
        "Teacher-forced logits (1, t, v) with a soft prompt in front of the input.",
        |m: &mut ScriptModel, i: &str, t: &str, p: SoftPrompt| logits(m, i, t, Some(&p)),
    );
    reg(
        engine,
        "grad",
        &["m: Model", "loss: Tensor", "Map"],
        "Backpropagate a loss: gradients of trainable parameters and prompts, by name.",
        grad,
    );
    reg(
        engine,
        "params",
        &["m: Model", "Array"],
        "Every parameter: #{name, shape, numel, trainable}.",
        params_table,
    );
    reg(
        engine,
        "param",
        &["m: Model", "name: &str", "Tensor"],
        "The value of a named parameter.",
        |m: &mut ScriptModel, n: &str| -> RResult<Tensor> {
            Ok(m.lm().params().get(n).map_err(to_rhai)?.var().as_tensor().detach())
        },
    );
    reg(
        engine,
        "last_layer_groups",
        &["m: Model", "Map"],
        "The last layer's parameters in named groups (attention projections, MLP), as Fig. 3 compares them.",
        |m: &mut ScriptModel| -> Map {
            m.lm()
                .last_layer_groups()
                .into_iter()
                .map(|(name, params)| {
                    (
                        name.into(),
                        params.into_iter().map(Dynamic::from).collect::<Array>().into(),
                    )
                })
                .collect()
        },
    );
    reg(
        engine,
        "num_params",
        &["m: Model", "int"],
        "Total parameter count.",
        |m: &mut ScriptModel| m.lm().params().count() as INT,
    );
    reg(
        engine,
        "trainable_count",
        &["m: Model", "int"],
        "Count of trainable (unfrozen) parameters.",
        |m: &mut ScriptModel| m.lm().params().trainable_count() as INT,
    );
    reg(
        engine,
        "freeze",
        &["m: Model", "pattern: &str", "int"],
        "Freeze parameters whose name matches a glob (\"*\", \"decoder.block.*.layer.1.*\"); returns how many.",
        |m: &mut ScriptModel, p: &str| set_trainable(m, p, false),
    );
    reg(
        engine,
        "unfreeze",
        &["m: Model", "pattern: &str", "int"],
        "Unfreeze parameters matching a glob; returns how many.",
        |m: &mut ScriptModel, p: &str| set_trainable(m, p, true),
    );
    reg(
        engine,
        "snapshot",
        &["m: Model", "Map"],
        "Copies of every parameter value, by name (to compare later).",
        |m: &mut ScriptModel| -> RResult<Map> {
            Ok(m.lm()
                .params()
                .to_tensors()
                .map_err(to_rhai)?
                .into_iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v)))
                .collect())
        },
    );
    reg(
        engine,
        "save",
        &["m: Model", "dir: &str", "()"],
        "Save as HF safetensors + config.json + tokenizer (transformers loads it).",
        |m: &mut ScriptModel, dir: &str| -> RResult<()> {
            let dir = std::path::Path::new(dir);
            loading::save(m.lm(), dir).map_err(to_rhai)?;
            crate::data::fewshot::record_separator(dir, &m.separator).map_err(to_rhai)?;
            m.tokenizer.save(dir).map_err(to_rhai)
        },
    );
    reg(
        engine,
        "dtype_of",
        &["m: Model", "String"],
        "The parameters' dtype.",
        |m: &mut ScriptModel| format!("{:?}", m.lm().params().dtype()).to_lowercase(),
    );
}

fn logits(m: &mut ScriptModel, input: &str, target: &str, prompt: Option<&SoftPrompt>) -> RResult<Tensor> {
    let (e, mask) = m.embed_texts(&[input.to_string()], prompt, usize::MAX)?;
    let tgt = m.encode_targets(&[target.to_string()], usize::MAX)?;
    let (tgt, _) = pad_batch(&tgt, m.lm().pad_id(), &m.device()).map_err(to_rhai)?;
    m.lm().forward(&e, &mask, &tgt, false).map_err(to_rhai)
}

fn gen(m: &mut ScriptModel, x: Dynamic, o: Map) -> RResult<Dynamic> {
    let single = x.is_string();
    let texts = strings("generate", &x)?;
    if texts.is_empty() {
        return Ok(Dynamic::from(Array::new()));
    }
    let (opts, prompt, max_len) = generate_opts(&o)?;
    let out = m.generate_texts(&texts, prompt.as_ref(), &opts, max_len)?;
    Ok(if single {
        out.into_iter().next().map(Dynamic::from).unwrap_or(Dynamic::UNIT)
    } else {
        out.into_iter().map(Dynamic::from).collect::<Array>().into()
    })
}
