"""The GPU check's end-to-end part in pytest, where CUDA exists (marked `gpu`; skipped elsewhere):
a recipe fits on the GPU, exports, scores with `unirank score --device cuda`, and the export's CUDA
probability equals its CPU probability (1e-5 in fp32, 1e-3 in bf16)."""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def random_models():
    from benchmarks.gpu_check import random_models

    return random_models("tiny")


@pytest.mark.parametrize("recipe", ["debug", "reward", "process", "reward-mixture", "reward-decoder"])
def test_a_recipe_fits_exports_and_scores_on_cuda(recipe, random_models):
    from benchmarks.gpu_check import recipe_check

    row = recipe_check(recipe, *random_models)
    assert row["within"], row
    if recipe == "reward-decoder":
        assert row["attention"] == "packed rows attend through flex_attention on cuda:0"
