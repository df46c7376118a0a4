"""``darts-pl-study``: run a study (methods × axis values × seeds of ``darts-pl fit`` runs), or rebuild its report.

    darts-pl-study --config configs/studies/quickstart.yaml                  # one cell after another
    darts-pl-study --config configs/studies/quickstart.yaml --parallel 2     # two at once, cores // 2 threads each
    darts-pl-study --config study.yaml --executor slurm                      # a SLURM job array through submitit
    darts-pl-study report runs/studies/quickstart                            # the report, from the files alone

The study file's keys are :class:`darts_pl.study.spec.Study`'s (every one can also be given on the command line,
``--root``, ``--seeds [0,1]``...). Running it again skips the finished cells and continues the others; a changed
study against a started root is refused in one line. Exit status: 0 when every cell finished, 1 when some did not
(each one's reason printed), 2 for a bad study file (one line), 130/143 when stopped by SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from darts_pl.errors import ConfigurationError
from darts_pl.study.spec import Axis, AxisValue, Method, Study

PROG = "darts-pl-study"
KEYS = ("root, methods (name, overlays, args), base, args, seeds, axes (name, values: name, overlays, args), name, "
        "executor, parallel, slurm")
_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:")


def study_parser() -> ArgumentParser:
    """The parser of a study (``--config FILE`` and every field of :class:`Study`)."""
    parser = ArgumentParser(prog=PROG, exit_on_error=False, description="Compare search methods over seeds: every "
                            "cell of the study's grid is one `darts-pl fit` run; `darts-pl-study report ROOT` "
                            "rebuilds the report.")
    parser.add_argument("--config", action=ActionConfigFile, help="the study file (YAML)")
    parser.add_class_arguments(Study)
    return parser


def _one_line(err: BaseException) -> str:
    lines = [line.strip(" -") for line in str(err).splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith(_NOISE))
    return text if len(text) <= 400 else text[:397] + "..."


def _as_study(cfg: Namespace) -> Study:
    def part(kind: type, value: Namespace | object) -> object:
        return kind(**value.as_dict()) if isinstance(value, Namespace) else value

    fields = {f.name: cfg.get(f.name) for f in dataclasses.fields(Study) if f.name in cfg}
    fields["methods"] = [part(Method, m) for m in fields.get("methods") or []]
    fields["axes"] = [Axis(a.name, [part(AxisValue, v) for v in a["values"]]) if isinstance(a, Namespace) else a
                      for a in fields.get("axes") or []]
    return Study(**fields)


def load_study(argv: list[str]) -> tuple[Study, str]:
    """Parse a study from the command line; ``(study, its YAML)``. A bad key or value raises one line."""
    parser = study_parser()
    try:
        cfg = parser.parse_args(argv)
    except SystemExit as err:
        if err.code in (0, None):  # --help
            raise
        raise ConfigurationError("study: invalid arguments (see the message above)") from None
    except argparse.ArgumentError as err:
        hint = f" (a study's keys: {KEYS})" if "not accepted" in str(err) or "unrecognized" in str(err) else ""
        raise ConfigurationError(f"study: {_one_line(err) if str(err) else 'invalid arguments'}{hint}") from None
    if not cfg.get("root"):
        raise ConfigurationError("study: root is not set; give the study a directory (root: in the file, or --root).")
    cfg = cfg.clone()
    del cfg["config"]
    return _as_study(cfg), parser.dump(cfg)


def _report(argv: list[str]) -> int:
    from darts_pl.study.report import build_report, load_study_record, log_to_wandb

    parser = argparse.ArgumentParser(prog=f"{PROG} report", description="Rebuild a study's report from its root.")
    parser.add_argument("root", help="the study's root directory")
    parser.add_argument("--no-wandb", action="store_true", help="do not send the tables to W&B")
    options = parser.parse_args(argv)
    root = Path(options.root)
    if not root.is_dir():
        raise ConfigurationError(f"report: {options.root!r} is not a directory; give the root of a study.")
    report = build_report(root)
    if not report.results:
        raise ConfigurationError(f"report: {options.root!r} holds no study (no study.json, no cell with a "
                                 "study_cell.json); give the root of a study.")
    settings = load_study_record(root).get("wandb")
    if settings and not options.no_wandb:
        log_to_wandb(root, report, settings)
    print(root / "report.md")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``darts-pl-study``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["report"]:
            status = _report(argv[1:])
        else:
            from darts_pl.study.runner import Runner

            study, text = load_study(argv)
            status = Runner(study, text).run()
    except ConfigurationError as err:
        print(f"{PROG}: error: {str(err).replace(chr(10), ' ')}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(status)


if __name__ == "__main__":
    main()
