"""The recurrent search space: alphas, the mixed op against a per-op reference, carried hidden state,
genotype derivation with k=1, and the one LitSearch loop with first and second order, also through the CLI."""
from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from darts_pl import genotypes
from darts_pl.cli import main
from darts_pl.data import PTBDataModule
from darts_pl.data.text import batchify
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import RNN_DARTS_V2, RNN_PRIMITIVES, RNNGenotype
from darts_pl.modules import LitSearch
from darts_pl.networks.rnn import ACTIVATIONS
from darts_pl.search import RNNSearchSpace
from darts_pl.strategies import FirstOrder, SecondOrder

from .conftest import REPO, run_dir

VOCAB = 50


def tiny_space(**kwargs: object) -> RNNSearchSpace:
    args = {"num_tokens": VOCAB, "emb_size": 6, "hidden_size": 6, **kwargs}
    return RNNSearchSpace(**args)  # type: ignore[arg-type]


def text_batch(seq_len: int = 5, batch: int = 3, bptt: int | None = None, seed: int = 0) -> dict[str, object]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (seq_len + 1, batch), generator=g)
    return {"input": tokens[:-1], "target": tokens[1:], "bptt": bptt or seq_len}


def graph_size(tensor: torch.Tensor) -> int:
    """Nodes of the autograd graph behind ``tensor``."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


# ----------------------------------------------------------------------------------------- the space
def test_alphas_and_flags() -> None:
    space = tiny_space()
    assert [n for n, _ in space.named_arch_parameters()] == ["arch.recurrent"]
    assert space.arch["recurrent"].shape == (36, 5)  # 1 + 2 + ... + 8 edges, 5 ops
    assert len(space.edge_labels()) == 36 and space.edge_labels()[:3] == ["0->1", "0->2", "1->2"]
    arch, weights = set(map(id, space.arch_parameters())), set(map(id, space.weight_parameters()))
    assert not arch & weights and len(arch | weights) == len(list(space.parameters()))
    assert space.clips_virtual_step and set(space.epoch_metrics("val", torch.tensor(1.0))) == {"val/ppl"}
    assert space.primitives == list(RNN_PRIMITIVES)
    assert not space.network.cell.bn.affine and not list(space.network.cell.bn.parameters())
    assert space.network.decoder.weight is space.network.encoder.weight  # tied
    assert torch.allclose(space.edge_probs()["recurrent"].sum(-1), torch.ones(36))


def test_mixed_op_matches_a_sum_over_ops() -> None:
    """Eq. 2 written out op by op (the original code's loop) against the one-highway-per-edge form."""
    cell = tiny_space(hidden_size=6).network.cell.eval()
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(36, 5), -1)
    s0 = torch.randn(3, 6)
    fast = cell.step(s0, None, op_probs=probs[:, 1:])
    states, offset = [cell.bn(s0)], 0
    for i, weight in enumerate(cell.node_weights):
        node = torch.zeros_like(s0)
        for j, s in enumerate(states):
            c, h = (s @ weight).chunk(2, dim=-1)
            for k, name in enumerate(RNN_PRIMITIVES):
                if name != "none":
                    node = node + probs[offset + j, k] * (s + torch.sigmoid(c) * (ACTIVATIONS[name](h) - s))
        states.append(cell.bn(node))
        offset += i + 1
    assert torch.allclose(fast, torch.stack(states[1:]).mean(0), atol=1e-6)


def test_genotype_derivation_keeps_one_edge_per_node() -> None:
    """Hand-set probabilities: on each node the chosen edge is strongest by its best non-none op, while
    another edge has a larger 'none' probability, which derivation must ignore."""
    space = tiny_space()
    alpha = torch.zeros(36, 5)
    offset = 0
    for node, (op, pred) in enumerate(RNN_DARTS_V2.recurrent):
        alpha[offset + pred, RNN_PRIMITIVES.index(op)] = 3.0
        alpha[offset + (pred + 1) % (node + 1), 0] = 6.0 if node else 0.0  # a strong 'none' elsewhere
        offset += node + 1
    with torch.no_grad():
        space.arch["recurrent"].copy_(alpha)
    genotype = space.genotype()
    assert genotype == RNN_DARTS_V2
    assert genotypes.from_dict(genotypes.to_dict(genotype)) == genotype


def test_temporal_activation_regularization_only_when_regularized() -> None:
    batch = text_batch(seq_len=6)
    space = tiny_space(tar=0.5).eval()  # a weight large enough for the penalty to show in a float32 loss
    plain = space(batch, "train").loss
    space.reset_state()
    regularized = space(batch, "train", regularized=True).loss
    raw = space.network(batch["input"], None, op_probs=torch.softmax(space.arch["recurrent"], -1)[:, 1:]).raw
    assert regularized > plain
    assert torch.allclose(regularized - plain, 0.5 * (raw[1:] - raw[:-1]).pow(2).mean(), rtol=1e-3)
    space.tar = 0.0
    space.reset_state()
    assert torch.equal(space(batch, "train", regularized=True).loss, plain)


