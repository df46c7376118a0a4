"""Word-level language-model corpora: Penn Treebank and WikiText-2, as the recurrent half of DARTS reads them.

The on-disk format is Mikolov's (PTB) and Merity's (WikiText-2) token files, one split per file, read as
AWD-LSTM's ``data.py`` does: every line is split on whitespace and closed with ``<eos>``, and the
vocabulary is built over the ``train``, ``valid`` and ``test`` splits in that order, each word taking the
next index the first time it is seen. WikiText-2 can also come from the Hugging Face hub
(``Salesforce/wikitext``, ``wikitext-2-v1``), whose rows are the lines of the same files.

Each split becomes ``batch_size`` parallel token streams (``batchify``: a ``(rows, batch_size)`` tensor,
column ``b`` a contiguous stretch of the text), read in order in truncated-BPTT windows. A batch is a
dict ``{"input": (T, B), "target": (T, B), "bptt": int}``: the target is the input shifted by one token,
``T`` the window's length and ``bptt`` the nominal length, so the model can scale its learning rate by
``T / bptt``. Training windows have the variable length of the original code (``train.py``): the nominal
length is ``bptt`` with probability 0.95, else ``bptt / 2``; the length is then drawn from
``N(nominal, 5)``, truncated to an integer, at least 5 and at most ``bptt + 20``. Evaluation windows
have length ``bptt``. Windows are never shuffled: the hidden state is carried from one to the next.

Multi-GPU: every rank reads its own contiguous shard of each split (the token stream cut into
``world_size`` equal parts, the remainder dropped), batchified into ``batch_size`` streams, so the
hidden state still follows contiguous text and every rank runs the same number of windows (the
variable lengths are drawn from the same seeded generator on every rank). Lightning's distributed
sampler does not apply: the loaders are plain iterables.

Note:
    In search mode the alpha steps read the validation split in fixed windows of ``bptt`` tokens, in
    order, cycled when it runs out; the original ``train_search.py`` reads the window that starts at
    the training window's offset modulo the validation length, which is the same sequence of windows
    up to the few half-length training windows. The original search also draws no ``N(., 5)`` jitter
    (``seq_len_std: 0`` in ``configs/search_ptb.yaml``).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from darts_pl.atomic import atomic_write
from darts_pl.callbacks.rundir import run_dir
from darts_pl.errors import ConfigurationError, DataNotFoundError

EOS = "<eos>"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}

Mode = Literal["search", "train"]
Source = Literal["local", "hub"]
TextBatch = dict[str, Any]
"""``{"input": LongTensor (T, B), "target": LongTensor (T, B), "bptt": int}``."""


# ----------------------------------------------------------------------------------------- vocabulary
class Dictionary:
    """Word <-> index, indices in first-seen order (AWD-LSTM's ``Dictionary``, without the counts)."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        index = self.word2idx.get(word)
        if index is None:
            index = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return index

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: object) -> bool:
        return word in self.word2idx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dictionary) and self.idx2word == other.idx2word

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> str:
        return json.dumps({"eos": EOS, "words": self.idx2word}, ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the vocabulary as JSON (``{"eos": ..., "words": [...]}``), atomically."""
        return atomic_write(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dictionary:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataNotFoundError(f"vocab_path={str(path)!r} does not exist; give the vocab.json written in the "
                                    "run directory of the model, or leave vocab_path unset to build the vocabulary."
                                    ) from None
        except json.JSONDecodeError as err:
            raise ConfigurationError(f"vocab_path={str(path)!r} is not valid JSON ({err}).") from None
        except UnicodeDecodeError as err:
            raise ConfigurationError(f"vocab_path={str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start}); "
                                     "give the vocab.json written in the run directory of the model.") from None
        except OSError as err:
            raise ConfigurationError(f"vocab_path={str(path)!r} cannot be read ({err.strerror}); give the vocab.json "
                                     "written in the run directory of the model.") from None
        words = data.get("words") if isinstance(data, dict) else None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ConfigurationError(f"vocab_path={str(path)!r} has no 'words' list; expected the vocab.json of a run.")
        if len(set(words)) != len(words):
            raise ConfigurationError(f"vocab_path={str(path)!r} lists a word twice; the file is corrupt.")
        return cls(words)


def first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    """Where two vocabularies first differ, for error messages."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"index {i}: {x!r} vs {y!r}"
    return f"sizes {len(a)} vs {len(b)}"


# ----------------------------------------------------------------------------------------- corpus
def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a token file (UTF-8, universal newlines, as AWD-LSTM opens it); a file that cannot be
    read as UTF-8 text is a :class:`DataNotFoundError` naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataNotFoundError(f"cannot read the token file {str(path)!r} as UTF-8 text ({type(err).__name__}: "
                                f"{err}); replace it with the corpus' token file.") from None


def tokenize(lines: Iterable[str], dictionary: Dictionary, *, grow: bool, where: str) -> torch.Tensor:
    """Token ids of ``lines`` (each line's words then ``<eos>``); new words extend ``dictionary`` if ``grow``."""
    ids: list[int] = []
    for number, line in enumerate(lines, 1):
        for word in [*line.split(), EOS]:
            index = dictionary.add(word) if grow else dictionary.word2idx.get(word)
            if index is None:
                raise ConfigurationError(
                    f"The {where}, line {number}, has the word {word!r}, which the vocabulary (--data.vocab_path) "
                    "does not have: the text differs from the corpus the vocabulary was built on. Use that corpus, "
                    "or leave vocab_path unset to build a new vocabulary (a trained model then no longer matches).")
            ids.append(index)
    return torch.tensor(ids, dtype=torch.long)


class Corpus:
    """The three splits of a corpus as 1-D token-id tensors, and their shared ``dictionary``.

    Args:
        lines: Lines of each split, ``{"train": [...], "valid": [...], "test": [...]}``.
        dictionary: A fixed vocabulary (a run's ``vocab.json``); built from the splits when omitted.
        sources: Where each split came from, for error messages.
    """

    def __init__(self, lines: Mapping[str, Sequence[str]], dictionary: Dictionary | None = None,
                 sources: Mapping[str, str] | None = None) -> None:
        grow = dictionary is None
        self.dictionary = dictionary if dictionary is not None else Dictionary()
        self.sources = dict(sources or {split: f"{split} split" for split in SPLITS})
        self.splits: dict[str, torch.Tensor] = {}
        for split in SPLITS:
            if split not in lines:
                raise DataNotFoundError(f"Corpus: no {split!r} split; a corpus needs {', '.join(SPLITS)}.")
            where = self.sources[split]
            tokens = tokenize(lines[split], self.dictionary, grow=grow, where=where)
            if len(tokens) == len(lines[split]):  # nothing but <eos>
                raise DataNotFoundError(f"The {where} is empty (no words in {len(lines[split])} lines); every split "
                                        "needs text. Check the file, or point --data.data_dir at the full corpus.")
            self.splits[split] = tokens

    @property
    def train(self) -> torch.Tensor:
        return self.splits["train"]

    @property
    def valid(self) -> torch.Tensor:
        return self.splits["valid"]

    @property
    def test(self) -> torch.Tensor:
        return self.splits["test"]


# ----------------------------------------------------------------------------------------- streams
def shard(tokens: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous part of ``tokens``: equal parts for every rank, the remainder dropped."""
    size = len(tokens) // world_size
    return tokens[rank * size:(rank + 1) * size]


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` parallel streams: ``(rows, batch_size)``, column ``b`` = tokens[b·rows:(b+1)·rows]."""
    rows = len(tokens) // batch_size
    return tokens[: rows * batch_size].view(batch_size, rows).t().contiguous()  # (rows, B)


def fixed_windows(num_rows: int, bptt: int) -> list[tuple[int, int]]:
    """``(start, length)`` of consecutive windows of ``bptt`` rows (the last one shorter) over a stream."""
    return [(i, min(bptt, num_rows - 1 - i)) for i in range(0, num_rows - 1, bptt)]


def variable_windows(num_rows: int, bptt: int, rng: random.Random, *, half_prob: float = 0.05,
                     std: float = 5.0, min_len: int = 5, max_delta: int = 20) -> list[tuple[int, int]]:
    """Consecutive windows of the original training loop's random length (see the module docstring)."""
    windows = []
    i = 0
    while i < num_rows - 2:
        nominal = bptt if rng.random() >= half_prob else bptt / 2
        length = max(min_len, int(rng.gauss(nominal, std))) if std > 0 else max(min_len, int(nominal))
        length = min(length, bptt + max_delta)
        windows.append((i, min(length, num_rows - 1 - i)))
        i += length
    return windows


class _Windows:
    """Batches ``{"input", "target", "bptt"}`` of a ``(rows, B)`` stream, in order."""

    def __init__(self, stream: torch.Tensor, bptt: int) -> None:
        self.stream = stream
        self.bptt = bptt

    def windows(self) -> list[tuple[int, int]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[TextBatch]:
        for start, length in self.windows():
            yield {"input": self.stream[start:start + length],  # (T, B)
                   "target": self.stream[start + 1:start + 1 + length],  # (T, B), one token ahead
                   "bptt": self.bptt}


class FixedWindows(_Windows):
    """Evaluation windows of ``bptt`` tokens."""

    def windows(self) -> list[tuple[int, int]]:
        return fixed_windows(len(self.stream), self.bptt)

    def __len__(self) -> int:
        return len(self.windows())


class VariableWindows(_Windows):
    """Training windows of variable length, drawn anew each epoch from a generator seeded by (seed, epoch).

    ``epoch_source`` gives the epoch (the trainer's, so a resumed run and every rank draw the same
    lengths); without one, each pass over the windows counts as an epoch. The number of windows varies
    from epoch to epoch, so there is no ``len``.
    """

    def __init__(self, stream: torch.Tensor, bptt: int, *, seed: int = 0, half_prob: float = 0.05,
                 std: float = 5.0, min_len: int = 5, max_delta: int = 20,
                 epoch_source: Callable[[], int | None] | None = None) -> None:
        super().__init__(stream, bptt)
        self.seed = seed
        self.options = {"half_prob": half_prob, "std": std, "min_len": min_len, "max_delta": max_delta}
        self.epoch_source = epoch_source
        self._passes = 0

    def windows(self) -> list[tuple[int, int]]:
        epoch = self.epoch_source() if self.epoch_source is not None else None
        epoch = self._passes if epoch is None else epoch
        self._passes += 1
        rng = random.Random(f"{self.seed}:{epoch}")
        return variable_windows(len(self.stream), self.bptt, rng, **self.options)


# ----------------------------------------------------------------------------------------- loading
@functools.lru_cache(maxsize=4)
def _local_corpus(paths: tuple[str, ...], stamps: tuple[tuple[int, int], ...], vocab_path: str | None) -> Corpus:
    del stamps  # part of the cache key only: a changed file is read again
    lines = {split: read_lines(path) for split, path in zip(SPLITS, paths)}
    dictionary = Dictionary.load(vocab_path) if vocab_path else None
    return Corpus(lines, dictionary, sources={s: f"{s} split ({p})" for s, p in zip(SPLITS, paths)})


@functools.lru_cache(maxsize=2)
def _hub_corpus(dataset: str, config: str | None, kwargs_json: str, vocab_path: str | None, local_files: str) -> Corpus:
    try:
        import datasets
    except ImportError:
        raise ConfigurationError("--data.source hub needs the `datasets` package: pip install 'darts_pl[text]' (or "
                                 f"datasets), or use --data.source local with --data.data_dir holding {local_files}."
                                 ) from None
    kwargs = json.loads(kwargs_json)
    # The hub client logs a warning per failed request; the one error line below says it all.
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        loaded = datasets.load_dataset(dataset, config, **kwargs)
    except Exception as err:  # any loader failure is a data problem: offline, unknown name, missing files...
        reason = (str(err).strip().splitlines() or [""])[0][:300]
        raise DataNotFoundError(
            f"--data.source hub: datasets.load_dataset({dataset!r}, {config!r}"
            f"{''.join(f', {k}={v!r}' for k, v in kwargs.items())}) failed ({type(err).__name__}: {reason}). "
            "Run once with network access to fill the Hugging Face cache (or set --data.hub_kwargs "
            f"'{{cache_dir: DIR}}' to a filled cache), or use --data.source local with --data.data_dir holding "
            f"{local_files}.") from None
    finally:
        hub_log.setLevel(level)
    lines = {}
    for split, hub_split in HUB_SPLITS.items():
        if hub_split not in loaded:
            raise DataNotFoundError(f"--data.source hub: dataset {dataset!r} ({config}) has no {hub_split!r} split "
                                    f"(it has {', '.join(loaded)}); use a dataset with train/validation/test splits.")
        if "text" not in loaded[hub_split].column_names:
            raise DataNotFoundError(f"--data.source hub: the {hub_split!r} split of {dataset!r} ({config}) has no "
                                    f"'text' column (it has {loaded[hub_split].column_names}); use a dataset whose "
                                    "rows are the lines of the token files.")
        lines[split] = loaded[hub_split]["text"]
    dictionary = Dictionary.load(vocab_path) if vocab_path else None
    return Corpus(lines, dictionary, sources={s: f"{s} split of {dataset} ({config})" for s in SPLITS})


# ----------------------------------------------------------------------------------------- data modules
class TextDataModule(L.LightningDataModule):
    """Base of the word-level language-model data modules (see the module docstring).

    ``mode="search"``: ``train_dataloader`` returns ``{"train": training windows, "val": validation
    windows}`` at ``batch_size`` (weight steps on the training split, alpha steps on the validation
    split, as the paper does), ``val_dataloader`` the validation split at ``eval_batch_size``.
    ``mode="train"``: training windows; validation at ``eval_batch_size``; test at ``test_batch_size``.

    The vocabulary is written as ``vocab.json`` in the run directory at setup and kept in checkpoints;
    restoring a checkpoint whose vocabulary differs from the data's is an error.

    Args:
        data_dir: Directory of the token files (``source="local"``).
        mode: ``"search"`` or ``"train"``.
        batch_size: Streams per training batch (per device under DDP): 256 in the search, 64 in training.
        eval_batch_size: Streams of the validation loader (10 in the paper).
        test_batch_size: Streams of the test loader (1 in the paper).
        bptt: Nominal window length (35).
        half_bptt_prob: Probability that a training window's nominal length is ``bptt / 2`` (0.05).
        seq_len_std: Standard deviation of the training window length around its nominal length (5 in
            the original training code; 0 in its search code).
        min_seq_len: Shortest training window (5).
        max_seq_len_delta: Longest training window is ``bptt + max_seq_len_delta`` (20).
        vocab_path: A ``vocab.json`` written by an earlier run: use that vocabulary (same indices) instead
            of building one; a word outside it is an error.
        seed: Seed of the window lengths.
    """

    file_patterns: tuple[str, ...] = ("{split}.txt",)
    corpus_name = "corpus"

    def __init__(self, data_dir: str = "data", mode: Mode = "search", batch_size: int = 256,
                 eval_batch_size: int = 10, test_batch_size: int = 1, bptt: int = 35,
                 half_bptt_prob: float = 0.05, seq_len_std: float = 5.0, min_seq_len: int = 5,
                 max_seq_len_delta: int = 20, vocab_path: str | None = None, seed: int = 0) -> None:
        super().__init__()
        self._check_args(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         test_batch_size=test_batch_size, bptt=bptt, half_bptt_prob=half_bptt_prob,
                         seq_len_std=seq_len_std, min_seq_len=min_seq_len, max_seq_len_delta=max_seq_len_delta)
        self.data_dir = data_dir
        self.mode = mode
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.test_batch_size = test_batch_size
        self.bptt = bptt
        self.half_bptt_prob = half_bptt_prob
        self.seq_len_std = seq_len_std
        self.min_seq_len = min_seq_len
        self.max_seq_len_delta = max_seq_len_delta
        self.vocab_path = vocab_path
        self.seed = seed
        self.source: Source = "local"
        self._corpus: Corpus | None = None
        self._streams: dict[tuple[str, int, int, int], torch.Tensor] = {}

    def _check_args(self, **args: Any) -> None:
        name = type(self).__name__
        if args["mode"] not in ("search", "train"):
            raise ConfigurationError(f"{name}: unknown mode={args['mode']!r}; use 'search' or 'train'.")
        for key in ("batch_size", "eval_batch_size", "test_batch_size", "bptt", "min_seq_len"):
            if args[key] < 1:
                raise ConfigurationError(f"{name}: {key}={args[key]} must be >= 1.")
        if not 0.0 <= args["half_bptt_prob"] <= 1.0:
            raise ConfigurationError(f"{name}: half_bptt_prob={args['half_bptt_prob']} must be in [0, 1] "
                                     "(0.05 in the paper).")
        if args["seq_len_std"] < 0 or args["max_seq_len_delta"] < 0:
            raise ConfigurationError(f"{name}: seq_len_std and max_seq_len_delta must be >= 0 "
                             f"(got {args['seq_len_std']}, {args['max_seq_len_delta']}).")

    # ------------------------------------------------------------------ the corpus
    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            self._corpus = self.load_corpus()
        return self._corpus

    @property
    def num_tokens(self) -> int:
        """Vocabulary size (the CLI copies it into the model's ``num_tokens``)."""
        return len(self.corpus.dictionary)

    @property
    def dictionary(self) -> Dictionary:
        return self.corpus.dictionary

    def split_paths(self) -> tuple[str, ...]:
        """The token file of each split in ``data_dir``."""
        root = Path(self.data_dir).expanduser()
        name = type(self).__name__
        if not root.is_dir():
            raise DataNotFoundError(f"{name}: data_dir={self.data_dir!r} is not a directory; point --data.data_dir "
                                    f"at the {self.corpus_name} token files ({self._expected()}){self._hub_hint()}.")
        paths = []
        for split in SPLITS:
            candidates = [root / pattern.format(split=split) for pattern in self.file_patterns]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                names = " or ".join(p.name for p in candidates)
                raise DataNotFoundError(f"{name}: no {split} split in data_dir={self.data_dir!r}: expected {names}. "
                                        f"Point --data.data_dir at a directory holding {self._expected()}"
                                        f"{self._hub_hint()}.")
            paths.append(str(found))
        return tuple(paths)

    def _expected(self) -> str:
        return ", ".join(self.file_patterns[0].format(split=s) for s in SPLITS)

    def _hub_hint(self) -> str:
        return ""

    def load_corpus(self) -> Corpus:
        paths = self.split_paths()
        stamps = tuple((os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths)
        return _local_corpus(paths, stamps, self.vocab_path)

    # ------------------------------------------------------------------ streams
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def stream(self, split: str, setting: str) -> torch.Tensor:
        """This rank's ``(rows, B)`` streams of ``split``, ``B`` the value of ``setting`` (``"batch_size"``...)."""
        batch_size = getattr(self, setting)
        rank, world = self._rank_and_world()
        key = (split, batch_size, rank, world)
        if key not in self._streams:
            tokens = shard(self.corpus.splits[split], rank, world)
            data = batchify(tokens, batch_size)
            if len(data) < 2:
                per_rank = f", {len(tokens)} on each of {world} ranks" if world > 1 else ""
                raise ConfigurationError(
                    f"{type(self).__name__}: the {split} split ({len(self.corpus.splits[split])} tokens{per_rank}) "
                    f"is too short for {setting}={batch_size}: each stream needs at least 2 tokens. "
                    f"Lower --data.{setting}.")
            self._streams[key] = data
        return self._streams[key]

    def _epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def training_windows(self) -> VariableWindows:
        return VariableWindows(self.stream("train", "batch_size"), self.bptt, seed=self.seed,
                               half_prob=self.half_bptt_prob, std=self.seq_len_std, min_len=self.min_seq_len,
                               max_delta=self.max_seq_len_delta, epoch_source=self._epoch)

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        self.corpus  # noqa: B018  (reads, or downloads for source="hub", once per node)

    def setup(self, stage: str | None = None) -> None:
        corpus = self.corpus
        # Build every stream now, so a split too short for its batch size fails before training starts.
        needed = [("train", "batch_size"), ("valid", "eval_batch_size"), ("test", "test_batch_size")]
        for split, setting in needed + ([("valid", "batch_size")] if self.mode == "search" else []):
            self.stream(split, setting)
        trainer = self.trainer
        if trainer is not None:
            directory = run_dir(trainer)  # on every rank: the logger's directory is broadcast from rank 0
            if trainer.is_global_zero:
                path = corpus.dictionary.save(directory / "vocab.json")
                rank_zero_info(f"Vocabulary ({len(corpus.dictionary)} words) written to {path}")

    def train_dataloader(self) -> VariableWindows | dict[str, VariableWindows | FixedWindows]:
        if self.mode == "search":
            return {"train": self.training_windows(),
                    "val": FixedWindows(self.stream("valid", "batch_size"), self.bptt)}
        return self.training_windows()

    def val_dataloader(self) -> FixedWindows:
        return FixedWindows(self.stream("valid", "eval_batch_size"), self.bptt)

    def test_dataloader(self) -> FixedWindows:
        return FixedWindows(self.stream("test", "test_batch_size"), self.bptt)

    def state_dict(self) -> dict[str, Any]:
        if self._corpus is None:
            return {}
        return {"vocabulary": list(self._corpus.dictionary.idx2word)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("vocabulary")
        if saved is None:
            return
        current = self.dictionary.idx2word
        if list(saved) != current:
            raise ConfigurationError(
                f"{type(self).__name__}: the checkpoint's vocabulary ({len(saved)} words) differs from the data's "
                f"({len(current)} words; first difference at {first_difference(saved, current)}). Point "
                "--data.data_dir at the corpus the model was trained on, or set --data.vocab_path to the "
                "vocab.json of its run.")


class PTBDataModule(TextDataModule):
    """Penn Treebank (Mikolov's preprocessed splits: 10k vocabulary, ``<unk>``, one sentence a line).

    ``data_dir`` holds ``ptb.{train,valid,test}.txt`` or ``{train,valid,test}.txt``.

    Args:
        See :class:`TextDataModule`.
    """

    file_patterns = ("ptb.{split}.txt", "{split}.txt")
    corpus_name = "Penn Treebank"

    def __init__(self, data_dir: str = "data/penn", mode: Mode = "search", batch_size: int = 256,
                 eval_batch_size: int = 10, test_batch_size: int = 1, bptt: int = 35,
                 half_bptt_prob: float = 0.05, seq_len_std: float = 5.0, min_seq_len: int = 5,
                 max_seq_len_delta: int = 20, vocab_path: str | None = None, seed: int = 0) -> None:
        super().__init__(data_dir=data_dir, mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         test_batch_size=test_batch_size, bptt=bptt, half_bptt_prob=half_bptt_prob,
                         seq_len_std=seq_len_std, min_seq_len=min_seq_len, max_seq_len_delta=max_seq_len_delta,
                         vocab_path=vocab_path, seed=seed)


class WikiText2DataModule(TextDataModule):
    """WikiText-2 (the tokenized ``<unk>`` version that AWD-LSTM and DARTS use), from files or the hub.

    ``source="local"``: ``data_dir`` holds ``wiki.{train,valid,test}.tokens`` or ``{train,valid,test}.txt``.
    ``source="hub"``: ``datasets.load_dataset(hub_dataset, hub_config, **hub_kwargs)``; its
    ``train``/``validation``/``test`` rows are the lines of the same files (downloaded once into the
    Hugging Face cache; ``hub_kwargs`` passes ``cache_dir``, ``revision``, ``data_files``...).

    Args:
        source: ``"local"`` or ``"hub"``.
        hub_dataset: Hub dataset (``Salesforce/wikitext``), or a ``datasets`` loader such as ``"text"``.
        hub_config: Its configuration (``wikitext-2-v1``; ``null`` for none).
        hub_kwargs: Further arguments of ``datasets.load_dataset``.
        data_dir, mode, batch_size, eval_batch_size, test_batch_size, bptt, half_bptt_prob, seq_len_std,
            min_seq_len, max_seq_len_delta, vocab_path, seed: See :class:`TextDataModule`.
    """

    file_patterns = ("wiki.{split}.tokens", "{split}.txt")
    corpus_name = "WikiText-2"

    def __init__(self, data_dir: str = "data/wikitext-2", mode: Mode = "train", batch_size: int = 64,
                 eval_batch_size: int = 10, test_batch_size: int = 1, bptt: int = 35,
                 half_bptt_prob: float = 0.05, seq_len_std: float = 5.0, min_seq_len: int = 5,
                 max_seq_len_delta: int = 20, vocab_path: str | None = None, seed: int = 0,
                 source: Source = "local", hub_dataset: str = "Salesforce/wikitext",
                 hub_config: str | None = "wikitext-2-v1", hub_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(data_dir=data_dir, mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         test_batch_size=test_batch_size, bptt=bptt, half_bptt_prob=half_bptt_prob,
                         seq_len_std=seq_len_std, min_seq_len=min_seq_len, max_seq_len_delta=max_seq_len_delta,
                         vocab_path=vocab_path, seed=seed)
        if source not in ("local", "hub"):
            raise ConfigurationError(f"WikiText2DataModule: unknown source={source!r}; use 'local' (data_dir) "
                                     "or 'hub'.")
        self.source = source
        self.hub_dataset = hub_dataset
        self.hub_config = hub_config
        self.hub_kwargs = dict(hub_kwargs or {})

    def _hub_hint(self) -> str:
        return ", or use --data.source hub to load WikiText-2 through `datasets`"

    def load_corpus(self) -> Corpus:
        if self.source == "local":
            return super().load_corpus()
        kwargs_json = json.dumps(self.hub_kwargs, sort_keys=True, default=str)
        return _hub_corpus(self.hub_dataset, self.hub_config, kwargs_json, self.vocab_path, self._expected())

