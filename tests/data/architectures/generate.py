#!/usr/bin/env python3
"""Builds the tiny random models of every architecture tokenloom's model spec knows, and
records what transformers itself computes for them.

Run by hand (CI does not need torch):

    python3 -m venv /tmp/fixtures && /tmp/fixtures/bin/pip install torch transformers==5.24.0 safetensors
    /tmp/fixtures/bin/python tests/data/architectures/generate.py [name ...]

For each architecture NAME it writes `tests/data/architectures/NAME/`:

- `config.json` and `model.safetensors`: the model as `save_pretrained` writes it, float32,
  with random weights drawn with a large init range (so that a missing scale shows);
- `expected.safetensors`: `input_ids` and `position_ids` (I64, `(batch, seq_len)`; the
  second row starts past position 0), `hidden_in` (the hidden states entering the first
  layer, taken by a forward pre-hook), for every layer `l` whose attention calls the
  modeling module's rotary function `layer.{l}.{q,k}_{in,out}` (q and k just before and after
  it, always `(batch, heads, seq_len, rotary width)`), `final_hidden` (the input of the output
  projection) and `logits` (what the model returns for it, softcapping and scales included);
- `case.json`: the transformers version, the layers that rotate, and the ids and position
  ids again as plain lists.
"""

import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH, SEQ = 2, 5
OFFSET = 3  # the second row's first position

SMALL = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=64,
    initializer_range=0.5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


def small(**overrides):
    config = dict(SMALL)
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


LONGROPE = dict(
    rope_type="longrope",
    short_factor=[1.0, 1.1, 1.3, 1.7],
    long_factor=[1.5, 2.0, 3.0, 4.0],
)

# name -> (model_type, config kwargs, model class name or None for AutoModelForCausalLM)
ARCHITECTURES = {
    "llama": ("llama", small(), None),
    "llama_tied": ("llama", small(tie_word_embeddings=True, pad_token_id=0), None),
    "llama_linear": ("llama", small(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}), None),
    "llama_dynamic": ("llama", small(max_position_embeddings=4, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}), None),
    "llama_yarn": ("llama", small(rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 10000.0}), None),
    "llama_llama3": ("llama", small(rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 500000.0}), None),
    "mistral": ("mistral", small(sliding_window=4), None),
    "mixtral": ("mixtral", small(num_local_experts=2, num_experts_per_tok=1), None),
    "qwen2": ("qwen2", small(), None),
    "qwen2_moe": ("qwen2_moe", small(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=16, shared_expert_intermediate_size=16), None),
    "qwen3": ("qwen3", small(), None),
    "qwen3_moe": ("qwen3_moe", small(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=16), None),
    "gemma": ("gemma", small(tie_word_embeddings=True), None),
    "gemma2": ("gemma2", small(tie_word_embeddings=True, final_logit_softcapping=3.0, attn_logit_softcapping=5.0, sliding_window=4), None),
    "gemma3_text": ("gemma3_text", small(num_hidden_layers=6, tie_word_embeddings=True, sliding_window=4, final_logit_softcapping=2.0), None),
    # LongRoPE: the batch fits the original context (short factors) ...
    "phi3_short": ("phi3", small(max_position_embeddings=64, original_max_position_embeddings=16, rope_parameters=dict(LONGROPE)), None),
    # ... and a batch past it (long factors): original 6, largest position 7.
    "phi3_long": ("phi3", small(max_position_embeddings=64, original_max_position_embeddings=6, partial_rotary_factor=None, rope_parameters=dict(LONGROPE)), None),
    "phi": ("phi", small(num_key_value_heads=4, head_dim=None, partial_rotary_factor=0.5), None),
    "gpt_neox": ("gpt_neox", small(num_key_value_heads=None, head_dim=None, partial_rotary_factor=0.5), None),
    "gptj": ("gptj", dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64, n_inner=32, initializer_range=0.5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0), None),
    "stablelm": ("stablelm", small(num_key_value_heads=4, head_dim=None, partial_rotary_factor=0.5), None),
    "olmo2": ("olmo2", small(), None),
    "granite": ("granite", small(embedding_multiplier=3.0, logits_scaling=4.0, residual_multiplier=0.5, attention_multiplier=0.25), None),
    "cohere": ("cohere", small(head_dim=None, logit_scale=0.25, tie_word_embeddings=True), None),
    "deepseek_v2": ("deepseek_v2", small(head_dim=None, num_key_value_heads=4, q_lora_rank=8, kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8, n_routed_experts=2, num_experts_per_tok=1, moe_intermediate_size=16, first_k_dense_replace=1, n_group=1, topk_group=1, rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "mscale": 0.707, "mscale_all_dim": 0.707, "beta_fast": 32, "beta_slow": 1, "rope_theta": 10000.0}), None),
    "deepseek_v3": ("deepseek_v3", small(head_dim=None, num_key_value_heads=4, q_lora_rank=8, kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8, n_routed_experts=2, num_experts_per_tok=1, moe_intermediate_size=16, first_k_dense_replace=1, n_group=1, topk_group=1, rope_interleave=True, rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1, "rope_theta": 10000.0}), None),
    "llama4_text": ("llama4_text", small(num_hidden_layers=4, intermediate_size_mlp=32, num_local_experts=1, num_experts_per_tok=1, interleave_moe_layer_step=4, attention_chunk_size=4, floor_scale=2, attn_scale=0.5, rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 500000.0}), None),
    "smollm3": ("smollm3", small(num_hidden_layers=4, tie_word_embeddings=True), None),
    "starcoder2": ("starcoder2", small(head_dim=None, num_key_value_heads=2), None),
    "falcon": ("falcon", dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2, new_decoder_architecture=True, max_position_embeddings=64, initializer_range=0.5, tie_word_embeddings=False, rope_theta=10000.0, bos_token_id=1, eos_token_id=2, pad_token_id=0), None),
    "exaone4": ("exaone4", small(num_hidden_layers=4, sliding_window=4, sliding_window_pattern=4), None),
    "olmo": ("olmo", small(), None),
    "qwen2_5_vl": ("qwen2_5_vl", dict(
        text_config=small(head_dim=None, rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=32, patch_size=2, spatial_merge_size=1, temporal_patch_size=1, in_channels=3, fullatt_block_indexes=[0]),
        tie_word_embeddings=False,
    ), None),
    # Gemma 3 as its multimodal wrapper builds it: the language model under text_config.
    "gemma3": ("gemma3", dict(
        # No final_logit_softcapping: Gemma3ForConditionalGeneration does not apply it
        # (Gemma3ForCausalLM does), and tokenloom refuses the ambiguity.
        text_config=small(num_hidden_layers=6, sliding_window=4, tie_word_embeddings=True),
        vision_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=8, patch_size=4),
        mm_tokens_per_image=4,
        tie_word_embeddings=True,
    ), None),
    # Encoders and GPT-2: the model class of their language-model head.
    "bert": ("bert", small(num_key_value_heads=None, head_dim=None, max_position_embeddings=16, type_vocab_size=2, tie_word_embeddings=True), "AutoModelForMaskedLM"),
    # RoBERTa reads row padding_idx + 1 + position: no position ids are passed, transformers
    # makes them from the ids (no pad among them).
    "roberta": ("roberta", small(num_key_value_heads=None, head_dim=None, max_position_embeddings=16, type_vocab_size=1, tie_word_embeddings=True), "AutoModelForMaskedLM"),
    "modernbert": ("modernbert", small(num_key_value_heads=None, head_dim=None, num_hidden_layers=3, tie_word_embeddings=True, local_attention=4), "AutoModelForMaskedLM"),
    "gpt2": ("gpt2", dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=16, n_inner=32, initializer_range=0.5, bos_token_id=1, eos_token_id=2, pad_token_id=0), None),
    # Qwen2-VL's language model with text-only position ids (M-RoPE sections over equal
    # t/h/w positions are the 1-D RoPE).
    "qwen2_vl": ("qwen2_vl", dict(
        text_config=small(head_dim=None, rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}),
        vision_config=dict(depth=1, embed_dim=16, hidden_size=32, num_heads=2, mlp_ratio=1, patch_size=2, spatial_merge_size=1, temporal_patch_size=1, in_channels=3),
        tie_word_embeddings=False,
    ), None),
}


