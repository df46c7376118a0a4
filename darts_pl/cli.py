"""The ``darts-pl`` command: LightningCLI over every model and data module of the package.

    darts-pl fit --config configs/search_cifar.yaml
    darts-pl fit --config configs/quickstart.yaml

Sizes that the data decides (``num_classes``, ``in_channels``, the text vocabulary's ``num_tokens``) are
copied from the data module into every ``init_args`` of the model that has them (the search space, or a
training module), so a config never has to repeat them.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import signal
import string
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from tqdm.contrib.logging import logging_redirect_tqdm
from typing_extensions import override

from darts_pl.atomic import atomic_write
from darts_pl.callbacks.rundir import (
    LOCK_FILE,
    RunInUseError,
    RunLock,
    claim_version,
    newest_run,
    run_dir,
    version_number,
)
from darts_pl.checkpoints import AtomicCheckpointIO, check_compatible, newest_checkpoint, read_checkpoint_header
from darts_pl.cli_hints import another_model, class_path_typo, overlay_order
from darts_pl.data.switching import refuse_dropped_settings, watch_dropped_settings
from darts_pl.errors import ConfigurationError, DataNotFoundError, NonFiniteError
from darts_pl.modules.search import LitSearch
from darts_pl.spawn import use_file_results

LINKED_FROM_DATA = ("num_classes", "in_channels", "num_tokens")
_DDP_FAMILY = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def _leaves_parameters_unused(model: Any) -> bool:
    return isinstance(model, LitSearch) and model.space.unused_parameters


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _data_sizes(data_cfg: Namespace) -> dict[str, int]:
    """Instantiate the data module (constructors do no I/O) and read the sizes it defines."""
    if not isinstance(data_cfg, Namespace) or not data_cfg.get("class_path"):
        return {}
    init_args = data_cfg.get("init_args") or Namespace()
    datamodule = _import(data_cfg.class_path)(**init_args.as_dict())
    sizes = {}
    for name in LINKED_FROM_DATA:
        value = getattr(datamodule, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            sizes[name] = value
    return sizes


def _link(cfg: Any, sizes: dict[str, int]) -> None:
    """Set every ``init_args.<name>`` below ``cfg`` to ``sizes[name]``."""
    if not isinstance(cfg, Namespace):
        return
    init_args = cfg.get("init_args")
    if isinstance(init_args, Namespace):
        for name, value in sizes.items():
            if name in init_args:
                init_args[name] = value
    for value in vars(init_args if isinstance(init_args, Namespace) else cfg).values():
        _link(value, sizes)


class DartsCLI(LightningCLI):
    """LightningCLI that links the data module's sizes into the model (see the module docstring), gives every
    run its own directory, resolves ``--ckpt_path last``, writes checkpoints atomically, and raises parse
    errors instead of printing the usage, so ``main`` can report them in one line."""

    claimed: Path | None = None
    """The topmost directory this process created for its run (``main`` removes it again, while still empty
    of files, if the run fails before it starts)."""
    lock: RunLock | None = None
    """The run directory's lock, held by this process until ``main`` returns (see ``RunLock``)."""
    resumed: tuple[Path, Path] | None = None
    """``(run, directory of its runs)`` when ``--ckpt_path last`` chose the run to continue."""

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        parser = super().init_parser(**kwargs)
        parser.exit_on_error = False
        parser.allow_abbrev = False  # `--trainer.max_epoch` must fail, not silently mean max_epochs
        parser._allow_abbrev_given = True
        watch_dropped_settings(parser)  # `--data Other` over a config must not drop a setting silently
        return parser

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        # `fit --print_config` prints what the run would take: the data module's sizes linked into the model, as
        # before_instantiate_classes links them (jsonargparse prints before anything of ours runs).
        argv = sys.argv[1:] if args is None else args
        request = _print_config_request(argv, self.subcommands())
        if request is None:
            super().parse_arguments(parser, args)
            return
        flags, rest = request
        if args is None:  # keep reading sys.argv (LightningCLI warns when it is given both)
            saved, sys.argv = sys.argv, [sys.argv[0], *rest]
            try:
                super().parse_arguments(parser, None)
            finally:
                sys.argv = saved
        else:
            super().parse_arguments(parser, rest)
        self.subcommand = self.config["subcommand"]
        try:
            cfg = self._resolve()
        except (ConfigurationError, DataNotFoundError) as err:  # the sizes need the data, which is not there
            cfg = self.config[self.subcommand]
            print(f"darts-pl: --print_config: the sizes the run takes from the data are not filled in: {err}",
                  file=sys.stderr)
        sys.stdout.write(self._parser(self.subcommand).dump(cfg, **flags))
        raise SystemExit(0)

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the given checkpoint here: a damaged one must be one line, not a pickle traceback.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path != "last":
            read_checkpoint_header(ckpt_path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        cfg = self._resolve()
        _check_trainer(cfg.get("trainer"))
        if self.subcommand == "fit":
            DartsCLI.claimed = place_run(cfg)

    def _resolve(self) -> Namespace:
        """The subcommand's config as it runs: no setting dropped by a class switch, the data's sizes linked."""
        refuse_dropped_settings()
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        _link(cfg.get("model"), _data_sizes(cfg.get("data")))
        return cfg

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        strategy = (self._get(self.config_init, "trainer", default={}) or {}).get("strategy")
        if isinstance(strategy, str) and strategy in _DDP_FAMILY and _leaves_parameters_unused(self.model):
            # Ops not sampled in a step get no gradient: Lightning's registered variant tells DDP so.
            kwargs["strategy"] = f"{strategy}_find_unused_parameters_true"
            print(f"darts-pl: --trainer.strategy {strategy}: using {kwargs['strategy']} (the search space runs one "
                  "sampled op per edge, so the others get no gradient in a step).", file=sys.stderr)
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        use_file_results(trainer)  # ddp_spawn: rank 0's result would not fit through Lightning's pipe
        return trainer

    def before_fit(self) -> None:
        # Before the trainer writes anything (config.yaml, logs, a vocabulary): a checkpoint of another model
        # must not leave traces in its run.
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        if ckpt_path:
            self._check_checkpoint(ckpt_path)
        if isinstance(self.model, LitSearch):
            self.model.check_fit(self.trainer)  # schedules' ranges and DDP's settings, before any file is written

    def _check_checkpoint(self, ckpt_path: str) -> None:
        """Refuse a checkpoint of another model; after ``--ckpt_path last``, say what the newest run was and which
        run of this config there is to continue."""
        try:
            check_compatible(self.model, ckpt_path)
        except ConfigurationError as err:
            if DartsCLI.resumed is None:
                raise
            config = yaml.safe_load(self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False))
            raise ConfigurationError(f"{err} {another_model(*DartsCLI.resumed, config.get('model'))}") from None


