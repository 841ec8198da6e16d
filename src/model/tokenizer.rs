//! Text <-> token ids for T5-family models.
//!
//! A `Tokenizer` wraps a HuggingFace `tokenizers::Tokenizer`. It loads either a `tokenizer.json` or a raw
//! SentencePiece `spiece.model` (mT5 repositories ship only the latter). For `spiece.model` we read the protobuf
//! ourselves and build the same pipeline transformers' `T5Tokenizer` builds: a Unigram model over the pieces plus
//! T5's `<extra_id_N>` sentinels appended at the end (`<extra_id_0>` gets the highest id), the precompiled
//! SentencePiece normalizer, whitespace splitting + Metaspace ("▁", prepend always), and `$A </s>`.

use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper};

use crate::error::{Error, Result};

/// T5's default number of sentinel tokens when no `tokenizer_config.json` says otherwise.
const DEFAULT_EXTRA_IDS: usize = 100;

/// A tokenizer for T5 / mT5 style models (or any `tokenizers` tokenizer built in code).
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The raw `spiece.model` bytes when loaded from one, so `save` can ship it along.
    spiece: Option<Vec<u8>>,
    pad_id: u32,
    eos_id: Option<u32>,
    unk_id: Option<u32>,
}

impl Tokenizer {
    /// Load from a model directory: `tokenizer.json` if present, else `spiece.model` (with the number of
    /// sentinel tokens taken from `tokenizer_config.json`'s `extra_ids`, default 100 as in transformers).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_file(&json);
        }
        let spiece = dir.join("spiece.model");
        if spiece.is_file() {
            return Self::from_file(&spiece);
        }
        Err(Error::file(dir, "no tokenizer.json or spiece.model in this directory"))
    }

    /// Load one file: a `tokenizer.json` (JSON content) or a SentencePiece model (anything else). For a
    /// SentencePiece model, a `tokenizer_config.json` next to it sets the number of `<extra_id_N>` tokens.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
        let looks_like_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if looks_like_json {
            let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::file(path, e))?;
            return Ok(Self::from_tokenizers(inner));
        }
        let extra_ids = extra_ids_from_config(path.parent().unwrap_or(Path::new(".")))?;
        Self::from_spiece_bytes(bytes, extra_ids).map_err(|e| Error::file(path, e))
    }

    /// Build from the bytes of a SentencePiece `ModelProto`, appending `extra_ids` T5 sentinel tokens.
    pub fn from_spiece_bytes(bytes: Vec<u8>, extra_ids: usize) -> Result<Self> {
        let proto = SpmModel::parse(&bytes)?;
        let inner = build_t5_tokenizer(&proto, extra_ids)?;
        let mut tok = Self::from_tokenizers(inner);
        // SentencePiece's own ids are authoritative; -1 means "none".
        let spec_id = |id: i64, n: usize| u32::try_from(id).ok().filter(|&i| (i as usize) < n);
        let n = proto.pieces.len();
        if let Some(pad) = spec_id(proto.pad_id, n) {
            tok.pad_id = pad;
        }
        tok.eos_id = spec_id(proto.eos_id, n).or(tok.eos_id);
        tok.unk_id = spec_id(proto.unk_id, n).or(tok.unk_id);
        tok.spiece = Some(bytes);
        Ok(tok)
    }

    /// Wrap a tokenizer built in code (e.g. a WordLevel one). Special ids are found by their usual names
    /// (`<pad>`/`[PAD]`, `</s>`/`<eos>`/`[EOS]`, `<unk>`/`[UNK]`); pad falls back to 0. Padding and
    /// truncation are switched off: callers pad batches themselves.
    pub fn from_tokenizers(mut inner: tokenizers::Tokenizer) -> Self {
        inner.with_padding(None);
        // Clearing truncation cannot fail (only setting invalid parameters can).
        let _ = inner.with_truncation(None);
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let pad_id = find(&["<pad>", "[PAD]", "<|pad|>"]).unwrap_or(0);
        let eos_id = find(&["</s>", "<eos>", "[EOS]", "<|endoftext|>"]);
        let unk_id = find(&["<unk>", "[UNK]"]);
        Self {
            inner,
            spiece: None,
            pad_id,
            eos_id,
            unk_id,
        }
    }

    /// The same tokenizer with the model's pad and eos ids (a decoder-only vocabulary can hold several
    /// end-of-text tokens, and the one the model stops on is the config's, not the first found by name).
    pub fn with_special_ids(mut self, pad_id: u32, eos_id: Option<u32>) -> Self {
        self.pad_id = pad_id;
        self.eos_id = eos_id.or(self.eos_id);
        self
    }

    /// Token ids of `text`, with the eos id appended when `add_eos` (an error if there is no eos token).
    pub fn encode(&self, text: &str, add_eos: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::msg(format!("tokenizer: encode: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if add_eos {
            ids.push(self.require_eos()?);
        }
        Ok(ids)
    }

    /// Text of `ids`; with `skip_special`, special tokens (pad, eos, unk, sentinels) are dropped first.
    /// Ids past the tokenizer's vocabulary are skipped, as transformers does: T5 models have more output rows
    /// (32128, 250112) than tokens (32100, 250100), so generation can produce them.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| Error::msg(format!("tokenizer: decode: {e}")))
    }

    /// Text of `ids` for the paper's post-processing: special tokens are dropped
    /// (a decoder-only model's `<|im_end|>` or `<|endoftext|>` must not reach a
    /// metric) except the `<extra_id_N>` sentinels, which post-processing reads.
    pub fn decode_for_postprocess(&self, ids: &[u32]) -> Result<String> {
        let added = self.inner.get_added_tokens_decoder();
        let is_sentinel = |t: &str| {
            t.strip_prefix("<extra_id_")
                .and_then(|r| r.strip_suffix('>'))
                .is_some_and(|n| n.parse::<u32>().is_ok())
        };
        let kept: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| added.get(id).is_none_or(|t| !t.special || is_sentinel(&t.content)))
            .collect();
        self.decode(&kept, false)
    }

    /// The padding id (also T5's decoder start id).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The end-of-sequence id, if the vocabulary has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The unknown-token id, if the vocabulary has one.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// Number of ids, added tokens (sentinels) included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string (e.g. `"<extra_id_0>"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Write `dir/tokenizer.json` (and `dir/spiece.model` when loaded from one), creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json_path = dir.join("tokenizer.json");
        let json = self.inner.to_string(true).map_err(|e| Error::file(&json_path, e))?;
        crate::fsio::write_atomic(&json_path, json.as_bytes())?;
        if let Some(bytes) = &self.spiece {
            crate::fsio::write_atomic(&dir.join("spiece.model"), bytes)?;
        }
        Ok(())
    }

    fn require_eos(&self) -> Result<u32> {
        self.eos_id
            .ok_or_else(|| Error::msg("tokenizer: add_eos requested but the vocabulary has no eos token"))
    }
}

