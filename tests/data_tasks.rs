//! The data layer on the vendored data: readers, the paper's templates on real
//! records, k-shot prompts, budgets, and output post-processing.

use std::path::PathBuf;

use promot::data::fewshot::DEFAULT_SEPARATOR;
use promot::data::template::{
    CB_LABELS, CB_TEMPLATE, QA_TEMPLATE, RTE_LABELS, RTE_TEMPLATE, SUMMARIZATION_TEMPLATE, TRANSLATION_TEMPLATE,
    WIC_LABELS, WIC_TEMPLATE,
};
use promot::data::{
    build_prompt, cut_at_second_prefix, extract_sentinel, fill, first_word, fit_to_budget, language_name, map_label,
    postprocess, read_json_array, read_jsonl, read_lines, read_parallel, sample_demos, template_by_name,
    triviaqa_question, OutputKind, PREFIX_TOKENS,
};
use serde_json::{json, Map, Value};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}

/// A fresh temporary file path, unique per test and process.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("promot-data-{}-{name}", std::process::id()))
}

fn record(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("test record must be an object"),
    }
}

fn str_field<'a>(r: &'a Map<String, Value>, name: &str) -> &'a str {
    r.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("record has no string field {name}"))
}

// ---------------------------------------------------------------- readers

#[test]
fn vendored_files_have_the_documented_sizes() {
    let counts = [
        ("rte/train.jsonl", 2490),
        ("rte/val.jsonl", 277),
        ("cb/val.jsonl", 56),
        ("cb/train32.jsonl", 32),
        ("cb/dev32.jsonl", 32),
        ("wic/val.jsonl", 638),
        ("wic/train32.jsonl", 32),
        ("wic/dev32.jsonl", 32),
        ("triviaqa/sample3000.jsonl", 3000),
        ("xsum/test321.jsonl", 321),
        ("xsum/validation980.jsonl", 980),
    ];
    for (file, n) in counts {
        assert_eq!(read_jsonl(data(file)).unwrap().len(), n, "{file}");
    }
    assert_eq!(read_json_array(data("web_questions/test.json")).unwrap().len(), 2032);
    assert_eq!(read_json_array(data("web_questions/train.json")).unwrap().len(), 2834);
    let pairs = [
        ("wmt14_en_fr/newstest2014", "fr", 3003),
        ("wmt16_en_de/newstest2016", "de", 2999),
        ("wmt16_en_de/newstest2015", "de", 2169),
        ("wmt16_en_ro/newstest2016", "ro", 1999),
        ("wmt16_en_ro/newsdev2016", "ro", 1999),
    ];
    for (stem, tgt, n) in pairs {
        let p = read_parallel(data(&format!("{stem}.en")), data(&format!("{stem}.{tgt}"))).unwrap();
        assert_eq!(p.len(), n, "{stem}");
    }
    let mut train = 0;
    for year in 2009..=2013 {
        let stem = format!("wmt14_en_fr/train/newstest{year}");
        train += read_parallel(data(&format!("{stem}.en")), data(&format!("{stem}.fr")))
            .unwrap()
            .len();
    }
    assert_eq!(train, 14020);
}

#[test]
fn xsum_validation_has_one_record_without_an_article() {
    // The source wrote NaN there; the vendored copy says null (data/SOURCES.md).
    let rows = read_jsonl(data("xsum/validation980.jsonl")).unwrap();
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| !r["document"].is_string())
        .map(|r| str_field(r, "id"))
        .collect();
    assert_eq!(missing, vec!["32556640"]);
    let err = fill(
        SUMMARIZATION_TEMPLATE,
        &record(json!({ "article": rows[219]["document"] })),
    )
    .unwrap_err();
    assert!(err.to_string().contains("'article' is null"), "{err}");
}

#[test]
fn malformed_jsonl_line_names_file_and_line() {
    let path = temp_path("bad.jsonl");
    std::fs::write(&path, "{\"a\": 1}\n\n{\"a\": 2,}\n{\"a\": 3}\n").unwrap();
    let err = read_jsonl(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).ok();
    let expected = format!("{}:3:", path.display());
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("expected a JSON object"), "{err}");
}

