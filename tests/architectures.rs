//! Every architecture of the model spec against what transformers computes for a tiny
//! random model of it (`tests/data/architectures/generate.py`, transformers 5.24): the
//! hidden states entering the first layer, q and k around every layer's rotary (and no
//! rotary where transformers calls none), and the logits of a recorded final hidden
//! state. Each model is loaded through the public API alone (`load_hf_dir`).
//!
//! Tolerance: 1e-5 of the largest value of each compared tensor (f32 fixtures;
//! transformers computes RoPE angles in f32, tokenloom in f64).

use std::path::{Path, PathBuf};

use tokenloom::decoder_input::{DecoderInputError, OutputHead, TokenBatch, load_hf_dir};
use tokenloom::io::SafetensorsFile;
use tokenloom::positions::QkLayout;
use tokenloom::tensor::Tensor;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/architectures")
        .join(name)
}

struct Case {
    dir: PathBuf,
    expected: SafetensorsFile,
    case: serde_json::Value,
}

impl Case {
    fn open(name: &str) -> Self {
        let dir = fixture_dir(name);
        let expected = SafetensorsFile::open(dir.join("expected.safetensors")).unwrap();
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        Self {
            dir,
            expected,
            case,
        }
    }

    fn tensor(&self, name: &str) -> Tensor<f32> {
        self.expected
            .load::<f32>(name)
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", self.dir.display()))
    }

    fn has(&self, name: &str) -> bool {
        self.expected.info(name).is_ok()
    }

    fn ids(&self, key: &str) -> Tensor<u32> {
        let rows: Vec<Vec<u32>> = serde_json::from_value(self.case[key].clone()).unwrap();
        let (batch, seq_len) = (rows.len(), rows[0].len());
        Tensor::from_vec(rows.concat(), &[batch, seq_len]).unwrap()
    }
}

/// `got` within 1e-5 of the largest |expected| of `expected`.
fn assert_close(what: &str, got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    let scale = expected.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30);
    let (worst, at) = got
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (g, e))| ((g - e).abs(), i))
        .fold((0f32, 0), |acc, x| if x.0 > acc.0 { x } else { acc });
    assert!(
        worst <= 1e-5 * scale,
        "{what}: element {at} is {} where transformers gives {} (|Δ| {worst:e}, largest value {scale})",
        got[at],
        expected[at]
    );
}

/// `(…, w)` heads padded with zeros to `(…, head_dim)`.
fn widen(x: Tensor<f32>, head_dim: usize) -> Tensor<f32> {
    let w = x.dims()[3];
    if w == head_dim {
        return x;
    }
    let mut dims = x.dims().to_vec();
    dims[3] = head_dim;
    let data = x
        .as_slice()
        .chunks_exact(w)
        .flat_map(|row| {
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, head_dim - w))
        })
        .collect();
    Tensor::from_vec(data, &dims).unwrap()
}

/// The first `w` elements of every head.
fn narrow(x: &Tensor<f32>, w: usize) -> Vec<f32> {
    let head_dim = x.dims()[3];
    x.as_slice()
        .chunks_exact(head_dim)
        .flat_map(|row| row[..w].iter().copied())
        .collect()
}

