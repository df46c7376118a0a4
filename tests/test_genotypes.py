from __future__ import annotations

import json

import pytest
import torch

from darts_pl import genotypes as G
from darts_pl.genotypes import DARTS_V1, DARTS_V2, PRIMITIVES, Genotype, GenotypeError


def one_hot_row(op: str, strength: float = 0.9) -> list[float]:
    rest = (1 - strength) / (len(PRIMITIVES) - 1)
    return [strength if p == op else rest for p in PRIMITIVES]


def test_derivation_picks_top2_edges_and_strongest_non_none_op() -> None:
    # node 0 (edges 0,1), node 1 (2,3,4), node 2 (5..8), node 3 (9..13)
    probs = [one_hot_row("max_pool_3x3", 0.2)] * 14
    probs = [list(r) for r in probs]
    probs[0] = one_hot_row("sep_conv_3x3", 0.5)
    probs[1] = one_hot_row("skip_connect", 0.4)
    probs[2] = one_hot_row("none", 0.95)          # 'none' dominant: its best non-none op is weak
    probs[3] = one_hot_row("dil_conv_3x3", 0.6)
    probs[4] = one_hot_row("sep_conv_5x5", 0.7)
    probs[7] = one_hot_row("avg_pool_3x3", 0.8)
    probs[8] = one_hot_row("dil_conv_5x5", 0.3)
    probs[13] = one_hot_row("sep_conv_3x3", 0.9)
    probs[11] = one_hot_row("skip_connect", 0.85)
    g = G.derive_cnn(probs, probs)
    assert g.normal[:2] == [("sep_conv_3x3", 0), ("skip_connect", 1)]
    assert g.normal[2:4] == [("sep_conv_5x5", 2), ("dil_conv_3x3", 1)]
    assert g.normal[4:6] == [("avg_pool_3x3", 2), ("dil_conv_5x5", 3)]
    assert g.normal[6:8] == [("sep_conv_3x3", 4), ("skip_connect", 2)]
    assert g.normal_concat == [2, 3, 4, 5]
    assert all(op != "none" for op, _ in g.normal + g.reduce)


def test_derivation_never_chooses_none_even_when_it_wins_everywhere() -> None:
    probs = [one_hot_row("none", 0.99)] * 14
    g = G.derive_cnn(probs, probs)
    assert all(op != "none" for op, _ in g.normal + g.reduce)


def test_ties_are_deterministic_lower_index_first() -> None:
    probs = [[1.0 / 8] * 8 for _ in range(14)]
    g = G.derive_cnn(probs, probs)
    # all equal: the first two inputs and the first non-'none' op
    assert g.normal == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4
    assert G.derive_cnn(probs, probs) == g


def test_derivation_matches_supernet_softmax() -> None:
    from darts_pl.search import CNNSearchSpace

    space = CNNSearchSpace(channels=4, num_cells=3)
    with torch.no_grad():
        space.arch["normal"].normal_()
        space.arch["reduce"].normal_()
    probs = space.edge_probs()
    assert torch.allclose(probs["normal"], torch.softmax(space.arch["normal"], -1))
    assert space.genotype() == G.derive_cnn(probs["normal"].tolist(), probs["reduce"].tolist())


def test_rnn_derivation_k1() -> None:
    rows = []
    for node in range(8):
        for j in range(node + 1):
            strong = j == (node // 2)
            row = [0.5, 0.1, 0.1, 0.2, 0.1] if not strong else [0.1, 0.1, 0.6, 0.1, 0.1]
            rows.append(row)
    g = G.derive_rnn(rows)
    assert g.recurrent == [("relu", node // 2) for node in range(8)]
    assert g.concat == list(range(1, 9))
    # 'none' strongest overall but excluded: sigmoid (0.2) wins on non-strong edges
    rows = [[0.5, 0.1, 0.1, 0.2, 0.1]] * 36
    assert all(op == "sigmoid" for op, _ in G.derive_rnn(rows).recurrent)


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2, G.RNN_DARTS_V1, G.RNN_DARTS_V2])
def test_published_genotypes_validate_and_round_trip(genotype, tmp_path) -> None:
    assert G.validate(genotype) is genotype
    path = G.save(genotype, tmp_path / "g.json")
    assert G.load(path) == genotype
    assert G.resolve(str(path)) == genotype
    assert json.loads(path.read_text())["normal" if isinstance(genotype, Genotype) else "recurrent"]


def test_resolve_by_name_and_mapping() -> None:
    assert G.resolve("DARTS_V2") is DARTS_V2
    assert G.resolve(G.to_dict(DARTS_V1)) == DARTS_V1


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["normal"].__setitem__(0, ["sep_conv_9x9", 0]), "unknown op 'sep_conv_9x9'"),
    (lambda d: d["normal"].__setitem__(0, ["sep_conv_3x3", 2]), "input index 2 out of range"),
    (lambda d: d["reduce"].pop(), "needs 2 per node"),
    (lambda d: d.pop("reduce_concat"), "expected"),
    (lambda d: d.__setitem__("normal_concat", [2, 9]), "node index 9 out of range"),
    (lambda d: d.__setitem__("normal_concat", [2, 2, 2, 2]), "lists node 2 more than once"),
])
def test_bad_genotypes_are_refused_with_the_problem_named(mutate, message) -> None:
    data = G.to_dict(DARTS_V2)
    mutate(data)
    with pytest.raises(GenotypeError, match=message):
        G.from_dict(data)


def test_malformed_json_and_unknown_name(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenotypeError, match="not valid JSON"):
        G.load(bad)
    with pytest.raises(GenotypeError, match="Unknown genotype 'DARTS_V9'"):
        G.resolve("DARTS_V9")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x01genotype")
    with pytest.raises(GenotypeError, match="is not UTF-8 text"):
        G.load(binary)
    with pytest.raises(GenotypeError, match=r"is a directory; pass the genotype\.json file in it"):
        G.load(tmp_path)


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch) -> None:
    path = G.save(DARTS_V1, tmp_path / "genotype.json")
    before = path.read_text()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(G.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        G.save(DARTS_V2, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["genotype.json"]
