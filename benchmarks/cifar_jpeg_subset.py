"""A class-balanced subset of the CIFAR-10 JPEGs (``cifar10-jpeg.tar.gz``: ``train/<class>/NNNN.jpg`` and
``test/<class>/NNNN.jpg``) in the image-folder layout ``darts_pl.data.ImageFolderDataModule`` reads, for searches and
trainings sized to a CPU:

    python -m benchmarks.cifar_jpeg_subset --tar ../shared/data/cifar10-jpeg.tar.gz --out data/cifar10-jpeg-1k \\
        --train 1000 --test 200

takes the first ``--train`` training and ``--test`` test images of every class, in the archive's order.
"""
from __future__ import annotations

import argparse
import tarfile
from pathlib import Path


def extract(tar_path: Path, out: Path, per_class: dict[str, int]) -> dict[str, dict[str, int]]:
    """Unpack the first ``per_class[split]`` images of every class of each split; returns the counts."""
    counts: dict[str, dict[str, int]] = {split: {} for split in per_class}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            split = next((s for s in per_class if s in parts), None)
            if not member.isfile() or split is None or not member.name.endswith(".jpg"):
                continue
            cls = parts[-2]
            if counts[split].get(cls, 0) >= per_class[split]:
                continue
            counts[split][cls] = counts[split].get(cls, 0) + 1
            target = out / split / cls / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cifar_jpeg_subset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tar", type=Path, required=True, help="cifar10-jpeg.tar.gz")
    parser.add_argument("--out", type=Path, required=True, help="the subset's directory (train/, test/)")
    parser.add_argument("--train", type=int, default=1000, help="training images per class (default: %(default)s)")
    parser.add_argument("--test", type=int, default=200, help="test images per class (default: %(default)s)")
    options = parser.parse_args(argv)
    wanted = {"train": options.train, "test": options.test}
    counts = extract(options.tar, options.out, {split: n for split, n in wanted.items() if n > 0})
    for split, per_class in counts.items():
        print(f"{split}: {sum(per_class.values())} images in {len(per_class)} classes -> {options.out / split}")


if __name__ == "__main__":
    main()
