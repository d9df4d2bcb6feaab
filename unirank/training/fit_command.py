"""`unirank fit` (and validate, test, predict): LightningCLI over UnirankModule and UnirankDataModule,
with what unirank adds around it: bf16 where the hardware has it, logs under
--trainer.default_root_dir, checkpoints that never bring in settings or code, a resume refused into
another domain's recipe, SIGTERM answered with a checkpoint and exit status 143, expected noise
filtered, input errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

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


def run_lightning(argv: list[str] | None) -> None:
    """LightningCLI over UnirankModule and UnirankDataModule; argv None reads the command line. A
    setting that cannot be built, or data that cannot be set up, ends in one line, before training."""
    import polars as pl
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

            started["trainer"] = self.trainer
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
    started: dict = {}  # the trainer, once built: an error after its first step is not a setting's
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
    except (ValueError, TypeError, OSError, ImportError, pl.exceptions.PolarsError) as error:
        trainer = started.get("trainer")
        if trainer is not None and trainer.global_step > 0:
            raise
        raise SystemExit(f"unirank fit: {setting_error(error)}; nothing was trained") from None


def setting_error(error: BaseException) -> str:
    """One line for an error raised while a run's objects are built or its data set up (a bad
    setting, a missing package, an unreadable config): the setting's own message where jsonargparse
    wraps it in a list of the types it tried."""
    if isinstance(error, UnicodeDecodeError):
        return "a --config file is not text (YAML); give the recipe's path"
    lines = [line.rstrip() for line in str(error).strip().splitlines()]
    tried = [i for i, line in enumerate(lines) if line.lstrip().startswith("- ") and "Expected a <class" not in line]
    if tried:  # the setting's own message, with the indented lines that continue it
        at = tried[0]
        depth = len(lines[at]) - len(lines[at].lstrip())
        rest = []
        for line in lines[at + 1 :]:
            if len(line) - len(line.lstrip()) <= depth + 2:
                break
            rest.append(line.strip())
        first = " ".join([lines[at].strip()[2:], *rest[:2]])
    else:
        first = lines[0] if lines and lines[0] else type(error).__name__
    first = first.rstrip(".")
    return first if isinstance(error, ValueError) else f"{type(error).__name__}: {first}"
