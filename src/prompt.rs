//! Soft prompts: a few trainable embedding rows prepended to the model's input
//! (the encoder's input for an encoder-decoder; the sequence's start for a decoder-only model).
//! ProMoT's stage 1 trains one so the target task's *format* lands in it.
//!
//! Shape legend: p prompt length, d model width, b batch, s input positions.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use rand::Rng;

use crate::error::{Error, Result};
use crate::fsio;
use crate::model::LanguageModel;
use crate::params::Param;

/// How to initialise a prompt's rows.
#[derive(Clone, Debug)]
pub enum Init {
    /// Uniform in [-0.5, 0.5], as the prompt-tuning code's default.
    Uniform,
    /// Embeddings of tokens drawn from the `top` lowest ids, which are the most
    /// frequent in SentencePiece and BPE vocabularies (the model's special
    /// tokens skipped).
    Vocab { top: usize },
    /// Embeddings of a text's tokens, repeated or cut to the prompt length.
    Ids(Vec<u32>),
    /// Given values (p, d).
    Tensor(Tensor),
}

/// How many of the most frequent vocabulary ids "vocab" init draws from
/// (Lester et al. initialise from the 5,000 most common tokens).
pub const VOCAB_INIT_TOP: usize = 5000;

impl Init {
    /// An init from its script name: "uniform", "vocab" (the
    /// [`VOCAB_INIT_TOP`] most frequent tokens) or "text:..." (that text's
    /// tokens, as `tok` encodes them without EOS).
    pub fn from_name(spec: &str, tok: &crate::tokenizer::Tokenizer) -> Result<Self> {
        match spec {
            "uniform" => Ok(Init::Uniform),
            "vocab" => Ok(Init::Vocab { top: VOCAB_INIT_TOP }),
            text if text.starts_with("text:") => Ok(Init::Ids(tok.encode(&text[5..], false)?)),
            other => Err(Error::msg(format!(
                "soft_prompt: unknown init '{other}' (expected \"uniform\", \"vocab\", \"text:...\" or a Tensor)"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SoftPrompt {
    pub name: String,
    param: Param,
    /// The PEFT task type of the model it was made for ("SEQ_2_SEQ_LM", "CAUSAL_LM").
    task_type: &'static str,
}

impl SoftPrompt {
    /// A prompt of `length` rows. Its random init is the stream
    /// `prompt:{name}` of `seed` (`crate::seed`), so it depends only on the
    /// seed and the name, never on how many prompts were made before.
    pub fn new(name: &str, model: &dyn LanguageModel, length: usize, init: Init, seed: u64) -> Result<Self> {
        if length == 0 {
            return Err(Error::msg("soft_prompt: length must be at least 1"));
        }
        let d = model.hidden_size();
        let device = model.params().device();
        let mut rng = crate::seed::rng(seed, &format!("prompt:{name}"));
        let values = match init {
            Init::Uniform => {
                let v: Vec<f32> = (0..length * d).map(|_| rng.random_range(-0.5f32..=0.5)).collect();
                Tensor::from_vec(v, (length, d), &device)?
            }
            Init::Vocab { top } => {
                // The `top` lowest ids (the most frequent, in SentencePiece and BPE
                // vocabularies alike) less the model's special tokens.
                let specials = model.special_ids();
                let pool: Vec<u32> = (0..top.min(model.vocab_size()) as u32)
                    .filter(|i| !specials.contains(i))
                    .collect();
                if pool.is_empty() {
                    return Err(Error::msg(format!(
                        "soft_prompt: no ordinary token among the first {top} ids"
                    )));
                }
                let ids: Vec<u32> = (0..length)
                    .map(|_| pool[rng.random_range(0..pool.len() as u32) as usize])
                    .collect();
                Self::embed_rows(model, &ids)?
            }
            Init::Ids(ids) => {
                if ids.is_empty() {
                    return Err(Error::msg("soft_prompt: the init text has no tokens"));
                }
                let rows: Vec<u32> = ids.iter().copied().cycle().take(length).collect();
                Self::embed_rows(model, &rows)?
            }
            Init::Tensor(t) => {
                if t.dims() != [length, d] {
                    return Err(Error::msg(format!(
                        "soft_prompt: init tensor must be [{length}, {d}], got {:?}",
                        t.dims()
                    )));
                }
                t.to_device(&device)?
            }
        };
        let values = values.to_dtype(model.params().dtype())?;
        Ok(Self {
            name: name.to_string(),
            param: Param::new(&format!("prompt.{name}"), values)?,
            task_type: model.peft_task_type(),
        })
    }

    fn embed_rows(model: &dyn LanguageModel, ids: &[u32]) -> Result<Tensor> {
        let idx = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &model.params().device())?;
        Ok(model.embed(&idx)?.squeeze(0)?.detach())
    }

    pub fn len(&self) -> usize {
        self.param.shape()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn width(&self) -> usize {
        self.param.shape()[1]
    }
    pub fn param(&self) -> &Param {
        &self.param
    }
    /// The prompt's values (p, d); tracked by autograd only while trainable.
    pub fn tensor(&self) -> Tensor {
        self.param.tensor()
    }
    pub fn freeze(&self) {
        self.param.set_trainable(false)
    }
    pub fn unfreeze(&self) {
        self.param.set_trainable(true)
    }
    pub fn is_trainable(&self) -> bool {
        self.param.is_trainable()
    }

    /// Prepend the prompt to every row: embeds (b, s, d) -> (b, p+s, d), mask (b, s) -> (b, p+s).
    pub fn attach(&self, embeds: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, _, d) = embeds.dims3()?;
        if d != self.width() {
            return Err(Error::msg(format!(
                "prompt '{}' has width {}, the model's embeddings have {d}",
                self.name,
                self.width()
            )));
        }
        let p = self
            .tensor()
            .to_dtype(embeds.dtype())?
            .unsqueeze(0)?
            .broadcast_as((b, self.len(), d))?;
        let ones = Tensor::ones((b, self.len()), mask.dtype(), mask.device())?;
        Ok((Tensor::cat(&[&p, embeds], 1)?, Tensor::cat(&[&ones, mask], 1)?))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        map.insert("prompt".to_string(), self.param.var().as_tensor().contiguous()?);
        fsio::save_safetensors(path, &map)
    }

    /// Load a prompt saved by `save`, or a PEFT adapter directory / file.
    pub fn load(name: &str, path: &Path, model: &dyn LanguageModel) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("adapter_model.safetensors")
        } else {
            path.to_path_buf()
        };
        let mut tensors = fsio::load_safetensors(&file, &model.params().device())?;
        let (t, from_peft) = match tensors.remove("prompt") {
            Some(t) => (t, false),
            None => (
                tensors
                    .remove("prompt_embeddings")
                    .ok_or_else(|| Error::file(&file, "no 'prompt' or 'prompt_embeddings' tensor"))?,
                true,
            ),
        };
        let (rows, d) = t
            .dims2()
            .map_err(|_| Error::file(&file, format!("prompt must be 2-D, got {:?}", t.dims())))?;
        if from_peft {
            check_peft_config(&file, rows)?;
        }
        if d != model.hidden_size() {
            return Err(Error::file(
                &file,
                format!("prompt width {d} does not match the model's {}", model.hidden_size()),
            ));
        }
        let t = t.to_dtype(model.params().dtype())?;
        Ok(Self {
            name: name.to_string(),
            param: Param::new(&format!("prompt.{name}"), t)?,
            task_type: model.peft_task_type(),
        })
    }

    /// The PEFT task type of the model this prompt was made for.
    pub fn peft_task_type(&self) -> &'static str {
        self.task_type
    }

    /// Write a PEFT prompt-tuning adapter (adapter_model.safetensors +
    /// adapter_config.json) that `PeftModel.from_pretrained(base, dir)` loads.
    pub fn export_peft(&self, dir: &Path, base_model: &str, task_type: &str) -> Result<()> {
        let mut map = HashMap::new();
        let values = self.param.var().as_tensor().to_dtype(DType::F32)?.contiguous()?;
        map.insert("prompt_embeddings".to_string(), values);
        fsio::save_safetensors(&dir.join("adapter_model.safetensors"), &map)?;
        let config = serde_json::json!({
            "peft_type": "PROMPT_TUNING",
            "task_type": task_type,
            "base_model_name_or_path": base_model,
            "num_virtual_tokens": self.len(),
            "token_dim": self.width(),
            // Encoder-side prompt only, as ProMoT and prompt tuning use it.
            "num_transformer_submodules": 1,
            "prompt_tuning_init": "RANDOM",
            "inference_mode": true,
            "revision": null,
            "tokenizer_name_or_path": null,
            "prompt_tuning_init_text": null,
            "tokenizer_kwargs": null,
            "num_attention_heads": null,
            "num_layers": null,
            "modules_to_save": null,
            "auto_mapping": null,
        });
        fsio::write_json(&dir.join("adapter_config.json"), &config)
    }
}

/// PEFT's seq2seq default (num_transformer_submodules 2, also when the config
/// leaves it null) stores an encoder prompt and then a decoder prompt in one
/// tensor; a soft prompt here is encoder-side only, so such an adapter is
/// refused rather than read as one prompt twice as long.
fn check_peft_config(file: &Path, rows: usize) -> Result<()> {
    let path = file.with_file_name("adapter_config.json");
    if !path.exists() {
        return Ok(());
    }
    let config = fsio::read_json(&path)?;
    let seq2seq = config.get("task_type").and_then(|v| v.as_str()) == Some("SEQ_2_SEQ_LM");
    let submodules = config
        .get("num_transformer_submodules")
        .and_then(|v| v.as_u64())
        .unwrap_or(if seq2seq { 2 } else { 1 });
    if submodules != 1 {
        return Err(Error::file(&path, format!("num_transformer_submodules is {submodules}: the adapter also prompts the decoder, and soft prompts are encoder-side only (train it with num_transformer_submodules=1)")));
    }
    if let Some(n) = config
        .get("num_virtual_tokens")
        .and_then(|v| v.as_u64())
        .filter(|&n| n != rows as u64)
    {
        return Err(Error::file(
            &path,
            format!("num_virtual_tokens is {n}, the adapter's prompt has {rows} rows"),
        ));
    }
    Ok(())
}

/// Pad → embed → attach each row's prompt, the one way inputs reach a model
/// (training, evaluation and scripts all call it). `inputs` are token ids per
/// row, `prompts` the soft prompt of each row (or none). Rows sharing one
/// prompt take the batched path; mixed rows (multi-task) are attached row by
/// row and re-padded. Returns embeddings (b, s, d) and mask (b, s).
pub fn embed_inputs(
    model: &dyn LanguageModel,
    inputs: &[Vec<u32>],
    prompts: &[Option<&SoftPrompt>],
) -> Result<(Tensor, Tensor)> {
    if inputs.len() != prompts.len() {
        return Err(Error::msg(format!(
            "embed_inputs: {} rows but {} prompts",
            inputs.len(),
            prompts.len()
        )));
    }
    let device = model.params().device();
    let (ids, mask) = crate::model::pad_batch(inputs, model.pad_id(), &device)?;
    let embeds = model.embed(&ids)?;
    let same = prompts
        .windows(2)
        .all(|w| w[0].map(|p| &p.name) == w[1].map(|p| &p.name));
    match prompts.first() {
        None | Some(None) if same => return Ok((embeds, mask)),
        Some(Some(p)) if same => return p.attach(&embeds, &mask),
        _ => {}
    }
    let d = model.hidden_size();
    let mut rows = Vec::with_capacity(inputs.len());
    for (i, p) in prompts.iter().enumerate() {
        let row = embeds.get(i)?.narrow(0, 0, inputs[i].len())?;
        rows.push(match p {
            Some(p) => Tensor::cat(&[&p.tensor().to_dtype(row.dtype())?, &row], 0)?,
            None => row,
        });
    }
    let len = rows.iter().map(|r| r.dim(0).unwrap_or(0)).max().unwrap_or(1);
    let mut padded = Vec::with_capacity(rows.len());
    let mut mask_rows = Vec::with_capacity(rows.len());
    for r in rows {
        let n = r.dim(0)?;
        let pad = Tensor::zeros((len - n, d), r.dtype(), r.device())?;
        padded.push(Tensor::cat(&[&r, &pad], 0)?);
        let m: Vec<f32> = (0..len).map(|j| if j < n { 1.0 } else { 0.0 }).collect();
        mask_rows.push(Tensor::from_vec(m, len, &device)?);
    }
    Ok((Tensor::stack(&padded, 0)?, Tensor::stack(&mask_rows, 0)?))
}