/// `extra_ids` from `dir/tokenizer_config.json`; 100 (transformers' default) when the file or key is absent.
fn extra_ids_from_config(dir: &Path) -> Result<usize> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(DEFAULT_EXTRA_IDS);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::file(&path, e))?;
    match json.get("extra_ids") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_EXTRA_IDS),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Error::file(&path, format!("extra_ids must be a non-negative integer, got {v}"))),
    }
}

/// SentencePiece piece types (sentencepiece_model.proto).
const PIECE_UNKNOWN: u64 = 2;
const PIECE_CONTROL: u64 = 3;
const PIECE_USER_DEFINED: u64 = 4;
const MODEL_UNIGRAM: u64 = 1;

/// One vocabulary entry of a SentencePiece model.
struct SpmPiece {
    piece: String,
    score: f32,
    kind: u64,
}

/// The parts of a SentencePiece `ModelProto` a T5 tokenizer needs (defaults as in the .proto).
struct SpmModel {
    pieces: Vec<SpmPiece>,
    model_type: u64,
    byte_fallback: bool,
    unk_id: i64,
    eos_id: i64,
    pad_id: i64,
    precompiled_charsmap: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
}

impl SpmModel {
    fn parse(bytes: &[u8]) -> Result<Self> {
        let mut m = SpmModel {
            pieces: Vec::new(),
            model_type: MODEL_UNIGRAM,
            byte_fallback: false,
            unk_id: 0,
            eos_id: 2,
            pad_id: -1,
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
        };
        let mut r = ProtoReader::new(bytes);
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => m.pieces.push(parse_piece(b)?),
                (2, Value::Bytes(b)) => m.parse_trainer_spec(b)?,
                (3, Value::Bytes(b)) => m.parse_normalizer_spec(b)?,
                _ => {} // self_test_data, denormalizer_spec, unknown fields
            }
        }
        if m.pieces.is_empty() {
            return Err(Error::msg("not a SentencePiece model: no vocabulary pieces"));
        }
        Ok(m)
    }

    fn parse_trainer_spec(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = ProtoReader::new(bytes);
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (3, Value::Varint(v)) => self.model_type = v,
                (35, Value::Varint(v)) => self.byte_fallback = v != 0,
                (40, Value::Varint(v)) => self.unk_id = varint_to_i32(v),
                (42, Value::Varint(v)) => self.eos_id = varint_to_i32(v),
                (43, Value::Varint(v)) => self.pad_id = varint_to_i32(v),
                _ => {}
            }
        }
        Ok(())
    }

    fn parse_normalizer_spec(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = ProtoReader::new(bytes);
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (2, Value::Bytes(b)) => self.precompiled_charsmap = b.to_vec(),
                (3, Value::Varint(v)) => self.add_dummy_prefix = v != 0,
                (4, Value::Varint(v)) => self.remove_extra_whitespaces = v != 0,
                _ => {}
            }
        }
        Ok(())
    }
}

fn parse_piece(bytes: &[u8]) -> Result<SpmPiece> {
    let mut p = SpmPiece {
        piece: String::new(),
        score: 0.0,
        kind: 1,
    };
    let mut r = ProtoReader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                p.piece = String::from_utf8(b.to_vec())
                    .map_err(|_| Error::msg("SentencePiece model: a piece is not valid UTF-8"))?
            }
            (2, Value::Fixed32(bits)) => p.score = f32::from_bits(bits),
            (3, Value::Varint(v)) => p.kind = v,
            _ => {}
        }
    }
    Ok(p)
}

