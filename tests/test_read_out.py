"""The final layer computed only at the read positions gives the full forward pass's logits and gradients."""

import pytest
import torch

from unirank.model import Scorer, load_backbone
from unirank.model.read_out import read_slots, reading_positions, supports_read_out


def _batch(tokenizer):
    contexts = ["what does aspirin do", "a reward model scores a response", "capital of France?"]
    candidates = ["it thins the blood " * 6, "here is a short answer", "Paris, the capital, on the Seine " * 3]
    batch = tokenizer(contexts, candidates, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # padding is part of what is checked
    return dict(batch)


def _full(scorer, batch):
    scorer.read_out = False
    try:
        return scorer(**batch)
    finally:
        scorer.read_out = True


def test_read_out_gives_the_full_forward_logits():
    model, tokenizer = load_backbone("tiny")
    scorer = Scorer(model, tokenizer).eval()
    assert scorer.read_out
    batch = _batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(scorer(**batch), _full(scorer, batch), rtol=0, atol=1e-5)


def test_read_out_gives_the_full_forward_gradients():
    model, tokenizer = load_backbone("tiny")
    scorer = Scorer(model, tokenizer).train()
    scorer.set_dropout(0.0)  # the two paths draw different dropout masks
    batch = _batch(tokenizer)
    grads = []
    for read_out in (True, False):
        scorer.zero_grad()
        scorer.read_out = read_out
        scorer(**batch).pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in scorer.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(scorer.parameters()))
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_read_out_at_step_positions_matches_every_position():
    model, tokenizer = load_backbone("tiny")
    scorer = Scorer(model, tokenizer).eval()
    batch = _batch(tokenizer)
    rows, cols = torch.tensor([2, 0, 0, 2, 1]), torch.tensor([5, 3, 9, 1, 0])  # unsorted, uneven per row
    with torch.no_grad():
        read = scorer.score_positions(rows, cols, **batch)
        scorer.read_out = False
        full = scorer.score_positions(rows, cols, **batch)
    torch.testing.assert_close(read, full, rtol=0, atol=1e-5)


def test_positions_not_read_are_nan_so_no_one_reads_a_stale_state():
    model, tokenizer = load_backbone("tiny")
    batch = _batch(tokenizer)
    with (
        torch.no_grad(),
        reading_positions(model, batch["attention_mask"], torch.tensor([0, 1, 2]), torch.zeros(3, dtype=torch.long)),
    ):
        hidden = model.base_model(**batch).last_hidden_state
    assert not hidden[:, 0].isnan().any() and hidden[:, 1:].isnan().all()
    assert model.base_model.encoder.layer[-1].__class__.__name__ == "BertLayer"  # put back


def test_states_capture_reads_every_token():
    model, tokenizer = load_backbone("tiny")
    scorer = Scorer(model, tokenizer).eval()
    with torch.no_grad(), scorer.capturing_states() as pooled:
        assert not scorer.read_out
        scorer(**_batch(tokenizer))
    assert not pooled[0].isnan().any()
    assert scorer.read_out  # restored


def test_slots_lay_positions_out_per_row():
    index, valid = read_slots(torch.tensor([1, 0, 1, 1]), torch.tensor([7, 4, 2, 9]), batch=3)
    assert index.tolist() == [[4, 0, 0], [7, 2, 9], [0, 0, 0]]
    assert valid.tolist() == [[True, False, False], [True, True, True], [False, False, False]]


def test_decoders_keep_their_own_forward(tiny_decoder):
    model, _ = load_backbone(tiny_decoder)
    assert not supports_read_out(model)


@pytest.mark.parametrize("change", ["relative_key", "decoder"])
def test_encoders_the_read_out_does_not_cover_keep_their_own_forward(change):
    model, _ = load_backbone("tiny")
    if change == "decoder":
        model.config.is_decoder = True
    else:
        model.config.position_embedding_type = change
    assert not supports_read_out(model)


@pytest.mark.parametrize("family", ["roberta", "electra", "xlm-roberta"])
def test_other_bert_family_encoders_read_out_the_same_logits(family):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from unirank.model.backbone import TINY_CONFIG

    _, tokenizer = load_backbone("tiny")
    config = AutoConfig.for_model(family, vocab_size=tokenizer.vocab_size, num_labels=1, **TINY_CONFIG)
    torch.manual_seed(0)
    scorer = Scorer(AutoModelForSequenceClassification.from_config(config), tokenizer).eval()
    assert scorer.read_out
    batch = _batch(tokenizer)
    batch.pop("token_type_ids")  # RoBERTa-style models have one segment
    with torch.no_grad():
        torch.testing.assert_close(scorer(**batch), _full(scorer, batch), rtol=0, atol=1e-5)
