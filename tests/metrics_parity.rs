//! Parity of promot's metrics with the reference tools (sacrebleu, rouge-score,
//! SQuAD normalisation). Expected values were written by
//! tests/fixtures/make_metric_fixtures.py into tests/fixtures/metrics/*.json.

use promot::metrics::{
    accuracy, corpus_bleu, exact_match, exact_match_score, first_word, label_share, mean_rouge2_f, normalize_answer,
    rouge2, sentence_bleu, tokenize_13a, BleuScore,
};
use serde::Deserialize;

const BLEU_TOLERANCE: f64 = 0.01;
const ROUGE_TOLERANCE: f64 = 1e-6;

fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/metrics/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_has_cases(names: &[&str], required: &[&str]) {
    for name in required {
        assert!(names.contains(name), "fixture case {name:?} missing");
    }
}

// ---------------------------------------------------------------- BLEU

#[derive(Deserialize)]
struct ExpectedBleu {
    score: f64,
    precisions: Vec<f64>,
    bp: f64,
    sys_len: usize,
    ref_len: usize,
    counts: Vec<usize>,
    totals: Vec<usize>,
}

#[derive(Deserialize)]
struct TokenizeCase {
    input: String,
    expected: String,
}

#[derive(Deserialize)]
struct CorpusCase {
    name: String,
    hyps: Vec<String>,
    refs: Vec<Vec<String>>,
    expected: ExpectedBleu,
}

#[derive(Deserialize)]
struct SentenceCase {
    name: String,
    hyp: String,
    refs: Vec<String>,
    expected: ExpectedBleu,
}

#[derive(Deserialize)]
struct BleuFixture {
    tokenize_13a: Vec<TokenizeCase>,
    corpus: Vec<CorpusCase>,
    sentence: Vec<SentenceCase>,
}

fn check_bleu(name: &str, got: &BleuScore, want: &ExpectedBleu) {
    let close = |a: f64, b: f64| (a - b).abs() <= BLEU_TOLERANCE;
    assert!(
        close(got.score, want.score),
        "{name}: score {} vs sacrebleu {}",
        got.score,
        want.score
    );
    assert_eq!(want.precisions.len(), 4, "{name}: fixture precisions");
    for (n, (g, w)) in got.precisions.iter().zip(&want.precisions).enumerate() {
        assert!(close(*g, *w), "{name}: precision {} is {g} vs sacrebleu {w}", n + 1);
    }
    assert!((got.bp - want.bp).abs() <= 1e-9, "{name}: bp {} vs {}", got.bp, want.bp);
    assert_eq!(got.sys_len, want.sys_len, "{name}: sys_len");
    assert_eq!(got.ref_len, want.ref_len, "{name}: ref_len");
    assert_eq!(got.counts.to_vec(), want.counts, "{name}: counts");
    assert_eq!(got.totals.to_vec(), want.totals, "{name}: totals");
}

