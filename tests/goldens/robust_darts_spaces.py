"""Prints RobustDARTS's search spaces S1-S4 as JSON: for each space, each cell type's candidate ops per edge, in the
authors' edge order (the expected values of ``tests/test_robust_spaces.py``).

Upstream: https://github.com/automl/RobustDARTS, commit 3dec3fedaa1770614bbfd4b98f5299d946ea7ac6 (``src/spaces.py``;
ruocwang/darts-pt 4ec3149dea0d77efd8e4c118f578b454dad5e0ac has the same lists in ``sota/cnn/spaces.py``).

    python tests/goldens/robust_darts_spaces.py /path/to/RobustDARTS
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def main(checkout: str) -> None:
    path = Path(checkout) / "src" / "spaces.py"
    if not path.is_file():  # a darts-pt checkout
        path = Path(checkout) / "sota" / "cnn" / "spaces.py"
    spec = importlib.util.spec_from_file_location("upstream_spaces", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = {}
    for name in ("s1", "s2", "s3", "s4"):
        space = module.spaces_dict[name]
        out[name] = {"normal": [list(row) for row in space["primitives_normal"]],
                     "reduce": [list(row) for row in space["primitives_reduct"]]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
