"""A model folder is checked on the way in: an edited or damaged unirank.json, weights file, config
or side file is refused with the file and the problem named, by the Python API and by every
command, before anything is scored; nothing is scored with weights initialised at random."""

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unirank.adapters import ChatAdapter
from unirank.cli import main
from unirank.model import Model, ModelFolderError
from unirank.module import UnirankModule
from unirank.training.export import export_model


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A tiny export with a head posterior (33 × 33: the 32-wide head and its bias)."""
    from unirank.fitting.laplace import HeadPosterior

    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32))
    info = {"method": "a test's", "prior_precision": 1.0, "effective_parameters": 1.0}
    module.scorer.head_posterior = HeadPosterior(np.eye(33), 1.0, 1.0, info)
    return export_model(module, tmp_path_factory.mktemp("good") / "model")


def _edit(name, update):
    """A damage: the folder's JSON file `name` read, changed by `update`, written back."""

    def damage(folder):
        content = json.loads((folder / name).read_text())
        update(content)
        (folder / name).write_text(json.dumps(content))

    return damage


def _info(update):
    return _edit("unirank.json", update)


def _config(update):
    return _edit("config.json", update)


def _write(name, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def _posterior_of_width(width):
    def damage(folder):
        from safetensors.torch import save_file

        save_file({"covariance": torch.eye(width, dtype=torch.float64)}, str(folder / "head_posterior.safetensors"))

    return damage


CASES = {
    "garbage json": (_write("unirank.json", b"{not json"), r"unirank\.json: not valid JSON"),
    "a list": (_write("unirank.json", b"[1, 2]"), r"unirank\.json: must hold a JSON object"),
    "no adapter": (_info(lambda i: i.pop("adapter")), r"'adapter' must be a dict"),
    "a string for a": (
        _info(lambda i: i["calibration"].update(final_fit={"a": "x", "b": 0})),
        r"final_fit\.a must be a finite number",
    ),
    "nan for b": (
        _info(lambda i: i["calibration"].update(final_fit={"a": 1.0, "b": float("nan")})),
        r"final_fit\.b must be a finite number",
    ),
    "a future version": (_info(lambda i: i.update(unirank_version="9.0.0")), r"written by unirank 9\.0\.0, newer"),
    "a negative length": (
        _info(lambda i: i["adapter"]["init_args"].update(max_length=-3)),
        r"max_length must be a positive integer",
    ),
    "an unknown reading": (
        _info(lambda i: i["calibration"].update(pairwise_reading="probit")),
        r"pairwise_reading must be",
    ),
    "an unknown head": (_info(lambda i: i.update(head="ternary")), r"'head' must be 'scalar' or 'yes-no'"),
    "an unknown adapter": (
        _info(lambda i: i["adapter"].update({"class": "Foo", "domain": "nowhere"})),
        r"unknown adapter 'Foo'.*unknown domain 'nowhere'",
    ),
    "an unknown adapter setting": (  # found by the fuzz test below
        _info(lambda i: i["adapter"]["init_args"].update({"": None})),
        r"adapter ChatAdapter cannot take",
    ),
    "empty weights": (_write("model.safetensors", b""), r"its weights cannot be loaded"),
    "another architecture's config": (
        _config(lambda c: c.update(model_type="roberta", architectures=["RobertaForSequenceClassification"])),
        r"would start at random|cannot be loaded",
    ),
    "a config of another width": (
        _config(lambda c: c.update(hidden_size=64)),
        r"cannot be loaded|would start at random",
    ),
    "a posterior of the wrong shape": (
        _posterior_of_width(5),
        r"head_posterior\.safetensors: covariance \(5, 5\) does not fit",
    ),
    "a damaged side file": (_write("head_posterior.safetensors", b"\x00" * 40), r"a side file cannot be read"),
    "a missing posterior": (  # it loaded without one: no standard error, no word
        lambda folder: (folder / "head_posterior.safetensors").unlink(),
        r"names head_posterior\.safetensors, which the folder does not hold",
    ),
    "a missing novelty reference": (
        _info(lambda i: i.update(novelty={"file": "novelty_reference.safetensors", "references": 10})),
        r"names novelty_reference\.safetensors, which the folder does not hold",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_model_folder_is_refused_naming_the_file_and_the_problem(export, tmp_path, case, capsys):
    damage, message = CASES[case]
    folder = tmp_path / "model"
    shutil.copytree(export, folder)
    damage(folder)
    with pytest.raises(ModelFolderError, match=message):
        Model.from_pretrained(folder)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"context": "q", "candidate": "d"}) + "\n")
    with pytest.raises(SystemExit, match=rf"unirank score: .*({message})"):
        main(["score", "--model", str(folder), "--input", str(rows), "--out", str(tmp_path / "out.jsonl")])
    assert not (tmp_path / "out.jsonl").exists()


def test_the_undamaged_folder_loads(export):
    assert Model.from_pretrained(export).predict([("q", "d")]).shape == (1,)


@pytest.fixture(scope="module")
def process_export(tmp_path_factory):
    from unirank.adapters import ProcessAdapter

    folder = tmp_path_factory.mktemp("process") / "model"
    return export_model(UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=64)), folder)


WRONG_MODEL = {
    "score with a process model": ("process", ["score", "--input", "{pairs}", "--out", "{out}"],
                                   r"unirank score: .*needs a reranker or reward model; this is a process model"),
    "select with a process model": ("process", ["select", "--input", "{lists}", "--out", "{out}"],
                                    r"unirank select: .*needs a reranker or reward model"),
    "a process model as a teacher": ("process", ["judge", "teacher", "--tables", "{tables}", "--out", "{out}"],
                                     r"unirank judge teacher: .*a teacher needs a reranker or reward model"),
    "evaluate --steps with a chat model": ("chat", ["evaluate", "--steps", "{steps}", "--out", "{out}"],
                                           r"--steps needs a process model; model is a chat model"),
    "prune with a chat model": ("chat", ["prune", "--steps", "{steps}", "--out", "{out}"],
                                r"unirank prune: .*not a process model"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WRONG_MODEL))
