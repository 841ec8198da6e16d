//! GGUF files (llama.cpp's format): a Llama / Mistral / Qwen2 config from the
//! metadata, the weights dequantized to dense tensors under Hugging Face names,
//! and the tokenizer from the `tokenizer.ggml.*` metadata. Everything follows
//! what transformers does with `from_pretrained(dir, gguf_file=...)`, so a
//! model loaded here matches one loaded there.
//!
//! Two things llama.cpp changes on the way in are undone: tensor names
//! (`blk.0.attn_q.weight` -> `model.layers.0.self_attn.q_proj.weight`) and,
//! for the `llama` architecture only, the row order of q/k projections, which
//! its converter interleaves for its own rotary kernel.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::llama::{LlamaConfig, TokenIds};
use crate::error::{Error, Result};

/// An open GGUF file: its metadata and tensor directory, and the reader for the data.
pub struct Gguf {
    pub content: Content,
    file: File,
    path: std::path::PathBuf,
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::file(path, e))?;
        let content =
            Content::read(&mut file).map_err(|e| Error::file(path, format!("not a readable GGUF file: {e}")))?;
        Ok(Self {
            content,
            file,
            path: path.to_path_buf(),
        })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::file(&self.path, msg)
    }

    fn string(&self, key: &str) -> Result<String> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(self.err(format!("metadata '{key}' is missing or not a string"))),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| as_u64(v).ok_or_else(|| self.err(format!("metadata '{key}' is not an integer"))))
            .transpose()
    }

    fn float(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::F32(v) => Some(*v as f64),
            Value::F64(v) => Some(*v),
            v => as_u64(v).map(|u| u as f64),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.err(format!("metadata '{key}' holds a non-string"))),
                })
                .collect(),
            _ => Err(self.err(format!("metadata '{key}' is missing or not an array"))),
        }
    }

    /// `general.architecture`, with transformers' rule that a `llama` file
    /// whose `general.name` mentions mistral is a Mistral.
    pub fn architecture(&self) -> Result<String> {
        let arch = self.string("general.architecture")?;
        let name = self.string("general.name").unwrap_or_default().to_lowercase();
        Ok(if arch == "llama" && name.contains("mistral") {
            "mistral".into()
        } else {
            arch
        })
    }

    /// The model config the metadata describes (HF field names).
    pub fn config(&self) -> Result<LlamaConfig> {
        let file_arch = self.string("general.architecture")?;
        let arch = self.architecture()?;
        if !matches!(arch.as_str(), "llama" | "mistral" | "qwen2") {
            return Err(self.err(format!(
                "GGUF architecture '{arch}' is not supported (llama, mistral, qwen2)"
            )));
        }
        let need = |k: &str| -> Result<u64> {
            self.uint(&format!("{file_arch}.{k}"))?
                .ok_or_else(|| self.err(format!("metadata '{file_arch}.{k}' is missing")))
        };
        let vocab = match self.uint(&format!("{file_arch}.vocab_size"))? {
            Some(v) => v,
            None => self.strings("tokenizer.ggml.tokens")?.len() as u64,
        };
        let mut cfg = serde_json::json!({
            "model_type": arch,
            "vocab_size": vocab,
            "hidden_size": need("embedding_length")?,
            "intermediate_size": need("feed_forward_length")?,
            "num_hidden_layers": need("block_count")?,
            "num_attention_heads": need("attention.head_count")?,
            "tie_word_embeddings": !self.content.tensor_infos.contains_key("output.weight"),
        });
        let obj = cfg.as_object_mut().ok_or_else(|| self.err("config"))?;
        let mut set = |k: &str, v: serde_json::Value| {
            obj.insert(k.to_string(), v);
        };
        if let Some(v) = self.uint(&format!("{file_arch}.attention.head_count_kv"))? {
            set("num_key_value_heads", v.into());
        }
        if let Some(v) = self.uint(&format!("{file_arch}.context_length"))? {
            set("max_position_embeddings", v.into());
        }
        // transformers reads rope.dimension_count as head_dim for llama/mistral only.
        if arch != "qwen2" {
            if let Some(v) = self.uint(&format!("{file_arch}.rope.dimension_count"))? {
                set("head_dim", v.into());
            }
        }
        if let Some(v) = self.float(&format!("{file_arch}.rope.freq_base")) {
            set("rope_theta", v.into());
        }
        if let Some(v) = self.float(&format!("{file_arch}.attention.layer_norm_rms_epsilon")) {
            set("rms_norm_eps", v.into());
        }
        if arch == "qwen2" {
            set("use_sliding_window", false.into());
        }
        for (key, field) in [("bos", "bos_token_id"), ("padding", "pad_token_id")] {
            if let Some(v) = self.uint(&format!("tokenizer.ggml.{key}_token_id"))? {
                set(field, v.into());
            }
        }
        let mut cfg: LlamaConfig = serde_json::from_value(cfg).map_err(|e| self.err(format!("config: {e}")))?;
        if let Some(v) = self.uint("tokenizer.ggml.eos_token_id")? {
            cfg.eos_token_id = Some(TokenIds::One(v as u32));
        }
        Ok(cfg)
    }

    /// One tensor by its GGUF name, dequantized to f32 (HF layout: (rows, columns)).
    pub fn tensor(&mut self, name: &str, device: &Device) -> Result<Tensor> {
        let q = self
            .content
            .tensor(&mut self.file, name, device)
            .map_err(|e| self.err(format!("tensor {name}: {e}")))?;
        Ok(q.dequantize(device)?)
    }

    /// Every tensor, dequantized to f32 then cast to `dtype`, under HF names,
    /// with llama.cpp's q/k row interleaving undone.
    pub fn weights(&mut self, cfg: &LlamaConfig, device: &Device, dtype: DType) -> Result<HashMap<String, Tensor>> {
        let unpermute = self.string("general.architecture")? == "llama";
        let mut names: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        names.sort();
        let mut out = HashMap::new();
        for name in names {
            let Some(hf) = hf_name(&name) else { continue }; // e.g. rope_freqs.weight, which transformers ignores
            let mut t = self.tensor(&name, device)?;
            if unpermute && name.contains(".attn_q.") {
                t = unpermute_rows(&t, cfg.num_attention_heads)?;
            } else if unpermute && name.contains(".attn_k.") {
                t = unpermute_rows(&t, cfg.kv_heads())?;
            }
            out.insert(hf, t.to_dtype(dtype)?);
        }
        Ok(out)
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

/// llama.cpp's tensor names -> Hugging Face's.
pub fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undo llama.cpp's per-head interleaving of q/k rows: each head's rows were
/// reordered from (2, k/2) to (k/2, 2); put them back. Works on weights
/// (rows, d) and biases (rows).
pub fn unpermute_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(Error::msg(format!(
            "gguf: cannot split {rows} q/k rows into {heads} rotary heads"
        )));
    }
    let mut shape = vec![heads, rows / heads / 2, 2];
    shape.extend_from_slice(&dims[1..]);
    Ok(t.reshape(shape)?.transpose(1, 2)?.contiguous()?.reshape(dims)?)
}