def test_untrained_supernet_evaluates_near_the_uniform_loss() -> None:
    """An untrained supernet predicts about uniformly in evaluation too: loss ~ ln(V), not ~1e18 then NaN
    (eval-mode BatchNorm with never-estimated running statistics left the nodes' sums unnormalised, and
    their gain compounded over the window's time steps)."""
    space = tiny_space(emb_size=32, hidden_size=32).eval()
    with torch.no_grad():
        losses = [float(space(text_batch(seq_len=35, batch=4, seed=seed), "val").loss) for seed in range(3)]
    assert all(abs(loss - math.log(VOCAB)) < 0.5 for loss in losses), losses


def test_search_cell_is_the_same_function_in_training_and_evaluation() -> None:
    """Without dropout, evaluation computes what the weight and alpha steps optimise."""
    no_dropout = {f"dropout_{name}": 0.0 for name in ("output", "hidden", "x", "input", "embedding")}
    space = tiny_space(emb_size=16, hidden_size=16, **no_dropout)
    batch = text_batch(seq_len=20, batch=4)
    with torch.no_grad():
        trained = space.train()(batch, "train").loss
        evaluated = space.eval()(batch, "train").loss
    assert torch.allclose(trained, evaluated, rtol=1e-5)


def test_a_single_stream_is_refused_with_the_setting() -> None:
    space = tiny_space().eval()
    with pytest.raises(ConfigurationError, match=r"1 stream.*batch statistics.*eval_batch_size"):
        space(text_batch(batch=1), "val")


def test_a_checkpoint_with_running_statistics_still_loads() -> None:
    space = tiny_space()
    state = space.state_dict()
    state.update({"network.cell.bn.running_mean": torch.zeros(6), "network.cell.bn.running_var": torch.ones(6),
                  "network.cell.bn.num_batches_tracked": torch.tensor(3)})  # written before batch statistics
    space.load_state_dict(state)  # strict


def test_lr_scale_is_seq_len_over_bptt() -> None:
    assert tiny_space().lr_scale(text_batch(seq_len=17, bptt=35)) == pytest.approx(17 / 35)


# ----------------------------------------------------------------------------------------- hidden state
def test_hidden_state_is_carried_detached_per_stream() -> None:
    space = tiny_space()
    sizes = []
    for step in range(3):
        loss = space(text_batch(seed=step), "train", regularized=True).loss
        sizes.append(graph_size(loss))
        loss.backward()  # would fail on a second pass through an earlier batch's freed graph
        space.commit("train")
        carried = space._committed["train"]
        assert carried.shape == (3, 6) and not carried.requires_grad and carried.grad_fn is None
    assert sizes[1] == sizes[2] <= sizes[0] + 2  # no graph growth across batches

    train_state = space._committed["train"].clone()
    space(text_batch(seed=9), "val")
    assert "val" not in space._committed  # pending until the loop commits the phase
    space.commit("val")
    assert torch.equal(space._committed["train"], train_state)  # the val stream has its own state


def test_carried_state_changes_the_next_loss_and_reset_forgets_it() -> None:
    space = tiny_space().eval()  # no dropout: deterministic
    first, second = text_batch(seed=1), text_batch(seed=2)
    space(first, "val")  # eval mode commits at once, in its own stream
    assert set(space._committed) == {"eval/val"}
    carried = space(second, "val").loss
    space.reset_state()
    fresh = space(second, "val").loss
    assert not torch.isclose(carried, fresh)


def test_eval_reset_keeps_the_training_streams() -> None:
    space = tiny_space()
    space(text_batch(), "train")
    space.commit("train")
    space.eval()
    space(text_batch(), "val")
    space.reset_state()  # what LitSearch does at the start of a validation run
    assert set(space._committed) == {"train"}
    space.train()
    space.reset_state()  # at the start of a training epoch
    assert not space._committed


def test_a_different_batch_size_starts_from_zeros() -> None:
    space = tiny_space().eval()
    space(text_batch(batch=3), "val")
    out = space(text_batch(batch=2, seed=4), "val").loss
    space.reset_state()
    assert torch.equal(out, space(text_batch(batch=2, seed=4), "val").loss)