/// Loads `name`, compares everything the fixture recorded, and returns how many layers
/// rotate.
fn check(name: &str) -> usize {
    let case = Case::open(name);
    let model =
        load_hf_dir::<f32, f64>(&case.dir).unwrap_or_else(|e| panic!("{name}: loading: {e}"));
    let input = &model.input;
    let ids = case.ids("input_ids");
    let positions = case.ids("position_ids");
    let mask = Tensor::<u8>::from_vec(vec![1; ids.as_slice().len()], ids.dims()).unwrap();
    let batch = TokenBatch::from_parts(ids, mask, positions).unwrap();
    let out = input
        .forward(&batch)
        .unwrap_or_else(|e| panic!("{name}: forward: {e}"));
    assert_close(
        &format!("{name}: hidden states into layer 0"),
        out.hidden().as_slice(),
        case.tensor("hidden_in").as_slice(),
    );

    let n_layers = case.case["num_hidden_layers"].as_u64().unwrap() as usize;
    let mut rotating = 0;
    for layer in 0..n_layers {
        let Some(positions) = input.layer_positions(layer).unwrap() else {
            // No rotation anywhere (absolute positions): transformers rotates nothing.
            assert!(!case.has(&format!("layer.{layer}.q_in")), "{name}");
            continue;
        };
        let key = |what: &str| format!("layer.{layer}.{what}");
        if !case.has(&key("q_in")) {
            // transformers calls no rotary in this layer.
            assert!(
                positions.rope.is_none(),
                "{name}: layer {layer} rotates in tokenloom, not in transformers"
            );
            if case.has(&key("q_nope_in")) {
                // Llama 4: q scaled by its attention temperature, k untouched.
                assert!(positions.q_scale.is_some(), "{name}: layer {layer}");
                let mut q = case.tensor(&key("q_nope_in"));
                let mut k = q.clone();
                out.apply_rope_layer(layer, q.view_mut(), k.view_mut(), QkLayout::BatchHeadsSeq)
                    .unwrap();
                assert_close(
                    &format!("{name}: layer {layer} q scaled"),
                    q.as_slice(),
                    case.tensor(&key("q_nope_out")).as_slice(),
                );
                assert_eq!(k.as_slice(), case.tensor(&key("q_nope_in")).as_slice());
            }
            continue;
        }
        assert!(
            positions.rope.is_some(),
            "{name}: layer {layer} rotates in transformers, not in tokenloom"
        );
        rotating += 1;
        // Partial rotary: transformers passes only the rotated part of each head; the
        // rest of a tokenloom head passes through, so it is filled with zeros here.
        let rope = positions.rope.as_ref().unwrap();
        let (mut q, mut k) = (
            widen(case.tensor(&key("q_in")), rope.head_dim),
            widen(case.tensor(&key("k_in")), rope.head_dim),
        );
        out.apply_rope_layer(layer, q.view_mut(), k.view_mut(), QkLayout::BatchHeadsSeq)
            .unwrap_or_else(|e| panic!("{name}: layer {layer}: {e}"));
        let width = case.tensor(&key("q_out")).dims()[3];
        let (q, k) = (narrow(&q, width), narrow(&k, width));
        assert_close(
            &format!("{name}: layer {layer} q after RoPE"),
            &q,
            case.tensor(&key("q_out")).as_slice(),
        );
        assert_close(
            &format!("{name}: layer {layer} k after RoPE"),
            &k,
            case.tensor(&key("k_out")).as_slice(),
        );
    }

    let hidden = case.tensor("final_hidden");
    if model.spec.head == OutputHead::None {
        // An encoder: tokenloom builds no language-model head (BERT's MLM head has a
        // transform before its decoder), and says so.
        assert!(matches!(
            input.logits(hidden.view()),
            Err(DecoderInputError::NoHead { .. })
        ));
        return rotating;
    }
    let logits = input
        .logits(hidden.view())
        .unwrap_or_else(|e| panic!("{name}: logits: {e}"));
    assert_close(
        &format!("{name}: logits"),
        logits.as_slice(),
        case.tensor("logits").as_slice(),
    );
    rotating
}

macro_rules! architectures {
    ($($name:ident => $rotating:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(check(stringify!($name)), $rotating, "rotating layers");
            }
        )*
    };
}

architectures! {
    llama => 2,
    llama_tied => 2,
    llama_linear => 2,
    llama_dynamic => 2,
    llama_yarn => 2,
    llama_llama3 => 2,
    mistral => 2,
    mixtral => 2,
    qwen2 => 2,
    qwen2_moe => 2,
    qwen3 => 2,
    qwen3_moe => 2,
    gemma => 2,
    gemma2 => 2,
    gemma3_text => 6,
    phi3_short => 2,
    phi3_long => 2,
    phi => 2,
    gpt_neox => 2,
    gptj => 2,
    stablelm => 2,
    olmo2 => 2,
    granite => 2,
    cohere => 2,
    deepseek_v2 => 2,
    deepseek_v3 => 2,
    llama4_text => 3,
    smollm3 => 3,
    starcoder2 => 2,
    falcon => 2,
    exaone4 => 3,
    olmo => 2,
    qwen2_vl => 2,
    qwen2_5_vl => 2,
    gemma3 => 6,
    bert => 0,
    roberta => 0,
    modernbert => 3,
    gpt2 => 0,
}

/// LongRoPE as llama.cpp chooses its factors, by the context the model runs with: a
/// context within the original length gives transformers' short-factor rotation of this
/// short batch, a longer context the long factors for every batch.
#[test]
fn phi3_long_rope_by_context() {
    use tokenloom::decoder_input::{LongRopeChoice, load_hf_dir_with};
    let case = Case::open("phi3_short");
    let rotate = |choice: LongRopeChoice| {
        let model = load_hf_dir_with::<f32, f64>(&case.dir, choice).unwrap();
        let ids = case.ids("input_ids");
        let mask = Tensor::<u8>::from_vec(vec![1; ids.as_slice().len()], ids.dims()).unwrap();
        let batch = TokenBatch::from_parts(ids, mask, case.ids("position_ids")).unwrap();
        let out = model.input.forward(&batch).unwrap();
        let (mut q, mut k) = (case.tensor("layer.0.q_in"), case.tensor("layer.0.k_in"));
        out.apply_rope_layer(0, q.view_mut(), k.view_mut(), QkLayout::BatchHeadsSeq)
            .unwrap();
        q
    };
    let want = case.tensor("layer.0.q_out");
    let within = rotate(LongRopeChoice::ByContext { n_ctx: 16 });
    assert_close("phi3 by context 16", within.as_slice(), want.as_slice());
    let longer = rotate(LongRopeChoice::ByContext { n_ctx: 64 });
    let differs = longer
        .as_slice()
        .iter()
        .zip(want.as_slice())
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(differs, "a 64-token context must use the long factors");
}