#[test]
fn jsonl_line_that_is_not_an_object_is_rejected() {
    let path = temp_path("array.jsonl");
    std::fs::write(&path, "{\"a\": 1}\n[1, 2]\n").unwrap();
    let err = read_jsonl(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).ok();
    assert!(err.contains(":2: expected a JSON object"), "{err}");
}

#[test]
fn jsonl_skips_blank_lines_and_crlf() {
    let path = temp_path("crlf.jsonl");
    std::fs::write(&path, "{\"a\": 1}\r\n\r\n   \n{\"a\": \"x\"}\r\n").unwrap();
    let rows = read_jsonl(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["a"], json!("x"));
}

#[test]
fn malformed_json_array_names_file_and_line() {
    let path = temp_path("bad.json");
    std::fs::write(&path, "[\n {\"q\": \"a\"},\n {\"q\": \"b\"\n]\n").unwrap();
    let err = read_json_array(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).ok();
    assert!(err.contains(&format!("{}:4:", path.display())), "{err}");
}

#[test]
fn missing_file_is_a_file_error() {
    let err = read_jsonl(data("no/such.jsonl")).unwrap_err().to_string();
    assert!(err.ends_with("such.jsonl: no such file"), "{err}");
    let err = read_lines(data("no/such.txt")).unwrap_err().to_string();
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn mismatched_parallel_files_name_both_and_their_counts() {
    let src = temp_path("par.en");
    let tgt = temp_path("par.fr");
    std::fs::write(&src, "one\ntwo\nthree\n").unwrap();
    std::fs::write(&tgt, "un\ndeux\n").unwrap();
    let err = read_parallel(&src, &tgt).unwrap_err().to_string();
    std::fs::remove_file(&src).ok();
    std::fs::remove_file(&tgt).ok();
    assert!(err.contains(&format!("{} has 3 lines", src.display())), "{err}");
    assert!(err.contains(&format!("{} has 2 lines", tgt.display())), "{err}");
}

#[test]
fn read_lines_keeps_empty_lines_for_alignment() {
    let path = temp_path("lines.txt");
    std::fs::write(&path, "a\n\nc\n").unwrap();
    let lines = read_lines(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(lines, vec!["a", "", "c"]);
}

// ---------------------------------------------------------------- templates

#[test]
fn rte_template_on_a_real_example() {
    let rows = read_jsonl(data("rte/val.jsonl")).unwrap();
    let r = &rows[0];
    assert_eq!(
        fill(RTE_TEMPLATE, r).unwrap(),
        "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the \
         Christopher Reeve Foundation. question: Christopher Reeve had an accident. Is it true or false? answer:"
    );
    assert_eq!(map_label(RTE_LABELS, &r["label"]).unwrap(), "False");
}

#[test]
fn cb_template_on_a_real_example() {
    let rows = read_jsonl(data("cb/val.jsonl")).unwrap();
    let r = &rows[0];
    assert_eq!(
        fill(CB_TEMPLATE, r).unwrap(),
        "Valence the void-brain, Valence the virtuous valet. Why couldn't the figger choose his own portion of \
         titanic anatomy to shaft? Did he think he was helping? question: Valence was helping Is it true or false \
         or neither? answer:"
    );
    assert_eq!(map_label(CB_LABELS, &r["label"]).unwrap(), "False");
    assert_eq!(map_label(CB_LABELS, &rows[1]["label"]).unwrap(), "Neither");
}

#[test]
fn wic_template_on_a_real_example() {
    let rows = read_jsonl(data("wic/val.jsonl")).unwrap();
    let r = &rows[0];
    assert_eq!(
        fill(WIC_TEMPLATE, r).unwrap(),
        "An emerging professional class. Apologizing for losing your temper, even though you were badly provoked, \
         showed real class. question: The word class is used in the same way in the two sentences. Is it true or \
         False? answer:"
    );
    // WiC labels are JSON booleans.
    assert_eq!(map_label(WIC_LABELS, &r["label"]).unwrap(), "False");
    assert_eq!(map_label(WIC_LABELS, &json!(true)).unwrap(), "True");
}

#[test]
fn qa_template_on_triviaqa_and_web_questions() {
    let rows = read_jsonl(data("triviaqa/sample3000.jsonl")).unwrap();
    let question = triviaqa_question(str_field(&rows[0], "context")).unwrap();
    let fields = record(json!({ "question": question }));
    assert_eq!(
        fill(QA_TEMPLATE, &fields).unwrap(),
        "Q: Brunswick, Lancastrian and Pearl Pickler are types of which vegetable? A:"
    );

    let rows = read_json_array(data("web_questions/test.json")).unwrap();
    let fields = record(json!({ "question": str_field(&rows[0], "qText") }));
    assert_eq!(
        fill(QA_TEMPLATE, &fields).unwrap(),
        "Q: what does jamaican people speak? A:"
    );
    assert_eq!(
        rows[0]["answers"],
        json!(["Jamaican Creole English Language", "Jamaican English"])
    );
}

#[test]
fn translation_template_on_a_real_example() {
    let pairs = read_parallel(data("wmt14_en_fr/newstest2014.en"), data("wmt14_en_fr/newstest2014.fr")).unwrap();
    let (source, target) = &pairs[0];
    let fields = record(json!({
        "source_language": language_name("en").unwrap(),
        "target_language": language_name("fr").unwrap(),
        "source": source,
    }));
    assert_eq!(
        fill(TRANSLATION_TEMPLATE, &fields).unwrap(),
        "Translate English to French: Spectacular Wingsuit Jump Over Bogota"
    );
    assert_eq!(target, "Spectaculaire saut en \"wingsuit\" au-dessus de Bogota");
}

#[test]
fn summarization_template_on_a_real_example() {
    let rows = read_jsonl(data("xsum/test321.jsonl")).unwrap();
    let r = rows
        .iter()
        .find(|r| r.get("id") == Some(&json!("34775703")))
        .expect("xsum record 34775703");
    let fields = record(json!({ "article": str_field(r, "document") }));
    assert_eq!(
        fill(SUMMARIZATION_TEMPLATE, &fields).unwrap(),
        "Article: The incident happened near Dr Gray's Hospital shortly after 10:00.\nThe man was taken to the \
         hospital with what police said were serious but not life-threatening injuries.\nThe A96 was closed in the \
         area for several hours, but it has since reopened. One sentence summary:"
    );
    assert_eq!(
        str_field(r, "summary"),
        "A cyclist has suffered serious head injuries after a collision with a car in Elgin."
    );
}

#[test]
fn fill_escapes_renders_and_reports() {
    let r = record(json!({ "a": "x", "n": 3, "f": 1.5, "b": true, "z": null, "l": [1] }));
    assert_eq!(fill("{{a}} {a} {n} {f} {b}}}", &r).unwrap(), "{a} x 3 1.5 true}");
    let err = fill("Q: {question} A:", &r).unwrap_err().to_string();
    assert!(err.contains("'question'") && err.contains("Q: {question} A:"), "{err}");
    assert!(fill("{a", &r).unwrap_err().to_string().contains("unclosed"));
    assert!(fill("a}", &r).unwrap_err().to_string().contains("stray"));
    assert!(fill("{}", &r).is_err());
    assert!(fill("{z}", &r).unwrap_err().to_string().contains("null"));
    assert!(fill("{l}", &r).is_err());
    assert_eq!(template_by_name("WiC").unwrap(), WIC_TEMPLATE);
    assert!(template_by_name("wikilingua").is_err());
    assert!(map_label(RTE_LABELS, &json!("neutral"))
        .unwrap_err()
        .to_string()
        .contains("neutral"));
}

// ---------------------------------------------------------------- few-shot

#[test]
fn prompt_joins_demonstrations_then_the_query() {
    let demos = vec![
        ("Q: a? A:".to_string(), "x".to_string()),
        ("Q: b? A:".to_string(), "y".to_string()),
    ];
    assert_eq!(
        build_prompt("Q: c? A:", &demos, DEFAULT_SEPARATOR),
        "Q: a? A: x\n\nQ: b? A: y\n\nQ: c? A:"
    );
    assert_eq!(build_prompt("Q: c? A:", &[], DEFAULT_SEPARATOR), "Q: c? A:");
    assert_eq!(build_prompt("q", &demos[..1], DEFAULT_SEPARATOR), "Q: a? A: x\n\nq");
}

#[test]
fn sampling_is_deterministic_and_never_picks_the_query() {
    let a = sample_demos(277, 4, 7, Some(5)).unwrap();
    assert_eq!(a, sample_demos(277, 4, 7, Some(5)).unwrap());
    assert_ne!(
        a,
        sample_demos(277, 4, 8, Some(5)).unwrap(),
        "another seed should give another draw"
    );
    let mut distinct = a.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4);
    assert!(a.iter().all(|&i| i < 277));

    // A pool of 5 less the query: every draw of 4 is exactly the other four.
    for seed in 0..50 {
        let mut d = sample_demos(5, 4, seed, Some(2)).unwrap();
        d.sort_unstable();
        assert_eq!(d, vec![0, 1, 3, 4]);
    }
    assert!(sample_demos(5, 5, 0, Some(2)).is_err());
    assert!(sample_demos(0, 1, 0, None).is_err());
    assert_eq!(sample_demos(0, 0, 0, None).unwrap(), Vec::<usize>::new());

    // Evaluation draws each query's demonstrations with seed + query index.
    let draw = |q: usize| sample_demos(32, 1, 42 + q as u64, Some(q)).unwrap();
    let mut differs = false;
    for q in 0..32 {
        let d = draw(q);
        assert_eq!(d, draw(q));
        assert!(!d.contains(&q), "query {q} drew itself");
        differs |= d != draw(0);
    }
    assert!(differs, "queries should get their own draws");
}

/// Whitespace words stand in for tokens.
fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn truncate_words(text: &str, n: usize) -> String {
    text.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn words(n: usize, w: &str) -> String {
    vec![w; n].join(" ")
}

#[test]
fn budget_keeps_the_query_and_cuts_the_longest_demo_input_first() {
    let query = words(10, "q");
    let demos = vec![(words(20, "a"), "A".to_string()), (words(50, "b"), "B".to_string())];
    // Whole prompt: 21 + 51 + 10 = 82 words; 72 allowed: b's input loses 10.
    let fitted = fit_to_budget(&demos, &query, " ", 72, 5, &count_words, &truncate_words).unwrap();
    assert_eq!(
        fitted,
        vec![(words(20, "a"), "A".to_string()), (words(40, "b"), "B".to_string())]
    );
    let prompt = build_prompt(&query, &fitted, " ");
    assert!(prompt.ends_with(&query));
    assert_eq!(count_words(&prompt), 72);
}

#[test]
fn budget_drops_demos_from_the_front_once_inputs_are_at_their_floor() {
    let query = words(30, "q");
    let demos = vec![
        (words(20, "a"), "A".to_string()),
        (words(20, "b"), "B".to_string()),
        (words(20, "c"), "C".to_string()),
    ];
    // Inputs can shrink to 5 words (6 per demo): 3 demos need 48; 45 allows 2.
    let fitted = fit_to_budget(&demos, &query, " ", 45, 5, &count_words, &truncate_words).unwrap();
    assert_eq!(fitted.len(), 2);
    assert_eq!(fitted[0].1, "B");
    assert_eq!(fitted[1].1, "C");
    assert!(count_words(&build_prompt(&query, &fitted, " ")) <= 45);
    assert!(build_prompt(&query, &fitted, " ").ends_with(&query));

    // Room for the query only.
    let fitted = fit_to_budget(&demos, &query, " ", 30, 5, &count_words, &truncate_words).unwrap();
    assert!(fitted.is_empty());
    // Not even that.
    let err = fit_to_budget(&demos, &query, " ", 29, 5, &count_words, &truncate_words).unwrap_err();
    assert!(err.to_string().contains("query alone is 30 tokens"), "{err}");
}

#[test]
fn budget_survives_a_truncate_that_cannot_shorten() {
    let stubborn = |text: &str, _n: usize| text.to_string();
    let demos = vec![(words(20, "a"), "A".to_string())];
    let fitted = fit_to_budget(&demos, "q", " ", 5, 1, &count_words, &stubborn).unwrap();
    assert!(fitted.is_empty());
}

// ---------------------------------------------------------------- post-processing

#[test]
fn sentinel_extraction() {
    assert_eq!(extract_sentinel("<extra_id_0> Paris <extra_id_1> rest"), "Paris");
    assert_eq!(extract_sentinel("<pad> <extra_id_0> Paris"), "Paris");
    assert_eq!(
        extract_sentinel("noise <extra_id_0>Le chat.<extra_id_1>x<extra_id_2>"),
        "Le chat."
    );
    // A later sentinel than 1 also ends the span.
    assert_eq!(extract_sentinel("<extra_id_0> a <extra_id_7> b"), "a");
    assert_eq!(extract_sentinel("no sentinels here"), "no sentinels here");
    assert_eq!(extract_sentinel("before <extra_id_1> after"), "before");
    // A broken marker is just text.
    assert_eq!(extract_sentinel("<extra_id_0> a <extra_id_x> b"), "a <extra_id_x> b");
}

#[test]
fn prefix_cut_counts_the_query_prefix_as_the_first() {
    // The output continues the pattern: the next example's prefix is the second.
    assert_eq!(
        cut_at_second_prefix("Paris Q: What is the capital of Spain? A: Madrid", PREFIX_TOKENS),
        "Paris"
    );
    assert_eq!(
        cut_at_second_prefix("Le chat. Translate English to French: The dog.", PREFIX_TOKENS),
        "Le chat."
    );
    assert_eq!(
        cut_at_second_prefix("A short summary. Article: more", PREFIX_TOKENS),
        "A short summary."
    );
    // The output restates a prefix first: that one is the first, cut at the next.
    assert_eq!(
        cut_at_second_prefix(
            "Q: capital of France? A: Paris Q: capital of Spain? A: Madrid",
            PREFIX_TOKENS
        ),
        "Q: capital of France? A: Paris"
    );
    assert_eq!(
        cut_at_second_prefix("  Translate x Translate y", PREFIX_TOKENS),
        "Translate x"
    );
    // No prefix at all: the whole (trimmed) text.
    assert_eq!(cut_at_second_prefix("  Madrid  ", PREFIX_TOKENS), "Madrid");
    // Only whole tokens count.
    assert_eq!(
        cut_at_second_prefix("See the FAQ: it was Translated", PREFIX_TOKENS),
        "See the FAQ: it was Translated"
    );
    // Earliest of mixed prefixes wins.
    assert_eq!(cut_at_second_prefix("x Article: y Q: z", PREFIX_TOKENS), "x");
}

#[test]
fn first_word_strips_punctuation() {
    assert_eq!(first_word("True."), "True");
    assert_eq!(first_word("  \"False\", because"), "False");
    assert_eq!(first_word("Neither"), "Neither");
    assert_eq!(first_word("   "), "");
}

#[test]
fn postprocess_applies_the_rules_in_order() {
    let raw = "<pad> <extra_id_0> True. Q: is it? A: False <extra_id_1></s>";
    assert_eq!(postprocess(raw, OutputKind::Classification), "True");
    assert_eq!(postprocess(raw, OutputKind::Generation), "True.");
    let raw = "<pad><extra_id_0> Un saut spectaculaire Translate English to French: x</s>";
    assert_eq!(postprocess(raw, OutputKind::Generation), "Un saut spectaculaire");
    assert_eq!(postprocess("", OutputKind::Classification), "");
    assert_eq!(OutputKind::from_name("Generation").unwrap(), OutputKind::Generation);
    assert!(OutputKind::from_name("ranking").is_err());
}