_PRINT_FLAGS = {"skip_default": "skip_default", "skip_unset": "skip_unset", "skip_null": "skip_unset",
                "comments": "with_comments"}


def _print_config_request(argv: Any, subcommands: Any) -> tuple[dict[str, bool], list[str]] | None:
    """``(dump flags, the other arguments)`` for ``SUBCOMMAND ... --print_config[=flags]``, else ``None``."""
    if not isinstance(argv, (list, tuple)):
        return None
    start = next((i for i, arg in enumerate(argv) if arg in subcommands), None)
    given = [arg for arg in argv[start or 0:] if arg.split("=")[0] == "--print_config"] if start is not None else []
    if not given:
        return None
    flags = {"skip_unset": False}
    for flag in filter(None, given[-1].partition("=")[2].split(",")):
        if flag not in _PRINT_FLAGS:
            raise ConfigurationError(f"--print_config={flag}: unknown flag; use one or more of skip_default, "
                                     "skip_unset, comments (separated by commas).")
        flags[_PRINT_FLAGS[flag]] = True
    return flags, [arg for i, arg in enumerate(argv) if i < start or arg not in given]


class _Resolved(Exception):
    """Carries a resolved config out of ``LightningCLI.__init__`` before anything is instantiated."""

    def __init__(self, config: Namespace) -> None:
        super().__init__("resolved")
        self.config = config


class _ResolveOnly(DartsCLI):
    @override
    def before_instantiate_classes(self) -> None:
        raise _Resolved(self._resolve())


def resolve_config(args: list[str]) -> Namespace:
    """The config of ``darts-pl fit ARGS`` as it would run (data sizes linked), without instantiating, placing or
    writing anything.

    Raises:
        ArgumentError: A bad config, as ``darts-pl`` would report it (``main``'s reasons apply).
    """
    try:
        _ResolveOnly(args=["fit", *args], **CLI_KWARGS)
    except _Resolved as resolved:
        return resolved.config
    raise AssertionError("LightningCLI returned without resolving its config")


