//! The toy world's word-level tokenizer: one id per word any task can emit,
//! built deterministically from the world with the `tokenizers` crate so the
//! rest of promot handles it like any Hugging Face tokenizer.
//!
//! Layout: `<pad>`=0, `</s>`=1, `<unk>`=2, `<sep>`=3 (the demonstration
//! separator), `<extra_id_0>`.. `<extra_id_{N-1}>` (span sentinels), then the
//! words in byte order. Encoding with special tokens appends `</s>` as the paper's encoder-decoder
//! does. Decoding puts one space between words and none before "." "?" ":"
//! ",", which is exactly how the task generators write text, so
//! decode(encode(text)) == text for every generated string.

use std::collections::{BTreeMap, BTreeSet};

use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::wordpiece::WordPiece;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::world::World;
use crate::data::template;
use crate::error::{Error, Result};

/// The padding token (id 0), as in the paper's vocabularies.
pub const PAD_TOKEN: &str = "<pad>";
/// The end-of-sequence token (id 1), as in the paper's vocabularies.
pub const EOS_TOKEN: &str = "</s>";
/// The unknown-word token (id 2).
pub const UNK_TOKEN: &str = "<unk>";
/// The token between demonstrations (id 3); see `toy::DEMO_SEPARATOR`.
pub const SEPARATOR_TOKEN: &str = "<sep>";
/// How many span sentinels (`<extra_id_0>`..) the vocabulary holds.
pub const NUM_SENTINELS: usize = 8;

/// Punctuation marks that are tokens of their own and attach to the word before.
const PUNCTUATION: &[&str] = &[".", "?", ":", ","];

/// Words the toy tasks write besides the paper's templates, label words and
/// language names: the summary sentence, the fresh-rule task's frame, and
/// paraphrases ("the city of zorp is vella.").
const TOY_TEXT: &[&str] = &["the lives in", "Input: Output:", "the of is"];

/// Splits text the way the tokenizer's pre-tokenizer does: on whitespace,
/// with each punctuation mark as a word of its own.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for chunk in text.split_whitespace() {
        let mut current = String::new();
        for c in chunk.chars() {
            if c.is_ascii_punctuation() {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                words.push(c.to_string());
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            words.push(current);
        }
    }
    words
}

/// The words of the fixed task templates.
///
/// These are the literal words of the one template table
/// (`data::template::TEMPLATES`, as currently set), its label words, the
/// language names, the toy world's own frame words and the words of the
/// pretraining mixture's alternate answer formats. Tasks fill the same
/// templates, so the vocabulary always covers them.
pub(crate) fn template_words() -> BTreeSet<String> {
    let mut words: BTreeSet<String> = TOY_TEXT
        .iter()
        .chain([&super::mixture::ALTERNATE_FORMAT_TEXT])
        .flat_map(|t| split_words(t))
        .collect();
    for (name, builtin) in template::TEMPLATES {
        let text = template::template_by_name(name).unwrap_or_else(|_| builtin.to_string());
        words.extend(split_words(&template::literal_text(&text).unwrap_or_default()));
    }
    for (_, labels) in template::LABELS {
        words.extend(labels.iter().map(|(_, word)| word.to_string()));
    }
    words.extend(template::LANGUAGES.iter().map(|(_, name)| name.to_string()));
    words
}

/// The words of a relation phrasing with its `{e}`/`{v}` slots removed.
fn phrasing_words(template: &str) -> Vec<String> {
    split_words(&template.replace("{e}", " ").replace("{v}", " "))
}

impl World {
    /// Every word (and punctuation mark) any task of this world can emit.
    pub fn all_words(&self) -> BTreeSet<String> {
        let mut words = template_words();
        words.extend(PUNCTUATION.iter().map(|p| p.to_string()));
        words.extend(self.entities.iter().cloned());
        for relation in &self.relations {
            words.insert(relation.noun.to_string());
            words.extend(relation.values.iter().cloned());
            let phrasings = [relation.statement, relation.negation];
            for template in phrasings
                .iter()
                .chain(relation.trivia_questions)
                .chain(relation.web_questions)
            {
                words.extend(phrasing_words(template));
            }
        }
        words.extend(self.aliases.values().cloned());
        let g = &self.grammar;
        for list in [&g.determiners, &g.adjectives, &g.nouns, &g.verbs, &g.prepositions] {
            words.extend(list.iter().cloned());
        }
        for language in &self.languages {
            words.insert(language.name.to_string());
            words.extend(language.lexicon.values().cloned());
        }
        for ambiguous in &self.ambiguous_words {
            words.insert(ambiguous.word.to_string());
            words.extend(ambiguous.senses.iter().flatten().map(|w| w.to_string()));
        }
        words.extend(self.wic_verbs.iter().map(|w| w.to_string()));
        words.extend(self.wic_prepositions.iter().map(|w| w.to_string()));
        words.extend(self.label_words.iter().cloned());
        words
    }
}