def layer_list(model):
    """The decoder (or encoder) layers, first first."""
    best = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and (
            name.endswith("layers") or name.endswith(".h") or name.endswith("encoder.layer")
        ):
            if best is None or len(name) < len(best[0]):
                best = (name, module)
    assert best is not None, "no layer list found"
    return best[1]


class Recorder:
    def __init__(self):
        self.layer = None
        self.calls = {}

    def record(self, what, tensor):
        self.calls.setdefault(self.layer, []).append((what, tensor.detach().clone()))


ROTARY_FUNCTIONS = ("apply_rotary_pos_emb", "apply_rotary_emb", "apply_rotary_pos_emb_interleave")


def wrap_rotary(module, recorder):
    """Replaces the modeling module's rotary functions with ones that record q, k in and out."""
    for fname in ROTARY_FUNCTIONS:
        original = getattr(module, fname, None)
        if original is None:
            continue

        def wrapper(*args, _original=original, _name=fname, **kwargs):
            out = _original(*args, **kwargs)
            if isinstance(out, tuple):
                recorder.record("q_in", args[0])
                recorder.record("k_in", args[1])
                recorder.record("q_out", out[0])
                recorder.record("k_out", out[1])
            else:  # GPT-J: one tensor per call, k first, then q
                recorder.record("x_in", args[0])
                recorder.record("x_out", out)
            return out

        setattr(module, fname, wrapper)


def to_bhsd(t, heads_axis):
    """(batch, seq, heads, dim) -> (batch, heads, seq, dim) when heads are on axis 2."""
    return t.transpose(1, 2).contiguous() if heads_axis == 2 else t.contiguous()


