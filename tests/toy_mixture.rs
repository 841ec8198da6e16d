//! Tests of the toy model's pretraining mixture (`toy::mixture`): task
//! weights, one answer format per episode, and a vocabulary that covers the
//! alternate formats.

use std::collections::BTreeMap;

use promot::toy::mixture::{alternate_target, Mixture, MixtureOptions, ALTERNATE_FORMAT_RATE, TASK_WEIGHTS};
use promot::toy::{build_tokenizer, TaskKind, World, DEFAULT_WORLD_SEED, DEMO_SEPARATOR};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn world() -> World {
    World::new(DEFAULT_WORLD_SEED).expect("world")
}

/// The labels of a classification episode: the last word of each
/// demonstration (`input + " " + target`), then the query's target.
fn classification_answers(input: &str, target: &str) -> Vec<String> {
    let parts: Vec<&str> = input.split(DEMO_SEPARATOR).collect();
    let demos = &parts[..parts.len() - 1];
    let mut answers: Vec<String> = demos
        .iter()
        .map(|d| d.rsplit(' ').next().unwrap().to_string())
        .collect();
    answers.push(target.to_string());
    answers
}

#[test]
fn tasks_follow_their_weights() {
    let w = world();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 3000;
    let mut counts: BTreeMap<TaskKind, usize> = BTreeMap::new();
    for _ in 0..n {
        let (task, _) = w.pretrain_episode(&mut rng, 0).unwrap();
        *counts.entry(task).or_default() += 1;
    }
    let total: u32 = TASK_WEIGHTS.iter().map(|(_, w)| w).sum();
    for (task, weight) in TASK_WEIGHTS {
        let share = counts.get(&task).copied().unwrap_or(0) as f64 / n as f64;
        let expected = f64::from(weight) / f64::from(total);
        assert!(
            (share - expected).abs() < 0.025,
            "{}: {share:.3} against {expected:.3}",
            task.name()
        );
    }
}

#[test]
fn an_episode_answers_in_one_format() {
    let w = world();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let paper = ["True", "False", "Neither"];
    let alternate = ["yes", "no", "maybe"];
    let (mut paper_episodes, mut alternate_episodes) = (0, 0);
    for _ in 0..2000 {
        let (task, e) = w.pretrain_episode(&mut rng, 4).unwrap();
        if task.label_set().is_none() {
            continue;
        }
        let answers = classification_answers(&e.input, &e.target);
        if answers.iter().all(|a| paper.contains(&a.as_str())) {
            paper_episodes += 1;
        } else if answers.iter().all(|a| alternate.contains(&a.as_str())) {
            alternate_episodes += 1;
        } else {
            panic!("mixed formats in one episode: {answers:?}\n{}", e.input);
        }
    }
    let share = f64::from(alternate_episodes) / f64::from(paper_episodes + alternate_episodes);
    assert!(
        (share - ALTERNATE_FORMAT_RATE).abs() < 0.05,
        "alternate share {share:.3}"
    );
}

#[test]
fn alternate_formats_keep_the_answer() {
    assert_eq!(alternate_target(TaskKind::Rte, "True").unwrap().unwrap(), "yes");
    assert_eq!(alternate_target(TaskKind::Cb, "Neither").unwrap().unwrap(), "maybe");
    assert_eq!(alternate_target(TaskKind::Wic, "False").unwrap().unwrap(), "no");
    assert_eq!(
        alternate_target(TaskKind::TriviaQa, "vella").unwrap().unwrap(),
        "the answer is vella."
    );
    assert_eq!(
        alternate_target(TaskKind::Xsum, "the pilot zorp lives in vella.")
            .unwrap()
            .unwrap(),
        "zorp works as a pilot in vella."
    );
    assert_eq!(alternate_target(TaskKind::EnFr, "snyp qop.").unwrap(), None);
    assert_eq!(alternate_target(TaskKind::FreshRule, "qop").unwrap(), None);
    assert!(alternate_target(TaskKind::Rte, "maybe").is_err());
    assert!(alternate_target(TaskKind::Xsum, "zorp lives in vella.").is_err());
}

#[test]
fn the_vocabulary_covers_every_pretraining_episode() {
    let w = world();
    let tok = build_tokenizer(&w).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..1500 {
        let (_, e) = w.pretrain_episode(&mut rng, 4).unwrap();
        for text in [&e.input, &e.target] {
            let ids = tok.encode(text.as_str(), true).unwrap().get_ids().to_vec();
            assert!(!ids.contains(&2), "unknown word in: {text}");
            assert_eq!(&tok.decode(&ids, true).unwrap(), text);
        }
    }
}

#[test]
fn options_restrict_tasks_and_shots() {
    let w = world();
    let options = MixtureOptions {
        tasks: vec!["rte".into(), "wic".into()],
        k_min: 2,
        k_max: 3,
        alternate_format_rate: 0.0,
    };
    let mixture = Mixture::new(&options).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut seen = BTreeMap::new();
    for _ in 0..400 {
        let (task, e) = w.mixture_episode(&mixture, &mut rng).unwrap();
        assert!(matches!(task, TaskKind::Rte | TaskKind::Wic), "{task:?}");
        let k = e.input.matches(DEMO_SEPARATOR).count();
        assert!((2..=3).contains(&k), "k = {k}");
        let answers = classification_answers(&e.input, &e.target);
        assert!(answers.iter().all(|a| a == "True" || a == "False"), "{answers:?}");
        *seen.entry((task, k)).or_insert(0) += 1;
    }
    // Both tasks (equal weights) and both shot counts occur.
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn bad_options_are_errors() {
    let bad = |o: MixtureOptions| Mixture::new(&o).unwrap_err().to_string();
    let d = MixtureOptions::default;
    assert!(bad(MixtureOptions {
        tasks: vec!["mnli".into()],
        ..d()
    })
    .contains("unknown toy task 'mnli'"));
    assert!(bad(MixtureOptions {
        k_min: 3,
        k_max: 1,
        ..d()
    })
    .contains("k_min (3) is larger than k_max (1)"));
    assert!(bad(MixtureOptions {
        alternate_format_rate: 1.5,
        ..d()
    })
    .contains("alternate_format_rate"));
}

#[test]
fn the_default_options_are_the_default_mixture() {
    let w = world();
    let mixture = Mixture::new(&MixtureOptions::default()).unwrap();
    let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(5), ChaCha8Rng::seed_from_u64(5));
    for _ in 0..50 {
        assert_eq!(
            w.mixture_episode(&mixture, &mut a).unwrap(),
            w.pretrain_episode(&mut b, 4).unwrap()
        );
    }
}
