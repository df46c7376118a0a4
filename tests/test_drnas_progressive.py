"""DrNAS's progressive learning (Chen et al., ICLR 2021, Sec. 3.3): pruning by the alphas, the masked Dirichlet sample,
the widening of every op, the optimizers' and the schedule's carry-over, the stage-2 supernet end to end, and the
driver's two stages on the digits (resumed, and under DDP).

Expected values come from the authors' code (xiangning-chen/DrNAS, ``utils.prune``, ``process_step_matrix``,
``Network.pruning`` / ``wider`` / ``forward`` / ``genotype``, ``net2wider.configure_optimizer`` /
``configure_scheduler``) run on the fixed inputs built here, in float64 on the CPU: tests/goldens/drnas_progressive.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from darts_pl.callbacks.warm_start import carry_optimizer_state, started_state
from darts_pl.errors import ConfigurationError
from darts_pl.recipes import top_alphas
from darts_pl.search import CNNSearchSpace, Dirichlet, PartialChannel
from darts_pl.widening import widen_state, widening_plan

F64 = torch.float64
P = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def stage1_alphas() -> tuple[torch.Tensor, torch.Tensor]:
    e = torch.arange(14, dtype=F64)[:, None]
    o = torch.arange(7, dtype=F64)[None, :]
    normal = torch.sin(1.3 * e + 0.7 * o)
    normal[5] = torch.tensor([0.2, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5])  # five equal for four places
    normal[6] = 0.25  # all equal
    reduce = torch.cos(0.6 * e - 1.1 * o + 0.25)
    return normal, reduce


def fill(space: nn.Module) -> None:
    """Floating tensor ``k`` of the state dict (alphas left out) := ``0.5 · sin(0.7 · i + k)`` (running variances
    ``1 + 0.5 · sin(...)``), in the order the authors' network lists the same tensors."""
    with torch.no_grad():
        k = 0
        for name, t in space.state_dict().items():
            if name.startswith("arch.") or not torch.is_tensor(t) or not t.is_floating_point():
                continue
            values = torch.sin(torch.arange(t.numel(), dtype=F64) * 0.7 + k).reshape(t.shape) * 0.5
            t.copy_(values + 1 if name.endswith("running_var") else values)
            k += 1


def fingerprint(tensors: list[torch.Tensor]) -> float:
    total = 0.0
    for k, t in enumerate(tensors):
        flat = t.detach().to(F64).flatten()
        total += float((flat * torch.sin(torch.arange(flat.numel(), dtype=F64) + 0.1 * k)).sum())
    return total


def inputs(*shape: int) -> torch.Tensor:
    i = torch.arange(int(np.prod(shape)), dtype=F64)
    return (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i)).reshape(shape)


def space(k: int, seed: int = 0, **kwargs: object) -> CNNSearchSpace:
    """The authors' ``Network(12, 10, 3, k=k)``: 12 channels, 3 cells, their 7 ops, partial channels, Dirichlet."""
    return CNNSearchSpace(channels=12, num_cells=3, primitives=P, edge=PartialChannel(k), channels_last=False,
                          relaxation=Dirichlet(seed=seed), **kwargs).to(F64)


def masked(rows: list[list[int]]) -> dict[str, object]:
    pruned = [[P[j] for j in row] for row in rows]
    return {"edge_primitives": {"normal": pruned, "reduce": pruned}, "alpha_columns": "primitives"}


def rows_of(kept: list[list[str]]) -> list[list[int]]:
    return [[P.index(name) for name in row] for row in kept]


# ---------------------------------------------------------------------------------------------- pruning
KEPT_1 = [[1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 5, 6], [3, 4, 5, 6], [2, 3, 4, 5], [1, 4, 5, 6], [3, 4, 5, 6],
          [0, 1, 5, 6], [3, 4, 5, 6], [2, 3, 4, 5], [0, 1, 2, 3], [0, 1, 2, 6], [0, 4, 5, 6], [3, 4, 5, 6]]
PRUNED_ROW = {0: [0.0, 0.644217687237691, 0.98544972998846, 0.863209366648874, 0.334988150155905, 0.0, 0.0],
              5: [0.0, 0.5, 0.0, 0.0, 0.5, 0.5, 0.5], 6: [0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25]}
KEPT_2 = [[2, 3], [0, 1], [0, 6], [5, 6], [3, 4], [4, 5], [4, 5], [0, 6], [5, 6], [3, 4], [1, 2], [0, 1], [5, 6],
          [5, 6]]


