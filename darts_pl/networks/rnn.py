"""The DARTS recurrent network: one highway cell between a word embedding and a tied decoder.

Follows the original ``rnn/model.py`` (Liu et al., 2019, Sec. 2.1 and A.1.2), which builds on
AWD-LSTM (Merity et al., 2018) for the regularisation:

* the cell's first node is a highway over the input x_t and the previous hidden state h_{t-1}:
  ``c, h = split([x_t, h_{t-1}] W0)``, ``s0 = h_{t-1} + sigmoid(c) * (tanh(h) - h_{t-1})``;
* every further node ``i`` is a gated highway over one earlier node ``s_j``:
  ``c, h = split(s_j W_i)``, ``s_i = s_j + sigmoid(c) * (f_i(h) - s_j)``, ``f_i`` the op of the genotype;
* h_t is the mean of the nodes listed in ``concat`` (all eight);
* dropouts: word-level embedding dropout, variational ("locked") dropout on the embedding and on the
  cell output (one mask per sequence, shared over time steps), and variational masks on x_t and on
  every node's input inside the cell;
* decoder weights tied to the embedding, plus a decoder bias;
* the training loss adds temporal activation regularisation (TAR, β·mean((h_t - h_{t-1})²) on the cell
  outputs) and activation regularisation (AR, α·mean(dropped output²); 0 in the paper).

Every weight starts uniform in [-0.04, 0.04], the decoder bias at zero.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import RNNGenotype, expect_kind, validate

INIT_RANGE = 0.04

RNNGenotypeSpec = RNNGenotype | str | os.PathLike[str] | Mapping[str, Any]


def rnn_genotype(spec: RNNGenotypeSpec) -> RNNGenotype:
    """A validated recurrent genotype from a published name, a ``genotype.json`` path, a mapping or a genotype."""
    genotype = expect_kind(spec, "rnn", "a recurrent genotype (RNN_DARTS_V1, RNN_DARTS_V2 or the genotype.json of a "
                           "recurrent search)")
    return cast(RNNGenotype, genotype)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": _identity,
}
"""The recurrent cell's candidate ops by name (``none`` is never evaluated)."""


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigurationError(f"Unknown recurrent op {name!r}; known: {', '.join(ACTIVATIONS)}.") from None


