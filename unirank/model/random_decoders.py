"""Random-initialised decoders of real layouts (and a MiniLM-shaped encoder), built in-process: no
weights to download.

For tests, debugging and speed / memory measurements (which do not depend on the weights' values).
A layout is a transformers architecture (Llama, Qwen2, Qwen3, Gemma, Mistral, GPT-NeoX); a shape is
its sizes. `tiny` shapes train in seconds on a CPU; `qwen2.5-0.5b` is that model's real shape. The
tokenizer is a byte-level BPE trained here on the texts given, with a chat template in the
ChatML form Qwen uses, and "yes" / "no" as whole tokens (for the yes/no head form).
"""

from __future__ import annotations

from pathlib import Path

import torch

LAYOUTS = ("llama", "qwen2", "qwen3", "gemma", "mistral", "gpt_neox")

SHAPES = {
    "tiny": dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    # Qwen/Qwen2.5-0.5B's published config (hidden 896, 24 layers, 14 query / 2 key-value heads, 4,864 MLP)
    "qwen2.5-0.5b": dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2
    ),
    # Qwen/Qwen2.5-1.5B's (hidden 1,536, 28 layers, 12 / 2 heads, 8,960 MLP)
    "qwen2.5-1.5b": dict(
        hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2
    ),
}

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(texts: list[str], vocab_size: int = 512):
    """A byte-level BPE trained on `texts` (EOS <|endoftext|>, ChatML chat template, no pad token:
    unirank sets one, as for real decoders), as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([*texts, "yes no yes no"], trainer)
    bpe.add_tokens(["yes", "no"])  # whole tokens, as in real vocabularies
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def decoder_config(layout: str, shape: str | dict, vocab_size: int, max_positions: int = 4096):
    """The transformers config of a decoder of this layout and shape (num_labels = 1)."""
    import transformers

    sizes = dict(SHAPES[shape]) if isinstance(shape, str) else dict(shape)
    common = dict(vocab_size=vocab_size, max_position_embeddings=max_positions, num_labels=1, tie_word_embeddings=True)
    if layout == "gpt_neox":
        sizes.pop("num_key_value_heads", None)
        return transformers.GPTNeoXConfig(**sizes, **common, rotary_pct=0.25)
    if layout == "gemma":
        head_dim = sizes["hidden_size"] // sizes["num_attention_heads"]
        return transformers.GemmaConfig(**sizes, **common, head_dim=head_dim)
    config_class = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
        "mistral": transformers.MistralConfig,
    }[layout]
    return config_class(**sizes, **common)


def build_decoder(
    folder: str | Path,
    layout: str = "qwen2",
    shape: str | dict = "tiny",
    texts: list[str] | None = None,
    vocab_size: int | None = None,
    seed: int = 0,
    causal_lm: bool = False,
    tokenizer_vocab: int = 512,
) -> Path:
    """Save a random decoder (safetensors) and its tokenizer in `folder`; return the folder.

    vocab_size: the embedding's rows (default: the tokenizer's); a real model's count (Qwen2.5:
    151,936) gives its real embedding memory with a smaller trained tokenizer. causal_lm: save
    the causal LM (with its LM head: the yes/no head form starts from it) instead of the
    sequence-classification model. tokenizer_vocab: the BPE's size (trained on `texts`)."""
    import transformers

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    tokenizer = train_tokenizer(texts or _DEFAULT_TEXTS, tokenizer_vocab)
    config = decoder_config(layout, shape, vocab_size or len(tokenizer))
    config.pad_token_id = None
    config.eos_token_id = tokenizer.eos_token_id
    auto = transformers.AutoModelForCausalLM if causal_lm else transformers.AutoModelForSequenceClassification
    return _save_random(auto.from_config, config, tokenizer, folder, seed)


def _save_random(build, config, tokenizer, folder: str | Path, seed: int) -> Path:
    """build(config) under `seed`, saved (safetensors) with its tokenizer in `folder`; the folder."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build(config)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


MINILM_SHAPE = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=12)
"""all-MiniLM-L6-v2's published sizes (a BERT: 384 wide, 6 layers, 12 heads, 1,536 MLP)."""


def build_encoder(folder: str | Path, texts: list[str] | None = None, seed: int = 0, vocab_size: int = 2048) -> Path:
    """Save a random BERT encoder of MiniLM-L6's shape (safetensors) with a WordPiece tokenizer
    trained on `texts` ([CLS] / [SEP] / [PAD] / [UNK] / [MASK]); return the folder. It serves as a
    cross-encoder backbone and, loaded by sentence-transformers (mean pooling), as a bi-encoder."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    wordpiece.train_from_iterator(texts or _DEFAULT_TEXTS, trainer)
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = transformers.BertTokenizerFast(
        tokenizer_object=wordpiece, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
        mask_token="[MASK]",
    )  # fmt: skip
    config = transformers.BertConfig(
        vocab_size=len(tokenizer), max_position_embeddings=512, num_labels=1, **MINILM_SHAPE
    )
    return _save_random(transformers.BertForSequenceClassification, config, tokenizer, folder, seed)


_DEFAULT_TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a reward model scores a response to a prompt",
    "Assistant: here is a short answer to your question",
    "User: what is the capital of France? Paris is the capital.",
    "Step 1: add the numbers. Step 2: divide by two. The answer is 7.",
    "Relevance: does the document answer the query? yes or no",
] * 10