/// int32 fields are sign-extended to 64 bits on the wire; truncating restores the value.
fn varint_to_i32(v: u64) -> i64 {
    v as i32 as i64
}

/// One decoded protobuf field value.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A minimal protobuf wire-format reader: enough to walk messages field by field.
struct ProtoReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ProtoReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn truncated() -> Error {
        Error::msg("not a SentencePiece model: truncated or malformed protobuf")
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or_else(Self::truncated)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Self::truncated())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(Self::truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next (field number, value), or None at the end of the buffer.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(Self::truncated());
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Self::truncated())?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            // 3/4 are deprecated groups, 6/7 do not exist: SentencePiece never writes them.
            _ => return Err(Self::truncated()),
        };
        Ok(Some((field, value)))
    }
}

/// The tokenizers pipeline transformers' T5Tokenizer builds from a SentencePiece model.
fn build_t5_tokenizer(proto: &SpmModel, extra_ids: usize) -> Result<tokenizers::Tokenizer> {
    if proto.model_type != MODEL_UNIGRAM {
        return Err(Error::msg(format!(
            "SentencePiece model type {} is not supported (only unigram models are supported)",
            proto.model_type
        )));
    }
    let mut vocab: Vec<(String, f64)> = proto
        .pieces
        .iter()
        .map(|p| (p.piece.clone(), f64::from(p.score)))
        .collect();
    let has = |vocab: &[(String, f64)], t: &str| vocab.iter().any(|(p, _)| p == t);
    let mut sentinels = Vec::new();
    for i in (0..extra_ids).rev() {
        let token = format!("<extra_id_{i}>");
        if !has(&vocab, &token) {
            vocab.push((token.clone(), 0.0));
        }
        sentinels.push(token);
    }
    let unk_id = usize::try_from(proto.unk_id)
        .ok()
        .filter(|&i| i < proto.pieces.len())
        .ok_or_else(|| Error::msg(format!("SentencePiece model: unk_id {} is not a piece", proto.unk_id)))?;
    let model = Unigram::from(vocab, Some(unk_id), proto.byte_fallback)
        .map_err(|e| Error::msg(format!("SentencePiece model: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(model);

    if !proto.precompiled_charsmap.is_empty() {
        let norm = Precompiled::from(&proto.precompiled_charsmap)
            .map_err(|e| Error::msg(format!("SentencePiece model: bad precompiled_charsmap: {e}")))?;
        tok.with_normalizer(Some(norm));
    }
    let prepend = if proto.add_dummy_prefix {
        PrependScheme::Always
    } else {
        PrependScheme::Never
    };
    let metaspace = Metaspace::new('▁', prepend, true);
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if proto.remove_extra_whitespaces {
        // Splitting on whitespace drops leading, trailing and repeated spaces, as SentencePiece does.
        pre.push(WhitespaceSplit.into());
    }
    pre.push(metaspace.clone().into());
    tok.with_pre_tokenizer(Some(PreTokenizerSequence::new(pre)));
    if proto.byte_fallback {
        let decoders: Vec<DecoderWrapper> = vec![ByteFallback::new().into(), metaspace.into()];
        tok.with_decoder(Some(DecoderSequence::new(decoders)));
    } else {
        tok.with_decoder(Some(metaspace));
    }

    // Control and unknown pieces (<pad>, </s>, <unk>) and the sentinels are special: never split, skippable
    // on decode. User-defined pieces are kept whole but are ordinary text.
    let mut special: Vec<AddedToken> = proto
        .pieces
        .iter()
        .filter(|p| p.kind == PIECE_CONTROL || p.kind == PIECE_UNKNOWN)
        .map(|p| AddedToken::from(p.piece.clone(), true))
        .collect();
    special.extend(sentinels.into_iter().map(|t| AddedToken::from(t, true)));
    tok.add_special_tokens(&special);
    let user: Vec<AddedToken> = proto
        .pieces
        .iter()
        .filter(|p| p.kind == PIECE_USER_DEFINED)
        .map(|p| AddedToken::from(p.piece.clone(), false).normalized(false))
        .collect();
    tok.add_tokens(&user);

    if let Some(eos) = usize::try_from(proto.eos_id).ok().and_then(|i| proto.pieces.get(i)) {
        let eos_id = u32::try_from(proto.eos_id).map_err(|_| Error::msg("SentencePiece model: bad eos_id"))?;
        let template = TemplateProcessing::builder()
            .try_single(format!("$A {}", eos.piece))
            .and_then(|b| b.try_pair(format!("$A {} $B {}", eos.piece, eos.piece)))
            .map_err(|e| Error::msg(format!("SentencePiece model: eos template: {e}")))?
            .special_tokens(vec![(eos.piece.clone(), eos_id)])
            .build()
            .map_err(|e| Error::msg(format!("SentencePiece model: eos template: {e}")))?;
        tok.with_post_processor(Some(template));
    }
    Ok(tok)
}