# ----------------------------------------------------------------------------------------- dropouts
def _check_dropout(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ConfigurationError(f"{name}={p} must be in [0, 1).")


def dropout_mask(like: torch.Tensor, shape: Sequence[int], p: float) -> torch.Tensor:
    """Bernoulli(1 - p) / (1 - p) of ``shape``, on ``like``'s device and dtype."""
    return like.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout over time: one mask per sequence for every step of ``x`` (T, B, D)."""
    if not training or p == 0.0:
        return x
    return x * dropout_mask(x, (1, x.size(1), x.size(2)), p)  # (1, B, D) broadcast over T


def embedding_dropout(weight: torch.Tensor, words: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop whole words: rows of the embedding matrix are zeroed (and the rest rescaled) for this batch."""
    if training and p > 0.0:
        weight = weight * dropout_mask(weight, (weight.size(0), 1), p)  # (V, 1) broadcast over E
    return F.embedding(words, weight)


# ----------------------------------------------------------------------------------------- cells
class HighwayCell(nn.Module):
    """What the derived and the search cell share: W0, one W_i per node, the variational masks, and the
    loop over time steps. Subclasses define :meth:`step` (one time step, from s0 to h_t)."""

    def __init__(self, emb_size: int, hidden_size: int, num_nodes: int, dropout_x: float,
                 dropout_hidden: float) -> None:
        super().__init__()
        _check_dropout("dropout_x", dropout_x)
        _check_dropout("dropout_hidden", dropout_hidden)
        self.emb_size = emb_size
        self.hidden_size = hidden_size
        self.dropout_x = dropout_x
        self.dropout_hidden = dropout_hidden
        self.first_weight = nn.Parameter(torch.empty(emb_size + hidden_size, 2 * hidden_size))  # W0
        self.node_weights = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in range(num_nodes))  # W_1..W_n
        for weight in self.parameters():
            nn.init.uniform_(weight, -INIT_RANGE, INIT_RANGE)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, **step_kwargs: Any) -> torch.Tensor:
        """Cell outputs h_1..h_T (T, B, H) of ``inputs`` (T, B, E) from ``hidden`` h_0 (B, H)."""
        batch = inputs.size(1)
        x_mask = h_mask = None
        if self.training and self.dropout_x > 0:
            x_mask = dropout_mask(inputs, (batch, self.emb_size), self.dropout_x)  # (B, E), same for all t
        if self.training and self.dropout_hidden > 0:
            h_mask = dropout_mask(inputs, (batch, self.hidden_size), self.dropout_hidden)  # (B, H)
        # [x_t, h_{t-1}] W0 = x_t W0[:E] + h_{t-1} W0[E:]: the input half for every step in one matmul.
        x = inputs * x_mask if x_mask is not None else inputs
        x_proj = x @ self.first_weight[: self.emb_size]  # (T, B, 2H)
        h_weight = self.first_weight[self.emb_size:]  # (H, 2H)
        outputs = []
        for t in range(inputs.size(0)):
            h_prev = hidden * h_mask if h_mask is not None else hidden
            c0, h0 = (x_proj[t] + h_prev @ h_weight).chunk(2, dim=-1)  # (B, H) each
            s0 = hidden + torch.sigmoid(c0) * (torch.tanh(h0) - hidden)
            hidden = self.step(s0, h_mask, **step_kwargs)
            outputs.append(hidden)
        return torch.stack(outputs)  # (T, B, H)

    def step(self, s0: torch.Tensor, h_mask: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError


class DARTSCell(HighwayCell):
    """A derived recurrent cell: node ``i`` applies the genotype's op to its one chosen predecessor.

    Args:
        genotype: One ``(op, input)`` per node; input 0 is s0, input ``i`` node ``i``.
        emb_size, hidden_size: Input and hidden widths.
        dropout_x: Variational dropout on x_t.
        dropout_hidden: Variational dropout on h_{t-1} and on every node's input.
    """

    def __init__(self, genotype: RNNGenotype, emb_size: int, hidden_size: int, dropout_x: float = 0.75,
                 dropout_hidden: float = 0.25) -> None:
        validate(genotype)
        super().__init__(emb_size, hidden_size, len(genotype.recurrent), dropout_x, dropout_hidden)
        self.genotype = genotype
        self.activations = [get_activation(name) for name, _ in genotype.recurrent]

    def step(self, s0: torch.Tensor, h_mask: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        states = [s0]
        for (_, pred), weight, fn in zip(self.genotype.recurrent, self.node_weights, self.activations):
            s_prev = states[pred]
            c, h = ((s_prev * h_mask if h_mask is not None else s_prev) @ weight).chunk(2, dim=-1)  # (B, H) each
            states.append(s_prev + torch.sigmoid(c) * (fn(h) - s_prev))
        return torch.stack([states[i] for i in self.genotype.concat]).mean(0)  # (B, H)


# ----------------------------------------------------------------------------------------- the model
class RNNOutput(NamedTuple):
    """Decoder logits (T, B, V), the last hidden state (B, H), the cell outputs before (``raw``) and after
    (``dropped``) the output dropout, both (T, B, H)."""

    logits: torch.Tensor
    hidden: torch.Tensor
    raw: torch.Tensor
    dropped: torch.Tensor


class RNNModel(nn.Module):
    """Embedding, a recurrent cell, tied decoder (the original ``RNNModel``).

    Args:
        num_tokens: Vocabulary size.
        cell: The recurrent cell (``DARTSCell`` or a search cell); its widths must equal ``emb_size``.
        emb_size: Embedding width (= hidden width: the decoder is tied to the embedding).
        dropout_output: Variational dropout on the cell output before the decoder.
        dropout_input: Variational dropout on the embedded words.
        dropout_embedding: Word-level dropout of the embedding matrix.
    """

    def __init__(self, num_tokens: int, cell: HighwayCell, emb_size: int, dropout_output: float = 0.75,
                 dropout_input: float = 0.2, dropout_embedding: float = 0.1) -> None:
        super().__init__()
        if num_tokens < 2:
            raise ConfigurationError(f"num_tokens={num_tokens} must be >= 2 (the vocabulary size, linked from "
                                     "the data).")
        if not cell.emb_size == cell.hidden_size == emb_size:
            raise ConfigurationError(f"emb_size={emb_size} and hidden_size={cell.hidden_size} must be equal: the "
                                     "decoder reads the hidden state through the embedding matrix (weight tying).")
        for name, p in (("dropout_output", dropout_output), ("dropout_input", dropout_input),
                        ("dropout_embedding", dropout_embedding)):
            _check_dropout(name, p)
        self.num_tokens = num_tokens
        self.dropout_output = dropout_output
        self.dropout_input = dropout_input
        self.dropout_embedding = dropout_embedding
        self.encoder = nn.Embedding(num_tokens, emb_size)
        self.cell = cell
        self.decoder = nn.Linear(emb_size, num_tokens)
        self.decoder.weight = self.encoder.weight  # weight tying
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def init_hidden(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch_size, self.hidden_size, dtype=self.encoder.weight.dtype)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None, **cell_kwargs: Any) -> RNNOutput:
        """``inputs`` (T, B) word ids; ``hidden`` (B, H) the state carried from the previous window."""
        emb = embedding_dropout(self.encoder.weight, inputs, self.dropout_embedding, self.training)  # (T, B, E)
        emb = locked_dropout(emb, self.dropout_input, self.training)
        if hidden is None:
            hidden = self.init_hidden(inputs.size(1), emb)
        raw = self.cell(emb, hidden.to(emb.dtype), **cell_kwargs)  # (T, B, H)
        dropped = locked_dropout(raw, self.dropout_output, self.training)
        return RNNOutput(self.decoder(dropped), raw[-1], raw, dropped)  # logits (T, B, V)


def language_model_loss(out: RNNOutput, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per token of the next-word predictions."""
    return F.cross_entropy(out.logits.reshape(-1, out.logits.size(-1)), target.reshape(-1))


def activation_regularization(out: RNNOutput, ar: float, tar: float) -> torch.Tensor | float:
    """AR α·mean(dropped²) + TAR β·mean((h_t - h_{t-1})²) (Merity et al., 2018, Sec. 4.6)."""
    penalty: torch.Tensor | float = 0.0
    if ar:
        penalty = penalty + ar * out.dropped.pow(2).mean()
    if tar and out.raw.size(0) > 1:
        penalty = penalty + tar * (out.raw[1:] - out.raw[:-1]).pow(2).mean()
    return penalty