#[test]
fn tokenize_13a_matches_sacrebleu() {
    let fixture: BleuFixture = load("bleu.json");
    assert!(fixture.tokenize_13a.len() >= 15);
    for case in &fixture.tokenize_13a {
        assert_eq!(tokenize_13a(&case.input), case.expected, "input {:?}", case.input);
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let fixture: BleuFixture = load("bleu.json");
    let names: Vec<&str> = fixture.corpus.iter().map(|c| c.name.as_str()).collect();
    assert_has_cases(
        &names,
        &[
            "acceptance_cat",
            "single_hypothesis",
            "identical",
            "empty_hypothesis_in_corpus",
            "empty_hypothesis_only",
            "empty_reference",
            "empty_both",
            "empty_reference_among_several",
            "no_match",
            "short_no_4grams",
            "unicode_german_romanian",
            "unicode_cjk_emoji",
            "heavy_punctuation",
            "numbers_commas_periods",
            "hyphens",
            "entities_and_markup",
            "odd_whitespace",
            "very_long_lines",
            "multi_reference_varying_counts",
            "multi_reference_tie_shorter",
            "wmt16_de_perturbed",
        ],
    );
    for case in &fixture.corpus {
        let got = corpus_bleu(&case.hyps, &case.refs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        check_bleu(&case.name, &got, &case.expected);
    }
    let wmt = fixture.corpus.iter().find(|c| c.name == "wmt16_de_perturbed");
    assert!(wmt.is_some_and(|c| c.hyps.len() >= 50), "wmt16 case needs ~50 pairs");
    let long = fixture.corpus.iter().find(|c| c.name == "very_long_lines");
    assert!(long.is_some_and(|c| c.hyps.iter().all(|h| h.chars().count() > 2000)));
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let fixture: BleuFixture = load("bleu.json");
    assert!(fixture.sentence.len() >= 10);
    for case in &fixture.sentence {
        let got = sentence_bleu(&case.hyp, &case.refs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        check_bleu(&case.name, &got, &case.expected);
    }
}

#[test]
fn acceptance_example_matches_recorded_value() {
    let fixture: BleuFixture = load("bleu.json");
    let recorded = fixture
        .corpus
        .iter()
        .find(|c| c.name == "acceptance_cat")
        .map(|c| c.expected.score);
    let hyps = vec!["the cat sat on the mat".to_string()];
    let refs = vec![vec!["the cat is on the mat".to_string()]];
    let got = corpus_bleu(&hyps, &refs).unwrap_or_else(|e| panic!("{e}"));
    let recorded = recorded.unwrap_or_else(|| panic!("acceptance_cat missing from bleu.json"));
    assert!(
        (got.score - recorded).abs() <= BLEU_TOLERANCE,
        "{} vs sacrebleu {recorded}",
        got.score
    );
    // Sanity on the recorded value itself: 5/6, 3/5, 1/4, 0/3 (exp-smoothed), no penalty.
    assert!((recorded - 37.99).abs() < 0.01, "unexpected recorded value {recorded}");
}

#[test]
fn bleu_rejects_bad_shapes() {
    let one = vec!["a b c".to_string()];
    assert!(corpus_bleu(&one, &[]).is_err());
    assert!(corpus_bleu(&[], &[]).is_err());
    assert!(corpus_bleu(&one, &[vec![]]).is_err());
    assert!(corpus_bleu(&one, &[vec!["a".into()], vec!["b".into()]]).is_err());
    assert!(sentence_bleu("a", &[]).is_err());
}

// ---------------------------------------------------------------- ROUGE-2

#[derive(Deserialize)]
struct ExpectedRouge {
    precision: f64,
    recall: f64,
    fmeasure: f64,
}

#[derive(Deserialize)]
struct RougeCase {
    name: String,
    hyp: String,
    #[serde(rename = "ref")]
    reference: String,
    expected: ExpectedRouge,
}

#[derive(Deserialize)]
struct RougeFixture {
    cases: Vec<RougeCase>,
    mean_fmeasure: f64,
}

#[test]
fn rouge2_matches_rouge_score() {
    let fixture: RougeFixture = load("rouge.json");
    let names: Vec<&str> = fixture.cases.iter().map(|c| c.name.as_str()).collect();
    assert_has_cases(
        &names,
        &[
            "empty_hypothesis",
            "empty_reference",
            "empty_both",
            "identical",
            "repeated_bigrams",
            "case_and_punctuation",
            "unicode_german",
            "unicode_romanian",
            "unicode_cjk_emoji",
            "lowercase_to_ascii",
            "numbers",
            "hyphens_underscores",
            "very_long",
            "xsum_0",
            "xsum_29",
        ],
    );
    for case in &fixture.cases {
        let got = rouge2(&case.hyp, &case.reference);
        let want = &case.expected;
        for (what, g, w) in [
            ("precision", got.precision, want.precision),
            ("recall", got.recall, want.recall),
            ("fmeasure", got.fmeasure, want.fmeasure),
        ] {
            assert!(
                (g - w).abs() <= ROUGE_TOLERANCE,
                "{}: {what} {g} vs rouge-score {w}",
                case.name
            );
        }
    }
    let hyps: Vec<String> = fixture.cases.iter().map(|c| c.hyp.clone()).collect();
    let refs: Vec<String> = fixture.cases.iter().map(|c| c.reference.clone()).collect();
    let mean = mean_rouge2_f(&hyps, &refs).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (mean - fixture.mean_fmeasure).abs() <= ROUGE_TOLERANCE,
        "mean {mean} vs {}",
        fixture.mean_fmeasure
    );
    assert!(mean_rouge2_f(&hyps, &refs[1..]).is_err());
    assert!(mean_rouge2_f(&[], &[]).is_err());
}

// ---------------------------------------------------------------- exact match

#[derive(Deserialize)]
struct EmCase {
    name: String,
    prediction: String,
    aliases: Vec<String>,
    normalized_prediction: String,
    expected: bool,
}

#[derive(Deserialize)]
struct EmFixture {
    cases: Vec<EmCase>,
    score: f64,
}

#[test]
fn exact_match_matches_squad_normalisation() {
    let fixture: EmFixture = load("exact_match.json");
    let names: Vec<&str> = fixture.cases.iter().map(|c| c.name.as_str()).collect();
    assert_has_cases(
        &names,
        &[
            "empty_prediction",
            "empty_alias",
            "only_articles",
            "articles_inside_words",
            "articles_adjacent_unicode",
            "punctuation_heavy",
            "unicode_punctuation_kept",
            "numbers",
            "hyphen_joins",
            "whitespace_kinds",
            "case_unicode",
            "cjk_emoji",
            "wrong_answer",
            "triviaqa_0",
            "triviaqa_39",
        ],
    );
    for case in &fixture.cases {
        assert_eq!(
            normalize_answer(&case.prediction),
            case.normalized_prediction,
            "{}: normalised",
            case.name
        );
        assert_eq!(
            exact_match(&case.prediction, &case.aliases),
            case.expected,
            "{}: match",
            case.name
        );
    }
    let preds: Vec<String> = fixture.cases.iter().map(|c| c.prediction.clone()).collect();
    let aliases: Vec<Vec<String>> = fixture.cases.iter().map(|c| c.aliases.clone()).collect();
    let score = exact_match_score(&preds, &aliases).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (score - fixture.score).abs() < 1e-9,
        "score {score} vs {}",
        fixture.score
    );
    assert!(exact_match_score(&preds, &aliases[1..]).is_err());
    assert!(exact_match_score(&[], &[]).is_err());
}

// ---------------------------------------------------------------- classification

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn first_word_reads_the_label() {
    assert_eq!(first_word("True"), "True");
    assert_eq!(first_word(" False, because the premise says so"), "False");
    assert_eq!(first_word("Neither."), "Neither");
    assert_eq!(first_word("\"True\""), "True");
    assert_eq!(first_word(""), "");
    assert_eq!(first_word("true"), "true");
}

#[test]
fn accuracy_compares_first_word_case_sensitively() {
    let preds = strings(&["True.", "false", "Neither of them", "False", "Maybe True"]);
    let labels = strings(&["True", "False", "Neither", "False", "True"]);
    let acc = accuracy(&preds, &labels).unwrap_or_else(|e| panic!("{e}"));
    assert!((acc - 60.0).abs() < 1e-12, "accuracy {acc}");
    assert!(accuracy(&preds, &labels[1..]).is_err());
    assert!(accuracy(&[], &[]).is_err());
}

#[test]
fn label_share_counts_classification_format_outputs() {
    let set = strings(&["True", "False"]);
    let outputs = strings(&["True", "Paris", "False.", "the Beatles", "True story", "Truely"]);
    assert!((label_share(&outputs, &set) - 0.5).abs() < 1e-12);
    assert_eq!(label_share(&[], &set), 0.0);
    assert_eq!(label_share(&outputs, &[]), 0.0);
}
