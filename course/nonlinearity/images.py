"""Image data for the CNN comparison (notebook 8): a generated default set and real-data loaders.

The default set, "shapes", is drawn by numpy in a second or two and is identical for the same
seed on every machine: ten classes of shapes and textures (disk, ring, square, frame, triangle,
plus, stripes, checker, dots, crescent) at random positions, sizes, angles and colours, on a
shaded background with clutter strokes and pixel noise. Nothing is downloaded.

A real data set already on disk can be used instead, named by a path or by the environment
variable NONLINEARITY_DATA:
- an ImageFolder tree: one sub-folder per class holding .png/.jpg files (optionally split into
  `train/` and `val/` or `test/`, as Imagenette is), read with PIL and resized to `size`;
- the CIFAR-10 python batches: a folder holding data_batch_1 ... data_batch_5 and test_batch
  (or the `cifar-10-batches-py` folder inside it).

All loaders return an `ImageSet` of float32 images in [0, 1], shape (N, C, size, size), and
int64 labels, shape (N,).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "NONLINEARITY_DATA"
SHAPE_CLASSES = (
    "disk", "ring", "square", "frame", "triangle", "plus", "stripes", "checker", "dots", "crescent",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


@dataclass
class ImageSet:
    """Train and test images with labels.

    x_train, x_test: float32 arrays (N, C, H, W) with values in [0, 1];
    y_train, y_test: int64 arrays (N,) with values in range(len(classes)).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        c, h, w = self.shape
        return (f"{self.source}: {len(self.x_train)} training and {len(self.x_test)} test images, "
                f"{c}x{h}x{w}, {len(self.classes)} classes ({', '.join(self.classes)})")


# ---------------------------------------------------------------------------------------------
# The generated default set
# ---------------------------------------------------------------------------------------------

def _soft(distance_px: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - distance_px, 0.0, 1.0)


def _shape_distance(label: int, u, v, params) -> np.ndarray:
    """Signed distance (in units of the shape radius) of class `label` at rotated coords u, v."""
    r = np.hypot(u, v)
    if label == 0:  # disk
        return r - 1.0
    if label == 1:  # ring
        return np.abs(r - 0.78) - 0.22
    if label == 2:  # square
        return np.maximum(np.abs(u), np.abs(v)) - 0.85
    if label == 3:  # frame (square outline)
        return np.abs(np.maximum(np.abs(u), np.abs(v)) - 0.72) - 0.2
    if label == 4:  # triangle: three half-planes
        d = None
        for k in range(3):
            a = np.pi / 2 + 2 * np.pi * k / 3
            side = u * np.cos(a) + v * np.sin(a) - 0.5
            d = side if d is None else np.maximum(d, side)
        return d * 1.6
    if label == 5:  # plus
        bar_h = np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.28)
        bar_v = np.maximum(np.abs(v) - 1.0, np.abs(u) - 0.28)
        return np.minimum(bar_h, bar_v)
    if label == 6:  # stripes inside a disk
        stripes = -np.sin(u * params["freq"]) * 0.25
        return np.maximum(r - 1.0, stripes)
    if label == 7:  # checker inside a square
        checks = -np.sin(u * params["freq"]) * np.sin(v * params["freq"]) * 0.25
        return np.maximum(np.maximum(np.abs(u), np.abs(v)) - 0.9, checks)
    if label == 8:  # three dots
        d = None
        for k in range(3):
            a = params["phase"] + 2 * np.pi * k / 3
            dot = np.hypot(u - 0.62 * np.cos(a), v - 0.62 * np.sin(a)) - 0.32
            d = dot if d is None else np.minimum(d, dot)
        return d
    if label == 9:  # crescent: a disk minus a shifted disk
        return np.maximum(r - 1.0, 0.82 - np.hypot(u - 0.55, v))
    raise ValueError(f"no shape class {label}")


