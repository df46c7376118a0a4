r"""Curvature of the validation loss in the architecture: the Hessian :math:`\nabla^2_\alpha L_{val}`, its dominant
eigenvalue, and the early-stopping rule built on it.

Zela et al. ("Understanding and Robustifying Differentiable Architecture Search", ICLR 2020, Sec. 4-5) show that the
dominant eigenvalue of the Hessian of the validation loss with respect to the architecture tensors grows as a DARTS
search drifts towards parameter-free cells, and stop the search (DARTS-ES) or raise its regularisation (DARTS-ADA)
when its local average rises too fast. Their ``Analyzer.compute_Hw`` (automl/RobustDARTS ``src/search/analyze.py``)
builds the Hessian explicitly, one row per architecture entry, of the loss of one validation batch, with the network
in training mode (batch statistics) and both cells' alphas together, plus the alpha optimizer's L2 term
(``arch_weight_decay · I``); ``train_search.py`` takes ``max(eigvals(H))``.

Here the Hessian is an operator, :class:`ArchHessian`: exact Hessian-vector products by double backward (as the
strategies' ``hessian="exact"``) of the mean loss over a fixed list of batches, with respect to every tensor of
``space.arch`` at once. :func:`lanczos` (default) or :func:`power_iteration` find its largest eigenvalue in a few
products; :meth:`ArchHessian.dense` builds the explicit matrix for the full spectrum when the architecture is small.

What an evaluation leaves behind: nothing. The weights enter detached through ``torch.func.functional_call`` with
copies of the buffers, so batch-norm running statistics never change (in ``mode="train"`` the forward normalises by
the batch's statistics, as the search's own steps and the authors' analysis do; ``mode="eval"`` uses the running
statistics). Every forward draws its noise from generators seeded for the evaluation (torch's global generator on the
CPU and the current CUDA device, and every part's :class:`~darts_pl.parts.SeededNoise`), inside a fork, so the
search's own random streams are untouched and every product of one evaluation sees the same draw.

Stochastic spaces (``space.stochastic``: GDAS's Gumbel sample, DrNAS's Dirichlet sample, S4's noise op...): with
``samples=N`` the operator is the mean Hessian over N fixed draws (draw ``i`` seeded ``seed + i`` in every product
and at every epoch: common random numbers). That is the exact Hessian of a deterministic function, the sample mean
``(1/N) Σ_i L(α; ξ_i)``, so power iteration and Lanczos are well defined on it; it estimates ``∇² E_ξ[L(α; ξ)]`` where
the sample is reparameterised and smooth in α (DrNAS's Dirichlet ``rsample``; an additive noise op), with Monte Carlo
error that shrinks as 1/√N. For GDAS's straight-through hard sample it is the mean Hessian of the straight-through
surrogate (forward one-hot, backward softmax), which is not the Hessian of the expected loss (that estimator is
biased by construction). Forwards that draw from torch's global generator without declaring it (the recurrent
space's dropout in training mode) get the same treatment: one fixed mask per draw.

:func:`early_stop_check` is the DARTS-ES rule of the authors' ``utils.EVLocalAvg`` on the eigenvalues computed so
far; :func:`load_curvature` reads what :class:`~darts_pl.callbacks.CurvatureMonitor` writes.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.func import functional_call

from darts_pl.distributed import all_reduce_mean_, world_size
from darts_pl.errors import ConfigurationError
from darts_pl.parts.base import SeededNoise
from darts_pl.search.base import SearchSpace

Mode = Literal["train", "eval"]
Method = Literal["lanczos", "power"]
CURVATURE_FILE = "curvature.json"
FORMAT = "darts_pl.curvature/1"


@dataclass(frozen=True)
class Eigen:
    """The largest eigenvalue of one evaluation.

    Attributes:
        max_eig: The largest (algebraic) eigenvalue found.
        iterations: Products with the Hessian the eigen solver used.
        converged: Whether the solver met its tolerance within its iterations (always true for the dense spectrum).
        spectrum: Every eigenvalue, ascending, when the explicit Hessian was built; else ``None``.
    """

    max_eig: float
    iterations: int
    converged: bool
    spectrum: list[float] | None = None


class ArchHessian:
    """The Hessian of the mean loss over ``batches`` (and over ``samples`` fixed draws) with respect to every
    architecture tensor of ``space``, as a symmetric operator on flat vectors (float64).

    Use it inside :meth:`session`, which sets the modules' modes, copies the buffers and restores everything after::

        hessian = ArchHessian(space, batches)
        with hessian.session():
            top = lanczos(hessian.matvec, hessian.numel, iterations=30)

    Args:
        space: The search space.
        batches: Fixed batches of the alpha-val stream (``space(batch, "val")`` is evaluated on each).
        mode: ``"train"``: batch statistics, as the search's steps and the authors' ``Analyzer``; ``"eval"``: running
            statistics, no dropout.
        samples: For a space that draws noise: the number of fixed draws to average over (``None``: one draw, for a
            deterministic space).
        seed: Seed of draw ``i`` is ``seed + i``.
        weight_decay: The alpha optimizer's L2 coefficient per architecture tensor (or one for all), added as
            ``weight_decay · v`` (the authors' ``Analyzer`` adds ``arch_weight_decay · I``); 0 leaves the loss alone.
        distributed: Average each product over the ranks of a process group (each rank holds its own batches).
        cache: Keep the first-order graph between products (one forward and one backward per evaluation instead of
            one per product); ``None``: when there is one batch and one draw (the memory of one product).
    """

    def __init__(self, space: SearchSpace, batches: Sequence[Any], *, mode: Mode = "train",
                 samples: int | None = None, seed: int = 0, weight_decay: float | Sequence[float] = 0.0,
                 distributed: bool = True, cache: bool | None = None) -> None:
        if mode not in ("train", "eval"):
            raise ConfigurationError(f"ArchHessian: mode={mode!r}; use 'train' (batch statistics) or 'eval'.")
        if not batches:
            raise ConfigurationError("ArchHessian: no batches; give at least one batch of the alpha-val stream.")
        self.space = space
        self.batches = list(batches)
        self.mode = mode
        self.samples = samples
        self.seed = seed
        self.alphas = space.arch_parameters()
        self.numel = sum(a.numel() for a in self.alphas)
        decay = [weight_decay] * len(self.alphas) if isinstance(weight_decay, (int, float)) else list(weight_decay)
        self._decay = torch.cat([torch.full((a.numel(),), float(d), dtype=torch.float64)
                                 for a, d in zip(self.alphas, decay)])
        self.distributed = distributed and world_size() > 1
        self.terms = [(b, i) for b in range(len(self.batches)) for i in range(samples or 1)]
        self.cache = len(self.terms) == 1 if cache is None else cache
        self.products = 0
        self._inputs: dict[str, torch.Tensor] | None = None
        self._graphs: dict[tuple[int, int], list[torch.Tensor]] = {}

    @property
    def device(self) -> torch.device:
        return self.alphas[0].device

    @contextlib.contextmanager
    def session(self) -> Iterator[ArchHessian]:
        """Modes set, buffers copied, autocast off, gradients on; on exit every module's mode, the carried states and
        the cached graphs are as before."""
        modules = list(self.space.modules())
        flags = [m.training for m in modules]
        for module in modules:  # the attribute, not .train(): SeededNoise.train would restart its eval generator
            module.training = self.mode == "train"
        weights = {name: w.detach() for name, w in self.space.named_weight_parameters()}
        buffers = {name: b.detach().clone() for name, b in self.space.named_buffers()}
        self._inputs = {**weights, **buffers}
        try:
            with torch.autocast(self.device.type, enabled=False), torch.enable_grad():
                yield self
        finally:
            self._inputs, self._graphs = None, {}
            for module, flag in zip(modules, flags):
                module.training = flag
            self.space.reset_state()

    def _gradient(self, term: tuple[int, int]) -> list[torch.Tensor]:
        """dL/dα of one (batch, draw), with its graph (for the second differentiation)."""
        if term in self._graphs:
            return self._graphs[term]
        if self._inputs is None:
            raise RuntimeError("ArchHessian: use the operator inside `with hessian.session():`.")
        batch, draw = self.batches[term[0]], term[1]
        self.space.reset_state()  # a recurrent space starts every evaluation from a zero state
        with fixed_draw(self.space, self.seed + draw, self.device):
            loss = functional_call(self.space, self._inputs, (batch, "val"), strict=False).loss
        grads = torch.autograd.grad(loss, self.alphas, create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(self.alphas, grads)]
        if self.cache:
            self._graphs[term] = grads
        return grads

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat float64 ``v`` of :attr:`numel` entries (a product with every batch and draw; under DDP
        averaged over the ranks)."""
        parts = [p.reshape(a.shape).to(a.dtype).to(a.device)  # (n,) -> one piece per tensor, e.g. (edges, ops)
                 for p, a in zip(vector.split([a.numel() for a in self.alphas]), self.alphas)]
        total = [torch.zeros_like(a) for a in self.alphas]
        for term in self.terms:
            grads = self._gradient(term)
            dot = sum((g * p).sum() for g, p in zip(grads, parts) if g.requires_grad)
            if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
                continue  # the loss is linear in the architecture: no curvature from this term
            hv = torch.autograd.grad(dot, self.alphas, retain_graph=self.cache, allow_unused=True)
            total = [t + h.detach() if h is not None else t for t, h in zip(total, hv)]
        total = [t / len(self.terms) for t in total]
        if self.distributed:
            all_reduce_mean_(total)  # the Hessian of the global batch: every rank holds the same product
        self.products += 1
        flat = torch.cat([t.reshape(-1) for t in total]).double().cpu()  # (n,)
        return flat + self._decay * vector.double().cpu()

    def dense(self) -> torch.Tensor:
        """The explicit Hessian, ``(numel, numel)`` float64, symmetrised (``numel`` products)."""
        eye = torch.eye(self.numel, dtype=torch.float64)
        columns = [self.matvec(eye[i]) for i in range(self.numel)]
        matrix = torch.stack(columns, dim=1)  # (n, n): column i is H e_i
        return (matrix + matrix.T) / 2


@contextlib.contextmanager
def fixed_draw(space: torch.nn.Module, seed: int, device: torch.device) -> Iterator[None]:
    """Inside the block every source of noise of ``space`` draws from a generator seeded ``seed``: torch's global
    generator on the CPU and on ``device`` (forked: restored on exit) and every :class:`SeededNoise` of the space
    (its states restored on exit). Deterministic forwards are unaffected; the search's random streams never are."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    noises = [m for m in space.modules() if isinstance(m, SeededNoise)]
    saved = [(m.generator.get_state(), m.eval_generator.get_state()) for m in noises]
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        for k, noise in enumerate(noises):
            noise.generator.manual_seed(seed + 7919 * (k + 1))  # parts draw apart from each other and the global one
            noise.eval_generator.manual_seed(seed + 7919 * (k + 1))
        try:
            yield
        finally:
            for noise, (train_state, eval_state) in zip(noises, saved):
                noise.generator.set_state(train_state)
                noise.eval_generator.set_state(eval_state)


def _start(numel: int, seed: int) -> torch.Tensor:
    vector = torch.randn(numel, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return vector / torch.linalg.vector_norm(vector)


def _same(flag: bool) -> bool:
    return flag


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], numel: int, *, iterations: int = 30, tol: float = 1e-4,
            seed: int = 0, agree: Callable[[bool], bool] = _same) -> Eigen:
    """The largest eigenvalue of a symmetric operator by Lanczos with full reorthogonalisation.

    Stops when the residual bound of the largest Ritz value, ``|β_k s_k| <= tol · |θ|``, holds, when the Krylov space
    is exhausted, or after ``iterations`` products (``converged`` false).

    Args:
        matvec: ``v -> H v`` on flat float64 vectors.
        numel: The dimension.
        iterations: At most this many products.
        tol: Relative tolerance of the residual bound.
        seed: Seed of the start vector (the same on every rank and at every evaluation).
        agree: Turns each rank's convergence flag into one all ranks share (under DDP).
    """
    q = _start(numel, seed)
    basis, diagonal, offdiagonal = [q], [], []
    theta, converged, steps = 0.0, False, 0
    while steps < min(iterations, numel):
        steps += 1
        w = matvec(basis[-1])
        diagonal.append(float(w @ basis[-1]))
        stacked = torch.stack(basis)  # (k, n)
        for _ in range(2):  # full reorthogonalisation, twice (Gram-Schmidt needs it in floating point)
            w = w - stacked.T @ (stacked @ w)
        beta = float(torch.linalg.vector_norm(w))
        tridiagonal = torch.diag(torch.tensor(diagonal, dtype=torch.float64))
        if offdiagonal:
            off = torch.tensor(offdiagonal, dtype=torch.float64)
            tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
        ritz, vectors = torch.linalg.eigh(tridiagonal)
        theta = float(ritz[-1])
        residual = abs(beta * float(vectors[-1, -1]))
        if agree(residual <= tol * max(abs(theta), 1e-12) or beta <= 1e-12 * max(abs(theta), 1.0)):
            converged = True
            break
        offdiagonal.append(beta)
        basis.append(w / beta)
    return Eigen(theta, steps, converged or steps >= numel)


def power_iteration(matvec: Callable[[torch.Tensor], torch.Tensor], numel: int, *, iterations: int = 30,
                    tol: float = 1e-4, seed: int = 0, agree: Callable[[bool], bool] = _same) -> Eigen:
    """The largest (algebraic) eigenvalue of a symmetric operator by power iteration.

    Power iteration finds the eigenvalue of largest magnitude ``μ`` (Rayleigh quotient, stopped when it moves by less
    than ``tol`` relative). When ``μ < 0`` the largest eigenvalue is another one: a second run on ``H - μ I``, whose
    eigenvalues are ``λ - μ >= 0``, finds ``λ_max - μ``. ``iterations`` bounds each run.
    """
    mu, steps, converged = _power(matvec, numel, iterations, tol, seed, 0.0, agree)
    if mu < 0:
        top, more, converged = _power(matvec, numel, iterations, tol, seed, mu, agree)
        mu, steps = top + mu, steps + more
    return Eigen(mu, steps, converged)


def _power(matvec: Callable[[torch.Tensor], torch.Tensor], numel: int, iterations: int, tol: float, seed: int,
           shift: float, agree: Callable[[bool], bool]) -> tuple[float, int, bool]:
    v, mu, previous = _start(numel, seed), 0.0, None
    for step in range(1, iterations + 1):
        w = matvec(v) - shift * v
        mu = float(v @ w)
        norm = float(torch.linalg.vector_norm(w))
        done = norm == 0.0 or (previous is not None and abs(mu - previous) <= tol * max(abs(mu), 1e-12))
        if agree(done):
            return mu, step, True
        v, previous = w / norm, mu
    return mu, iterations, False


def hessian_eigen(space: SearchSpace, batches: Sequence[Any], *, method: Method = "lanczos", iterations: int = 30,
                  tol: float = 1e-4, spectrum: bool = False, mode: Mode = "train", samples: int | None = None,
                  seed: int = 0, weight_decay: float | Sequence[float] = 0.0, distributed: bool = True) -> Eigen:
    """The largest eigenvalue of the Hessian of the mean loss over ``batches`` in the architecture (:class:`ArchHessian`
    for the arguments); with ``spectrum``, every eigenvalue of the explicit matrix (``numel`` products)."""
    hessian = ArchHessian(space, batches, mode=mode, samples=samples, seed=seed, weight_decay=weight_decay,
                          distributed=distributed)
    agree = _agreement(hessian) if hessian.distributed else _same
    with hessian.session():
        if spectrum:
            values = torch.linalg.eigvalsh(hessian.dense())
            return Eigen(float(values[-1]), hessian.products, True, values.tolist())
        solve = lanczos if method == "lanczos" else power_iteration
        return solve(hessian.matvec, hessian.numel, iterations=iterations, tol=tol, seed=seed, agree=agree)


def _agreement(hessian: ArchHessian) -> Callable[[bool], bool]:
    """Stop when every rank would (ranks hold identical products; this keeps their loops in step regardless)."""
    import torch.distributed as dist

    def agree(flag: bool) -> bool:
        tensor = torch.tensor([1.0 if flag else 0.0], device=hessian.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return bool(tensor.item() > 0)

    return agree


# ----------------------------------------------------------------------------------------------- the DARTS-ES rule
@dataclass(frozen=True)
class StopDecision:
    """One check of the DARTS-ES rule.

    Attributes:
        epoch: The epoch of the newest eigenvalue.
        named_epoch: The epoch the rule names: its genotype is DARTS-ES's result, and DARTS-ADA rolls back to it.
        current: The local average of the newest ``window`` eigenvalues.
        previous: The local average ``delta`` evaluations earlier.
        ratio: ``current / previous``.
        stop: ``ratio > factor``.
    """

    epoch: int
    named_epoch: int
    current: float
    previous: float
    ratio: float
    stop: bool


def local_average(values: Sequence[float], window: int) -> float:
    """Mean of the last ``window`` values (of all of them while there are fewer), as ``EVLocalAvg.update``."""
    return float(np.mean(values[max(0, len(values) - window):]))


def local_averages(values: Sequence[float], window: int) -> list[float]:
    """The local average after each value: entry ``i`` averages ``values[i - window + 1 : i + 1]`` (fewer at the
    start). The authors' list ``ev_local_avg`` is this list from entry ``ceil(window / 2) - 1`` on."""
    return [local_average(values[: i + 1], window) for i in range(len(values))]


def early_stop_check(epochs: Sequence[int], values: Sequence[float], *, window: int = 5, delta: int = 4,
                     factor: float = 1.3, es_start_epoch: int = 10) -> StopDecision | None:
    """The DARTS-ES rule (automl/RobustDARTS ``src/utils.py``, ``EVLocalAvg.update`` and ``early_stop``) after the
    newest eigenvalue; ``None`` while it cannot decide.

    With ``L`` eigenvalues so far (at ``epochs``, every ``f`` epochs), the current local average is the mean of the
    last ``window`` of them and the previous one that of the ``window`` before the last ``delta``. The authors centre
    each average in the middle of its window (``epoch - f · floor(window / 2)``), so the rule names the epoch of
    eigenvalue ``L - 1 - floor(window / 2) - delta`` (their ``la_epochs[epoch] - ev_freq · delta``), checks only
    once that epoch is at least ``es_start_epoch``, and stops when ``current / previous > factor``. With their search
    scripts' settings (an eigenvalue every 2 epochs, window 5, delta 4, factor 1.3, start 10) the first check is at
    epoch 22 and names epoch 10; a stop at epoch ``e`` names ``e - 12``.

    The authors never check at the last epoch of the search: the callbacks skip it.

    Note:
        Named by position among the evaluations, which equals the authors' arithmetic on epochs when evaluations are
        ``f`` epochs apart; a ``previous`` average of 0 gives an infinite ratio (or NaN with ``current`` 0).
    """
    count = len(values)
    named = count - 1 - window // 2 - delta
    if named < 0 or epochs[named] < es_start_epoch:
        return None
    current = local_average(values, window)
    previous = local_average(values[: count - delta], window)
    if previous == 0:
        ratio = math.copysign(math.inf, current) if current else math.nan
    else:
        ratio = current / previous
    return StopDecision(int(epochs[-1]), int(epochs[named]), current, previous, ratio, ratio > factor)


# ----------------------------------------------------------------------------------------------- the history file
@dataclass
class CurvatureHistory:
    """What ``curvature.json`` holds, as arrays (numpy and json only; no training code needed).

    Attributes:
        epochs, steps, values: Epoch, logging step (search iteration) and largest eigenvalue of every evaluation,
            in the order they ran (a DARTS-ADA rollback repeats epochs).
        active: Whether an evaluation belongs to the search's final line (false for the epochs a rollback undid).
        branches: How many rollbacks preceded each evaluation.
        records: The raw records (iterations, convergence, seconds, spectrum...).
        events: Early stops and rollbacks, each a dict with ``kind`` (``"early_stop"``, ``"rollback"``), ``epoch``,
            ``named_epoch``, ``ratio``...
        settings: How the monitor computed the values.
    """

    epochs: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    active: np.ndarray
    branches: np.ndarray
    records: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Epochs and eigenvalues of the final line of the search (the values the early-stop rule last read)."""
        return self.epochs[self.active], self.values[self.active]

    def local_averages(self, window: int = 5) -> np.ndarray:
        """The authors' local average of :meth:`curve`'s values after each evaluation."""
        return np.asarray(local_averages(self.curve()[1].tolist(), window))


def curvature_document(settings: dict[str, Any], records: list[dict[str, Any]],
                       events: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON document of ``curvature.json``."""
    return {"format": FORMAT, "settings": settings, "records": records, "events": events,
            "description": "records[i].max_eig: the largest eigenvalue of the Hessian of the mean alpha-val loss over "
                           "fixed batches in every architecture tensor, after epoch records[i].epoch; records with "
                           "active false belong to epochs a rollback undid."}


def load_curvature(run: str | os.PathLike[str]) -> CurvatureHistory:
    """Read ``curvature.json`` from a run directory (or the file itself).

    Raises:
        ConfigurationError: No such file (the search ran without ``CurvatureMonitor``).
    """
    path = Path(run)
    path = path / CURVATURE_FILE if path.is_dir() else path
    if not path.is_file():
        raise ConfigurationError(f"No {CURVATURE_FILE} at {str(path)!r}: that search ran without "
                                 "darts_pl.callbacks.CurvatureMonitor (add --config configs/collapse/curvature.yaml).")
    document = json.loads(path.read_text())
    records = document.get("records", [])

    def column(key: str, dtype: Any) -> np.ndarray:
        return np.asarray([r[key] for r in records], dtype=dtype)

    return CurvatureHistory(column("epoch", np.int64), column("step", np.int64), column("max_eig", np.float64),
                            column("active", bool), column("branch", np.int64), records, document.get("events", []),
                            document.get("settings", {}))


def plot_curvature(history: CurvatureHistory, ax: Any = None, window: int | None = 5) -> Any:
    """Eigenvalue per epoch (the final line, and any undone branch faded), the authors' local average, and a vertical
    line at each early stop's named epoch. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for branch in sorted(set(history.branches[~history.active].tolist())):
        undone = (history.branches == branch) & ~history.active
        ax.plot(history.epochs[undone], history.values[undone], "o--", color="0.6", lw=1,
                label=f"undone by rollback {branch + 1}")
    epochs, values = history.curve()
    ax.plot(epochs, values, "o-", label="largest eigenvalue")
    if window and len(values):
        ax.plot(epochs, history.local_averages(window), "-", lw=2, alpha=0.6, label=f"local average ({window})")
    for event in history.events:
        ax.axvline(event["named_epoch"], color="C3" if event["kind"] == "early_stop" else "C2", ls=":", lw=1.5,
                   label=f"{event['kind'].replace('_', ' ')} names epoch {event['named_epoch']} "
                         f"(at epoch {event['epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"$\lambda_{max}(\nabla^2_\alpha L_{val})$")
    ax.legend(fontsize=8)
    return ax


def skip_counts(run: str | os.PathLike[str]) -> dict[int, dict[str, int]]:
    """``{epoch: {"num_skip_connect": n, "num_parameter_free": m}}`` of the watched cell of every
    ``genotypes/epoch_NNN.json`` in a run directory (the genotype's own collapse counts; the normal cell of a DARTS
    genotype). A rollback rewrites the files of the epochs it repeats: these are the final line's."""
    from darts_pl import genotypes

    counts = {}
    for path in sorted((Path(run) / "genotypes").glob("epoch_*.json")):
        per_cell = genotypes.load(path).collapse_counts()
        if per_cell:
            counts[int(path.stem.split("_")[1])] = next(iter(per_cell.values()))
    return counts


def summary(run: str | os.PathLike[str], window: int = 5) -> str:
    """A run's curvature as text: per evaluated epoch of the final line the largest eigenvalue, the authors' local
    average and the skip connections of the derived cell; then the early stops and rollbacks."""
    history = load_curvature(run)
    skips = skip_counts(run)
    epochs, values = history.curve()
    averages = history.local_averages(window)
    lines = [f"{'epoch':>5} {'max eig':>12} {'local avg':>12} {'skips':>5}"]
    for epoch, value, average in zip(epochs.tolist(), values.tolist(), averages.tolist()):
        count = skips.get(epoch, {}).get("num_skip_connect")
        lines.append(f"{epoch:>5} {value:>12.6g} {average:>12.6g} {'-' if count is None else count:>5}")
    for event in history.events:
        what = "DARTS-ES stop" if event["kind"] == "early_stop" else "DARTS-ADA rollback"
        extra = f", weight decay {event['weight_decay'][0]:g} -> {event['weight_decay'][1]:g}" \
            if event["kind"] == "rollback" else ""
        lines.append(f"{what} at epoch {event['epoch']}: ratio {event['ratio']:.3g}, names epoch "
                     f"{event['named_epoch']}{extra}")
    undone = int((~history.active).sum())
    if undone:
        lines.append(f"({undone} evaluations of epochs a rollback undid are not listed)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m darts_pl.curvature RUN [--plot FILE]``: print :func:`summary`, optionally draw :func:`plot_curvature`
    with the skip connections per epoch."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m darts_pl.curvature", description=main.__doc__)
    parser.add_argument("run", help="a run directory (it holds curvature.json)")
    parser.add_argument("--window", type=int, default=5, help="the local average's window (the authors': 5)")
    parser.add_argument("--plot", default=None, help="also draw the curve into this image file")
    options = parser.parse_args(argv)
    try:
        print(summary(options.run, options.window))
    except ConfigurationError as err:
        raise SystemExit(f"python -m darts_pl.curvature: error: {err}") from None
    if options.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots(figsize=(8, 4))
        plot_curvature(load_curvature(options.run), ax, options.window)
        skips = skip_counts(options.run)
        if skips:
            twin = ax.twinx()
            from matplotlib.ticker import MaxNLocator

            twin.step(list(skips), [c["num_skip_connect"] for c in skips.values()], where="mid", color="0.4", lw=1)
            twin.set_ylabel("skip connections in the derived cell (grey)")
            twin.yaxis.set_major_locator(MaxNLocator(integer=True))
        figure.tight_layout()
        figure.savefig(options.plot, dpi=120)
        print(f"curve written to {options.plot}")


if __name__ == "__main__":
    main()
