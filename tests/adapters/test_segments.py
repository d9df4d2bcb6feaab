"""The chat adapter's segment ids: prompt 0 / response 1 by default, all 0 on request."""

from unirank.adapters import ChatAdapter
from unirank.scorer import load_backbone


def test_segment_ids_can_be_left_out():
    _, tokenizer = load_backbone("tiny")
    with_segments = ChatAdapter(max_length=32, use_chat_template=False).encode(tokenizer, ["hi"], ["hello there"])
    without = ChatAdapter(max_length=32, use_chat_template=False, segment_ids=False).encode(
        tokenizer, ["hi"], ["hello there"]
    )
    assert set(with_segments[0].token_type_ids) == {0, 1}
    assert without[0].token_type_ids is None and without[0].input_ids == with_segments[0].input_ids
