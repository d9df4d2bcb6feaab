"""The `unirank` command.

unirank fit|validate|test|predict --config lightning_configs/<recipe>.yaml   (LightningCLI)
unirank mine      --beir DIR --split train --out OUT_DIR [--mining.k 100 ...]
unirank judge     requests|import|teacher|llm --tables MINED_DIR ...
unirank targets   --comparisons comparisons.parquet --out targets.parquet   (the Thurstone fit alone)
unirank evaluate  --model DIR_OR_CKPT (--beir DIR | --preferences FILE | --steps FILE | --tables DIR) --out DIR
unirank export    CKPT OUT_DIR
unirank recalibrate --model DIR --labels FILE_OR_TABLES --out NEW_DIR   (a new domain's labels)
unirank score     --model DIR_OR_CKPT --input rows.jsonl --out scores.jsonl
unirank select    --model DIR_OR_CKPT --input prompts.jsonl [--threshold T [--conservative]] --out selected.jsonl
unirank prune     --model PROCESS_MODEL --steps FILE [--threshold T] --out prune.json

Every command's options come from its function's signature (`unirank.commands`), so each also
reads a YAML file (--config) and prints one (--print_config), as `fit` does. Options are spelt
with underscores as in LightningCLI (--validation_fraction); the dashed spellings also work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


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
DEFAULT_LOG_DIR = "runs"
"""Where a fit's CSV logs (and so its checkpoints) go unless --trainer.default_root_dir names a folder."""


def _same_adapter(ckpt_path, checkpoint: dict, adapter) -> None:
    """A run resumes only into a recipe of the adapter (the domain) it was trained with: the weights
    would load, and the export would be the wrong kind of model without a word."""
    try:
        recorded = json.loads(checkpoint["unirank"]["config"])["adapter"]
    except (KeyError, TypeError, ValueError):
        raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: not a unirank checkpoint (no 'unirank' entry)") from None
    wanted = str(getattr(adapter, "class_path", "") or "").rsplit(".", 1)[-1]
    if wanted and recorded.get("class") != wanted:
        raise SystemExit(
            f"unirank: --ckpt_path {ckpt_path}: trained with {recorded.get('class')} (domain "
            f"{recorded.get('domain')}); this recipe's adapter is {wanted}: resume with the recipe it was trained with"
        )


def _quiet_expected_noise() -> None:
    """Messages every fit printed that tell the user nothing: Lightning's advertisement for its
    cloud logger, a deprecation inside Lightning's own code, and the model summary's note that it
    sizes bf16 weights as fp32. Everything else Lightning and transformers say is kept."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")

    class NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.getMessage()).startswith("💡 Tip")

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NoTips())


def _lightning(argv: list[str] | None) -> None:
    """LightningCLI over UnirankModule and UnirankDataModule; argv None reads the command line."""
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from unirank.atomic import OutputError
    from unirank.data.datamodule import UnirankDataModule
    from unirank.data.tables import TableError
    from unirank.model.backbone import ModelFolderError
    from unirank.module import UnirankModule
    from unirank.training import interrupt
    from unirank.training.export import ExportModel

    class UnirankCLI(LightningCLI):
        def _parse_ckpt_path(self) -> None:
            """Settings come from the config and the command line only: a checkpoint's hyper_parameters
            are never merged in (they could turn trust_remote_code on); differences are reported.
            A remote checkpoint (a URL) is refused: it would be unpickled."""
            if not self.config.get("subcommand"):
                return
            ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
            if not ckpt_path:
                return
            if "://" in str(ckpt_path):
                raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: remote checkpoints are refused; download it first")
            if not Path(ckpt_path).is_file():
                raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: no such checkpoint file")
            import torch

            try:
                checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
            except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is the user's input error
                raise SystemExit(f"unirank: --ckpt_path {ckpt_path}: not a loadable checkpoint ({error})") from None
            saved = checkpoint.get("hyper_parameters") or {}
            model = self.config[self.config.subcommand].get("model") or {}
            _same_adapter(ckpt_path, checkpoint, model.get("adapter"))
            differing = sorted(k for k, v in saved.items() if not k.startswith("_") and str(model.get(k)) != str(v))
            if differing:
                print(f"unirank: {ckpt_path} records other settings ({', '.join(differing)}); "
                      "they are not applied: the config and the command line decide")  # fmt: skip

        def before_instantiate_classes(self) -> None:
            """A run that names no trainer.precision trains in bf16 where the hardware has it, else in
            fp32 (`unirank.model.precision.training_precision`); a precision given anywhere is kept.
            A run that names --trainer.default_root_dir keeps its logs there too (and so its
            checkpoints and default export, which Lightning puts in the logger's folder), not under
            the default logger's runs/."""
            from unirank.model.precision import training_precision

            settings = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
            trainer = settings.get("trainer")
            if trainer is not None and trainer.get("precision") is None:
                trainer["precision"] = training_precision(trainer.get("accelerator"))
            logger = trainer.get("logger") if trainer is not None else None
            root = trainer.get("default_root_dir") if trainer is not None else None
            init = getattr(logger, "init_args", None)
            if root and init is not None and str(getattr(logger, "class_path", "")).endswith("CSVLogger"):
                if init.get("save_dir") == DEFAULT_LOG_DIR:
                    init["save_dir"] = str(root)

        def before_fit(self) -> None:
            """bf16 training where the hardware has no bf16 still runs, with a warning that says so."""
            from unirank.model.precision import warn_if_emulated_bf16

            if str(self.trainer.precision).startswith("bf16"):
                device = self.trainer.strategy.root_device.type
                warn_if_emulated_bf16(device, "--trainer.precision 32-true")

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(ExportModel, "export")
            parser.link_arguments(
                ("model.schedule.pairwise_epochs", "model.schedule.pointwise_epochs"),
                "trainer.max_epochs",
                compute_fn=lambda pairwise, pointwise: pairwise + pointwise,
            )

    _quiet_expected_noise()
    try:
        UnirankCLI(
            UnirankModule,
            UnirankDataModule,
            args=argv,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": DEFAULT_LOG_DIR},
                }
            },
        )
    except SIGTERMException:  # a SystemExit of status 0: the scheduler must not read it as success
        raise SystemExit(interrupt.EXIT_CODE) from None
    except TableError as error:
        raise SystemExit(f"unirank: bad input, nothing was trained: {error}") from None
    except (OutputError, ModelFolderError) as error:
        raise SystemExit(f"unirank: {error}") from None


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in LIGHTNING_COMMANDS:
        _lightning(argv)
        return
    _run_command(words)


if __name__ == "__main__":
    main()