def test_pruning_keeps_the_authors_ops() -> None:
    """The top 4 alphas of every edge, ties as the authors' ``torch.topk`` sends them (row 5: five equal alphas for
    four places; row 6: all equal); the kept alphas stay, the others become 0; a third stage never brings back an op
    pruned before, however its alpha grew."""
    normal, reduce = stage1_alphas()
    kept = top_alphas(normal, [P] * 14, P, keep=4)
    assert rows_of(kept) == KEPT_1
    old = space(6)
    with torch.no_grad():
        old.arch["normal"].copy_(normal)
        old.arch["reduce"].copy_(reduce)
    new = space(4, **masked(KEPT_1))
    state, _ = started_state(old, new, torch.Generator().manual_seed(0))
    for e, row in PRUNED_ROW.items():
        torch.testing.assert_close(state["arch.normal"][e], torch.tensor(row, dtype=F64), rtol=1e-14, atol=0)
    after = state["arch.normal"].clone()
    after[0, 0] += 3.0
    assert rows_of(top_alphas(after, kept, P, keep=2)) == KEPT_2
    with pytest.raises(ConfigurationError, match="keep=5 ops, but edge 0 has 4"):
        top_alphas(after, kept, P, keep=5)


# ---------------------------------------------------------------------------------------------- masked sample
MASKED_SAMPLE = {0: [0.0, 0.4132220883041, 0.2527750913976, 0.1524981681191, 0.1815046521791, 0.0, 0.0],
                 1: [0.5448821164629, 0.2129877444075, 0.04652532748797, 0.1956048116417, 0.0, 0.0, 0.0]}
MASKED_GRAD = [-3.631739483476e-17, -0.3341196355087, -0.02097110460381, 0.1420133490984, 0.4188765612205,
               -1.735231941729e-17, -2.238241548467e-18]


def test_masked_dirichlet_sample_is_the_authors() -> None:
    """Stage 2 samples the Dirichlet of every alpha of an edge, then keeps the edge's ops and renormalises (the
    authors' ``process_step_matrix`` with a mask); the edge probabilities are the masked softmax."""
    normal, _ = stage1_alphas()
    new = space(4, **masked(KEPT_1))
    alphas = normal.clone().requires_grad_()
    weights = new.restrict_weights("normal", Dirichlet(seed=0)(alphas)).weights
    for e, row in MASKED_SAMPLE.items():
        torch.testing.assert_close(weights[e], torch.tensor(row, dtype=F64), rtol=1e-10, atol=1e-13)
    c = torch.arange(7, dtype=F64) + 1
    (grad,) = torch.autograd.grad((c * weights[0]).sum(), [alphas])
    torch.testing.assert_close(grad[0], torch.tensor(MASKED_GRAD, dtype=F64), rtol=1e-9, atol=1e-14)
    with torch.no_grad():
        new.arch["normal"].copy_(normal)
    probs = new.edge_probs()["normal"]
    mask = new.op_masks["normal"]
    assert (probs[~mask] == 0).all()
    torch.testing.assert_close(probs[1, :4], torch.softmax(normal[1, :4].float(), -1))
    assert new.arch["normal"].shape == (14, 7)  # one alpha per op of the space, as the authors'
    assert [len(m.ops) for m in new.cells[0].edges] == [4] * 14  # only the kept ops are built


def test_masked_layout_refuses_a_sampling_relaxation() -> None:
    from darts_pl.search import GumbelSoftmax

    with pytest.raises(ConfigurationError, match="alpha_columns='primitives' masks the ops an edge lacks"):
        CNNSearchSpace(channels=4, num_cells=3, relaxation=GumbelSoftmax(), alpha_columns="primitives")
    with pytest.raises(ConfigurationError, match="alpha_columns='all'"):
        CNNSearchSpace(channels=4, num_cells=3, alpha_columns="all")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- widening
WIDENED = [5.891975906266, 2.205450060142, 4.805716083288, 3.322883776399, 5.317075973048, 5.849886334473,
           1.832693482193, 5.539390230167, 2.286018526281, 4.923987327771, 0.2312851337491, 8.00759072224,
           -0.09015757802094, 3.175625272201, 0.3070176838607, 0.9916244809233, -3.074625124384, -1.958439091544,
           -2.608752042179, -1.576705142304, 2.449420093529, -2.556469511297, 1.153504241342, 3.805997491708,
           -1.628363973616, -1.49587680448, 0.2627996431661, -6.436248735631, -10.83730606589, -4.838713057838,
           -19.17000092083, -15.62588971616, 15.60161732235, -7.890039399647, -9.712285045076, -8.788424776333,
           -4.804437401847, 0.2005432063729, -9.609297959059, 14.95792750414, -21.4459144609, -8.007685813518]


