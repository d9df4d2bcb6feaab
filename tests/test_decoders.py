"""Decoder backbones (tiny random Llama, Qwen2 and Gemma layouts built in-process): padding-free and
prefix-shared batches equal the padded batch, gradient checkpointing changes no gradient, LoRA
trains, the merged export loads in transformers as a plain model, the adapter alone in peft."""

import json

import numpy as np
import pytest
import torch

from unirank.adapters import ChatAdapter, ProcessAdapter, RetrievalAdapter
from unirank.adapters.base import Batch
from unirank.model.packing import Layout
from unirank.model.scorer import Scorer
from unirank.module import LoRA, Packing, UnirankModule

LAYOUTS = ["llama", "qwen2", "gemma"]
PROMPTS = [json.dumps([{"role": "user", "content": "what is the capital of France?"}])] * 3 + ["hello there"] * 2
RESPONSES = ["Paris", "a reward model scores a response to a prompt and more", "the lazy dog", "hi", "good day"]
LAYOUTS_OF_A_BATCH = {
    "padded": Packing(),
    "padding-free": Packing(padding_free=True),
    "prefix-shared": Packing(padding_free=True, share_prefix=True, max_tokens=48),
}


def perturbed_module(folder: str, adapter, lora: LoRA | None = LoRA(r=4), **options) -> UnirankModule:
    """A module whose trainable weights are moved off their initial values (LoRA's B starts at 0,
    which would hide the adapters' gradients)."""
    module = UnirankModule(model=folder, adapter=adapter, dropout=0.0, lora=lora, **options)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for parameter in module.scorer.parameters():
            if parameter.requires_grad:
                parameter.data.add_(0.1 * torch.randn_like(parameter))
    return module


def scores_and_gradients(scorer, encoded, packing: Packing) -> tuple[torch.Tensor, torch.Tensor, int]:
    scorer.layout = Layout(scorer.layout.pad_id, 2, packing)
    batch = Batch.of(encoded, scorer.layout)
    scorer.zero_grad()
    out = scorer.score_batch(batch)
    scores = out.items if out.steps is None else torch.cat([out.items, out.steps])
    (scores * torch.linspace(1, 2, len(scores))).sum().backward()
    gradients = torch.cat([p.grad.flatten() for p in scorer.parameters() if p.requires_grad])
    return scores.detach(), gradients, sum(chunk["input_ids"].numel() for chunk in batch.chunks)


