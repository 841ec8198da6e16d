//! Our tokenizer against transformers' T5Tokenizer on the committed fixtures
//! (tests/fixtures/make_t5_fixtures.py records HF's ids and decodes).

mod common;

use std::path::PathBuf;

use common::fixtures::{fixtures, reference_json as reference};
use promot::tokenizer::Tokenizer;

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A fresh empty scratch directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-tokenizer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check_against_reference(tok: &Tokenizer, model: &str, how: &str) {
    let r = reference(model);
    assert_eq!(
        tok.vocab_size(),
        r["vocab_size"].as_u64().unwrap() as usize,
        "{model} {how}: vocab size"
    );
    assert_eq!(tok.pad_id(), r["pad_id"].as_u64().unwrap() as u32);
    assert_eq!(tok.eos_id(), Some(r["eos_id"].as_u64().unwrap() as u32));
    assert_eq!(tok.unk_id(), Some(r["unk_id"].as_u64().unwrap() as u32));
    assert_eq!(
        tok.token_to_id("<extra_id_0>"),
        Some(r["extra_id_0"].as_u64().unwrap() as u32)
    );
    assert_eq!(
        tok.id_to_token(r["extra_id_0"].as_u64().unwrap() as u32).as_deref(),
        Some("<extra_id_0>")
    );

    let cases = r["tokenizer_cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    let mut texts = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids_of(&case["ids"]);
        let got = tok.encode(text, true).unwrap();
        assert_eq!(got, want, "{model} {how}: encode {text:?}");
        let without_eos = tok.encode(text, false).unwrap();
        assert_eq!(
            without_eos[..],
            want[..want.len() - 1],
            "{model} {how}: encode without eos {text:?}"
        );
        let skip = tok.decode(&want, true).unwrap();
        assert_eq!(
            skip,
            case["decoded_skip_special"].as_str().unwrap(),
            "{model} {how}: decode {text:?}"
        );
        let full = tok.decode(&want, false).unwrap();
        assert_eq!(
            full,
            case["decoded"].as_str().unwrap(),
            "{model} {how}: decode with specials {text:?}"
        );
        texts.push(text);
    }

    // The model inputs recorded with the forward references are the same tokenization.
    let inputs: Vec<&str> = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let greedy = r["greedy_single_text"].as_array().unwrap();
    for (i, seq) in r["greedy_single_ids"].as_array().unwrap().iter().enumerate() {
        let text = tok.decode(&ids_of(seq), true).unwrap();
        assert_eq!(
            text,
            greedy[i].as_str().unwrap(),
            "{model} {how}: decode of greedy output {i}"
        );
    }
    assert_eq!(inputs.len(), 3);
}

#[test]
fn mt5_from_spiece_model_matches_transformers() {
    let dir = fixtures().join("tiny-mt5");
    assert!(
        !dir.join("tokenizer.json").exists(),
        "tiny-mt5 must ship spiece.model only"
    );
    let tok = Tokenizer::from_dir(&dir).unwrap();
    check_against_reference(&tok, "tiny-mt5", "from_dir(spiece.model)");
}

#[test]
fn t5_from_tokenizer_json_matches_transformers() {
    let dir = fixtures().join("tiny-t5");
    let tok = Tokenizer::from_dir(&dir).unwrap();
    check_against_reference(&tok, "tiny-t5", "from_dir(tokenizer.json)");
    let tok = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    check_against_reference(&tok, "tiny-t5", "from_file(tokenizer.json)");
}

#[test]
fn t5_from_spiece_model_matches_transformers() {
    let tok = Tokenizer::from_file(&fixtures().join("tiny-t5/spiece.model")).unwrap();
    check_against_reference(&tok, "tiny-t5", "from_file(spiece.model)");
}

#[test]
fn saved_spiece_tokenizer_reloads_identically() {
    let tok = Tokenizer::from_dir(&fixtures().join("tiny-mt5")).unwrap();
    let out = scratch_dir("save");
    tok.save(&out).unwrap();
    assert!(out.join("tokenizer.json").is_file());
    let original = std::fs::read(fixtures().join("tiny-mt5/spiece.model")).unwrap();
    assert_eq!(
        std::fs::read(out.join("spiece.model")).unwrap(),
        original,
        "spiece.model copied along"
    );
    let reloaded = Tokenizer::from_dir(&out).unwrap();
    check_against_reference(&reloaded, "tiny-mt5", "saved and reloaded tokenizer.json");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn extra_ids_default_to_100_without_a_config() {
    let dir = scratch_dir("noconfig");
    std::fs::copy(fixtures().join("spiece.model"), dir.join("spiece.model")).unwrap();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 800 + 100);
    assert_eq!(tok.token_to_id("<extra_id_0>"), Some(899));
    assert_eq!(tok.token_to_id("<extra_id_99>"), Some(800));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_or_truncated_spiece_model_is_an_error() {
    let dir = scratch_dir("garbage");
    let path = dir.join("spiece.model");
    let real = std::fs::read(fixtures().join("spiece.model")).unwrap();
    let bad_inputs: Vec<Vec<u8>> = vec![
        b"this is not a sentencepiece model at all\n".to_vec(),
        Vec::new(),
        vec![0xff; 64],
        real[..real.len() / 2].to_vec(),
        real[..7].to_vec(),
    ];
    for (i, bytes) in bad_inputs.iter().enumerate() {
        std::fs::write(&path, bytes).unwrap();
        let err = Tokenizer::from_dir(&dir)
            .err()
            .unwrap_or_else(|| panic!("bad input {i} loaded"));
        let msg = err.to_string();
        assert!(msg.contains("spiece.model"), "error names the file: {msg}");
    }
    std::fs::write(dir.join("tokenizer.json"), b"{ not json").unwrap();
    assert!(Tokenizer::from_dir(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(Tokenizer::from_dir(&dir).is_err(), "missing directory");
}

#[test]
fn ids_past_the_vocabulary_are_skipped_and_missing_eos_is_an_error() {
    let tok = Tokenizer::from_dir(&fixtures().join("tiny-mt5")).unwrap();
    let ids = tok.encode("Hello world", false).unwrap();
    let mut with_extra = ids.clone();
    with_extra.insert(1, 100_000);
    with_extra.push(810);
    assert_eq!(tok.decode(&with_extra, true).unwrap(), tok.decode(&ids, true).unwrap());
    assert_eq!(tok.decode(&ids, true).unwrap(), "Hello world");

    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    let vocab = [("<pad>", 0u32), ("<unk>", 1), ("hello", 2), ("world", 3)]
        .iter()
        .map(|(t, i)| (t.to_string(), *i))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(WhitespaceSplit));
    let tok = Tokenizer::from_tokenizers(inner);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.unk_id(), Some(1));
    assert_eq!(tok.eos_id(), None);
    assert_eq!(tok.encode("hello there world", false).unwrap(), vec![2, 1, 3]);
    assert!(tok.encode("hello", true).is_err(), "add_eos without an eos token");
}