def build(name):
    model_type, kwargs, auto_class = ARCHITECTURES[name]
    torch.manual_seed(sum(map(ord, name)))
    config = transformers.AutoConfig.for_model(model_type, **kwargs)
    config._attn_implementation = "eager"
    if auto_class is not None:
        model = getattr(transformers, auto_class).from_config(config, dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dtype.is_floating_point:
                    p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in pname.lower() else 0.0))
        return model
    try:
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    except ValueError:  # a multimodal wrapper: its language model is what is recorded
        model = transformers.AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.eval()
    # Untouched norms would hide nothing, but make every weight (norms included) random.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dtype.is_floating_point:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in pname else 0.0))
    return model


def run(name):
    model = build(name)
    module = sys.modules[type(model).__module__]
    recorder = Recorder()
    wrap_rotary(module, recorder)

    layers = layer_list(model)
    captured = {}

    def first_layer_hook(mod, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        captured["hidden_in"] = h.detach().clone()

    layers[0].register_forward_pre_hook(first_layer_hook, with_kwargs=True)
    for i, layer in enumerate(layers):
        def set_layer(mod, args, kwargs, _i=i):
            recorder.layer = _i
        layer.register_forward_pre_hook(set_layer, with_kwargs=True)

    # Llama 4's NoPE layers scale q by an attention temperature outside the rotary
    # function: q as projected (q_proj's output) and as attention receives it.
    nope_q = {}
    if name == "llama4_text":
        for i, layer in enumerate(layers):
            if not layer.self_attn.use_rope:
                def q_proj_hook(mod, args, out, _i=i):
                    b, s_, _ = out.shape
                    nope_q[("in", _i)] = out.detach().clone().view(b, s_, -1, model.config.head_dim)
                layer.self_attn.q_proj.register_forward_hook(q_proj_hook)
        original_eager = module.eager_attention_forward

        def eager(mod, query, *args, **kwargs):
            if not mod.use_rope:
                nope_q[("out", mod.layer_idx)] = query.detach().clone()
            return original_eager(mod, query, *args, **kwargs)

        module.eager_attention_forward = eager

    head = model.get_output_embeddings()

    def head_hook(mod, args):
        captured["final_hidden"] = args[0].detach().clone()

    head.register_forward_pre_hook(head_hook)

    vocab = getattr(model.config, "vocab_size", None) or model.config.text_config.vocab_size
    gen = torch.Generator().manual_seed(7)
    input_ids = torch.randint(1, vocab, (BATCH, SEQ), generator=gen)
    position_ids = torch.stack([torch.arange(SEQ), torch.arange(SEQ) + OFFSET])
    if name == "phi3_long":
        pass  # largest position 7 + 1 > original 6: long factors
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    if name == "roberta":
        position_ids = torch.stack([torch.arange(SEQ), torch.arange(SEQ)])
    else:
        kwargs["position_ids"] = position_ids
    with torch.no_grad():
        out = model(**kwargs)
    tensors = {
        "input_ids": input_ids.to(torch.int64),
        "position_ids": position_ids.to(torch.int64),
        "hidden_in": captured["hidden_in"].float(),
        "final_hidden": captured["final_hidden"].float(),
        "logits": out.logits.float(),
    }
    rotating = []
    for layer, calls in sorted((k, v) for k, v in recorder.calls.items() if k is not None):
        rotating.append(layer)
        by = {}
        for what, t in calls:
            by.setdefault(what, []).append(t)
        if "x_in" in by:  # GPT-J: k then q, (batch, seq, heads, rotary_dim)
            k_in, q_in = by["x_in"]
            k_out, q_out = by["x_out"]
            pairs = {"q_in": q_in, "k_in": k_in, "q_out": q_out, "k_out": k_out}
            heads_axis = 2
        else:
            pairs = {w: by[w][0] for w in ("q_in", "k_in", "q_out", "k_out")}
            # (batch, heads, seq, d) unless the sequence axis holds SEQ and the heads axis does not.
            q = pairs["q_in"]
            heads_axis = 2 if (q.shape[1] == SEQ and q.shape[2] != SEQ) else 1
        for what, t in pairs.items():
            t = to_bhsd(t.float(), heads_axis)
            if t.shape[1] == 1 and what.startswith("k"):
                pass  # MLA's shared rope key: one head
            tensors[f"layer.{layer}.{what}"] = t
    for (what, layer), t in nope_q.items():
        # q_proj's output is (batch, seq, heads, d); attention's query (batch, heads, seq, d).
        t = t.transpose(1, 2) if what == "in" else t
        tensors[f"layer.{layer}.q_nope_{what}"] = t.float().contiguous()
    model.save_pretrained(os.path.join(HERE, name), safe_serialization=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, name, "expected.safetensors"))
    case = {
        "architecture": name,
        "model_type": model.config.model_type,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "rotating_layers": rotating,
        "num_hidden_layers": len(layers),
        "input_ids": input_ids.tolist(),
        "position_ids": position_ids.tolist(),
    }
    with open(os.path.join(HERE, name, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(HERE, name, x)) for x in os.listdir(os.path.join(HERE, name)))
    print(f"{name}: rotating layers {rotating} of {len(layers)}, {size // 1024} KB")


if __name__ == "__main__":
    names = sys.argv[1:] or list(ARCHITECTURES)
    for n in names:
        run(n)