def assert_same(reference: tuple, other: tuple) -> None:
    """Logits within 1e-5; gradients within 1e-5 of their scale (fp32 sums in another order)."""
    torch.testing.assert_close(other[0], reference[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other[1], reference[1], rtol=1e-5, atol=1e-5 * float(reference[1].abs().max()))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_packed_and_prefix_shared_batches_give_the_padded_logits_and_gradients(random_decoder, layout):
    scorer = perturbed_module(random_decoder(layout), ChatAdapter(max_length=64)).scorer
    encoded = scorer.encode(PROMPTS, RESPONSES)
    padded = scores_and_gradients(scorer, encoded, LAYOUTS_OF_A_BATCH["padded"])
    tokens = {"padded": padded[2]}
    for name in ("padding-free", "prefix-shared"):
        result = scores_and_gradients(scorer, encoded, LAYOUTS_OF_A_BATCH[name])
        assert_same(padded, result)
        tokens[name] = result[2]
    # the prompt of three responses is encoded once, so the prefix-shared rows hold fewer tokens
    assert tokens["prefix-shared"] < tokens["padding-free"] <= tokens["padded"]


def test_flex_attention_reads_packed_rows_as_the_padded_batch(random_decoder):
    """FlexAttention through transformers, with the row's BlockMask (shared prompts, several runs in
    one row), gives the padded batch's logits and pooled states. The CPU has no FlexAttention
    backward pass: its gradients are checked on a GPU (benchmarks/gpu_check.py)."""
    scorer = perturbed_module(random_decoder("qwen2"), ChatAdapter(max_length=64)).scorer.eval()
    encoded = scorer.encode(PROMPTS, RESPONSES)
    readings = {}
    for name, packing in [("padded", Packing()), ("flex", Packing(True, True, 48, attention="flex_attention"))]:
        scorer.layout = Layout(scorer.layout.pad_id, 2, packing)
        with torch.no_grad(), scorer.capturing_states() as pooled:
            out = scorer.score_batch(Batch.of(encoded, scorer.layout))
        readings[name] = (out.items, Scorer._in_batch_order(pooled, Batch.of(encoded, scorer.layout)))
        assert scorer.model.config._attn_implementation == ("flex_attention" if name == "flex" else "sdpa")
    torch.testing.assert_close(readings["flex"][0], readings["padded"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(readings["flex"][1], readings["padded"][1], rtol=1e-4, atol=1e-5)


def test_the_attention_kernel_is_chosen_per_device():
    assert Packing(padding_free=True).attention_for("cuda") == "flex_attention"
    assert Packing(padding_free=True).attention_for("cpu") == "sdpa"
    assert Packing(padding_free=True, attention="eager").attention_for("cuda") == "eager"
    with pytest.raises(ValueError, match="shared prefix"):
        Packing(padding_free=True, share_prefix=True, attention="flash_attention_2")


def test_a_packed_row_carries_no_dense_mask_and_its_rule_is_the_dense_one():
    """A row holds two id vectors (O(T)), not a T × T mask; the mask they give is block-diagonal,
    causal, and lets a response see its shared prompt but not another response."""
    from unirank.adapters.base import Encoded
    from unirank.model.packing import dense_mask, pack_chunks

    prompt = [7, 8, 9]
    encoded = [Encoded(prompt + [1, 2], prefix_length=3), Encoded(prompt + [3], prefix_length=3), Encoded([5, 6])]
    (row,), _ = pack_chunks(encoded, max_tokens=64, share_prefix=True)
    assert "attention_mask" not in row and row["block_ids"].shape == row["input_ids"].shape[1:]
    mask = dense_mask(row["block_ids"], row["sequence_ids"])
    tokens = row["input_ids"][0].tolist()
    where = {t: i for i, t in enumerate(tokens)}
    assert mask[where[3], where[9]] and mask[where[2], where[7]]  # each response sees the prompt
    assert not mask[where[3], where[1]] and not mask[where[1], where[3]]  # ... and not the other response
    assert not mask[where[6], where[9]] and not mask[where[9], where[6]]  # runs stay apart
    assert not mask.triu(1).any()  # causal


@pytest.mark.parametrize("adapter", ["process", "retrieval"])
def test_steps_and_queries_pack_as_they_pad(random_decoder, adapter):
    if adapter == "process":
        module = perturbed_module(random_decoder("llama"), ProcessAdapter(max_length=96, problem_max_length=32))
        steps = [["add the numbers", "divide by two"], ["guess", "the answer is 7", "check it"], ["seven"]]
        encoded = module.scorer.encode(["what is 7 + 7 over 2?"] * 3, [" ".join(s) for s in steps], steps)
    else:
        module = perturbed_module(random_decoder("qwen2"), RetrievalAdapter(max_length=64))
        encoded = module.scorer.encode(["capital of France"] * 3, ["Paris is the capital", "a dog", "France"])
    padded = scores_and_gradients(module.scorer, encoded, LAYOUTS_OF_A_BATCH["padded"])
    for name in ("padding-free", "prefix-shared"):
        assert_same(padded, scores_and_gradients(module.scorer, encoded, LAYOUTS_OF_A_BATCH[name]))


def test_gradient_checkpointing_gives_the_same_gradients(random_decoder):
    results = []
    for checkpointing in (False, True):
        module = perturbed_module(
            random_decoder("qwen2"), ChatAdapter(max_length=64), gradient_checkpointing=checkpointing
        )
        module.scorer.train()
        encoded = module.scorer.encode(PROMPTS, RESPONSES)
        results.append(scores_and_gradients(module.scorer, encoded, Packing(padding_free=True, share_prefix=True)))
    assert_same(results[0], results[1])
    assert module.scorer.model.is_gradient_checkpointing


def test_lora_freezes_the_backbone_and_trains_adapters_and_the_head(random_decoder):
    module = UnirankModule(model=random_decoder("llama"), adapter=ChatAdapter(max_length=64), lora=LoRA(r=4))
    trainable = {n for n, p in module.scorer.model.named_parameters() if p.requires_grad}
    assert "score.weight" in trainable
    assert trainable - {"score.weight"} and all("lora_" in n for n in trainable - {"score.weight"})
    assert set(module.lora_targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(scope="module")
def lora_fit(random_decoder, tmp_path_factory):
    """A debug fit of a tiny random Qwen2 with LoRA, padding-free prefix-shared batches and
    gradient checkpointing on the demo preferences; exported with the adapter alone beside."""
    from unirank.cli import main

    from .conftest import REPO

    out = tmp_path_factory.mktemp("lora-fit")
    main([
        "fit", "--config", str(REPO / "lightning_configs/debug.yaml"), "--model.model", random_decoder("qwen2"),
        "--model.lora", '{"r": 8, "save_adapter": true}', "--model.gradient_checkpointing", "true",
        "--model.packing", '{"padding_free": true, "share_prefix": true}',
        "--data.source.init_args.path", str(REPO / "data/demo-preferences.jsonl"),
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(out), "--export.dirpath", str(out / "model"),
    ])  # fmt: skip
    return out


def test_lora_training_lowers_the_pairwise_loss(lora_fit):
    from unirank.training.export import load_checkpoint

    saved = torch.load(lora_fit / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # the checkpoint holds the trained weights only: adapters and head, not the frozen backbone
    assert saved["state_dict"] and all("lora_" in k or ".score." in k for k in saved["state_dict"])
    module = load_checkpoint(lora_fit / "checkpoints" / "last.ckpt")
    assert module.lora is not None and module.packing.share_prefix
    validation = json.loads((lora_fit / "model" / "unirank.json").read_text())["validation"]
    assert validation["bt_loss"] < np.log(2) - 0.05  # an untrained head reads chance: ln 2


def test_merged_export_is_a_plain_model_with_unirank_s_probability(lora_fit):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from unirank.model import Model

    folder = lora_fit / "model"
    info = json.loads((folder / "unirank.json").read_text())
    assert info["lora"]["merged"] and info["lora"]["r"] == 8
    ours = Model.from_pretrained(folder).score_texts(PROMPTS, RESPONSES)  # logits: σ of them is the probability
    tokenizer = AutoTokenizer.from_pretrained(folder)
    messages = [json.loads(c) if c.startswith("[") else [{"role": "user", "content": c}] for c in PROMPTS]
    texts = [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) + r
        for m, r in zip(messages, RESPONSES)
    ]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert not any("lora" in name for name, _ in model.named_parameters())

    def logits(model) -> np.ndarray:
        with torch.no_grad():
            return np.array(
                [
                    float(model(**tokenizer(t, return_tensors="pt", add_special_tokens=False)).logits[0, 0])
                    for t in texts
                ]
            )

    np.testing.assert_allclose(logits(model), ours, rtol=1e-5, atol=1e-4)
    assert np.ptp(ours) > 0.1  # distinct readings, so agreement is not a coincidence of saturation
    # the adapter alone (the head with the final calibration folded in, as a module to save), on the
    # base model, scores as the merged export does
    base = AutoModelForSequenceClassification.from_pretrained(info["base_model"], num_labels=1)
    base.config.pad_token_id = model.config.pad_token_id
    np.testing.assert_allclose(
        logits(PeftModel.from_pretrained(base, folder / "adapter").eval()), ours, rtol=1e-5, atol=1e-4
    )


@pytest.mark.parametrize("domain", ["chat", "retrieval"])
def test_cross_encoder_loads_a_decoder_export_and_returns_unirank_s_probability(random_decoder, domain, tmp_path):
    from sentence_transformers import CrossEncoder

    from unirank.model import Model
    from unirank.training.export import export_model

    adapter = ChatAdapter(max_length=96) if domain == "chat" else RetrievalAdapter(max_length=96)
    module = perturbed_module(random_decoder("llama"), adapter)
    export_model(module, tmp_path / "model")
    pairs = [
        ("what is the capital of France?", "Paris is."),
        ("what is the capital of France?", "a dog"),
        ("hi", "hello"),
    ]
    ours = Model.from_pretrained(tmp_path / "model").predict(pairs)
    theirs = CrossEncoder(str(tmp_path / "model")).predict(pairs)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    assert max(ours) - min(ours) > 1e-3  # the pairs read differently: a wrong rendering would show


@pytest.mark.parametrize("layout", ["qwen2", "gemma"])
def test_yes_no_head_starts_at_the_lm_s_answer_and_exports_for_cross_encoder(random_decoder, layout, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unirank.model import Model
    from unirank.training.export import export_model

    folder = random_decoder(layout, causal_lm=True)
    pairs = [("capital of France", "Paris is the capital of France."), ("capital of France", "a dog"), ("hi", "hello")]
    untrained = UnirankModule(model=folder, adapter=RetrievalAdapter(max_length=96), head="yes-no")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    yes, no = (tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in ("yes", "no"))
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        answers = [lm(torch.tensor([e.input_ids])).logits[0, -1] for e in untrained.scorer.encode(*zip(*pairs))]
    expected = np.array([float(a[yes] - a[no]) for a in answers])
    np.testing.assert_allclose(untrained.scorer.score_texts(*map(list, zip(*pairs))), expected, atol=1e-5)

    module = perturbed_module(folder, RetrievalAdapter(max_length=96), head="yes-no")
    module.scorer.fold_affine(3.0, 0.0)  # a final calibration, folded into the "yes" row on export
    export_model(module, tmp_path / "model")
    ours = Model.from_pretrained(tmp_path / "model").predict(pairs)
    assert json.loads((tmp_path / "model" / "unirank.json").read_text())["head"] == "yes-no"
    theirs = CrossEncoder(str(tmp_path / "model")).predict(pairs)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    assert max(ours) - min(ours) > 1e-3


def test_qlora_trains_on_a_4bit_base_and_exports_the_plain_model_it_computes(tmp_path):
    """QLoRA on the CPU: the frozen base in 4-bit NF4 (bitsandbytes), adapters and head in fp32; the
    export dequantises the base to the weights it trained against and merges the adapters, so the
    plain export computes the trained (and calibrated) logits. bitsandbytes' CPU blocks need
    layers at least 64 wide, hence a 128-wide random Qwen2."""
    import lightning as L

    from unirank.adapters import ChatAdapter
    from unirank.data.datamodule import UnirankDataModule
    from unirank.domains.chat.source import Preferences
    from unirank.model import Model
    from unirank.model.lora import LoRA
    from unirank.model.random_decoders import build_decoder
    from unirank.module import Schedule, UnirankModule
    from unirank.training.export import export_model

    from .conftest import REPO

    demo = str(REPO / "data/demo-preferences.jsonl")
    shape = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2)  # fmt: skip
    build_decoder(tmp_path / "base", "qwen2", shape, texts=open(demo, encoding="utf-8").readlines())
    module = UnirankModule(model=str(tmp_path / "base"), adapter=ChatAdapter(max_length=64), schedule=Schedule(1, 1),
                           lora=LoRA(r=4, quantize="4bit"), lr=1e-3, head_lr=1e-3)  # fmt: skip
    up = module.scorer.model.model.layers[0].mlp.up_proj
    assert type(up.base_layer).__name__ == "Linear4bit" and type(module.scorer.model.score).__name__ == "Linear"
    data = UnirankDataModule(Preferences(demo, validation_fraction=0.2), batch_groups=8)
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=data)  # fmt: skip
    trained = module.scorer.score_texts(PROMPTS, RESPONSES)
    folder = export_model(module, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert json.loads((folder / "unirank.json").read_text())["lora"]["quantize"] == "4bit"
    np.testing.assert_allclose(Model.from_pretrained(folder).score_texts(PROMPTS, RESPONSES), trained, atol=1e-4)


def test_a_lora_checkpoint_saved_through_model_is_merged_like_every_export(lora_fit, tmp_path):
    from unirank.model import Model

    with pytest.warns(UserWarning, match="no final calibration"):
        loaded = Model.from_pretrained(lora_fit / "checkpoints" / "last.ckpt")
    before = loaded.score_texts(PROMPTS, RESPONSES)
    folder = loaded.save_pretrained(tmp_path / "saved")
    from safetensors.torch import load_file

    assert not any("lora_" in key for key in load_file(str(folder / "model.safetensors")))
    np.testing.assert_allclose(Model.from_pretrained(folder).score_texts(PROMPTS, RESPONSES), before, atol=1e-4)


def test_an_unavailable_kernel_falls_back_once(random_decoder, monkeypatch, capsys):
    """auto on a model transformers cannot run with FlexAttention: SDPA, said once, not retried per pass."""
    scorer = perturbed_module(random_decoder("qwen2"), ChatAdapter(max_length=64)).scorer.eval()
    scorer.layout = Layout(scorer.layout.pad_id, 2, Packing(padding_free=True))
    monkeypatch.setattr(Packing, "attention_for", lambda self, device_type: "flex_attention")
    calls = []
    refuse = scorer.model.set_attn_implementation

    def no_flex(kernel):
        calls.append(kernel)
        if kernel == "flex_attention":
            raise ValueError("this model does not support flex attention")
        return refuse(kernel)

    monkeypatch.setattr(scorer.model, "set_attn_implementation", no_flex)
    encoded = scorer.encode(PROMPTS, RESPONSES)
    with torch.no_grad():
        for _ in range(3):
            scorer.score_batch(Batch.of(encoded, scorer.layout))
    assert calls == ["flex_attention", "sdpa"] and capsys.readouterr().out.count("using sdpa") == 1
