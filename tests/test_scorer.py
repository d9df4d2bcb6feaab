"""Backbones: an encoder (BERT) and a decoder (GPT-2 with a byte-level BPE and a chat template)."""

import json

import numpy as np

from unirank.adapters import ChatAdapter, RetrievalAdapter
from unirank.model import load_backbone
from unirank.module import UnirankModule


def test_decoder_gets_a_pad_token_and_scores_do_not_depend_on_padding(tiny_decoder):
    model, tokenizer = load_backbone(tiny_decoder)
    assert tokenizer.pad_token == "<|endoftext|>" and model.config.pad_token_id == tokenizer.pad_token_id
    module = UnirankModule(model=tiny_decoder, adapter=ChatAdapter(max_length=64), chunk_size=8)
    contexts = [json.dumps([{"role": "user", "content": "what is the capital of France?"}])] * 3
    responses = ["Paris", "a reward model scores a response to a prompt and more words", "the lazy dog"]
    together = module.scorer.score_texts(contexts, responses)  # one padded chunk, last-token pooling
    alone = np.array([module.scorer.score_texts([c], [r])[0] for c, r in zip(contexts, responses)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_chat_template_prompt_is_cut_from_the_left_never_the_response(tiny_decoder):
    _, tokenizer = load_backbone(tiny_decoder)
    long_prompt = json.dumps([{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 10}])
    response = "here is a short answer"
    [encoded] = ChatAdapter(max_length=24).encode(tokenizer, [long_prompt], [response])
    text = tokenizer.decode(encoded.input_ids)
    assert len(encoded.input_ids) <= 24 and text.endswith("<assistant> " + response)


def test_bert_pair_keeps_the_response_and_the_latest_turns():
    _, tokenizer = load_backbone("tiny")
    turns = [
        {"role": "user", "content": "first turn " * 30},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "final question?"},
    ]
    [encoded] = ChatAdapter(max_length=32).encode(tokenizer, [json.dumps(turns)], ["the answer is forty two"])
    text = tokenizer.decode(encoded.input_ids)
    assert len(encoded.input_ids) == 32
    assert text.endswith("user : final question? [SEP] the answer is forty two [SEP]")


def test_retrieval_truncates_the_document():
    _, tokenizer = load_backbone("tiny")
    [encoded] = RetrievalAdapter(max_length=16).encode(tokenizer, ["a short query"], ["word " * 100])
    assert len(encoded.input_ids) == 16
    assert tokenizer.decode(encoded.input_ids).startswith("[CLS] a short query [SEP] word")


def test_dropout_zero_makes_training_mode_deterministic_and_is_part_of_the_config():
    import torch

    from unirank.adapters import ChatAdapter
    from unirank.module import UnirankModule

    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32), dropout=0.0)
    assert module.scorer.training
    encoded = module.adapter.encode(module.tokenizer, ["a prompt"] * 3, ["one", "two", "three"])
    from unirank.adapters.base import Batch, pad_chunks

    chunks, order = pad_chunks(encoded, module.tokenizer.pad_token_id, 8)
    first, second = (module.scorer.score_batch(Batch(chunks, order)).items for _ in range(2))
    assert torch.equal(first, second)  # no dropout mask in training mode
    assert module.config()["dropout"] == 0.0
    with_dropout = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32), dropout=0.5)
    a, b = (with_dropout.scorer.score_batch(Batch(chunks, order)).items for _ in range(2))
    assert not torch.equal(a, b)