/// GPT-2's reversible map from bytes to printable characters (the alphabet
/// byte-level BPE vocabularies are spelled in).
fn bytes_to_unicode() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap_or('?')
            }
        })
        .collect()
}

/// Pre-tokenizer split patterns per `tokenizer.ggml.pre`, as transformers'
/// GGUF converter maps them; any other value keeps GPT-2's byte-level regex.
fn split_regex(pre: &str) -> Option<&'static str> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "smaug-bpe" | "dbrx" | "pixtral" => Some(LLAMA3),
        "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(QWEN2),
        _ => None,
    }
}

/// The tokenizer a GGUF's metadata describes, built the way transformers'
/// GGUF converter builds it: byte-level BPE over the file's tokens and merges,
/// control tokens as special tokens, user-defined ones as added tokens, the
/// split pattern `tokenizer.ggml.pre` names, and a BOS in front only when
/// `tokenizer.ggml.add_bos_token` says so.
pub fn tokenizer(g: &Gguf) -> Result<tokenizers::Tokenizer> {
    let model = g.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(g.err(format!(
            "GGUF tokenizer model '{model}' is not supported (only gpt2-style byte-level BPE); put a tokenizer.json beside the file"
        )));
    }
    let tokens = g.strings("tokenizer.ggml.tokens")?;
    let types: Vec<u64> = match g.get("tokenizer.ggml.token_type") {
        Some(Value::Array(items)) => items.iter().map(|v| as_u64(v).unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let spelling = bytes_to_unicode();
    let alphabet: std::collections::HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        let spelled = if in_alphabet(t) {
            t.clone()
        } else {
            t.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.insert(spelled, i as u32);
    }
    let merges: Vec<(String, String)> = g
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| g.err(format!("bad merge '{m}'")))
        })
        .collect::<Result<_>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| g.err(format!("tokenizer: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);

    let pre = g.string("tokenizer.ggml.pre").unwrap_or_default();
    match split_regex(&pre) {
        Some(re) => {
            let split = Split::new(SplitPattern::Regex(re.into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| g.err(format!("tokenizer: {e}")))?;
            let parts: Vec<PreTokenizerWrapper> = vec![split.into(), ByteLevel::new(false, true, false).into()];
            tok.with_pre_tokenizer(Some(Sequence::new(parts)));
        }
        None => {
            tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        }
    }
    tok.with_decoder(Some(ByteLevel::default()));

    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(t, ty)| **ty == 3 && in_alphabet(t))
        .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    tok.add_special_tokens(&special);
    let user: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(t, ty)| **ty == 4 && in_alphabet(t))
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    tok.add_tokens(&user);

    let add_bos = matches!(g.get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(true)));
    if let (true, Some(bos)) = (add_bos, g.uint("tokenizer.ggml.bos_token_id")?) {
        let piece = tokens
            .get(bos as usize)
            .ok_or_else(|| g.err("bos_token_id is not a token"))?
            .clone();
        let template = TemplateProcessing::builder()
            .try_single(format!("{piece} $A"))
            .and_then(|b| b.try_pair(format!("{piece} $A {piece} $B:1")))
            .map_err(|e| g.err(format!("tokenizer: bos template: {e}")))?
            .special_tokens(vec![(piece, bos as u32)])
            .build()
            .map_err(|e| g.err(format!("tokenizer: bos template: {e}")))?;
        tok.with_post_processor(Some(template));
    }
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_transformers() {
        assert_eq!(
            hf_name("blk.3.attn_k.bias").as_deref(),
            Some("model.layers.3.self_attn.k_proj.bias")
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_interleaving() {
        // One head of 4 rows: llama.cpp stores rows [0, 2, 1, 3]; we restore [0, 1, 2, 3].
        let t = Tensor::from_vec(vec![0f32, 2., 1., 3.], (4, 1), &Device::Cpu).unwrap();
        let back = unpermute_rows(&t, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(back, vec![0., 1., 2., 3.]);
    }

    #[test]
    fn byte_alphabet_is_gpt2s() {
        let s = bytes_to_unicode();
        assert_eq!(s[b' ' as usize], 'Ġ');
        assert_eq!(s[b'\n' as usize], 'Ċ');
        assert_eq!(s[b'a' as usize], 'a');
    }
}
