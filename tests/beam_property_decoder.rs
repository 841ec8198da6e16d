//! The reference-free beam-search properties of tests/beam_property.rs on the
//! decoder-only family: random tiny Llama / Qwen2-shaped models (grouped-query
//! attention, tied or untied head, biases or none) with peaky logits, and
//! batches of left-aligned inputs of very different lengths.
//!
//! 1. Every returned score is the model's own score of the returned ids:
//!    re-scoring them by teacher forcing (`forward` + log_softmax) gives the
//!    sum of log-probabilities for greedy and that sum over
//!    len^length_penalty for beam search. This catches a KV cache that is
//!    reordered wrongly, positions that drift per row, and bookkeeping that
//!    lets ids diverge from the path that was scored.
//! 2. One input at a time and batched give the same ids and scores (padding
//!    and per-row positions do not leak between rows).

use candle_core::{Device, Tensor, D};
use promot::model::{pad_batch, GenerateOptions, Generation, LanguageModel, Llama, LlamaConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CASES: u64 = 60;

fn random_model(seed: u64) -> (Llama, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vocab = [6usize, 16, 40, 120][rng.random_range(0..4)];
    let kv_heads = rng.random_range(1..=2);
    let heads = kv_heads * rng.random_range(1..=2);
    let head_dim = [2usize, 4, 6][rng.random_range(0..3)];
    let qwen = rng.random_bool(0.5);
    let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({
        "architectures": [if qwen { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": if qwen { "qwen2" } else { "llama" },
        "vocab_size": vocab, "hidden_size": 8 * rng.random_range(1..=2), "intermediate_size": 16,
        "num_hidden_layers": rng.random_range(1..=3), "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": head_dim, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": !qwen,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
    }))
    .unwrap();
    let model = Llama::random(cfg, seed, &Device::Cpu).unwrap();
    // Peaky logits: scale the output projection, and make EOS likelier in some models.
    let gain = [20.0f32, 60.0, 150.0][rng.random_range(0..3)];
    let eos = if rng.random_bool(0.5) { 3.0 } else { 1.0 };
    let name = if qwen {
        "lm_head.weight"
    } else {
        "model.embed_tokens.weight"
    };
    let p = model.params().get(name).unwrap();
    let mut rows = vec![gain; vocab];
    rows[1] *= eos;
    let scale = Tensor::from_vec(rows, (vocab, 1), &Device::Cpu).unwrap();
    p.assign(&p.tensor().broadcast_mul(&scale).unwrap()).unwrap();
    (model, vocab)
}

/// Sum of log-probabilities of each row's ids under teacher forcing.
fn teacher_forced(model: &Llama, embeds: &Tensor, mask: &Tensor, gens: &[Generation]) -> Vec<f32> {
    let seqs: Vec<Vec<u32>> = gens.iter().map(|g| g.ids.clone()).collect();
    let (targets, _) = pad_batch(&seqs, 1, &Device::Cpu).unwrap();
    let logits = model.forward(embeds, mask, &targets, false).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    seqs.iter()
        .enumerate()
        .map(|(i, ids)| ids.iter().enumerate().map(|(t, &k)| logp[i][t][k as usize]).sum())
        .collect()
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * b.abs().max(1.0)
}

#[test]
fn decoder_only_scores_are_teacher_forced_and_rows_are_independent() {
    let mut rows = 0;
    for seed in 0..CASES {
        let (model, vocab) = random_model(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let inputs: Vec<Vec<u32>> = (0..3)
            .map(|_| {
                (0..rng.random_range(1..=9))
                    .map(|_| rng.random_range(2..vocab as u32))
                    .collect()
            })
            .collect();
        let (ids, mask) = pad_batch(&inputs, 1, &Device::Cpu).unwrap();
        let embeds = model.embed(&ids).unwrap();
        let max_new_tokens = rng.random_range(1..=8);
        let length_penalty = [1.0, 0.6, 2.0][rng.random_range(0..3)];
        let early_stopping = rng.random_bool(0.5);
        let opts = |beams| GenerateOptions {
            max_new_tokens,
            num_beams: beams,
            length_penalty,
            early_stopping,
            ..GenerateOptions::default()
        };
        let greedy = model.generate_scored(&embeds, &mask, &opts(1)).unwrap();
        let beams = model.generate_scored(&embeds, &mask, &opts(4)).unwrap();
        let forced_greedy = teacher_forced(&model, &embeds, &mask, &greedy);
        let forced_beams = teacher_forced(&model, &embeds, &mask, &beams);
        for i in 0..inputs.len() {
            assert!(
                close(greedy[i].score, forced_greedy[i]),
                "seed {seed} row {i}: greedy {} vs forced {}",
                greedy[i].score,
                forced_greedy[i]
            );
            let norm = (beams[i].ids.len() as f32).powf(length_penalty as f32);
            assert!(
                close(beams[i].score, forced_beams[i] / norm),
                "seed {seed} row {i}: beam {} vs forced {}",
                beams[i].score,
                forced_beams[i] / norm
            );
            // The same input alone: identical result.
            let (one, one_mask) = pad_batch(&inputs[i..i + 1], 1, &Device::Cpu).unwrap();
            let one = model.embed(&one).unwrap();
            let alone = model.generate_scored(&one, &one_mask, &opts(4)).unwrap();
            assert_eq!(
                alone[0].ids, beams[i].ids,
                "seed {seed} row {i}: batched and alone differ"
            );
            assert!(close(alone[0].score, beams[i].score), "seed {seed} row {i}");
            rows += 1;
        }
    }
    assert!(rows >= 150);
}
