"""Chat: (prompt, response) for reward models. The prompt is truncated from the left (the most
recent turns stay), never the response (unless the response alone exceeds max_length).

With a tokenizer that has a chat template (decoders), the conversation is rendered by it and the
response's tokens appended as the assistant turn, one sequence (a decoder without a template: the
plain role format, then "Assistant: " and the response). Otherwise (encoders such as BERT) the
prompt is rendered in a plain role format ("User: ...\\nAssistant: ...") and paired with the
response, as a sentence pair: `CrossEncoder.predict([(render_prompt(messages), response)])` then
scores alike. Every decoder input of one prompt starts with the same prompt tokens, which a
padding-free batch encodes once.
"""

from __future__ import annotations

import json

from unirank.adapters.base import (
    PAIR_HEADER,
    Adapter,
    Encoded,
    checked_settings,
    clip_text,
    decoder_sequence,
    is_encoder_tokenizer,
    last_tokens,
)


def parse_messages(context: str) -> list[dict]:
    """A stored chat context (JSON list of {role, content}) or a plain prompt string, as messages."""
    if context.startswith("["):
        try:
            messages = json.loads(context)
            if isinstance(messages, list) and all(isinstance(m, dict) and "content" in m for m in messages):
                return messages
        except json.JSONDecodeError:
            pass
    return [{"role": "user", "content": context}]


def render_prompt(messages: list[dict]) -> str:
    """The plain role format used when the tokenizer has no chat template."""
    return "\n".join(f"{m.get('role', 'user').capitalize()}: {m['content']}" for m in messages)


class ChatAdapter(Adapter):
    """Prompt-response inputs for reward models.

    Args:
        max_length: tokens per input, special tokens included.
        use_chat_template: render with the tokenizer's chat template when it has one.
        segment_ids: without a chat template, mark prompt and response as segments 0 and 1
            (token_type_ids); False leaves every token in segment 0, as a decoder or TRL's collator does.
    """

    domain = "chat"

    def __init__(self, max_length: int = 512, use_chat_template: bool = True, segment_ids: bool = True):
        checked_settings(locals(), {"max_length": int, "use_chat_template": bool, "segment_ids": bool})
        self.max_length = max_length
        self.use_chat_template = use_chat_template
        self.segment_ids = segment_ids
        self.init_args = {"max_length": max_length, "use_chat_template": use_chat_template, "segment_ids": segment_ids}

    def _templated(self, tokenizer) -> bool:
        return self.use_chat_template and bool(getattr(tokenizer, "chat_template", None))

    def encode(self, tokenizer, contexts: list[str], candidates: list[str], steps=None) -> list[Encoded]:
        if not is_encoder_tokenizer(tokenizer) or self._templated(tokenizer):
            return self._encode_sequence(tokenizer, contexts, candidates)
        prompts = [clip_text(render_prompt(parse_messages(c)), self.max_length, keep="tail") for c in contexts]
        candidates = [clip_text(c, self.max_length) for c in candidates]
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        response_lengths = [
            len(ids) for ids in tokenizer(candidates, add_special_tokens=False, verbose=False)["input_ids"]
        ]
        prompts = [last_tokens(tokenizer, p, self.max_length - specials - n) for p, n in zip(prompts, response_lengths)]
        batch = tokenizer(prompts, candidates, truncation="only_second", max_length=self.max_length)
        types = batch.get("token_type_ids") if self.segment_ids else None
        return [Encoded(ids, types[i] if types is not None else None) for i, ids in enumerate(batch["input_ids"])]

    def _encode_sequence(self, tokenizer, contexts: list[str], candidates: list[str]) -> list[Encoded]:
        """Decoders: the rendered prompt then the response, tokenised as one text; the prompt cut
        from the left to leave the response room (`decoder_sequence`)."""
        templated = self._templated(tokenizer)
        encoded = []
        for context, response in zip(contexts, candidates):
            messages = parse_messages(context)
            prompt = (
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                if templated
                else render_prompt(messages) + "\nAssistant: "
            )
            prompt = clip_text(prompt, self.max_length, keep="tail")
            response = clip_text(response, self.max_length)
            encoded.append(decoder_sequence(tokenizer, prompt, response, self.max_length, cut="head"))
        return encoded

    def pair_template(self, tokenizer) -> str | None:
        """(prompt, response) pairs as `encode` renders them: the prompt (a plain string) as the
        user's turn, the generation prompt, then the response. Only where the tokenizer has a chat
        template (a template-less tokenizer keeps none, so that unirank reads its export as trained)."""
        if not self._templated(tokenizer):
            return None
        return (
            PAIR_HEADER + '{%- set messages = [{"role": "user", "content": query}] -%}\n'
            "{%- set add_generation_prompt = true -%}\n{%- endif -%}\n"
            + tokenizer.chat_template
            + "{% if document is defined %}{{ document }}{% endif %}"
        )

    def describe(self) -> dict:
        return {
            "domain": self.domain,
            "max_length": self.max_length,
            "input": "chat template + response" if self.use_chat_template else "(render_prompt(messages), response)",
            "prompt_format": "'Role: content' lines when the tokenizer has no chat template",
        }
