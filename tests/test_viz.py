"""Cell diagrams, the genotype listing, alpha heatmaps, and the ``darts-pl-genotype`` command."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from darts_pl import genotype_cli, viz
from darts_pl.genotypes import DARTS_V2, PRIMITIVES, RNN_DARTS_V2, RNN_PRIMITIVES, derive_rnn, save

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH without graphviz's ``dot``, whether or not this machine has it."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not viz.graphviz_available()


# ----------------------------------------------------------------------------------------- diagrams
@pytest.mark.parametrize("genotype, cells", [(DARTS_V2, ["normal", "reduce"]), (RNN_DARTS_V2, ["recurrent"])],
                         ids=["DARTS_V2", "RNN_DARTS_V2"])
def test_diagrams_draw_without_graphviz(no_graphviz: None, tmp_path: Path, genotype: viz.AnyGenotype,
                                        cells: list[str]) -> None:
    both = imread(viz.save_cell_diagram(genotype, tmp_path / "all.png"))  # (H, W, 4)
    assert both.shape[0] > 200 and both.shape[1] > 400
    assert both[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    for cell in cells:
        single = imread(viz.save_cell_diagram(genotype, tmp_path / f"{cell}.png", cell))
        assert single.shape[0] > 200
        assert single.shape[1] <= both.shape[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["all.png", *(f"{c}.png" for c in cells)])


def test_diagram_formats_and_engines(no_graphviz: None, tmp_path: Path) -> None:
    assert viz.save_cell_diagram(DARTS_V2, tmp_path / "cell.svg", "normal").read_text().lstrip().startswith("<?xml")
    with pytest.raises(RuntimeError, match="dot"):
        viz.save_cell_diagram(DARTS_V2, tmp_path / "cell.png", engine="graphviz")
    with pytest.raises(ValueError, match="unknown format 'gif'"):
        viz.save_cell_diagram(DARTS_V2, tmp_path / "cell.gif")
    with pytest.raises(ValueError, match="cell_type='recurrent'"):
        viz.save_cell_diagram(DARTS_V2, tmp_path / "cell.png", "recurrent")


def test_cell_graphs_follow_the_genotype_indexing() -> None:
    normal = viz.cell_graph(DARTS_V2, "normal")
    assert normal.inputs == ("c_{k-2}", "c_{k-1}") and normal.nodes == ("0", "1", "2", "3")
    labelled = [e for e in normal.edges if e[2]]
    assert labelled[6:] == [("c_{k-2}", "3", "skip_connect"), ("0", "3", "dil_conv_3x3")]  # input 2 is node 0
    assert sorted(src for src, dst, op in normal.edges if dst == "c_{k}") == ["0", "1", "2", "3"]

    rnn = viz.cell_graph(RNN_DARTS_V2, "recurrent")
    assert rnn.inputs == ("x_{t}", "h_{t-1}") and rnn.nodes == tuple(str(i) for i in range(9))
    assert [e for e in rnn.edges if e[1] == "0"] == [("x_{t}", "0", None), ("h_{t-1}", "0", None)]
    assert ("5", "6", "sigmoid") in rnn.edges  # node 6 = sigmoid(node 5)
    assert len([e for e in rnn.edges if e[1] == "h_{t}"]) == 8  # h_t averages nodes 1..8


@pytest.mark.parametrize("genotype", [DARTS_V2, RNN_DARTS_V2], ids=["DARTS_V2", "RNN_DARTS_V2"])
def test_layout_places_every_node_right_of_its_inputs(genotype: viz.AnyGenotype) -> None:
    for cell in viz.cell_types(genotype):
        graph = viz.cell_graph(genotype, cell)
        pos = viz.layout(graph)
        assert len(set(pos.values())) == len(pos)  # no two nodes on one spot
        for src, dst, _ in graph.edges:
            assert pos[src][0] < pos[dst][0]


def test_dot_source_names_every_edge() -> None:
    source = viz.dot_source(DARTS_V2)
    assert "subgraph cluster_normal" in source and "subgraph cluster_reduce" in source
    skips = sum(op == "skip_connect" for op, _ in DARTS_V2.normal + DARTS_V2.reduce)
    assert source.count('label="skip_connect"') == skips
    assert '"normal:0" -> "normal:3" [label="dil_conv_3x3"' in source
    assert '"x_{t}" -> "0" [style=dashed' in viz.dot_source(RNN_DARTS_V2)


def test_describe_lists_each_node_with_its_ops() -> None:
    text = viz.describe(DARTS_V2).splitlines()
    assert text[0] == "normal cell: c_{k} = concat(0, 1, 2, 3)"
    assert text[4] == "  node 3 <- skip_connect(c_{k-2}), dil_conv_3x3(0)"
    rnn = viz.describe(RNN_DARTS_V2).splitlines()
    assert rnn[0] == "recurrent cell: h_{t} = mean(1, 2, 3, 4, 5, 6, 7, 8)"
    assert rnn[1] == "  node 0 <- x_{t}, h_{t-1}" and rnn[7] == "  node 6 <- sigmoid(5)"


# ----------------------------------------------------------------------------------------- heatmaps
def test_alpha_heatmap_prints_values_and_marks_the_derived_op() -> None:
    probs = np.full((14, len(PRIMITIVES)), 0.1)
    probs[:, 0] = 0.3  # ``none`` strongest everywhere: never the derived op
    probs[2, PRIMITIVES.index("sep_conv_5x5")] = 0.2
    fig = viz.plot_alpha_heatmap(probs, PRIMITIVES, [f"e{i}" for i in range(14)], title="normal")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(PRIMITIVES)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"e{i}" for i in range(14)]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(texts) == probs.size and texts[(2, 5)].get_text() == "0.200"
    assert texts[(2, 5)].get_fontweight() == "bold" and texts[(2, 0)].get_fontweight() == "normal"
    image = viz.figure_to_array(fig)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    with pytest.raises(ValueError, match=r"expected \(edges, 8\)"):
        viz.plot_alpha_heatmap(probs[:, :5], PRIMITIVES)


@pytest.mark.parametrize("label, reference", [("softmax(alpha)", None), ("sigmoid(alpha)", 0.5)])
def test_alpha_heatmap_colours_show_a_near_uniform_epoch(label: str, reference: float | None) -> None:
    # The first epochs of a search: every value within 1e-4 of the undecided one (1/8, or 0.5 for sigmoids).
    centre = 1 / len(PRIMITIVES) if reference is None else reference
    probs = centre + 1e-4 * np.random.default_rng(0).standard_normal((14, len(PRIMITIVES)))
    fig = viz.plot_alpha_heatmap(probs, PRIMITIVES, title="epoch 0", label=label, reference=reference)
    ax, bar = fig.axes
    colours = np.asarray(ax.images[0].norm(probs))  # (edges, ops), positions on the colour map
    assert colours.min() == pytest.approx(0.0) and colours.max() == pytest.approx(1.0)  # the whole scale is used
    assert float(ax.images[0].norm(centre)) == pytest.approx(0.5)  # undecided is the map's white middle
    rgb = ax.images[0].to_rgba(probs)[..., :3]  # (edges, ops, 3)
    assert np.ptp(rgb.reshape(-1, 3), axis=0).max() > 0.5  # visibly different colours, not one flat tint
    assert bar.get_ylabel() == f"{label} (white: {centre:.3g})"
    exact = viz.plot_alpha_heatmap(np.full((2, 3), 1 / 3), ["a", "b", "c"])  # alpha_init zeros: exactly uniform
    assert float(exact.axes[0].images[0].norm(1 / 3)) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------- the command
def test_console_script_is_declared() -> None:
    scripts = (REPO / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    assert 'darts-pl-genotype = "darts_pl.genotype_cli:main"' in scripts.splitlines()


def test_genotype_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert genotype_cli.main(["show", "DARTS_V2"]) == 0
    out = capsys.readouterr().out
    assert "  node 3 <- skip_connect(c_{k-2}), dil_conv_3x3(0)" in out
    assert "normal: 2 skip connections, 2 of 8 ops parameter-free" in out

    # A search's run directory: its genotype.json, else the latest per-epoch genotype.
    run = tmp_path / "run"
    probs = np.random.default_rng(0).dirichlet(np.ones(len(RNN_PRIMITIVES)), size=36).tolist()
    save(derive_rnn(probs), run / "genotypes" / "epoch_004.json")
    save(RNN_DARTS_V2, run / "genotypes" / "epoch_003.json")
    assert genotype_cli.main(["show", str(run), "--json"]) == 0
    assert '"recurrent"' in capsys.readouterr().out
    save(RNN_DARTS_V2, run / "genotype.json")
    assert genotype_cli.main(["show", str(run)]) == 0
    assert "  node 6 <- sigmoid(5)" in capsys.readouterr().out


def test_genotype_plot(no_graphviz: None, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert genotype_cli.main(["plot", "RNN_DARTS_V2", "-o", str(tmp_path / "rnn.png")]) == 0
    assert imread(tmp_path / "rnn.png").shape[0] > 200
    assert genotype_cli.main(["plot", "DARTS_V2", "--cell", "reduce", "-o", str(tmp_path / "r.pdf")]) == 0
    assert (tmp_path / "r.pdf").read_bytes()[:4] == b"%PDF"
    assert capsys.readouterr().out.count("wrote ") == 2


@pytest.mark.parametrize("args, reason", [
    (["show", "DARTS_V9"], "Unknown genotype 'DARTS_V9'"),
    (["show", "{bad}.json"], "does not exist"),
    (["plot", "DARTS_V2", "--cell", "recurrent", "-o", "x.png"], "cell_type='recurrent' is not a cell"),
    (["plot", "DARTS_V2", "-o", "x.gif"], "unknown format 'gif'"),
], ids=["unknown-name", "missing-file", "wrong-cell", "bad-format"])
def test_genotype_command_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path, args: list[str], reason: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        genotype_cli.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("darts-pl-genotype: error: ") and reason in err and err.count("\n") == 1


def test_genotype_command_rejects_an_invalid_genotype_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"normal": [["sep_conv_9x9", 0], ["skip_connect", 1]], "normal_concat": [2], '
                   '"reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]], "reduce_concat": [2]}')
    with pytest.raises(SystemExit) as exit_info:
        genotype_cli.main(["plot", str(bad), "-o", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown op 'sep_conv_9x9'" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