def test_widening_is_the_authors() -> None:
    """Every op of every edge (K=6 -> 4: 2 -> 3, 4 -> 6, 8 -> 12 channels) widened as ``Network.wider(4)`` after
    ``torch.manual_seed(5)``: weights, the pointwise convs' inputs, the batch-norm statistics, the factorized
    reduce's two halves."""
    old, new = space(6), space(4)
    fill(old)
    state = widen_state(widening_plan(old, new, torch.Generator().manual_seed(5)), old.state_dict(), new.state_dict())
    new.load_state_dict(state)
    prints = [fingerprint(list(mixed.ops.state_dict().values())) for _, _, mixed in new.edge_modules()]
    np.testing.assert_allclose(prints, WIDENED, rtol=1e-11, atol=1e-11)
    with pytest.raises(ConfigurationError, match="can only widen its ops"):
        widening_plan(new, old, torch.Generator().manual_seed(5))
    with pytest.raises(ConfigurationError, match="keep num_cells and num_nodes between stages"):
        widening_plan(old, CNNSearchSpace(channels=12, num_cells=4, primitives=P, edge=PartialChannel(4)),
                      torch.Generator())


MOMENTUM = [1.569954438869, 9.261219589483, 8.469003388213, 0.3554355583021, 4.907960041811, -4.495761779294,
            -3.102563567725, -5.997109443494, -7.230406618471, -5.484899656912, 2.511288705684, 2.440618334506,
            9.94214939956, 8.468347534551, -0.0886055077178, -6.805839616981, 8.515811420504, 0.75221821396,
            -5.927796351234, -9.849027546436, -4.389275479869, -13.33956441397, 3.433233546037, -13.5308744128,
            1.956824261741, 2.169268366629, 1.508015113162, -3.070976351368, -15.06369135805, -3.34658402445,
            1.170626030825, 5.950961291539, -10.51892295722, -0.2217359830723, -15.30871017565, 4.262503368532,
            0.2382444407664, -7.430366147958, 6.277069987425, 4.387185297129, 1.766719885576, 6.94532373721]
STAGE2_LR = {25: 0.1, 26: 0.0937209480470687, 27: 0.0874666766435696, 37: 0.0315452894071311,
             49: 0.000197327157172844}