class RunConfig(SaveConfigCallback):
    """Writes the resolved config as ``config.yaml`` into the run's own directory (atomically, rank 0), and
    into the run config of loggers that keep one (W&B): runs never share or overwrite one config file."""

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        directory = run_dir(trainer)  # on every rank: it broadcasts
        if trainer.is_global_zero:
            atomic_write(directory / self.config_filename, self.parser.dump(self.config, skip_none=False))
            self.save_config(trainer, pl_module, stage)
        self.already_saved = True

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = self.config.clone().as_dict()
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update(config, allow_val_change=True)


def _check_trainer(trainer_cfg: Namespace | None) -> None:
    """Trainer settings that Lightning accepts but that cannot give a useful run."""
    if trainer_cfg is None:
        return
    max_epochs = trainer_cfg.get("max_epochs")
    if max_epochs is not None and max_epochs == 0:
        raise ConfigurationError("trainer.max_epochs=0 trains nothing (the search would write a genotype of untrained "
                                 "alphas); use max_epochs >= 1, or -1 for no limit.")


def _logger_kind(logger: Any) -> str:
    """``versioned`` (TensorBoard, CSV), ``wandb``, ``none`` or ``other``."""
    if logger is False:
        return "none"
    if logger in (None, True):
        return "versioned"
    class_path = logger.get("class_path", "") if isinstance(logger, Namespace) else ""
    if class_path.endswith(("TensorBoardLogger", "CSVLogger")):
        return "versioned"
    return "wandb" if class_path.endswith("WandbLogger") else "other"


def place_run(cfg: Namespace) -> Path | None:
    """Give the run its own directory, or, with ``--ckpt_path last``, the directory of the run it continues.

    A new run claims ``<root>/<name>/version_N`` atomically (TensorBoard/CSV loggers, and no logger, where the
    trainer's root becomes the run's directory); a W&B run's directory is named by its unique id. ``last``
    looks only among the runs of this job's root and logger (W&B: this project), takes the one whose
    checkpoints were written last and resumes from its newest intact checkpoint. Rank 0 locks the run's
    directory for the life of the process (``RunLock``): a resume of a run that is still running is refused.
    Returns the directory it created, if any.
    """
    root = Path(cfg.trainer.get("default_root_dir") or os.getcwd()).absolute()
    cfg.trainer.default_root_dir = str(root)
    logger = cfg.trainer.get("logger")
    kind = _logger_kind(logger)
    if kind == "versioned" and not isinstance(logger, Namespace):
        logger = cfg.trainer.logger = Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger",
                                                init_args=Namespace(save_dir=str(root)))
    init_args = logger.init_args if isinstance(logger, Namespace) else Namespace()
    parent = _runs_directory(cfg, kind, init_args)
    _overwrite_own_checkpoints(cfg.trainer)
    if cfg.get("ckpt_path") == "last":
        run = _resume(cfg, kind, parent)
        if run is not None and parent is not None:
            _continue_in(run, cfg, kind, init_args)
            DartsCLI.resumed = (run, parent)
            return None
    if rank_zero_only.rank != 0 or parent is None:
        return None  # other ranks get rank 0's directory by broadcast (run_dir, ModelCheckpoint)
    created = next((p for p in reversed([parent, *parent.parents]) if not p.exists()), None)
    run, fresh = _new_run(cfg, kind, parent, init_args)
    _hold(run, "choose another version (or id), or leave it unset for a new one")  # creates a named one
    return created or (run if fresh else None)


def _runs_directory(cfg: Namespace, kind: str, init_args: Namespace) -> Path | None:
    """Where this job's runs are: ``<save dir>/<name>`` (the logger's name, else the search method, else
    ``lightning_logs``), ``<save dir>/<project>`` for W&B, ``None`` for a logger of another kind."""
    root = Path(cfg.trainer.default_root_dir)
    model_args = cfg.get("model", Namespace()).get("init_args") if isinstance(cfg.get("model"), Namespace) else None
    method = model_args.get("method") if isinstance(model_args, Namespace) else None
    if kind in ("versioned", "wandb"):
        init_args.save_dir = str(Path(init_args.get("save_dir") or root).absolute())
    if kind == "versioned":
        if init_args.get("name") in (None, "", "lightning_logs") and method:  # unset, or the loggers' default
            init_args.name = str(method)  # runs/quickstart/gdas/version_N
        return Path(init_args.save_dir) / (init_args.get("name") or "lightning_logs")
    if kind == "wandb":
        return Path(init_args.save_dir) / (init_args.get("project") or "lightning_logs")
    return root / str(method or "lightning_logs") if kind == "none" else None


