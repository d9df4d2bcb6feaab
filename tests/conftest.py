import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MAX_WORKERS = 4  # each worker holds torch and tiny models; past this, start-up costs more than it saves
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:  # split the CPUs between the workers (and the commands they start) instead of oversubscribing
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // WORKERS)))


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU this process may run on (os.sched_getaffinity, which follows the
    container's CPU set where os.cpu_count reports the host), at most MAX_WORKERS."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a reward model scores a response to a prompt",
    "Assistant: here is a short answer",
    "User: what is the capital of France?",
] * 20


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory):
    """A 2-layer GPT-2 and a byte-level BPE trained here, saved as a local folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        TEXTS,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}"
    )
    model = GPT2ForSequenceClassification(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128, num_labels=1)
    )
    folder = tmp_path_factory.mktemp("decoder")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def random_decoder(tmp_path_factory):
    """random_decoder(layout) → a local folder holding a tiny random decoder of that transformers
    layout (llama, qwen2, gemma, ...) and a BPE with a chat template trained here; built once."""
    from unirank.model.random_decoders import build_decoder

    built = {}

    def folder(layout: str = "qwen2", causal_lm: bool = False) -> str:
        """causal_lm: the causal LM with its LM head (the yes/no head form starts from it)."""
        key = (layout, causal_lm)
        if key not in built:
            where = tmp_path_factory.mktemp(f"decoder-{layout}")
            built[key] = str(build_decoder(where, layout, causal_lm=causal_lm))
        return built[key]

    return folder