/// The special tokens in id order.
fn special_tokens() -> Vec<String> {
    let mut tokens: Vec<String> = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, SEPARATOR_TOKEN]
        .iter()
        .map(|t| t.to_string())
        .collect();
    tokens.extend((0..NUM_SENTINELS).map(|i| format!("<extra_id_{i}>")));
    tokens
}

fn tk_err(what: &str) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> Error + '_ {
    move |e| Error::msg(format!("toy tokenizer: {what}: {e}"))
}

/// Builds the word-level tokenizer of `world` (see the module docs).
pub fn build_tokenizer(world: &World) -> Result<Tokenizer> {
    let specials = special_tokens();
    let mut vocab: BTreeMap<String, u32> = BTreeMap::new();
    for token in specials.iter().cloned().chain(world.all_words()) {
        let id = u32::try_from(vocab.len()).map_err(|_| Error::msg("toy tokenizer: vocabulary too large"))?;
        vocab.entry(token).or_insert(id);
    }
    // WordLevel's builder wants a hash map type the crate does not export;
    // its serde form takes a plain JSON object.
    // (from a string: the model borrows strings while deserializing).
    let model_json = serde_json::json!({ "type": "WordLevel", "vocab": vocab, "unk_token": UNK_TOKEN });
    let model: WordLevel = serde_json::from_str(&model_json.to_string())?;

    let mut tokenizer = Tokenizer::new(model);
    let pre_tokenizer = PreTokenizerSequence::new(vec![
        PreTokenizerWrapper::WhitespaceSplit(WhitespaceSplit),
        PreTokenizerWrapper::Punctuation(Punctuation::new(SplitDelimiterBehavior::Isolated)),
    ]);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));

    // WordPiece (with a prefix no word has) puts a space before every token
    // but the first; the Replace steps then glue punctuation to the word before.
    let mut decoders = vec![DecoderWrapper::WordPiece(WordPiece::new("##".to_string(), false))];
    for mark in PUNCTUATION {
        let replace = Replace::new(format!(" {mark}"), *mark).map_err(tk_err("decoder"))?;
        decoders.push(DecoderWrapper::Replace(replace));
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));

    let eos_id = vocab.get(EOS_TOKEN).copied().unwrap_or(1);
    let post = TemplateProcessing::builder()
        .try_single(format!("$A {EOS_TOKEN}"))
        .and_then(|b| b.try_pair(format!("$A {EOS_TOKEN} $B {EOS_TOKEN}")))
        .map_err(|e| Error::msg(format!("toy tokenizer: template: {e}")))?
        .special_tokens(vec![(EOS_TOKEN.to_string(), eos_id)])
        .build()
        .map_err(|e| Error::msg(format!("toy tokenizer: post-processor: {e}")))?;
    tokenizer.with_post_processor(Some(post));

    // The separator stays in decoded text (it is not special); the rest are
    // special so `skip_special_tokens` drops them.
    let special: Vec<AddedToken> = specials
        .iter()
        .filter(|t| t.as_str() != SEPARATOR_TOKEN)
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&[AddedToken::from(SEPARATOR_TOKEN.to_string(), false)]);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in toy model's vocabulary was made from these words; the
    /// words derived from the template table must be exactly them, or its
    /// token ids would shift.
    #[test]
    fn template_words_match_the_built_in_vocabulary() {
        let built_from: &[&str] = &[
            "question: Is it true or false? answer: Is it true or false or neither? answer:",
            "The word is used in the same way in the two sentences. Is it true or False? answer:",
            "True False Neither",
            "Q: A:",
            "Translate English to French: German: Romanian:",
            "Article: One sentence summary: the lives in",
            "Input: Output:",
            "the of is",
            "yes no maybe the answer is. works as a in.",
        ];
        let want: BTreeSet<String> = built_from.iter().flat_map(|t| split_words(t)).collect();
        assert_eq!(template_words(), want);
    }
}
