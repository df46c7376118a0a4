"""The ``darts-pl-genotype`` command: look at a genotype without a notebook.

    darts-pl-genotype show DARTS_V2
    darts-pl-genotype show runs/quickstart/darts/version_0          # its genotype.json
    darts-pl-genotype show runs/.../genotypes/epoch_007.json --json
    darts-pl-genotype plot DARTS_V2 -o darts_v2.png                         # both cells side by side
    darts-pl-genotype plot RNN_DARTS_V2 -o rnn.svg
    darts-pl-genotype plot runs/.../genotype.json --cell normal -o normal.png

``PATH|NAME`` is a published genotype (``DARTS_V1``, ``DARTS_V2``, ``RNN_DARTS_V2``...), a genotype JSON file,
or a search's run directory (its ``genotype.json``, else its latest ``genotypes/epoch_NNN.json``).
A genotype that cannot be read exits with status 2 and a one-line reason.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from darts_pl import genotypes
from darts_pl.errors import ConfigurationError

PROG = "darts-pl-genotype"
SPEC_HELP = "a published name (DARTS_V2...), a genotype JSON file, or a search's run directory"


def _load(spec: str) -> genotypes.CellGenotype:
    """Resolve a name, a JSON path or a run directory; raises ``GenotypeError`` with the reason."""
    path = Path(spec)
    if path.is_dir():
        epochs = sorted((path / "genotypes").glob("epoch_*.json"))
        candidates = [path / "genotype.json", *reversed(epochs)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise genotypes.GenotypeError(f"Directory {spec!r} holds no genotype.json and no genotypes/epoch_*.json; "
                                          "pass a run directory of a search, a genotype JSON file or a published name.")
        return genotypes.load(found)
    try:
        return genotypes.resolve(spec)
    except OSError as err:
        raise genotypes.GenotypeError(f"Cannot read genotype {spec!r}: {err.strerror or err}.") from None


def _show(genotype: genotypes.CellGenotype, as_json: bool) -> str:
    if as_json:
        return genotypes.dumps(genotype)
    lines = [genotype.describe()]
    for cell in genotype.cell_names:
        counts = genotype.cell_counts(cell)
        lines.append(f"{cell}: {counts['num_skip_connect']} skip connections, {counts['num_parameter_free']} of "
                     f"{len(genotype.cell_ops(cell))} ops parameter-free")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Show or draw a DARTS genotype.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the cells as text (or JSON)")
    show.add_argument("genotype", metavar="PATH|NAME", help=SPEC_HELP)
    show.add_argument("--json", action="store_true", help="print the genotype as JSON (what --model.genotype reads)")
    plot = commands.add_parser("plot", help="draw the cells to an image")
    plot.add_argument("genotype", metavar="PATH|NAME", help=SPEC_HELP)
    plot.add_argument("-o", "--output", required=True, help="image file: .png, .pdf or .svg")
    plot.add_argument("--cell", default="all",
                      help="which cell to draw: all (the default: side by side) or one of the genotype's cells "
                           "(normal, reduce; recurrent; cell for NAS-Bench-201)")
    plot.add_argument("--engine", choices=("auto", "matplotlib", "graphviz"), default="auto",
                      help="auto: graphviz when its `dot` binary is installed, else matplotlib")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``darts-pl-genotype``; returns the exit status (2 for a bad genotype or option)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        genotype = _load(args.genotype)
        if args.command == "show":
            text = _show(genotype, args.json)
        else:
            from darts_pl.viz import save_cell_diagram

            cell = None if args.cell == "all" else args.cell
            text = f"wrote {save_cell_diagram(genotype, args.output, cell, engine=args.engine)}"
    except (genotypes.GenotypeError, ConfigurationError, RuntimeError, OSError) as err:
        parser.exit(2, f"{PROG}: error: {' '.join(str(err).split())}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