# ----------------------------------------------------------------------------------------- the search loop
def _search(strategy: object, data_dir: Path, root: Path) -> tuple[LitSearch, L.Trainer, torch.Tensor]:
    dm = PTBDataModule(str(data_dir), mode="search", batch_size=4, eval_batch_size=2, bptt=8)
    space = RNNSearchSpace(num_tokens=dm.num_tokens, emb_size=8, hidden_size=8)
    model = LitSearch(space, strategy,  # type: ignore[arg-type]
                      weight_optimizer=partial(torch.optim.SGD, lr=20.0, weight_decay=5e-7),
                      arch_optimizer=partial(torch.optim.Adam, lr=3e-3, weight_decay=1e-3), grad_clip=0.25)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=root, accelerator="cpu", devices=1)
    alpha_before = space.arch["recurrent"].detach().clone()
    trainer.fit(model, dm)
    return model, trainer, alpha_before


@pytest.mark.parametrize("strategy", [FirstOrder(), SecondOrder(), SecondOrder(float64_hessian=True),
                                      SecondOrder(hessian="exact")],
                         ids=["first_order", "second_order", "second_order_float64", "second_order_exact"])
def test_two_batch_search(strategy: object, tiny_ptb: Path, tmp_path: Path) -> None:
    model, trainer, alpha_before = _search(strategy, tiny_ptb, tmp_path)
    space = model.space
    assert trainer.global_step == 4  # 2 batches × (alpha step + weight step)
    assert not torch.equal(space.arch["recurrent"], alpha_before)
    assert set(space._committed) >= {"train", "val", "eval/val"}
    assert space._committed["train"].shape == space._committed["val"].shape == (4, 8)
    assert all(torch.isfinite(p).all() for p in space.parameters())
    metrics = trainer.callback_metrics
    assert {"train/loss", "arch/loss", "val/loss", "val/ppl"} <= set(metrics)
    assert math.isfinite(float(metrics["val/ppl"])) and float(metrics["val/ppl"]) < 2 * space.network.num_tokens
    assert isinstance(space.genotype(), RNNGenotype)
    assert (tmp_path / "vocab.json").is_file()


def test_cli_search_ptb_on_a_tiny_corpus(tiny_ptb: Path, tmp_path: Path) -> None:
    data_dir = tiny_ptb
    main(["fit", "--config", str(REPO / "configs" / "search_ptb.yaml"),
          "--data.data_dir", str(data_dir), "--data.init_args.batch_size", "4",
          "--data.init_args.eval_batch_size", "2", "--data.init_args.bptt", "6",
          "--model.init_args.space.init_args.emb_size", "6", "--model.init_args.space.init_args.hidden_size", "6",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
          "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(tmp_path / "runs")])
    run = run_dir(tmp_path / "runs")
    genotype = genotypes.load(run / "genotype.json")
    assert isinstance(genotype, RNNGenotype) and len(genotype.recurrent) == 8
    history = json.loads((run / "alpha_history.json").read_text())
    assert history["cell_types"] == ["recurrent"] and len(history["edge_labels"]) == 36
    words = json.loads((run / "vocab.json").read_text())["words"]
    assert len(words) == 51 and "<unk>" in words
    checkpoint = torch.load(next((run / "checkpoints").glob("last*.ckpt")), weights_only=False)
    assert checkpoint["state_dict"]["space.network.encoder.weight"].shape == (len(PTBDataModule(
        str(data_dir)).dictionary), 6)  # num_tokens linked from the data
    assert checkpoint["PTBDataModule"]["vocabulary"][:3] == PTBDataModule(str(data_dir)).dictionary.idx2word[:3]


class RecordRank(Callback):
    """What each rank read (the first token of every stream of every batch) and its final parameters."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.starts: list[list[int]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.starts.append(batch["train"]["input"][0].tolist())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save({"params": {n: p.detach().clone() for n, p in pl_module.space.named_parameters()},
                    "starts": self.starts, "world_size": trainer.world_size},
                   self.out / f"rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_ddp_ranks_read_their_own_shard_and_agree(tiny_ptb: Path, tmp_path: Path) -> None:
    data_dir = tiny_ptb
    dm = PTBDataModule(str(data_dir), mode="search", batch_size=4, eval_batch_size=2, bptt=8)
    model = LitSearch(RNNSearchSpace(num_tokens=dm.num_tokens, emb_size=6, hidden_size=6), FirstOrder(),
                      weight_optimizer=partial(torch.optim.SGD, lr=20.0), grad_clip=0.25)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=2,
                        limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[RecordRank(tmp_path)], default_root_dir=tmp_path)
    trainer.fit(model, dm)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["world_size"] == 2
    for name, tensor in ranks[0]["params"].items():
        assert torch.equal(tensor, ranks[1]["params"][name]), name
    half = len(dm.corpus.train) // 2
    for rank, record in enumerate(ranks):  # rank r reads tokens [r·half, (r+1)·half), batchified
        expected = dm.corpus.train[rank * half:(rank + 1) * half]
        assert record["starts"][0] == batchify(expected, 4)[0].tolist()