def test_a_command_given_the_wrong_kind_of_model_says_so_in_one_sentence(export, process_export, repo, tmp_path, case):
    kind, words, message = WRONG_MODEL[case]
    pairs, lists = tmp_path / "pairs.jsonl", tmp_path / "lists.jsonl"
    pairs.write_text(json.dumps({"context": "q", "candidate": "d"}) + "\n")
    lists.write_text(json.dumps({"context": "q", "candidates": ["a", "b"]}) + "\n")
    from unirank.domains.chat.source import Preferences

    Preferences(str(repo / "data/demo-preferences.jsonl")).load().write(tmp_path / "tables")
    paths = {"pairs": pairs, "lists": lists, "tables": tmp_path / "tables", "out": tmp_path / "out",
             "steps": repo / "data/demo-prmbench.jsonl"}  # fmt: skip
    model = process_export if kind == "process" else export
    with pytest.raises(SystemExit, match=message):
        main([*(word.format(**paths) for word in words), "--model", str(model)])
    assert not (tmp_path / "out").exists()


class _Pickled:
    """A class torch's safe (weights-only) loader refuses to unpickle."""


def _checkpoint(kind, path):
    if kind == "truncated":
        torch.save({"unirank": {"config": "{}"}, "state_dict": {"w": torch.zeros(100)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "not unirank's":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif kind == "a pickled object":
        torch.save({"unirank": _Pickled()}, path)
    return path


CHECKPOINTS = {
    "missing": r"no such model folder or checkpoint file",
    "truncated": r"not a loadable checkpoint",
    "not unirank's": r"not a unirank checkpoint \(no 'unirank' entry\)",
    "a pickled object": r"not a loadable checkpoint \(UnpicklingError",
}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_a_bad_checkpoint_is_refused_by_name(tmp_path, kind):
    path = _checkpoint(kind, tmp_path / "run.ckpt")
    with pytest.raises(ModelFolderError, match=rf"run\.ckpt: {CHECKPOINTS[kind]}"):
        Model.from_pretrained(path)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"context": "q", "candidate": "d"}) + "\n")
    with pytest.raises(SystemExit, match=rf"unirank score: .*run\.ckpt: {CHECKPOINTS[kind]}"):
        main(["score", "--model", str(path), "--input", str(rows), "--out", str(tmp_path / "out.jsonl")])


def _paths(node, prefix=()):
    """Every key path of a JSON object, nested ones included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _loads_or_is_refused(folder):
    """Whatever the folder holds: a model that scores, or a ModelFolderError; nothing else escapes."""
    try:
        model = Model.from_pretrained(folder)
    except ModelFolderError as error:
        assert str(folder) in str(error)
        return
    assert np.isfinite(model.predict([("q", "d")])).all()


@FUZZ
@given(data=st.data())
def test_random_values_anywhere_in_unirank_json(export, tmp_path, data):
    folder = tmp_path / "model"
    if not folder.exists():
        shutil.copytree(export, folder)
    info = json.loads((export / "unirank.json").read_text())
    path = data.draw(st.sampled_from(sorted(_paths(info), key=str)))
    node = info
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(JSON_VALUES)
    (folder / "unirank.json").write_text(json.dumps(info))
    _loads_or_is_refused(folder)


@pytest.mark.parametrize(
    ("setting", "value"), [("max_length", None), ("max_length", True), ("max_length", 0), ("use_chat_template", "no")]
)
def test_an_adapter_setting_of_the_wrong_kind_is_refused_at_load(export, tmp_path, setting, value):
    """Found by the fuzz test above: max_length null loaded, then failed inside predict."""
    folder = tmp_path / "model"
    shutil.copytree(export, folder)
    info = json.loads((export / "unirank.json").read_text())
    info["adapter"]["init_args"][setting] = value
    (folder / "unirank.json").write_text(json.dumps(info))
    with pytest.raises(ModelFolderError, match=f"{setting} must be"):
        Model.from_pretrained(folder)


TENSORS = st.builds(
    lambda shape, fill, dtype: torch.full(shape, fill, dtype=dtype),
    st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple),
    st.floats(allow_nan=True, allow_infinity=True, width=16),
    st.sampled_from([torch.float32, torch.float64, torch.float16]),
)


@FUZZ
@given(
    name=st.sampled_from(["head_posterior.safetensors", "novelty_reference.safetensors"]),
    content=st.binary(max_size=200)
    | st.dictionaries(st.sampled_from(["covariance", "states", "own_novelty"]), TENSORS),
)
def test_random_side_files(export, tmp_path, name, content):
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    if not folder.exists():
        shutil.copytree(export, folder)
        info = json.loads((folder / "unirank.json").read_text())
        (folder / "unirank.json").write_text(json.dumps({**info, "novelty": {"file": "novelty_reference.safetensors"}}))
    (folder / "novelty_reference.safetensors").unlink(missing_ok=True)  # only this example's damage
    shutil.copyfile(export / "head_posterior.safetensors", folder / "head_posterior.safetensors")
    if isinstance(content, bytes):
        (folder / name).write_bytes(content)
    else:
        save_file({k: v.contiguous() for k, v in content.items()}, str(folder / name))
    _loads_or_is_refused(folder)
