"""The README's "new variant in one class" example, as written there: the class and its overlay run a search."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from darts_pl.cli import main

from .conftest import REPO, run_dir


def blocks(language: str, section: str = "### A new variant in one class") -> list[str]:
    text = (REPO / "README.md").read_text()
    text = text[text.index(section):]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_readme_variant_runs_from_its_overlay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, overlay = blocks("python")[0], blocks("yaml")[0]
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tempered.py").write_text(code)
    (tmp_path / "tempered.yaml").write_text(overlay)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mypkg", None)
    root = tmp_path / "runs"
    main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config", str(tmp_path / "tempered.yaml"),
          "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
          "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
          "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
          "--trainer.default_root_dir", str(root)])
    run = run_dir(root)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    # The part keeps the value its schedule set (5 -> 1 over 2 epochs) in its own state.
    assert ckpt["state_dict"]["space.relaxation._extra_state"] == {"tau": pytest.approx(3.0)}
    assert (run / "genotype.json").is_file()
    import json

    history = json.loads((run / "alpha_history.json").read_text())
    assert history["relaxation"]["label"] == "softmax(alpha/tau)"


def test_the_readme_search_space_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = blocks("python", "### A new search space")[0]
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "chain.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mypkg", None)
    root = tmp_path / "runs"
    main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
          "--model.init_args.space", "mypkg.chain.ChainSearchSpace", "--model.init_args.space.init_args.channels", "4",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
          "--trainer.default_root_dir", str(root)])
    import json

    genotype = json.loads(next(root.rglob("genotype.json")).read_text())
    assert genotype["kind"] == "chain" and genotype["class_path"] == "mypkg.chain.ChainGenotype"
    assert len(genotype["ops"]) == 3