def test_momentum_and_schedule_carry_over_are_the_authors() -> None:
    """The momentum buffers widened with the weights' picks (``configure_optimizer``); stage 2's learning rate:
    the configured initial rate in its first epoch, then the cosine's recursive steps from it
    (``configure_scheduler`` loads the old scheduler into one whose optimizer starts at the initial rate)."""
    old, new = space(6), space(4)
    fill(old)
    named = list(old.named_weight_parameters())
    saved = {"state": {k: {"momentum_buffer": (torch.cos(torch.arange(p.numel(), dtype=F64) * 0.9 + k) * 0.3)
                           .reshape(p.shape)} for k, (_, p) in enumerate(named)}}
    plan = widening_plan(old, new, torch.Generator().manual_seed(5))
    optimizer = torch.optim.SGD(new.weight_parameters(), 0.1, momentum=0.9, weight_decay=3e-4)
    carry_optimizer_state(optimizer, new.named_weight_parameters(), named, saved, plan)
    prints = [fingerprint([optimizer.state[p]["momentum_buffer"] for p in mixed.ops.parameters()])
              for _, _, mixed in new.edge_modules()]
    np.testing.assert_allclose(prints, MOMENTUM, rtol=1e-11, atol=1e-11)

    first = torch.optim.SGD([nn.Parameter(torch.zeros(1))], 0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(first, 50, eta_min=0.0)
    for _ in range(25):
        first.step()
        scheduler.step()
    second = torch.optim.SGD([nn.Parameter(torch.zeros(1))], 0.1, momentum=0.9)
    resumed = torch.optim.lr_scheduler.CosineAnnealingLR(second, 50, eta_min=0.0)
    resumed.load_state_dict(scheduler.state_dict())  # what WarmStart does with the previous run's scheduler state
    rates = {}
    for epoch in range(25, 50):
        rates[epoch] = second.param_groups[0]["lr"]
        second.step()
        resumed.step()
    for epoch, rate in STAGE2_LR.items():
        assert rates[epoch] == pytest.approx(rate, rel=1e-12)


# ---------------------------------------------------------------------------------------------- the stage-2 supernet
STAGE2_LOGITS = [[-5.564698243901, -1.332620552092, 8.166933211632, -11.79047610923, 8.718388240502,
                  -3.189953381029, -4.785985231189, 10.57624996342, -10.5620321576, 7.249747026999],
                 [-7.023451978998, -0.7979742358372, 8.799968426918, -13.30279473905, 10.42100832206, -4.3071954361,
                  -4.763114220908, 11.65816957039, -12.25584156074, 8.783780716013]]
S, MP, AP, S3, S5, D3, D5 = P[2], P[0], P[1], P[3], P[4], P[5], P[6]
STAGE2_NORMAL = [(MP, 1), (S, 0), (D5, 1), (MP, 0), (D5, 2), (D3, 3), (D5, 3), (MP, 2)]
STAGE2_REDUCE = [(AP, 1), (D5, 0), (S, 1), (S, 2), (S3, 0), (S5, 2), (S, 4), (AP, 3)]


def test_stage_two_supernet_is_the_authors() -> None:
    """Stage 1's supernet, pruned to 4 ops per edge and widened to K=4, then one forward in training mode with the
    sampler seeded 1: the logits of the authors' network after ``pruning(4)``, ``wider(4)`` (seed 5), and its
    genotype."""
    normal, reduce = stage1_alphas()
    old = space(6, seed=1)
    fill(old)
    with torch.no_grad():
        old.arch["normal"].copy_(normal)
        old.arch["reduce"].copy_(reduce)
    kept = {cell: top_alphas(old.arch[cell], [P] * 14, P, keep=4) for cell in ("normal", "reduce")}
    new = space(4, edge_primitives=kept, alpha_columns="primitives")
    state, _ = started_state(old, new, torch.Generator().manual_seed(5))
    new.load_state_dict(state)  # the sampler's generator comes along: seeded 1, not drawn from yet
    logits = new.logits(inputs(2, 3, 16, 16))
    torch.testing.assert_close(logits, torch.tensor(STAGE2_LOGITS, dtype=F64), rtol=0, atol=1e-9)
    genotype = new.genotype()
    assert sorted(genotype.normal) == sorted(STAGE2_NORMAL) and sorted(genotype.reduce) == sorted(STAGE2_REDUCE)
    for i in range(0, 8, 2):  # the same pair of every node
        assert set(genotype.normal[i:i + 2]) == set(STAGE2_NORMAL[i:i + 2])
        assert set(genotype.reduce[i:i + 2]) == set(STAGE2_REDUCE[i:i + 2])


# ------------------------------------------------------------------------------ the driver's two stages
DRNAS_TINY = ["--config", "configs/quickstart.yaml", "--config", "configs/variants/drnas.yaml",
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
              "--data.init_args.batch_size", "16"]
DRNAS_DRIVER = ["--channels", "8", "--num_cells", "3", "--partial_channels", "4", "2", "--keep_ops", "4",
                "--stage_epochs", "2", "2", "--warmup_epochs", "1"]


@pytest.mark.slow
def test_driver_runs_drnas_stages(tmp_path, monkeypatch) -> None:
    """``darts-pl-progressive`` with the DrNAS recipe (picked by the config's method): stage 1 searches 7 ops per edge
    at K=4, stage 2 the 4 kept ops at K=2, started from stage 1's alphas and Adam state (not afresh), with the cosine
    running on over both stages' epochs; the final genotype takes only kept ops."""
    import json
    from pathlib import Path

    from darts_pl import progressive
    from darts_pl.genotypes import load

    from .conftest import run_dir as the_run_dir

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    root = tmp_path / "drnas"
    progressive.main(["--root", str(root), *DRNAS_DRIVER, *DRNAS_TINY])
    record = json.loads((root / "stages.json").read_text())
    assert record["recipe"] == "drnas" and [s["stage"] for s in record["stages"]] == [1, 2]
    first, second = record["stages"]
    ck1 = torch.load(the_run_dir(root / "stage_1") / "checkpoints" / "last.ckpt", weights_only=False)
    ck2 = torch.load(the_run_dir(root / "stage_2") / "checkpoints" / "last.ckpt", weights_only=False)
    assert ck1["state_dict"]["space.arch.normal"].shape == (14, 7)
    assert ck2["hyper_parameters"]["space"]["init_args"]["edge"]["init_args"]["k"] == 2
    kept = second["edge_primitives"]
    assert kept == first["pruned"] and all(len(ops) == 4 for ops in kept["normal"])
    assert kept["normal"] == top_alphas(ck1["state_dict"]["space.arch.normal"], [P] * 14, P, keep=4)
    # Each stage warms up for an epoch (as the authors restart it) and then takes alpha steps: stage 2 continues
    # stage 1's Adam state.
    adam1 = ck1["optimizer_states"][1]["state"]
    adam2 = ck2["optimizer_states"][1]["state"]
    assert adam1 and adam2 and min(int(s["step"]) for s in adam2.values()) > min(int(s["step"]) for s in adam1.values())
    sched = ck2["lr_schedulers"][0]
    assert sched["T_max"] == 4 and sched["last_epoch"] == 4  # one cosine over 2 + 2 epochs
    final = load(root / "genotype.json")
    for i, (op, _) in enumerate(final.normal):
        node_edges = range(sum(2 + j for j in range(i // 2)), sum(2 + j for j in range(i // 2 + 1)))
        assert any(op in kept["normal"][e] for e in node_edges)
