"""Novelty: how far an input's backbone state lies from the training inputs' (the trained model's
reference travels with checkpoints and exports: tests/test_uncertainty.py)."""

import numpy as np
import torch

from unirank.adapters import ChatAdapter
from unirank.model.novelty import fit_reference
from unirank.module import UnirankModule


def test_novelty_is_the_cosine_distance_to_the_nearest_reference_and_its_training_percentile():
    states = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [np.nan, 0.0]])  # the NaN row (a cut step) is left out
    reference = fit_reference(states)
    assert len(reference.states) == 3
    np.testing.assert_allclose(np.linalg.norm(reference.states, axis=1), 1.0, rtol=1e-6)
    own = 1 - np.cos(np.pi / 4)  # each reference's nearest other is 45° away
    np.testing.assert_allclose(reference.own_novelty, [own, own, own], rtol=1e-5)
    novelty = reference.novelty(np.array([[3.0, 0.0], [-1.0, 0.0], [1.0, 0.2]]))
    np.testing.assert_allclose(novelty, [0.0, 1.0, 1 - 1 / np.sqrt(1.04)], atol=1e-6)
    np.testing.assert_array_equal(reference.percentile(np.array([0.0, own + 1e-6, 1.0])), [0.0, 1.0, 1.0])
    assert fit_reference(states[:1]) is None


def test_the_percentile_leaves_out_a_references_own_context():
    # two prompts, two near-identical responses each: leave-one-out would make every reference's own
    # novelty ~0 and put any input of a new prompt beyond all of them
    states = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
    plain, by_context = fit_reference(states), fit_reference(states, np.array(["p", "p", "q", "q"]))
    assert plain.own_novelty.max() < 1e-3
    np.testing.assert_allclose(by_context.own_novelty, [0.99, 0.99, 0.99, 0.99], atol=0.011)
    new_prompt = np.array([[1.0, 1.0]])  # as far from both prompts as they are from each other, or closer
    assert plain.percentile(plain.novelty(new_prompt))[0] == 1.0
    assert by_context.percentile(by_context.novelty(new_prompt))[0] == 0.0
    single = fit_reference(states, np.array(["p"] * 4))  # one context: plain leave-one-out
    np.testing.assert_allclose(single.own_novelty, plain.own_novelty)


def test_captured_states_are_the_masked_mean_of_the_final_hidden_states_in_input_order():
    scorer = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=64)).scorer.eval()
    contexts = ["Hi", "a much longer question about eggs and how to boil them well", "Why?"]
    texts = ["Hello there.", "Boil them for nine minutes, then cool them in cold water.", "No."]
    encoded = scorer.encode(contexts, texts)
    _, _, states = scorer.score_encoded_with_features(encoded, states=True)
    for row, e in enumerate(encoded):  # one input at a time: no padding, plain mean
        ids = torch.tensor([e.input_ids])
        types = None if e.token_type_ids is None else torch.tensor([e.token_type_ids])
        with torch.no_grad():
            hidden = scorer.model.base_model(input_ids=ids, token_type_ids=types).last_hidden_state[0]
        np.testing.assert_allclose(states[row], hidden.mean(0).numpy(), atol=1e-5)
