"""Reference token ids from the Python `tokenizers` package, for tokenloom's parity tests.

    python3 python_ids.py tokenizer-json PATH TEXTS.json   # Tokenizer.from_file(PATH)
    python3 python_ids.py gguf PATH TEXTS.json             # built from the GGUF vocabulary

Prints a JSON list: the `.ids` of `encode(text)` for every text of TEXTS.json.

For a GGUF file the tokenizer is assembled here, with the Python library, from the file's
tokens / merges / scores / token types, as tokenloom's `TextTokenizer::from_gguf`
assembles it in Rust (crates/tokenizer/src/gguf.rs documents the pipelines: they are
HuggingFace's converters' pipelines for these vocabularies). The test checks that both
builds tokenize every text to the same ids.
"""

import json
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

CONTROL, USER_DEFINED = 3, 4


def gguf_fields(path):
    import gguf

    reader = gguf.GGUFReader(path)

    def value(key, default=None):
        field = reader.fields.get(key)
        if field is None:
            return default
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            if field.types[1] == gguf.GGUFValueType.STRING:
                return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            return [field.parts[i][0].item() for i in field.data]
        if kind == gguf.GGUFValueType.STRING:
            return bytes(field.parts[field.data[0]]).decode("utf-8")
        return field.parts[field.data[0]][0].item()

    return value


def first_ids(tokens):
    vocab = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)
    return vocab


def sentencepiece_merges(tokens, scores, vocab):
    # transformers' SentencePieceExtractor.extract, with the scores of the file.
    merges = []
    for token, score in zip(tokens, scores):
        local = []
        for index in range(1, len(token)):
            left, right = token[:index], token[index:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    return [(left, right) for left, right, _ in merges]


def from_gguf(path):
    value = gguf_fields(path)
    tokens = value("tokenizer.ggml.tokens")
    vocab = first_ids(tokens)
    model = value("tokenizer.ggml.model")
    if model == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in value("tokenizer.ggml.merges")]
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
        pre = value("tokenizer.ggml.pre", "default")
        if pre == "smollm":
            tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        elif pre in ("default", "gpt-2", "gpt2"):
            tokenizer.pre_tokenizer = byte_level
        else:
            raise SystemExit(f"unsupported pre-tokenizer {pre}")
        tokenizer.decoder = decoders.ByteLevel()
        default_bos = False
    elif model == "llama":
        scores = value("tokenizer.ggml.scores")
        merges = sentencepiece_merges(tokens, scores, vocab)
        unk = value("tokenizer.ggml.unknown_token_id")
        tokenizer = Tokenizer(
            models.BPE(
                vocab=vocab,
                merges=merges,
                unk_token=tokens[unk] if unk is not None else None,
                fuse_unk=True,
                byte_fallback=True,
            )
        )
        steps = []
        add_space_prefix = value("tokenizer.ggml.add_space_prefix", True)
        if add_space_prefix:
            steps.append(normalizers.Prepend("▁"))
        steps.append(normalizers.Replace(" ", "▁"))
        tokenizer.normalizer = normalizers.Sequence(steps)
        default_bos = True
    else:
        raise SystemExit(f"unsupported model {model}")
    types = value("tokenizer.ggml.token_type")
    if types is not None:
        tokenizer.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL]
        )
        tokenizer.add_tokens(
            [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED]
        )
    bos = value("tokenizer.ggml.bos_token_id") if value("tokenizer.ggml.add_bos_token", default_bos) else None
    eos = value("tokenizer.ggml.eos_token_id") if value("tokenizer.ggml.add_eos_token", False) else None
    if bos is not None or eos is not None:
        template, special = [], []
        if bos is not None:
            template.append(tokens[bos])
            special.append((tokens[bos], bos))
        template.append("$A")
        if eos is not None:
            template.append(tokens[eos])
            special.append((tokens[eos], eos))
        tokenizer.post_processor = processors.TemplateProcessing(single=" ".join(template), special_tokens=special)
    return tokenizer


def main():
    kind, path, texts_path = sys.argv[1:4]
    texts = json.load(open(texts_path, encoding="utf-8"))["texts"]
    if kind == "tokenizer-json":
        tokenizer = Tokenizer.from_file(path)
    elif kind == "gguf":
        tokenizer = from_gguf(path)
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps([tokenizer.encode(text).ids for text in texts]))


if __name__ == "__main__":
    main()
