"""Files written by the release before parts kept their own state and genotypes became a protocol still load: its
genotype files of all three kinds, its alpha history, and its checkpoints, which resume and end with the alphas that
release reached itself (tests/fixtures/previous_release/README.md says how each file was made)."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from darts_pl import genotypes
from darts_pl.callbacks.monitor import AlphaHistory
from darts_pl.modules import LitSearch

from .conftest import run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "previous_release"
METHODS = ["darts", "gdas", "pc_darts", "sdarts_rs", "pdarts"]


@pytest.mark.parametrize(("name", "kind"), [("cnn", "cnn"), ("rnn", "rnn"), ("nb201", "nb201")])
def test_genotype_files_of_every_kind_load(tmp_path: Path, name: str, kind: str) -> None:
    path = FIXTURES / f"genotype_{name}.json"
    assert "kind" not in json.loads(path.read_text())  # written before kinds existed
    genotype = genotypes.load(path)
    assert genotype.kind == kind
    resaved = genotypes.save(genotype, tmp_path / "genotype.json")
    assert json.loads(resaved.read_text())["kind"] == kind
    assert genotypes.load(resaved) == genotype
    if kind == "rnn":
        assert genotype == genotypes.RNN_DARTS_V2
    if kind == "nb201":
        assert str(genotype) == json.loads(path.read_text())["nb201"]


def test_alpha_history_loads() -> None:
    history = AlphaHistory.load(FIXTURES)
    assert history.epochs == [0, 1]
    assert set(history.probs) == {"normal", "reduce"}
    assert history.arrays()["normal"].shape == (2, 5, 4)  # 2 epochs, 5 edges, 4 ops


def _run_dir(tmp_path: Path, method: str) -> Path:
    # Where darts-pl files a run of that release's config (version 0, the logger's default name): under the
    # method's name, which these configs leave at its default.
    run = tmp_path / "darts" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    with gzip.open(FIXTURES / f"{method}.ckpt.gz", "rb") as src, open(run / "checkpoints" / "last.ckpt", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return run


def _same(a: object, b: object) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("method", METHODS)
def test_a_checkpoint_loads_from_its_path_alone(tmp_path: Path, method: str) -> None:
    ckpt = _run_dir(tmp_path, method) / "checkpoints" / "last.ckpt"
    module = LitSearch.load_from_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)
    for name, value in module.state_dict().items():
        if name in saved["state_dict"]:
            assert _same(value, saved["state_dict"][name]), name
    if method == "pdarts":  # the rate its schedule had set, kept by the schedules' key of that release
        assert module.space.skip_dropout.p == pytest.approx(saved["darts_pl.schedules"]["space.skip_dropout.p"])


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_checkpoint_resumes_to_the_alphas_that_release_reached(tmp_path: Path, method: str) -> None:
    ckpt = _run_dir(tmp_path, method) / "checkpoints" / "last.ckpt"
    code = run_cli("fit", "--config", str(FIXTURES / f"{method}.config.yaml"), "--trainer.max_epochs", "3",
                   "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
                   "--trainer.enable_progress_bar", "false", "--ckpt_path", str(ckpt))
    assert code == 0
    resumed = torch.load(ckpt, weights_only=False)
    assert resumed["epoch"] == 2
    expected = np.load(FIXTURES / "resumed_alphas.npz")
    names = [key for key in expected.files if key.startswith(f"{method}/")]
    assert names
    for key in names:
        got = resumed["state_dict"][key.split("/", 1)[1]].numpy()
        # The same maths; the release's strided 1x1 convolution and skip dropout rounded in another order.
        np.testing.assert_allclose(got, expected[key], rtol=1e-5, atol=1e-8, err_msg=key)  # measured: <= 1e-8
