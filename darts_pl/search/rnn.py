"""The DARTS recurrent search space: a supernet highway cell on Penn Treebank (Liu et al., 2019, Sec. 2.1, 3.2).

Follows the original ``rnn/model_search.py``. The cell has ``num_nodes`` (8) nodes after s0, the
highway over x_t and h_{t-1}; node ``i`` reads every earlier state ``s_j`` through one gate matrix
W_i shared by its incoming edges, ``c, h = split(s_j W_i)``, and is the mixed op (paper Eq. 2)

    s_i = sum_j sum_op p_{j->i}(op) * (s_j + sigmoid(c) * (op(h) - s_j)),   op in tanh, relu, sigmoid, identity

(``none`` adds zero). h_t is the mean of the eight nodes. Embedding, tied decoder, dropouts and the
temporal activation regularisation are those of :mod:`darts_pl.networks.rnn`.

Hidden state: each stream (``"train"`` for weight steps, ``"val"`` for alpha steps) carries its own
state across batches, detached (truncated BPTT). A forward reads the stream's committed state and
leaves the new one pending; :meth:`commit` makes it current, so the last evaluation of a phase is the
one carried forward (a second-order step evaluates the train batch three times and the val batch at
the virtual weights). In eval mode (the validation loop) the state lives in a separate stream per name
and is committed at once; :meth:`reset_state` in eval mode forgets only those, so a validation run in
the middle of an epoch does not disturb the training streams.

Notes (as in the original code, or deviations from it):
    * BatchNorm without affine parameters normalises s0 and every node during search, one BatchNorm
      shared by all nodes, as in the original; unlike the original, it normalises with the statistics
      of the batch in evaluation too (``track_running_stats=False``). The supernet's nodes sum all their
      incoming edges, so without normalisation a node is about 1.5 times the size of the one before and
      h_t, their mean, several times h_{t-1}: over a 35-step window the state grows by ~1e18. With
      running statistics, evaluation normalises by estimates that never fit (initially none at all, so
      an untrained supernet's validation loss was ~1e18, then NaN; later one running mean and variance
      blended over s0, all eight nodes and every time step). Batch statistics make evaluation the same
      function as the weight and alpha steps; evaluation therefore needs at least 2 streams a batch.
    * The mixed op is computed as ``P s_j + sigmoid(c) (sum_op p(op) op(h) - P s_j)`` with ``P`` the
      probability mass of the non-``none`` ops: the same value as the sum above, one highway per edge
      instead of one per op.
    * Alphas are ``1e-3 · N(0, 1)`` by default (``alpha_init="zeros"`` for the paper's text).
    * ``clips_virtual_step``: the second-order step clips the training gradient at the weight
      optimizer's clip (0.25) before the virtual step, as the original RNN code does.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import RNN_PRIMITIVES, RNNGenotype, derive_rnn
from darts_pl.networks.rnn import (
    HighwayCell,
    RNNModel,
    activation_regularization,
    get_activation,
    language_model_loss,
)
from darts_pl.parts import Derivation, Relaxation
from darts_pl.search.base import LossOutput, SearchSpace, Stream, check_primitives, init_alpha

EVAL_PREFIX = "eval/"


class SearchCell(HighwayCell):
    """The supernet cell: every node a mixed op over all earlier states (see the module docstring)."""

    def __init__(self, emb_size: int, hidden_size: int, num_nodes: int, primitives: Sequence[str],
                 dropout_x: float, dropout_hidden: float) -> None:
        super().__init__(emb_size, hidden_size, num_nodes, dropout_x, dropout_hidden)
        # Batch statistics in evaluation too (see the module docstring): running ones explode the recurrence.
        self.bn = nn.BatchNorm1d(hidden_size, affine=False, track_running_stats=False)
        self.columns = [k for k, name in enumerate(primitives) if name != "none"]  # alpha column of each op run
        self.activations = [get_activation(primitives[k]) for k in self.columns]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Checkpoints written before evaluation used batch statistics hold running ones, which are unused now.
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            state_dict.pop(f"{prefix}bn.{name}", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def step(self, s0: torch.Tensor, h_mask: torch.Tensor | None, op_probs: torch.Tensor | None = None,
             **kwargs: Any) -> torch.Tensor:
        """One time step; ``op_probs`` (edges, ops run) are the probabilities of the non-``none`` ops."""
        assert op_probs is not None
        states = self.bn(s0).unsqueeze(0)  # (1, B, H)
        offset = 0
        for i, weight in enumerate(self.node_weights):
            n = i + 1  # node i+1 reads s_0..s_i
            masked = states * h_mask if h_mask is not None else states
            c, h = (masked @ weight).chunk(2, dim=-1)  # (n, B, H) each
            c = torch.sigmoid(c)
            p = op_probs[offset:offset + n]  # (n, ops)
            mixed = sum(p[:, k, None, None] * fn(h) for k, fn in enumerate(self.activations))  # (n, B, H)
            mass = p.sum(-1)[:, None, None]  # (n, 1, 1)
            node = (mass * states + c * (mixed - mass * states)).sum(0)  # (B, H): Eq. 2 over the n edges
            states = torch.cat([states, self.bn(node).unsqueeze(0)])  # (n + 1, B, H)
            offset += n
        return states[1:].mean(0)  # (B, H)


class RNNSearchSpace(SearchSpace):
    """The DARTS PTB supernet.

    Args:
        num_tokens: Vocabulary size (linked from the data module by the CLI).
        emb_size: Embedding width (300 in the paper's search).
        hidden_size: Hidden width; must equal ``emb_size`` (tied decoder).
        num_nodes: Nodes after s0 (8).
        primitives: Candidate ops on every edge, from ``none, tanh, relu, sigmoid, identity``.
        dropout_output: Variational dropout on the cell output (0.75).
        dropout_hidden: Variational dropout on h_{t-1} and the nodes' inputs (0.25).
        dropout_x: Variational dropout on x_t (0.75).
        dropout_input: Variational dropout on the embedded words (0.2).
        dropout_embedding: Word-level embedding dropout (0 in the search).
        ar: Activation regularisation weight (0).
        tar: Temporal activation regularisation weight (1e-3), added when ``forward(..., regularized=True)``.
        alpha_init: ``"randn"`` (original code: ``alpha_init_scale · N(0, 1)``) or ``"zeros"`` (paper).
        alpha_init_scale: Scale of the random alpha initialisation.
        relaxation: Alphas → edge weights and probabilities (``Softmax``, DARTS, when omitted). A sampling
            relaxation (GDAS) is refused: this cell computes every op of a node's edges in one batched
            product, so there is no per-edge op to skip.
        derivation: Probabilities → genotype (``TopK`` with k=1, DARTS, when omitted).
    """

    clips_virtual_step = True
    has_edges = False  # a node's edges are one batched product over all ops, not modules an Edge part combines
    accepts_sampling = False

    def __init__(
        self,
        num_tokens: int = 10000,
        emb_size: int = 300,
        hidden_size: int = 300,
        num_nodes: int = 8,
        primitives: Sequence[str] = RNN_PRIMITIVES,
        dropout_output: float = 0.75,
        dropout_hidden: float = 0.25,
        dropout_x: float = 0.75,
        dropout_input: float = 0.2,
        dropout_embedding: float = 0.0,
        ar: float = 0.0,
        tar: float = 1e-3,
        alpha_init: Literal["randn", "zeros"] = "randn",
        alpha_init_scale: float = 1e-3,
        relaxation: Relaxation | None = None,
        derivation: Derivation | None = None,
    ) -> None:
        super().__init__(relaxation, derivation)
        if num_nodes < 1:
            raise ConfigurationError(f"RNNSearchSpace: num_nodes={num_nodes} must be >= 1 (8 in the paper).")
        self._primitives = list(primitives)
        check_primitives("RNNSearchSpace", self._primitives)
        if not [name for name in self._primitives if name != "none"]:
            raise ConfigurationError(f"RNNSearchSpace: primitives={self._primitives} has no op besides 'none'; "
                             f"the paper's are {list(RNN_PRIMITIVES)}.")
        from darts_pl.ops import OPS

        convolutional = [name for name in self._primitives if name != "none" and name in OPS]
        if convolutional:  # e.g. a variant overlay written for the convolutional space
            raise ConfigurationError(
                f"RNNSearchSpace: primitives={self._primitives} holds convolutional ops ({', '.join(convolutional)}): "
                "the config or an overlay was written for the convolutional space (configs/variants/ overlays are "
                f"for CNN search configs); the recurrent space takes {', '.join(RNN_PRIMITIVES)}.")
        for name in self._primitives:
            if name != "none":
                get_activation(name)  # fail early, listing the known names
        self.num_nodes = num_nodes
        self.ar = ar
        self.tar = tar
        cell = SearchCell(emb_size, hidden_size, num_nodes, self._primitives, dropout_x, dropout_hidden)
        self.network = RNNModel(num_tokens, cell, emb_size, dropout_output=dropout_output,
                                dropout_input=dropout_input, dropout_embedding=dropout_embedding)
        num_edges = num_nodes * (num_nodes + 1) // 2
        self.add_cells({"recurrent": init_alpha(num_edges, len(self._primitives), alpha_init, alpha_init_scale)},
                       in_degrees=list(range(1, num_nodes + 1)))
        self._committed: dict[str, torch.Tensor] = {}
        self._pending: dict[str, torch.Tensor] = {}

    @property
    def primitives(self) -> list[str]:
        return list(self._primitives)

    # ------------------------------------------------------------------ objective
    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        if not (isinstance(batch, dict) and {"input", "target"} <= set(batch)):
            kind = f"{type(batch).__name__} batches" + (
                f" of {tuple(batch[0].shape)}" if isinstance(batch, (list, tuple)) and batch and
                torch.is_tensor(batch[0]) else "")
            raise ConfigurationError(
                f"RNNSearchSpace: the data module gives {kind}, not token windows {{'input', 'target'}}; the recurrent "
                "space searches on text: use --data darts_pl.data.PTBDataModule (or WikiText2DataModule), or "
                "CNNSearchSpace for images.")
        inputs, target = batch["input"], batch["target"]  # (T, B) each
        if inputs.size(1) < 2:
            setting = "batch_size" if self.training else "eval_batch_size"
            raise ConfigurationError(
                f"RNNSearchSpace: a batch of 1 stream; the search cell normalises every node with the batch "
                f"statistics of the streams, so it needs 2 or more: set --data.{setting} 2 or more.")
        key = stream if self.training else EVAL_PREFIX + stream
        weights = self.edge_weights()["recurrent"].weights
        op_probs = weights[:, self.network.cell.columns]  # (edges, ops run)
        out = self.network(inputs, self._carried(key, inputs), op_probs=op_probs)
        loss = language_model_loss(out, target)
        if regularized:
            loss = loss + activation_regularization(out, self.ar, self.tar)
        self._pending[key] = out.hidden.detach()
        if not self.training:
            self._commit(key)
        return LossOutput(loss, None, target)

    def _carried(self, key: str, inputs: torch.Tensor) -> torch.Tensor | None:
        hidden = self._committed.get(key)
        if hidden is None or hidden.size(0) != inputs.size(1):  # first window, or another batch size
            return None
        return hidden.to(inputs.device)

    def commit(self, stream: Stream) -> None:
        self._commit(stream)

    def _commit(self, key: str) -> None:
        if key in self._pending:
            self._committed[key] = self._pending.pop(key)

    def reset_state(self) -> None:
        """Forget the carried states: all of them in training mode, the evaluation ones in eval mode."""
        for states in (self._committed, self._pending):
            for key in [k for k in states if self.training or k.startswith(EVAL_PREFIX)]:
                del states[key]

    def epoch_metrics(self, split: str, mean_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """The perplexity ``exp(loss)`` (capped at ``exp(50)``)."""
        return {f"{split}/ppl": torch.exp(mean_loss.clamp(max=50))}

    def lr_scale(self, batch: Any) -> float:
        """Learning-rate factor ``seq_len / bptt`` of a variable-length window."""
        return batch["input"].size(0) / batch["bptt"]

    # ------------------------------------------------------------------ architecture
    def edge_labels(self) -> list[str]:
        return [f"{j}->{i}" for i in range(1, self.num_nodes + 1) for j in range(i)]

    def genotype(self) -> RNNGenotype:
        return derive_rnn(self.edge_probs()["recurrent"].tolist(), num_nodes=self.num_nodes,
                          primitives=self._primitives, select=self.derivation.select)
