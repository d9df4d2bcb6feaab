"""The chat adapter's segment ids: prompt 0 / response 1 by default, all 0 on request."""

from unirank.adapters import ChatAdapter
from unirank.model import load_backbone


def test_segment_ids_can_be_left_out():
    _, tokenizer = load_backbone("tiny")
    with_segments = ChatAdapter(max_length=32, use_chat_template=False).encode(tokenizer, ["hi"], ["hello there"])
    without = ChatAdapter(max_length=32, use_chat_template=False, segment_ids=False).encode(
        tokenizer, ["hi"], ["hello there"]
    )
    assert set(with_segments[0].token_type_ids) == {0, 1}
    assert without[0].token_type_ids is None and without[0].input_ids == with_segments[0].input_ids


def test_long_inputs_are_cut_without_the_tokenizers_over_length_notice():
    import logging

    from transformers.utils import logging as hf_logging

    from unirank.adapters import ProcessAdapter

    notices = []
    handler = logging.Handler()
    handler.emit = lambda record: notices.append(record.getMessage())
    hf_logging.get_logger().addHandler(handler)  # transformers' own root logger, which does not propagate
    try:
        _, tokenizer = load_backbone("tiny")
        tokenizer.model_max_length = 32  # as an export records it: the adapter's max_length
        long = "word " * 200
        for use_template in (False, True):
            [chat] = ChatAdapter(max_length=32, use_chat_template=use_template).encode(tokenizer, [long], [long])
            assert len(chat.input_ids) == 32
        [steps] = ProcessAdapter(max_length=32, problem_max_length=8).encode(tokenizer, [long], [""], [[long, "b"]])
        assert len(steps.input_ids) <= 32
    finally:
        hf_logging.get_logger().removeHandler(handler)
    assert not [n for n in notices if "Token indices sequence length" in n]