def _new_run(cfg: Namespace, kind: str, parent: Path, init_args: Namespace) -> tuple[Path, bool]:
    """The directory of a new run: a fresh ``version_N`` (claimed), or the version or W&B id the config names;
    and whether this process creates it."""
    if kind == "wandb":
        init_args.id = init_args.get("id") or init_args.get("version") or _run_id()  # the run's directory, known now
        return parent / init_args.id, not (parent / init_args.id).exists()
    if init_args.get("version") is not None:
        version = init_args.version
        run = parent / (version if isinstance(version, str) else f"version_{version}")
        return run, not run.exists()
    number = claim_version(parent)
    if kind == "versioned":
        init_args.version = number
    else:
        cfg.trainer.default_root_dir = str(parent / f"version_{number}")
    return parent / f"version_{number}", True


def _run_id() -> str:
    """A new W&B run id (8 lowercase letters and digits, as W&B makes them)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _hold(run: Path, fix: str) -> None:
    """Lock ``run`` for this process (see ``RunLock``), or refuse in one line naming the process holding it."""
    try:
        DartsCLI.lock = RunLock(run)
    except RunInUseError as err:
        holder = f"process {err.pid}" if err.pid is not None else "another process"
        raise ConfigurationError(f"run directory {str(run)!r} is in use by {holder}; wait for it or {fix}.") from None


def _continue_in(run: Path, cfg: Namespace, kind: str, init_args: Namespace) -> None:
    """Point the logger (or, without one, the trainer's root) at the run being resumed."""
    if kind == "versioned":
        init_args.version = version_number(run)
    elif kind == "wandb":
        init_args.id = run.name  # the same W&B run continues
    elif kind == "none":
        cfg.trainer.default_root_dir = str(run)


def _overwrite_own_checkpoints(trainer_cfg: Namespace) -> None:
    """A resumed run writes its checkpoints under the same names: ``ModelCheckpoint`` would otherwise add
    ``-v1`` when it does not recognise the directory (a root spelled differently, a moved run), and the
    next ``last`` would find a stale ``last.ckpt``."""
    for callback in trainer_cfg.get("callbacks") or []:
        if isinstance(callback, Namespace) and callback.get("class_path", "").endswith(".ModelCheckpoint"):
            if callback.get("init_args") is None:
                callback.init_args = Namespace()
            callback.init_args.enable_version_counter = False


def _resume(cfg: Namespace, kind: str, parent: Path | None) -> Path | None:
    """Point ``cfg.ckpt_path`` at the newest intact checkpoint of the newest run below ``parent``; the run."""
    if parent is None:
        raise ConfigurationError("--ckpt_path last needs a TensorBoard, CSV or W&B logger (or none) to know where this "
                                 f"job's runs are; with {cfg.trainer.logger.class_path} pass the checkpoint's path.")
    run = newest_run(parent)
    if run is None:
        older = parent.with_name("lightning_logs")  # where runs went before they were named after their method
        hint = (f" (runs in {str(older)!r} are not looked at: to continue one, give its checkpoint's path)"
                if older != parent and newest_run(older) is not None else "")
        print(f"darts-pl: --ckpt_path last: no checkpoint of an earlier run in {str(parent)!r}{hint}; starting a new "
              "run.", file=sys.stderr)
        cfg.ckpt_path = None
        return None
    rank_zero = rank_zero_only.rank == 0
    if rank_zero:
        _hold(run, "start a new run without --ckpt_path")
        for stale in run.rglob(".*.tmp"):
            stale.unlink(missing_ok=True)  # an atomic write that a kill interrupted (its writer is gone: the lock)
    ckpt, damaged = newest_checkpoint(run / "checkpoints")
    if ckpt is None and not damaged:
        raise ConfigurationError(f"--ckpt_path last: the checkpoints in {str(run / 'checkpoints')!r} were removed "
                                 "while they were read; try again.")
    if ckpt is None:
        raise ConfigurationError(f"--ckpt_path last: every checkpoint in {str(run / 'checkpoints')!r} is damaged; "
                                 "remove them to start that run again, or start a new run without --ckpt_path.")
    for path, reason in damaged.items() if rank_zero else []:
        print(f"darts-pl: --ckpt_path last: passing over a damaged file: {reason}; moved it to "
              f"{str(_move_aside(path))!r}.", file=sys.stderr)
    if damaged and rank_zero:
        print(f"darts-pl: --ckpt_path last: resuming from the newest intact checkpoint, {str(ckpt)!r}.",
              file=sys.stderr)
    cfg.ckpt_path = str(ckpt)
    return run


def _move_aside(path: Path) -> Path:
    """Move a damaged checkpoint into ``damaged/`` beside it (a later ``last`` would pass over it again, and
    ``ModelCheckpoint`` would count it among the ones it keeps); returns where it went."""
    target = path.parent / "damaged" / path.name
    target.parent.mkdir(exist_ok=True)
    number = 0
    while target.exists():
        number += 1
        target = target.with_name(f"{path.stem}.{number}{path.suffix}")
    path.rename(target)
    return target


NESTED_HELP = (
    "--model.help darts_pl.modules.LitSearch",
    "--model.help darts_pl.modules.LitClassifier",
    "--data.help DigitsDataModule",
    "--trainer.callbacks.help GenotypeCheckpoint",
    "--config configs/quickstart.yaml --model.init_args.space.help CNNSearchSpace",
    "--config configs/quickstart.yaml --model.init_args.space.init_args.relaxation.help GumbelSoftmax",
    "--config configs/quickstart.yaml --model.init_args.strategy.help SecondOrder",
    "--config configs/quickstart.yaml --model.init_args.weight_optimizer.help torch.optim.SGD",
)
"""Spellings of the nested help that work (tested): a part's help needs the class of the part holding it, from a
config or an earlier ``--model CLASS``."""

FIT_HELP = (
    "Search a cell (darts_pl.modules.LitSearch) or train one (darts_pl.modules.LitClassifier, LitLanguageModel). "
    "Every part is a class with settings of its own, listed by its help: "
    f"{NESTED_HELP[0]}; {NESTED_HELP[1]}; {NESTED_HELP[2]}; {NESTED_HELP[3]}. The help of a part of the model "
    f"needs the model's class first, from its config (or --model CLASS): {NESTED_HELP[4]}; {NESTED_HELP[5]}; "
    f"{NESTED_HELP[6]}; {NESTED_HELP[7]}. --print_config prints the whole config a command would run."
)

CLI_KWARGS: dict[str, Any] = {"subclass_mode_model": True, "subclass_mode_data": True,
                               "save_config_callback": RunConfig, "save_config_kwargs": {"overwrite": True},
                               "parser_kwargs": {"fit": {"description": FIT_HELP}}}


def main(args: list[str] | None = None) -> None:
    """Entry point of ``darts-pl``. Bad settings and missing data exit with status 2 and one line; SIGTERM
    and SIGINT exit with 143 and 130 once the run has stopped (its last checkpoint intact)."""
    interrupted, previous = _catch_sigint()
    try:
        with _quiet_thread_write_errors() as thread_errors, log_above_progress_bars():
            DartsCLI(args=args, **CLI_KWARGS)
        if thread_errors:  # a logger's writer thread failed and the run never noticed: still one line, status 2
            raise thread_errors[0]
    except SIGTERMException:
        _stopped("SIGTERM", 143)
    except KeyboardInterrupt:
        _stopped("SIGINT", 130)
    except SystemExit:
        if interrupted:  # Lightning turns a KeyboardInterrupt during fit into exit status 1
            _stopped("SIGINT", 130)
        raise
    except NonFiniteError as err:
        _release_claim()
        print(f"darts-pl: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as err:  # re-raised below unless it is a configuration or data problem
        _release_claim()
        reason = _reason(err, sys.argv[1:] if args is None else args)
        if reason is None:
            raise
        print(f"darts-pl: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        _release_lock()


def log_above_progress_bars() -> contextlib.AbstractContextManager[None]:
    """Log messages (the genotype of each epoch, Lightning's notes) through ``tqdm.write``: written straight to
    the terminal, a message starts wherever the progress bar left the cursor, at the end of the bar's line;
    ``tqdm.write`` clears the bars, writes the message on a line of its own and draws the bars again."""
    loggers = [logging.root, logging.getLogger("lightning.pytorch"), logging.getLogger("lightning.fabric")]
    # Only where a console handler writes (tqdm's helper adds one to every logger it is given).
    consoles = [logger for logger in loggers if any(
        type(handler) is logging.StreamHandler and handler.stream in (sys.stdout, sys.stderr)
        for handler in logger.handlers)]
    return logging_redirect_tqdm(loggers=consoles) if consoles else contextlib.nullcontext()


@contextlib.contextmanager
def _quiet_thread_write_errors() -> Iterator[list[OSError]]:
    """Keep a full disk or a read-only filesystem met by a background thread (TensorBoard's event writer) from
    printing its traceback beside the run's one line: the error is collected instead. The writer raises it
    again in the run at its next call, which reports it; one the run never met is reported by ``main``."""
    collected: list[OSError] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if isinstance(args.exc_value, OSError) and args.exc_value.errno in _WRITE_ERRORS:
            collected.append(args.exc_value)
        else:
            previous(args)

    threading.excepthook = hook
    try:
        yield collected
    finally:
        threading.excepthook = previous


def _catch_sigint() -> tuple[list[bool], Any]:
    """Remember a SIGINT (Lightning reports it as exit status 1); it still interrupts as a KeyboardInterrupt.
    Returns the record and the handler it replaced (``None`` off the main thread, where none is set)."""
    received: list[bool] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(True)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return received, None
    return received, signal.signal(signal.SIGINT, handler)


def _stopped(name: str, status: int) -> None:
    print(f"darts-pl: stopped by {name}; the run's checkpoints are intact: continue it with --ckpt_path last (the "
          "steps since its last checkpoint are done again).", file=sys.stderr)
    raise SystemExit(status) from None


def _release_lock() -> None:
    DartsCLI.resumed = None
    lock, DartsCLI.lock = DartsCLI.lock, None
    if lock is not None:
        lock.release()


def _release_claim() -> None:
    """Remove the run directory this process created if the run failed before writing into it (but for its
    lock file: nothing can be waiting for that run, it has no checkpoint to resume)."""
    _release_lock()
    claimed, DartsCLI.claimed = DartsCLI.claimed, None
    files = [p for p in claimed.rglob("*") if p.is_file()] if claimed is not None and claimed.is_dir() else None
    if claimed is not None and files is not None and all(p.name == LOCK_FILE for p in files):
        for lock in files:
            lock.unlink(missing_ok=True)
        for directory in sorted((p for p in claimed.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            claimed.rmdir()


_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:",
          "Expected a <class 'NoneType'>", "Given value type:")


def _reason(err: BaseException, argv: Sequence[str] = ()) -> str | None:
    """One line for a bad setting or missing data (``argv``: the command's arguments); ``None`` for any other
    failure (a real bug)."""
    seen: BaseException | None = err
    while seen is not None:  # our own errors, possibly wrapped by the config parser
        if isinstance(seen, (ConfigurationError, DataNotFoundError)):
            return str(seen).replace("\n", " ")
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, ArgumentError):
        lines = [line.strip(" -") for line in str(err).splitlines()]
        kept = [line for line in lines if line and not line.startswith(_NOISE)]
        text = " ".join(kept)
        hint = class_path_typo(text) or overlay_order(argv)
        if hint:
            return hint
        return text if len(text) <= 400 else text[:397] + "..."
    return _environment_reason(err)


_WRITE_ERRORS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
                 errno.EACCES: "choose a writable --trainer.default_root_dir",
                 errno.EPERM: "choose a writable --trainer.default_root_dir",
                 errno.EROFS: "choose a writable --trainer.default_root_dir"}


def _environment_reason(err: BaseException) -> str | None:
    """One line for a problem of the machine or of a setting that Lightning or torch reports: a full disk,
    an unwritable directory, an accelerator that is not there, an optimizer setting out of range."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _WRITE_ERRORS:
            where = f" {os.fsdecode(seen.filename)!r}" if seen.filename else ""
            return (f"cannot write{where}: {seen.strerror}; {_WRITE_ERRORS[seen.errno]} (the run's newest intact "
                    "checkpoint is kept; continue it with --ckpt_path last).")
        if isinstance(seen, RuntimeError) and "file write failed" in str(seen):  # torch.save on a full disk
            return f"cannot write a checkpoint: {_first_line(seen)} (is the disk full?); free some space."
        if isinstance(seen, MisconfigurationException):
            return _first_line(seen)
        if isinstance(seen, ValueError) and str(seen).startswith("Invalid ") and _from_torch_optim(seen):
            return (f"optimizer setting out of range: {_first_line(seen)}; check the init_args of "
                    "model.init_args.weight_optimizer / arch_optimizer.")
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _from_torch_optim(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and "torch/optim/" in frames[-1].filename.replace("\\", "/")


if __name__ == "__main__":
    main()
