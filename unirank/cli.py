"""The `unirank` command.

unirank fit|validate|test|predict --config lightning_configs/<recipe>.yaml   (LightningCLI)
unirank mine      --beir DIR --split train --out OUT_DIR [--mining.k 100 ...]
unirank judge     requests|import|teacher|llm --tables MINED_DIR ...   (llm: --endpoint URL --model NAME)
unirank targets   --comparisons comparisons.parquet --out targets.parquet   (the Thurstone fit alone)
unirank evaluate  --model DIR_OR_CKPT (--beir DIR | --preferences FILE | --steps FILE | --tables DIR
                  | --rewardbench FILE | --rewardbench2 FILE) --out DIR
unirank export    CKPT OUT_DIR
unirank recalibrate --model DIR --labels FILE_OR_TABLES_OR_BEIR --out NEW_DIR   (a new domain's labels)
unirank score     --model DIR_OR_CKPT --input rows.jsonl --out scores.jsonl
unirank select    --model DIR_OR_CKPT --input prompts.jsonl [--threshold T [--conservative]] --out selected.jsonl
unirank prune     --model PROCESS_MODEL --steps FILE [--threshold T] --out prune.json

Every command's options come from its function's signature (`unirank.commands`), so each also
reads a YAML file (--config) and prints one (--print_config), as `fit` does. Options are spelt
with underscores as in LightningCLI (--validation_fraction); the dashed spellings also work.
"""

from __future__ import annotations

import sys


def _commands() -> dict:
    """Command name → its function (or, for judge, action → function)."""
    from unirank.commands import data, evaluate, inference, recalibrate

    judge = {"requests": data.judge_requests, "import": data.judge_import, "teacher": data.judge_teacher,
             "llm": data.judge_llm}  # fmt: skip
    return {
        "mine": data.mine,
        "judge": judge,
        "targets": data.targets,
        "evaluate": evaluate.evaluate,
        "export": inference.export,
        "recalibrate": recalibrate.recalibrate,
        "score": inference.score,
        "select": inference.select,
        "prune": inference.prune,
    }


POSITIONAL_COMMANDS = {"export"}  # unirank export CKPT OUT_DIR


def _command_parser(function, positional: bool):
    """A parser whose options are `function`'s parameters, typed, defaulted and documented by its
    signature and docstring; a bool is a flag (--overwrite, --overwrite false, --no_overwrite) and
    a list of floats takes its values one after another (--thresholds 0.5 0.9)."""
    import inspect

    from docstring_parser import parse
    from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

    parameters = inspect.signature(function, eval_str=True).parameters
    helps = {p.arg_name: p.description for p in parse(function.__doc__ or "").params}
    flags = {n for n, p in parameters.items() if p.annotation is bool}
    lists = {n for n, p in parameters.items() if p.annotation == list[float]}
    parser = ArgumentParser(description=(function.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_function_arguments(function, as_positional=positional, skip=flags | lists)
    for name in sorted(flags):
        parser.add_argument(
            f"--{name}", action=ActionYesNo(), nargs="?", default=parameters[name].default, help=helps.get(name)
        )
    for name in sorted(lists):
        parser.add_argument(f"--{name}", type=float, nargs="+", default=parameters[name].default, help=helps.get(name))
    return parser


def _parser(commands: dict):
    """`unirank COMMAND [ACTION] --option ...` over the data, evaluation and decision commands."""
    import argparse

    from jsonargparse import ArgumentParser, DefaultHelpFormatter

    class Formatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Keeps the command summary's lines."""

    parser = ArgumentParser(prog="unirank", description=__doc__.split("\n\n")[1], formatter_class=Formatter)
    subcommands = parser.add_subcommands(dest="command")
    for name, target in commands.items():
        if isinstance(target, dict):
            group = ArgumentParser(description=f"unirank {name} {'|'.join(target)}")
            subcommands.add_subcommand(name, group, help=f"{name}: {', '.join(target)}")
            actions = group.add_subcommands(dest="action")
            for action, function in target.items():
                actions.add_subcommand(action, _command_parser(function, False), help=_summary(function))
        else:
            subcommands.add_subcommand(
                name, _command_parser(target, name in POSITIONAL_COMMANDS), help=_summary(target)
            )
    return parser


def _summary(function) -> str:
    return (function.__doc__ or "").split("\n\n")[0].split(".")[0].replace("\n", " ")


def _underscored(words: list[str]) -> list[str]:
    """--validation-fraction=0.1 → --validation_fraction=0.1: an option's dashed spelling (the
    documented one before the options came from signatures) names the same option."""
    spelt = []
    for word in words:
        if word.startswith("--") and len(word) > 2:
            option, equals, value = word.partition("=")
            word = "--" + option[2:].replace("-", "_") + equals + value
        spelt.append(word)
    return spelt


RENAMED_COMMANDS = {"calibrate": "targets"}
"""0.1's command names that still run, with a warning, for one release (0.2 → 0.3)."""


def _old_spellings(words: list[str]) -> list[str]:
    """0.1's spellings in 0.2's: a renamed command, and `unirank mine --k 50` for `--mining.k 50`
    (each field of `MiningConfig` given at the top level), each with a warning."""
    import dataclasses
    import warnings

    if words and words[0] in RENAMED_COMMANDS:
        old, words = words[0], [RENAMED_COMMANDS[words[0]], *words[1:]]
        warnings.warn(f"unirank {old} is now unirank {words[0]}; the old name goes in 0.3", FutureWarning, stacklevel=3)
    if words and words[0] == "mine":
        from unirank.mining.pipeline import MiningConfig

        fields = {field.name for field in dataclasses.fields(MiningConfig)}
        for index, word in enumerate(words):
            option, equals, value = word.partition("=")
            if option.startswith("--") and option[2:] in fields:
                words[index] = f"--mining.{option[2:]}{equals}{value}"
                warnings.warn(f"unirank mine {option} is now --mining.{option[2:]}; the old spelling goes in 0.3",
                              FutureWarning, stacklevel=3)  # fmt: skip
    return words


def _run_command(words: list[str]) -> None:
    """Parse a data / evaluation / decision command line and run the command's function."""
    from unirank.atomic import OutputError
    from unirank.data.tables import TableError
    from unirank.model.backbone import ModelFolderError, RemoteCodeError

    commands = _commands()
    parser = _parser(commands)
    config = parser.parse_args(_old_spellings(_underscored(words)))
    path = [config.command] + ([config[config.command].action] if isinstance(commands[config.command], dict) else [])
    label = "unirank " + " ".join(path)
    try:
        options = parser.instantiate(config)  # dataclass options (MiningConfig) built and checked
    except ValueError as error:
        raise SystemExit(f"{label}: {error}") from None
    function = commands
    for key in path:
        function, options = function[key], options[key]
    arguments = {key: value for key, value in options.items() if key not in ("config", "__path__")}
    try:
        function(**arguments)
    except (TableError, OutputError, ModelFolderError, RemoteCodeError) as error:  # named, never a traceback
        raise SystemExit(f"{label}: {error}") from None


LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in LIGHTNING_COMMANDS:
        from unirank.training.fit_command import run_lightning

        run_lightning(argv)
        return
    _run_command(words)


if __name__ == "__main__":
    main()
