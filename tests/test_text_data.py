"""Text data: the real PTB / WikiText-2 files, <eos> handling, vocabulary order, hub loader parity, BPTT
windows, DDP shards and the errors a user meets."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from darts_pl.data.text import (
    EOS,
    Corpus,
    Dictionary,
    FixedWindows,
    PTBDataModule,
    VariableWindows,
    WikiText2DataModule,
    batchify,
    fixed_windows,
    read_lines,
    shard,
    tokenize,
    variable_windows,
)
from darts_pl.errors import ConfigurationError, DataNotFoundError

from .conftest import TINY_WORDS, write_tiny_corpus

REAL_FILES = {  # the counts the shared data README gives: lines, tokens with <eos>
    "ptb/ptb.valid.txt": (3370, 73760),
    "ptb/ptb.test.txt": (3761, 82430),
    "wikitext-2/wiki.valid.tokens": (3760, 217646),
    "wikitext-2/wiki.test.tokens": (4358, 245569),
}
MINI_NAMES = {"ptb": ("ptb/ptb.valid.txt", "ptb/ptb.test.txt", "ptb.{split}.txt"),
              "wikitext-2": ("wikitext-2/wiki.valid.tokens", "wikitext-2/wiki.test.tokens", "wiki.{split}.tokens")}


def write_mini_corpus(shared_data: Path, dst: Path, corpus: str = "ptb", pattern: str | None = None) -> Path:
    """The README's mini corpus: the real validation file as training split, the test file cut in two
    for validation and test."""
    train_src, test_src, default = MINI_NAMES[corpus]
    pattern = pattern or default
    dst.mkdir(parents=True, exist_ok=True)
    (dst / pattern.format(split="train")).write_text((shared_data / train_src).read_text(encoding="utf-8"),
                                                     encoding="utf-8")
    lines = (shared_data / test_src).read_text(encoding="utf-8").splitlines(keepends=True)
    half = len(lines) // 2
    (dst / pattern.format(split="valid")).write_text("".join(lines[:half]), encoding="utf-8")
    (dst / pattern.format(split="test")).write_text("".join(lines[half:]), encoding="utf-8")
    return dst


@pytest.fixture
def mini_ptb(shared_data: Path, tmp_path: Path) -> Path:
    return write_mini_corpus(shared_data, tmp_path / "ptb")


def write_splits(root: Path, texts: dict[str, str], pattern: str = "ptb.{split}.txt") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (root / pattern.format(split=split)).write_text(text, encoding="utf-8")
    return root


# ----------------------------------------------------------------------------------------- the real files
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_files_have_the_published_line_and_token_counts(shared_data: Path, name: str) -> None:
    lines = read_lines(shared_data / name)
    tokens = tokenize(lines, dictionary := Dictionary(), grow=True, where=name)
    assert (len(lines), len(tokens)) == REAL_FILES[name]
    eos = dictionary.word2idx[EOS]
    assert int((tokens == eos).sum()) == len(lines)  # one <eos> per line, empty lines included
    assert int(tokens[-1]) == eos


def test_ptb_mini_corpus_vocabulary(mini_ptb: Path) -> None:
    corpus = PTBDataModule(str(mini_ptb)).corpus
    words = set()
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        words.update(w for line in read_lines(mini_ptb / name) for w in line.split())
    assert len(corpus.dictionary) == len(words | {EOS}) <= 10000  # PTB has a 10k vocabulary, <unk> included
    assert "<unk>" in corpus.dictionary
    assert [len(corpus.train), len(corpus.valid) + len(corpus.test)] == [73760, 82430]


# ----------------------------------------------------------------------------------------- tokens, vocabulary
def test_lines_are_split_on_whitespace_and_closed_with_eos(tmp_path: Path) -> None:
    root = write_splits(tmp_path, {"train": "a  b\tc \n\n  d\n", "valid": "b a", "test": "\ne\n"})
    corpus = PTBDataModule(str(root)).corpus
    words = corpus.dictionary.idx2word
    assert [words[i] for i in corpus.train] == ["a", "b", "c", EOS, EOS, "d", EOS]
    assert [words[i] for i in corpus.valid] == ["b", "a", EOS]  # no final newline: still one line
    assert [words[i] for i in corpus.test] == [EOS, "e", EOS]


def test_vocabulary_is_built_over_train_valid_test_in_first_seen_order(tmp_path: Path) -> None:
    root = write_splits(tmp_path, {"train": "the cat\n", "valid": "a cat the dog\n", "test": "zebra the\n"})
    corpus = PTBDataModule(str(root)).corpus
    assert corpus.dictionary.idx2word == ["the", "cat", EOS, "a", "dog", "zebra"]
    assert corpus.test.tolist() == [5, 0, 2]


def test_plain_split_names_are_read(tmp_path: Path) -> None:
    root = write_splits(tmp_path, {s: f"{s} words\n" for s in ("train", "valid", "test")}, "{split}.txt")
    assert PTBDataModule(str(root)).num_tokens == 5
    assert WikiText2DataModule(str(root)).num_tokens == 5


def test_hub_path_gives_the_local_vocabulary_and_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = write_tiny_corpus(tmp_path / "wt2", "wiki.{split}.tokens")
    local = WikiText2DataModule(str(root)).corpus
    files = {"train": "train", "validation": "valid", "test": "test"}
    hub = WikiText2DataModule(source="hub", hub_dataset="text", hub_config=None, hub_kwargs={
        "data_files": {k: str(root / f"wiki.{v}.tokens") for k, v in files.items()},
        "cache_dir": str(tmp_path / "hf_cache")}).corpus
    assert len(local.dictionary) == len(TINY_WORDS) + 1  # the made-up words and <eos>
    assert hub.dictionary == local.dictionary
    for split in ("train", "valid", "test"):
        assert torch.equal(hub.splits[split], local.splits[split])


# ----------------------------------------------------------------------------------------- streams, windows
def test_batchify_makes_contiguous_columns() -> None:
    data = batchify(torch.arange(103), 4)  # (25, 4); 3 tokens dropped
    assert data.shape == (25, 4)
    for b in range(4):
        assert data[:, b].tolist() == list(range(25 * b, 25 * (b + 1)))


def test_fixed_windows_cover_the_stream_with_targets_one_ahead() -> None:
    stream = batchify(torch.arange(400), 4)  # (100, 4)
    batches = list(FixedWindows(stream, 35))
    assert [b["input"].shape[0] for b in batches] == [35, 35, 29] == [n for _, n in fixed_windows(100, 35)]
    assert len(FixedWindows(stream, 35)) == 3
    assert torch.equal(torch.cat([b["input"] for b in batches]), stream[:-1])
    assert torch.equal(torch.cat([b["target"] for b in batches]), stream[1:])
    assert all(b["bptt"] == 35 for b in batches)


def test_variable_windows_follow_the_original_length_rule() -> None:
    windows = variable_windows(200_000, 35, random.Random(0))
    lengths = [n for _, n in windows[:-1]]
    assert min(lengths) >= 5 and max(lengths) <= 55
    assert all(s2 == s1 + n1 for (s1, n1), (s2, _) in itertools.pairwise(windows))  # contiguous, in order
    short = sum(n < 24 for n in lengths) / len(lengths)  # the bptt/2 windows: N(17.5, 5) is below 24 w.p. 0.9
    assert 0.03 < short < 0.07
    mean = sum(lengths) / len(lengths)  # 0.95·35 + 0.05·17.5 = 34.1, less ~0.5 for int() truncation
    assert 33.0 < mean < 34.5
    no_jitter = {n for _, n in variable_windows(20_000, 35, random.Random(0), std=0.0)[:-1]}
    assert no_jitter == {35, 17}  # the original search: int(bptt) or int(bptt / 2)


def test_variable_windows_are_seeded_by_epoch() -> None:
    stream = batchify(torch.arange(4000), 2)
    epoch = {"value": 0}
    windows = VariableWindows(stream, 35, seed=3, epoch_source=lambda: epoch["value"])
    first = [b["input"].shape[0] for b in windows]
    again = [b["input"].shape[0] for b in windows]
    epoch["value"] = 1
    other = [b["input"].shape[0] for b in windows]
    assert first == again != other
    assert sum(first) >= len(stream) - 2  # every token but the last is an input once
    assert torch.equal(torch.cat([b["input"] for b in windows])[:100], stream[:100])


def _stub_trainer(rank: int, world: int) -> SimpleNamespace:
    return SimpleNamespace(global_rank=rank, world_size=world, current_epoch=0, is_global_zero=rank == 0)


def test_each_rank_reads_a_contiguous_equal_shard(tiny_ptb: Path) -> None:
    assert [shard(torch.arange(11), r, 3).tolist() for r in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    modules = []
    for rank in range(2):
        dm = PTBDataModule(str(tiny_ptb), mode="train", batch_size=4)
        dm.trainer = _stub_trainer(rank, 2)
        modules.append(dm)
    tokens = modules[0].corpus.train
    half = len(tokens) // 2
    for rank, dm in enumerate(modules):
        assert torch.equal(dm.stream("train", "batch_size"), batchify(tokens[rank * half:(rank + 1) * half], 4))
    lengths = [[b["input"].shape[0] for b in dm.train_dataloader()] for dm in modules]
    assert lengths[0] == lengths[1]  # same number of steps on every rank


# ----------------------------------------------------------------------------------------- data modules
def test_search_mode_reads_train_and_valid_streams(tiny_ptb: Path) -> None:
    dm = PTBDataModule(str(tiny_ptb), mode="search", batch_size=8, eval_batch_size=4, test_batch_size=2)
    dm.setup("fit")
    loaders = dm.train_dataloader()
    assert set(loaders) == {"train", "val"}
    train, val = next(iter(loaders["train"])), next(iter(loaders["val"]))
    assert train["input"].shape[1] == 8 and val["input"].shape == (35, 8)
    assert torch.equal(val["input"], dm.stream("valid", "batch_size")[:35])
    assert next(iter(dm.val_dataloader()))["input"].shape == (35, 4)
    assert next(iter(dm.test_dataloader()))["input"].shape == (35, 2)
    assert dm.num_tokens == len(dm.dictionary)


def test_train_mode_reads_train_valid_test(tiny_ptb: Path) -> None:
    dm = PTBDataModule(str(tiny_ptb), mode="train", batch_size=8)
    assert isinstance(dm.train_dataloader(), VariableWindows)
    valid = dm.val_dataloader()
    assert isinstance(valid, FixedWindows) and next(iter(valid))["input"].shape == (35, 10)
    assert next(iter(dm.test_dataloader()))["input"].shape == (35, 1)  # the paper's test batch size


def test_vocabulary_saved_and_reused(tiny_ptb: Path, tmp_path: Path) -> None:
    dm = PTBDataModule(str(tiny_ptb))
    path = dm.dictionary.save(tmp_path / "run" / "vocab.json")
    assert json.loads(path.read_text())["words"] == dm.dictionary.idx2word
    reused = PTBDataModule(str(tiny_ptb), vocab_path=str(path))
    assert reused.dictionary == dm.dictionary and torch.equal(reused.corpus.test, dm.corpus.test)
    reused.load_state_dict(dm.state_dict())  # same vocabulary: no error


def test_checkpoint_vocabulary_mismatch_is_refused(tiny_ptb: Path) -> None:
    dm = PTBDataModule(str(tiny_ptb))
    other = ["<unk>", *dm.dictionary.idx2word[1:]][::-1]
    with pytest.raises(ConfigurationError, match=r"differs from the data's.*--data.vocab_path"):
        dm.load_state_dict({"vocabulary": other})


def test_word_outside_a_fixed_vocabulary_is_refused(tmp_path: Path) -> None:
    root = write_splits(tmp_path / "a", {"train": "a b\n", "valid": "a\n", "test": "b\n"})
    vocab = PTBDataModule(str(root)).dictionary.save(tmp_path / "vocab.json")
    other = write_splits(tmp_path / "b", {"train": "a b\n", "valid": "a c\n", "test": "b\n"})
    with pytest.raises(ConfigurationError, match=r"valid split .*line 1, has the word 'c'.*vocab_path"):
        PTBDataModule(str(other), vocab_path=str(vocab)).corpus  # noqa: B018


def test_missing_data_errors_name_the_setting_and_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"data_dir=.*not a directory.*--data.data_dir"):
        PTBDataModule(str(tmp_path / "nowhere")).num_tokens  # noqa: B018
    root = write_splits(tmp_path / "c", {"train": "a\n", "valid": "a\n"})
    with pytest.raises(DataNotFoundError, match=r"no test split .*ptb.test.txt or test.txt"):
        PTBDataModule(str(root)).num_tokens  # noqa: B018
    with pytest.raises(DataNotFoundError, match=r"--data.source hub"):
        WikiText2DataModule(str(root)).num_tokens  # noqa: B018
    (root / "ptb.test.txt").write_text("\n\n")
    with pytest.raises(DataNotFoundError, match=r"test split .*ptb.test.txt.* is empty"):
        PTBDataModule(str(root)).num_tokens  # noqa: B018


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    root = write_splits(tmp_path, {"train": "a b c\n", "valid": "a b c d e f g\n", "test": "a\n"})
    with pytest.raises(ConfigurationError, match=r"train split \(4 tokens\) is too short for batch_size=4"):
        PTBDataModule(str(root), mode="train", batch_size=4).setup("fit")
    with pytest.raises(ConfigurationError, match="mode='tune'"):
        PTBDataModule(str(root), mode="tune")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"half_bptt_prob=1\.5"):
        PTBDataModule(str(root), half_bptt_prob=1.5)
    with pytest.raises(ConfigurationError, match="source='web'"):
        WikiText2DataModule(str(root), source="web")  # type: ignore[arg-type]


def test_corpus_from_lines_is_independent_of_files() -> None:
    corpus = Corpus({"train": ["x y"], "valid": ["y"], "test": ["z"]})
    assert corpus.dictionary.idx2word == ["x", "y", EOS, "z"]


# ----------------------------------------------------------------------------------------- data source failures
@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hugging Face hub unreachable (offline mode: fails at once instead of retrying the network)."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_hub_offline_is_one_line_exit_2_naming_source_attempt_and_fix(hub_offline: None, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from darts_pl.cli import main

    from .conftest import REPO

    cache = tmp_path / "hf_cache"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs" / "train_wt2.yaml"), "--data.source", "hub",
              "--data.hub_kwargs", json.dumps({"cache_dir": str(cache)}), "--trainer.accelerator", "cpu",
              "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for part in ("--data.source hub", "'Salesforce/wikitext', 'wikitext-2-v1'", str(cache), "ConnectionError",
                 "network access", "--data.source local", "wiki.train.tokens"):
        assert part in err, part


def test_hub_loader_errors_name_the_dataset(hub_offline: None, tmp_path: Path) -> None:
    missing = WikiText2DataModule(source="hub", hub_dataset="text", hub_config=None,
                                  hub_kwargs={"data_files": {"train": str(tmp_path / "none.txt")}})
    message = r"load_dataset\('text', None, data_files=.*none\.txt.*--data\.source local"
    with pytest.raises(DataNotFoundError, match=message):
        missing.corpus  # noqa: B018
    root = write_tiny_corpus(tmp_path / "wt2", "wiki.{split}.tokens")
    no_test = WikiText2DataModule(source="hub", hub_dataset="text", hub_config=None, hub_kwargs={
        "data_files": {"train": str(root / "wiki.train.tokens"), "validation": str(root / "wiki.valid.tokens")},
        "cache_dir": str(tmp_path / "hf_cache")})
    with pytest.raises(DataNotFoundError, match=r"has no 'test' split \(it has train, validation\)"):
        no_test.corpus  # noqa: B018


def test_unreadable_token_file_is_named(tmp_path: Path) -> None:
    root = write_tiny_corpus(tmp_path / "ptb")
    (root / "ptb.valid.txt").write_bytes(b"\xff\xfe not utf-8 \xff\n")
    with pytest.raises(DataNotFoundError, match=r"cannot read the token file .*ptb\.valid\.txt.* as UTF-8"):
        PTBDataModule(str(root)).corpus  # noqa: B018


def test_unreadable_vocabulary_is_named(tmp_path: Path) -> None:
    binary = tmp_path / "vocab.json"
    binary.write_bytes(b'{"words": ["caf\xe9"]}')  # Latin-1, not UTF-8
    with pytest.raises(ConfigurationError, match=r"vocab_path=.*vocab.json' is not UTF-8 text"):
        Dictionary.load(binary)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        Dictionary.load(tmp_path)
