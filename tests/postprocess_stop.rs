//! Property: evaluation may stop generating once `is_final` holds, because no
//! continuation (without an `<extra_id_0>` sentinel, which decoder-only models
//! do not emit) changes the post-processed answer. Random texts are built
//! from fragments that exercise every rule: prefix tokens and their
//! look-alikes ("Translated", "FAQ:"), whitespace of both kinds, punctuation,
//! special tokens and later sentinels.

use promot::data::postprocess::{is_final, postprocess, OutputKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FRAGMENTS: &[&str] = &[
    "Q:",
    "Q",
    ":",
    "Translate",
    "Translated",
    "Transl",
    "ate",
    "Article:",
    "Article",
    "FAQ:",
    "A:",
    " ",
    "  ",
    "\n",
    "\t",
    "\u{1f}",
    "True",
    "False",
    "Neither",
    "true",
    ".",
    ",",
    "!",
    "x",
    "Hamilton",
    "é",
    "42",
    "</s>",
    "<pad>",
    "<extra_id_1>",
    "<",
    ">",
];

fn text(rng: &mut ChaCha8Rng, max: usize) -> String {
    (0..rng.random_range(0..=max))
        .map(|_| FRAGMENTS[rng.random_range(0..FRAGMENTS.len())])
        .collect()
}

#[test]
fn a_final_answer_never_changes_with_more_text() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut finals = [0usize; 2];
    for case in 0..200_000 {
        let head = text(&mut rng, 8);
        for (i, kind) in [OutputKind::Classification, OutputKind::Generation]
            .into_iter()
            .enumerate()
        {
            if !is_final(&head, kind) {
                continue;
            }
            finals[i] += 1;
            let full = format!("{head}{}", text(&mut rng, 8));
            assert_eq!(
                postprocess(&head, kind),
                postprocess(&full, kind),
                "case {case} ({kind:?}): {head:?} was final, but {full:?} post-processes differently"
            );
        }
    }
    // The rule must also fire, or stopping would never save anything.
    assert!(finals.iter().all(|&n| n > 5_000), "too few final texts: {finals:?}");
}

#[test]
fn typical_outputs_are_final_where_expected() {
    use OutputKind::*;
    assert!(is_final("True\n", Classification));
    assert!(!is_final("True", Classification), "the word may go on");
    assert!(is_final(" Paris\n\nQ: what", Generation));
    assert!(
        !is_final(" Paris\n\nTranslate", Generation),
        "it may become 'Translated'"
    );
    assert!(is_final(" Paris\n\nTranslate ", Generation));
    assert!(
        !is_final("Q: restated", Generation),
        "a prefix at the start is the query's"
    );
    assert!(!is_final("Paris <", Generation), "a special token may be forming");
}
