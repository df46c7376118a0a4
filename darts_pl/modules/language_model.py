"""Training a found recurrent cell as a word-level language model (Liu et al., 2019, Sec. 3.3 and A.1.2).

``LitLanguageModel`` builds :class:`~darts_pl.networks.rnn.RNNModel` around a
:class:`~darts_pl.networks.rnn.DARTSCell` and trains it as the original ``rnn/train.py`` does, which
follows AWD-LSTM (Merity et al., 2018):

* truncated BPTT over variable-length windows, the hidden state carried (detached) from one window
  to the next, the learning rate scaled by ``seq_len / bptt`` for each window;
* cross-entropy plus AR and TAR (0 and 1e-3 in the paper), gradient norm clipped at 0.25;
* plain SGD (lr 20) until the validation loss stops improving — it is worse than the best of the
  epochs before the last ``nonmono`` (5) — then averaged SGD (``torch.optim.ASGD`` with ``t0=0,
  lambd=0``: SGD steps plus a running mean of the iterates); from then on validation and test use the
  averaged weights, and checkpoints hold them in the optimizer state;
* perplexity ``exp(mean loss per token)`` on the validation split (batch 10) and the test split
  (batch 1), the hidden state carried over the whole split.

Manual optimization: the switch replaces the trainer's optimizer, which automatic optimization does
not allow mid-run. A resumed run restores the switch, the validation history and the averages.

Note:
    ``torch.optim.ASGD`` applies the step size of the previous step (its ``eta`` is updated after
    the step), so under ASGD the ``seq_len / bptt`` scaling of one window takes effect on the next
    one, and its running mean starts at the second step after the switch (the first step's weights are
    overwritten), as in the original code and AWD-LSTM, which use the same optimizer.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric

from darts_pl.distributed import configure_cpu_threads
from darts_pl.errors import ConfigurationError
from darts_pl.finite import check_finite
from darts_pl.genotypes import GenotypeError, to_dict
from darts_pl.modules.resumable import ResumableRNG
from darts_pl.modules.search import _scaled_lr
from darts_pl.networks.rnn import (
    DARTSCell,
    RNNModel,
    RNNOutput,
    activation_regularization,
    language_model_loss,
    rnn_genotype,
)

SPLITS = ("train", "val", "test")


class LitLanguageModel(ResumableRNG):
    """Train a derived recurrent cell as a language model.

    Args:
        genotype: The cell: a published name (``RNN_DARTS_V2``, ``RNN_DARTS_V1``), the path of a recurrent
            search's ``genotype.json``, or an inline mapping with ``recurrent`` and ``concat``.
        num_tokens: Vocabulary size (linked from the data module by the CLI).
        emb_size: Embedding width (850 on PTB, 700 on WikiText-2).
        hidden_size: Hidden width; must equal ``emb_size`` (tied decoder).
        dropout_output: Variational dropout on the cell output (0.75).
        dropout_hidden: Variational dropout on h_{t-1} and the nodes' inputs (0.25 on PTB, 0.15 on WikiText-2).
        dropout_x: Variational dropout on x_t (0.75).
        dropout_input: Variational dropout on the embedded words (0.2).
        dropout_embedding: Word-level embedding dropout (0.1).
        ar: Activation regularisation weight α (0).
        tar: Temporal activation regularisation weight β (1e-3).
        lr: SGD and ASGD learning rate (20).
        weight_decay: L2 weight decay (8e-7 on PTB, 5e-7 on WikiText-2).
        grad_clip: Max global gradient norm (0.25); ``None`` disables clipping.
        switch_to_asgd: Switch to averaged SGD when validation stops improving.
        nonmono: The non-monotone trigger: switch when the validation loss is worse than the best one
            before the last ``nonmono`` epochs (5).

    Raises:
        GenotypeError: The genotype is unknown, malformed, or a convolutional cell.
        ConfigurationError: A size, rate or dropout out of range.

    Note:
        The random-number generators are saved with every checkpoint (``ResumableRNG``) and the window
        lengths are drawn from a generator seeded by the epoch, so a run resumed from an epoch-end
        checkpoint continues as the uninterrupted run would.
    """

    def __init__(
        self,
        genotype: str | dict[str, Any] = "RNN_DARTS_V2",
        num_tokens: int = 10000,
        emb_size: int = 850,
        hidden_size: int = 850,
        dropout_output: float = 0.75,
        dropout_hidden: float = 0.25,
        dropout_x: float = 0.75,
        dropout_input: float = 0.2,
        dropout_embedding: float = 0.1,
        ar: float = 0.0,
        tar: float = 1e-3,
        lr: float = 20.0,
        weight_decay: float = 8e-7,
        grad_clip: float | None = 0.25,
        switch_to_asgd: bool = True,
        nonmono: int = 5,
    ) -> None:
        super().__init__()
        _check_args(lr=lr, weight_decay=weight_decay, grad_clip=grad_clip, nonmono=nonmono, ar=ar, tar=tar)
        try:
            cell_genotype = rnn_genotype(genotype)
        except GenotypeError as err:
            raise GenotypeError(f"LitLanguageModel: --model.genotype {genotype!r}: {err}") from None
        self.automatic_optimization = False
        self.save_hyperparameters()
        self.hparams["genotype"] = to_dict(cell_genotype)  # the checkpoint does not depend on the json file
        cell = DARTSCell(cell_genotype, emb_size, hidden_size, dropout_x=dropout_x, dropout_hidden=dropout_hidden)
        self.network = RNNModel(num_tokens, cell, emb_size, dropout_output=dropout_output,
                                dropout_input=dropout_input, dropout_embedding=dropout_embedding)
        self.num_tokens = num_tokens
        self.ar, self.tar = ar, tar
        self.lr, self.weight_decay, self.grad_clip = lr, weight_decay, grad_clip
        self.switch_to_asgd, self.nonmono = switch_to_asgd, nonmono
        self.averaging = False
        self.val_history: list[float] = []
        self.losses = torch.nn.ModuleDict({f"{split}_loss": MeanMetric() for split in SPLITS})
        self._hidden: dict[str, torch.Tensor] = {}
        self._loaded_average: list[torch.Tensor] | None = None
        self._raw_weights: list[torch.Tensor] | None = None

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None) -> RNNOutput:
        """``inputs`` (T, B) word ids, ``hidden`` (B, H) carried state; see :class:`RNNOutput`."""
        return self.network(inputs, hidden)

    # ------------------------------------------------------------------ optimizers
    def make_optimizer(self, averaged: bool) -> torch.optim.Optimizer:
        """SGD, or ASGD with ``t0=0, lambd=0`` (plain SGD steps plus the running mean ``ax`` of the weights)."""
        params = self.network.parameters()
        if averaged:
            return torch.optim.ASGD(params, lr=self.lr, t0=0, lambd=0.0, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay)

    def configure_optimizers(self) -> Any:
        return self.make_optimizer(self.averaging)

    def setup(self, stage: str) -> None:
        configure_cpu_threads(self.trainer)

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        self._hidden.pop("train", None)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        optimizer = self.optimizers()
        out, loss = self._loss("train", batch)
        penalty = activation_regularization(out, self.ar, self.tar)
        check_finite(loss + penalty, "training loss",
                     f"weight step (epoch {self.current_epoch}, batch {batch_idx}); stopped, the last checkpoint "
                     "is left as it was")
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss + penalty)
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        with _scaled_lr(optimizer.optimizer, batch["input"].size(0) / batch["bptt"]):
            optimizer.step()

    def on_train_epoch_end(self) -> None:
        self._log_split("train")
        self.log("lr", float(self.trainer.strategy.optimizers[0].param_groups[0]["lr"]))
        self.log("asgd", float(self.averaging))

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._loss("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._loss("test", batch)

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def on_validation_epoch_end(self) -> None:
        self._restore_raw_weights()
        val_loss = self._log_split("val")
        if val_loss is not None and not self.trainer.sanity_checking and self.trainer.state.fn == "fit":
            self._maybe_switch(val_loss)

    def on_test_epoch_end(self) -> None:
        self._restore_raw_weights()
        self._log_split("test")

    def _start_evaluation(self, split: str) -> None:
        self._hidden.pop(split, None)
        average = self.averaged_weights()
        if average is not None:
            params = list(self.network.parameters())
            self._raw_weights = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p, a in zip(params, average):
                    p.copy_(a)

    def _restore_raw_weights(self) -> None:
        if self._raw_weights is None:
            return
        with torch.no_grad():
            for p, raw in zip(self.network.parameters(), self._raw_weights):
                p.copy_(raw)
        self._raw_weights = None

    # ------------------------------------------------------------------ shared pieces
    def _loss(self, split: str, batch: dict[str, Any]) -> tuple[RNNOutput, torch.Tensor]:
        """Loss of one window; the hidden state of ``split`` is carried in and out (detached)."""
        inputs, target = batch["input"], batch["target"]  # (T, B) each
        hidden = self._hidden.get(split)
        if hidden is not None and hidden.size(0) != inputs.size(1):
            hidden = None
        out = self.network(inputs, hidden)
        loss = language_model_loss(out, target)
        self._hidden[split] = out.hidden.detach()
        self.losses[f"{split}_loss"].update(loss.detach(), target.numel())
        return out, loss

    def _log_split(self, split: str) -> float | None:
        metric = self.losses[f"{split}_loss"]
        if not metric.update_count:
            return None
        value = metric.compute()  # mean loss per token, over all ranks
        metric.reset()
        # Already averaged over ranks; sync_dist only tells Lightning so (the value does not change).
        self.log(f"{split}/loss", value, prog_bar=split != "train", sync_dist=True)
        self.log(f"{split}/ppl", torch.exp(value.clamp(max=50)), prog_bar=True, sync_dist=True)
        return float(value)

    def _maybe_switch(self, val_loss: float) -> None:
        """The non-monotone trigger of AWD-LSTM: switch to ASGD once validation stops improving."""
        if self.averaging or not self.switch_to_asgd:
            return
        history = self.val_history
        if len(history) > self.nonmono and val_loss > min(history[: -self.nonmono]):
            self.averaging = True
            self.trainer.strategy.optimizers = [self.make_optimizer(True)]
            rank_zero_info(f"Epoch {self.current_epoch}: validation loss {val_loss:.4f} is worse than the best before "
                           f"the last {self.nonmono} epochs ({min(history[: -self.nonmono]):.4f}); switching to "
                           "averaged SGD.")
        history.append(val_loss)

    def averaged_weights(self) -> list[torch.Tensor] | None:
        """ASGD's running means of the weights (in ``network.parameters()`` order), if averaging has begun."""
        if not self.averaging:
            return None
        optimizers = self._trainer.strategy.optimizers if self._trainer is not None else []
        if optimizers and isinstance(optimizers[0], torch.optim.ASGD):
            state = optimizers[0].state
            params = list(self.network.parameters())
            if all("ax" in state.get(p, {}) for p in params):
                return [state[p]["ax"] for p in params]
        return self._loaded_average

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["language_model"] = {"averaging": self.averaging, "val_history": list(self.val_history)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        weight = checkpoint.get("state_dict", {}).get("network.encoder.weight")
        if weight is not None and weight.size(0) != self.num_tokens:
            raise ConfigurationError(
                f"LitLanguageModel: the checkpoint's model has a vocabulary of {weight.size(0)} words, the data "
                f"{self.num_tokens} (num_tokens): evaluate it on the corpus it was trained on (--data.data_dir, "
                "--data.vocab_path set to the vocab.json of its run).")
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("language_model", {})
        self.averaging = bool(state.get("averaging", False))
        self.val_history = [float(v) for v in state.get("val_history", [])]
        self._loaded_average = self._average_in(checkpoint) if self.averaging else None

    def _average_in(self, checkpoint: dict[str, Any]) -> list[torch.Tensor] | None:
        """The ASGD averages stored in a checkpoint's optimizer state (for testing a loaded model)."""
        optimizer_states = checkpoint.get("optimizer_states") or []
        if not optimizer_states:
            return None
        state = optimizer_states[0].get("state", {})
        num_params = len(list(self.network.parameters()))
        if not all("ax" in state.get(i, {}) for i in range(num_params)):
            return None
        return [state[i]["ax"] for i in range(num_params)]


def _check_args(*, lr: float, weight_decay: float, grad_clip: float | None, nonmono: int, ar: float,
                tar: float) -> None:
    if lr <= 0:
        raise ConfigurationError(f"LitLanguageModel: lr={lr} must be > 0 (20 in the paper).")
    if weight_decay < 0:
        raise ConfigurationError(f"LitLanguageModel: weight_decay={weight_decay} must be >= 0 (8e-7 in the paper).")
    if grad_clip is not None and grad_clip <= 0:
        raise ConfigurationError(f"LitLanguageModel: grad_clip={grad_clip} must be > 0, or null to disable clipping.")
    if nonmono < 1:
        raise ConfigurationError(f"LitLanguageModel: nonmono={nonmono} must be >= 1 (5 in the paper).")
    if ar < 0 or tar < 0:
        raise ConfigurationError(f"LitLanguageModel: ar={ar} and tar={tar} must be >= 0.")
