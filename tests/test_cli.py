"""The data, evaluation and decision commands take their options from their functions' signatures."""

from __future__ import annotations

import inspect
import json

import pytest
import yaml

from unirank.cli import POSITIONAL_COMMANDS, _commands, main


def _printed_config(capsys, argv: list[str]) -> dict:
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--print_config"])
    assert stopped.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def _every_command():
    for name, target in _commands().items():
        for action, function in target.items() if isinstance(target, dict) else [(None, target)]:
            yield [name] + ([action] if action else []), function


@pytest.mark.parametrize(
    "words, function", list(_every_command()), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_every_parameter_of_every_command_is_an_option(capsys, words, function):
    parameters = inspect.signature(function).parameters
    required = [n for n, p in parameters.items() if p.default is inspect.Parameter.empty]
    given = required if words[0] in POSITIONAL_COMMANDS else [w for n in required for w in (f"--{n}", "x")]
    config = _printed_config(capsys, [*words, *given])
    assert set(config) == set(parameters)
    for name, parameter in parameters.items():
        if name not in required and not hasattr(parameter.default, "__dataclass_fields__"):
            assert config[name] == (
                list(parameter.default) if isinstance(parameter.default, list) else parameter.default
            )


def test_dashed_options_and_bare_flags_mean_what_they_always_meant(capsys):
    base = ["prune", "--model", "m", "--steps", "s", "--out", "o"]
    underscored = _printed_config(
        capsys, [*base, "--validation_fraction", "0.3", "--conservative", "true", "--trust_remote_code", "true"]
    )
    dashed = _printed_config(capsys, [*base, "--validation-fraction=0.3", "--conservative", "--trust-remote-code"])
    assert dashed == underscored
    assert dashed["validation_fraction"] == 0.3 and dashed["conservative"] and dashed["trust_remote_code"]
    assert _printed_config(capsys, ["export", "a", "b", "--no_overwrite"])["overwrite"] is False
    thresholds = _printed_config(capsys, ["evaluate", "--model", "m", "--out", "o", "--thresholds", "0.6", "0.8"])
    assert thresholds["thresholds"] == [0.6, 0.8]


def test_a_yaml_file_sets_a_commands_options_and_the_command_line_overrides_it(capsys, tmp_path):
    (tmp_path / "evaluate.yaml").write_text(
        "model: runs/model\nout: report\nsplit: validation\nthresholds: [0.5, 0.9]\n"
        "first_stage:\n  k: 50\n  precision: fp32\n"
    )
    config = _printed_config(capsys, ["evaluate", "--config", str(tmp_path / "evaluate.yaml"), "--first_stage.k", "20"])
    assert (config["model"], config["split"], config["thresholds"]) == ("runs/model", "validation", [0.5, 0.9])
    assert (config["first_stage"]["k"], config["first_stage"]["precision"]) == (20, "fp32")


def test_a_bad_option_value_is_refused_by_name():
    with pytest.raises(SystemExit):
        main(["targets", "--comparisons", "c", "--out", "o", "--link", "probit"])
    with pytest.raises(SystemExit, match="unirank mine: mining: k=0 must be at least 1"):
        main(["mine", "--beir", "b", "--out", "o", "--mining.k", "0"])


def test_the_old_spellings_run_with_a_warning_for_one_release(capsys):
    with pytest.warns(FutureWarning, match="--mining.k"):
        config = _printed_config(capsys, ["mine", "--beir", "b", "--out", "o", "--k", "7"])
    assert config["mining"]["k"] == 7
    with pytest.warns(FutureWarning, match="unirank calibrate is now unirank targets"):
        config = _printed_config(capsys, ["calibrate", "--comparisons", "c", "--out", "o"])
    assert config["comparisons"] == "c"


def test_a_recipe_naming_a_moved_class_still_resolves_with_a_warning(capsys):
    import unirank.data.sources
    import unirank.mining.source
    from unirank.domains.chat.source import Preferences
    from unirank.domains.retrieval.source import MinedBeir

    with pytest.warns(FutureWarning, match="unirank.domains.chat.source"):
        assert unirank.data.sources.Preferences is Preferences
    with pytest.warns(FutureWarning, match="unirank.domains.retrieval.source"):
        assert unirank.mining.source.MinedBeir is MinedBeir
    old = {"class_path": "unirank.data.sources.Preferences", "init_args": {"path": "data/demo-preferences.jsonl"}}
    with pytest.warns(FutureWarning):
        main(["fit", "--config", "lightning_configs/debug.yaml", "--data.source", json.dumps(old),
              "--trainer.fast_dev_run=true", "--trainer.logger=false"])  # fmt: skip
    assert "every stage ran on one batch" in capsys.readouterr().out


def test_default_root_dir_holds_the_logs_and_the_checkpoints(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder's runs/
    main(["fit", "--config", str(repo / "lightning_configs/debug.yaml"), "--model.schedule.pairwise_epochs=1",
          "--model.schedule.pointwise_epochs=0", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
          "--data.source.init_args.path", str(repo / "data/demo-preferences.jsonl"),
          f"--trainer.default_root_dir={tmp_path / 'run'}", f"--export.dirpath={tmp_path / 'model'}"])  # fmt: skip
    assert list((tmp_path / "run" / "lightning_logs").glob("version_*/metrics.csv"))
    assert list((tmp_path / "run" / "lightning_logs").glob("version_*/checkpoints/last.ckpt"))
    assert not (tmp_path / "runs").exists()
    assert "besides training, this run scores" in capsys.readouterr().out  # the fits' cost, said up front