def _segments(rng, n, k, size, yy, xx, width_px):
    """Coverage (n, H, W) of k random line segments per image, and their grey levels."""
    cover = np.zeros((n, size, size), dtype=np.float32)
    value = np.zeros((n, size, size), dtype=np.float32)
    for _ in range(k):
        p = rng.uniform(0, size, size=(n, 2, 1, 1))
        q = rng.uniform(0, size, size=(n, 2, 1, 1))
        dx, dy = q[:, 0] - p[:, 0], q[:, 1] - p[:, 1]
        t = ((xx - p[:, 0]) * dx + (yy - p[:, 1]) * dy) / (dx * dx + dy * dy + 1e-9)
        t = np.clip(t, 0.0, 1.0)
        dist = np.hypot(xx - p[:, 0] - t * dx, yy - p[:, 1] - t * dy)
        c = _soft(dist - width_px / 2).astype(np.float32)
        level = rng.uniform(0, 1, size=(n, 1, 1)).astype(np.float32)
        value = value * (1 - c) + level * c
        cover = np.maximum(cover, c)
    return cover, value


def make_shapes(
    n: int,
    *,
    seed: int = 0,
    size: int = 32,
    channels: int = 3,
    noise: float = 0.08,
    clutter: int = 2,
    polarity: str = "mixed",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n labelled images of the ten SHAPE_CLASSES; deterministic for a given seed.

    Returns x: float32 (n, channels, size, size) in [0, 1] and y: int64 (n,). Classes are
    balanced (counts differ by at most one). Each image: a shape at a random position, radius
    (18-38% of the image), angle (within ±30°) and colour, on a shaded background of another
    colour, `clutter` random strokes (some in front of the shape) and Gaussian pixel noise of
    standard deviation `noise`. polarity "mixed": the shape is brighter or darker than its
    background, at random (then every class has the same mean image, and no linear model does
    better than chance); "light": always brighter.
    """
    if n < 0 or size < 8 or channels not in (1, 3) or polarity not in ("mixed", "light"):
        raise ValueError("make_shapes needs n >= 0, size >= 8, channels 1 or 3 and polarity "
                         "'mixed' or 'light'")
    rng = np.random.default_rng(seed)
    n_classes = len(SHAPE_CLASSES)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    yy, xx = yy.astype(np.float32)[None], xx.astype(np.float32)[None]

    radius = rng.uniform(0.18, 0.38, size=n) * size
    margin = 0.6 * radius
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    angle = rng.uniform(-np.pi / 6, np.pi / 6, size=n)
    freq = rng.uniform(5.0, 8.0, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)

    coverage = np.zeros((n, size, size), dtype=np.float32)
    for label in range(n_classes):
        idx = np.flatnonzero(y == label)
        if idx.size == 0:
            continue
        r = radius[idx, None, None]
        dx, dy = xx - cx[idx, None, None], yy - cy[idx, None, None]
        cos, sin = np.cos(angle[idx])[:, None, None], np.sin(angle[idx])[:, None, None]
        u = (dx * cos + dy * sin) / r
        v = (-dx * sin + dy * cos) / r
        params = {"freq": freq[idx, None, None], "phase": phase[idx, None, None]}
        coverage[idx] = _soft(_shape_distance(label, u, v, params) * r)

    # Colours: background and shape differ by at least 0.3 in brightness, in either order.
    bg = rng.uniform(0.2, 0.8, size=(n, channels, 1, 1))
    sign = rng.choice([-1.0, 1.0], size=(n, 1, 1, 1))
    if polarity == "light":
        sign = np.ones_like(sign)
    fg = np.clip(bg + sign * rng.uniform(0.3, 0.6, size=(n, channels, 1, 1)), 0.0, 1.0)
    # A linear shading across the background, in a random direction.
    g = rng.normal(0, 0.15, size=(n, 2, 1, 1))
    shade = (g[:, 0] * (xx / size - 0.5) + g[:, 1] * (yy / size - 0.5))[:, None]
    image = (bg + shade).astype(np.float32)

    behind_cover, behind_value = _segments(rng, n, clutter, size, yy, xx, 1.5)
    image = image * (1 - behind_cover[:, None]) + behind_value[:, None] * behind_cover[:, None]
    image = image * (1 - coverage[:, None]) + fg.astype(np.float32) * coverage[:, None]
    front_cover, front_value = _segments(rng, n, max(clutter - 2, 0), size, yy, xx, 1.0)
    image = image * (1 - front_cover[:, None]) + front_value[:, None] * front_cover[:, None]

    image += rng.normal(0, noise, size=image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), y


def shapes_dataset(
    n_train: int = 4000, n_test: int = 1000, *, seed: int = 0, size: int = 32, channels: int = 3,
    **difficulty,
) -> ImageSet:
    """The generated default set: train and test drawn from independent seeds derived from `seed`.

    difficulty: `noise`, `clutter` and `polarity`, passed on to make_shapes.
    """
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    x_train, y_train = make_shapes(n_train, seed=int(train_seed.generate_state(1)[0]), size=size,
                                   channels=channels, **difficulty)
    x_test, y_test = make_shapes(n_test, seed=int(test_seed.generate_state(1)[0]), size=size,
                                 channels=channels, **difficulty)
    return ImageSet(x_train, y_train, x_test, y_test, SHAPE_CLASSES, "shapes (generated)")


# ---------------------------------------------------------------------------------------------
# Real data sets on disk
# ---------------------------------------------------------------------------------------------

def _balanced_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to n items, as equal per class as the data allow, in a seeded order."""
    if n >= len(labels):
        return rng.permutation(len(labels))
    order = rng.permutation(len(labels))
    classes = np.unique(labels)
    picked = []
    per_class = {c: order[labels[order] == c] for c in classes}
    rank = 0
    while len(picked) < n:
        for c in classes:
            if rank < len(per_class[c]) and len(picked) < n:
                picked.append(per_class[c][rank])
        rank += 1
    return rng.permutation(np.array(picked))


def _cifar_dir(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").is_file() and (candidate / "test_batch").is_file():
            return candidate
    return None


def _read_cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(file, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    return data, labels


def _resize_batch(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[-1] == size:
        return x
    import torch
    import torch.nn.functional as F

    resized = F.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear",
                            align_corners=False, antialias=True)
    return resized.clamp(0, 1).numpy()


def load_cifar10(path, n_train: int = 4000, n_test: int = 1000, *, seed: int = 0,
                 size: int = 32) -> ImageSet:
    """A seeded, class-balanced subset of the CIFAR-10 python batches in `path`."""
    folder = _cifar_dir(Path(path))
    if folder is None:
        raise ValueError(f"{path}: no CIFAR-10 python batches (data_batch_1 and test_batch) here")
    parts = [_read_cifar_batch(f) for f in sorted(folder.glob("data_batch_*"))]
    x_all = np.concatenate([p[0] for p in parts])
    y_all = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder / "test_batch")
    classes = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as handle:
            names = pickle.load(handle, encoding="bytes").get(b"label_names")
        if names:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    rng = np.random.default_rng(seed)
    tr = _balanced_subset(y_all, n_train, rng)
    te = _balanced_subset(y_te, n_test, rng)
    x_train = _resize_batch(x_all[tr].astype(np.float32) / 255.0, size)
    x_test = _resize_batch(x_te[te].astype(np.float32) / 255.0, size)
    return ImageSet(x_train, y_all[tr], x_test, y_te[te], classes, f"CIFAR-10 ({folder})")


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """Class name -> image files, for a folder whose sub-folders hold images; {} if it is not one."""
    if not root.is_dir():
        return {}
    found = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if files:
            found[sub.name] = files
    return found


def _read_image(file: Path, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(file) as img:
        img = ImageOps.fit(img.convert("RGB"), (size, size), method=Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0


def _read_files(files, labels, size):
    if not files:
        return np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.int64)
    x = np.stack([_read_image(f, size) for f in files])
    return x, np.asarray(labels, dtype=np.int64)


def load_image_folder(path, n_train: int = 4000, n_test: int = 1000, *, seed: int = 0,
                      size: int = 32) -> ImageSet:
    """A seeded, class-balanced subset of an ImageFolder tree, resized (centre crop) to size.

    With `train/` and `val/` (or `test/`) sub-folders those are the splits; otherwise each
    class's files are shuffled with `seed` and split in the proportion n_train : n_test.
    """
    root = Path(path)
    split_test = next((root / s for s in ("val", "test") if _class_folders(root / s)), None)
    if _class_folders(root / "train") and split_test is not None:
        train_tree, test_tree = _class_folders(root / "train"), _class_folders(split_test)
        classes = tuple(sorted(train_tree))
        test_tree = {c: test_tree.get(c, []) for c in classes}
    else:
        tree = _class_folders(root)
        if len(tree) < 2:
            raise ValueError(f"{path}: an ImageFolder tree needs at least two class sub-folders "
                             "holding .png/.jpg files")
        classes = tuple(sorted(tree))
        rng = np.random.default_rng(seed)
        train_tree, test_tree = {}, {}
        fraction = n_test / max(n_train + n_test, 1)
        for c in classes:
            files = [tree[c][i] for i in rng.permutation(len(tree[c]))]
            k = min(max(int(round(len(files) * fraction)), 1), len(files) - 1)
            test_tree[c], train_tree[c] = files[:k], files[k:]

    def pick(tree, n, rng):
        files = [f for c in classes for f in tree[c]]
        labels = np.array([i for i, c in enumerate(classes) for _ in tree[c]], dtype=np.int64)
        idx = _balanced_subset(labels, n, rng)
        return [files[i] for i in idx], labels[idx]

    rng = np.random.default_rng(seed + 1)
    x_train, y_train = _read_files(*pick(train_tree, n_train, rng), size)
    x_test, y_test = _read_files(*pick(test_tree, n_test, rng), size)
    return ImageSet(x_train, y_train, x_test, y_test, classes, f"ImageFolder ({root})")


def _bad_path(path) -> ValueError:
    return ValueError(
        f"{ENV_VAR}/path {str(path)!r} is neither an ImageFolder tree (one sub-folder per class "
        "holding .png/.jpg files) nor a CIFAR-10 python batch folder (data_batch_1..5, test_batch)"
    )


def load_images(path=None, n_train: int = 4000, n_test: int = 1000, *, seed: int = 0,
                size: int = 32, shapes: dict | None = None) -> ImageSet:
    """The data set for the CNN comparison.

    path: None (then the environment variable NONLINEARITY_DATA, and if that is unset or empty
    the generated "shapes" set), "shapes", a CIFAR-10 python batch folder, or an ImageFolder
    tree. Raises ValueError with a one-line message for anything else.
    shapes: keyword arguments for the generated set (noise, clutter, polarity; see make_shapes),
    ignored for a real data set.
    """
    if path is None:
        path = os.environ.get(ENV_VAR, "").strip() or "shapes"
    if str(path) == "shapes":
        return shapes_dataset(n_train, n_test, seed=seed, size=size, **(shapes or {}))
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise _bad_path(path)
    if _cifar_dir(folder) is not None:
        return load_cifar10(folder, n_train, n_test, seed=seed, size=size)
    if len(_class_folders(folder)) >= 2 or _class_folders(folder / "train"):
        return load_image_folder(folder, n_train, n_test, seed=seed, size=size)
    raise _bad_path(path)


def plot_examples(data: ImageSet, per_class: int = 6, *, title: str | None = None):
    """A grid of training images: one row per class (at most 10 classes), per_class columns."""
    import matplotlib.pyplot as plt

    classes = list(range(min(len(data.classes), 10)))
    figsize = (per_class * 0.75 + 1.2, len(classes) * 0.75 + 0.4)
    fig, axes = plt.subplots(len(classes), per_class, figsize=figsize, squeeze=False)
    for row, label in enumerate(classes):
        picks = np.flatnonzero(data.y_train == label)[:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(picks):
                image = data.x_train[picks[col]]
                if image.shape[0] == 1:
                    ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(image.transpose(1, 2, 0))
        axes[row, 0].set_ylabel(data.classes[label], rotation=0, ha="right", va="center")
    fig.suptitle(title or f"{data.source}: {per_class} training images per class")
    fig.tight_layout()
    return fig
