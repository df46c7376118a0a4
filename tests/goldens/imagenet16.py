"""Expected values of tests/test_imagenet16.py, from the authors' ImageNet16-120 reader and transforms.

Upstream: D-X-Y/AutoDL-Projects, commit f46486e21b71ae6459a700be720d7648b5429569: ``ImageNet16`` in
``xautodl/datasets/DownsampledImageNet.py`` and the ImageNet16-120 transforms of ``get_datasets`` in
``xautodl/datasets/get_dataset_with_transform.py``, run on the tiny batches of ``tests/imagenet16_files.py``.
Their MD5 check of the official files and their assertion of the official image counts are bypassed (the files are
tiny); nothing else is changed.

    python tests/goldens/imagenet16.py /path/to/AutoDL-Projects
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.imagenet16_files import write_imagenet16


def main(upstream: str) -> None:
    sys.path.insert(0, upstream)
    from xautodl.datasets import DownsampledImageNet as dsi
    from xautodl.datasets import get_dataset_with_transform as gdt

    dsi.check_integrity = lambda fpath, md5=None: True  # tiny files: not the official MD5 sums

    class Counted(dsi.ImageNet16):  # get_datasets asserts the official image counts once, right after loading
        reported = False

        def __len__(self) -> int:
            if not type(self).reported:
                return 151700 if self.train else 6000
            return super().__len__()

    gdt.ImageNet16 = Counted
    root = Path(tempfile.mkdtemp()) / "ImageNet16"
    write_imagenet16(root)
    train, test, xshape, classes = gdt.get_datasets("ImageNet16-120", str(root), -1)
    Counted.reported = True
    print("XSHAPE =", xshape, "CLASSES =", classes)
    print("TRAIN_LEN =", len(train), "VAL_LEN =", len(test))
    print("TRAIN_TARGETS =", [int(train[i][1]) for i in range(len(train))])
    print("VAL_TARGETS =", [int(test[i][1]) for i in range(len(test))])
    print("VAL_SUMS =", [round(float(test[i][0].double().sum()), 10) for i in range(len(test))])
    print("VAL_PIXEL_0 =", [round(float(v), 10) for v in test[0][0][:, 3, 5].double()])  # (C,) at row 3, column 5
    torch.manual_seed(0)
    print("TRAIN_AUG_SUMS =", [round(float(train[i][0].double().sum()), 10) for i in range(6)])


if __name__ == "__main__":
    main(sys.argv[1])
