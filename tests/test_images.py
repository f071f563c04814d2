"""nonlinearity.images: the generated default set and the loaders for real data on disk."""

import pickle

import numpy as np
import pytest
from PIL import Image

from nonlinearity import images


def test_make_shapes_is_deterministic_and_seed_dependent():
    x1, y1 = images.make_shapes(60, seed=3)
    x2, y2 = images.make_shapes(60, seed=3)
    x3, _ = images.make_shapes(60, seed=4)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_make_shapes_shapes_dtypes_range_and_balance():
    x, y = images.make_shapes(105, seed=0, size=32, channels=3)
    assert x.shape == (105, 3, 32, 32) and x.dtype == np.float32
    assert y.shape == (105,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    counts = np.bincount(y, minlength=len(images.SHAPE_CLASSES))
    assert counts.max() - counts.min() <= 1
    grey, _ = images.make_shapes(10, seed=0, size=16, channels=1)
    assert grey.shape == (10, 1, 16, 16)


def test_classes_differ_on_average():
    # Each class has its own mean silhouette: a sanity check that labels match pictures.
    x, y = images.make_shapes(400, seed=1, noise=0.0, clutter=0)
    contrast = np.abs(x - x.mean(axis=(2, 3), keepdims=True)).mean(axis=1)
    means = np.stack([contrast[y == c].mean(axis=0) for c in range(10)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=(2, 3))
    assert distances[~np.eye(10, dtype=bool)].min() > 0.1


def test_shapes_dataset_default_is_fast_and_deterministic():
    import time

    start = time.perf_counter()
    a = images.load_images(None, 300, 100, seed=0)
    elapsed = time.perf_counter() - start
    b = images.shapes_dataset(300, 100, seed=0)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.shape == (300, 3, 32, 32) and a.x_test.shape == (100, 3, 32, 32)
    assert a.classes == images.SHAPE_CLASSES
    assert not np.array_equal(a.x_train[:100], a.x_test)
    assert elapsed < 10


def test_environment_variable_selects_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("NONLINEARITY_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError):
        images.load_images(n_train=10, n_test=10)
    monkeypatch.setenv("NONLINEARITY_DATA", "")
    assert images.load_images(n_train=10, n_test=10).source.startswith("shapes")


def _write_tree(root, classes=("cat", "dog", "fox"), per_class=6, size=(40, 30)):
    rng = np.random.default_rng(0)
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, size=(*size[::-1], 3), dtype=np.uint8)
            pixels[..., i] = 255  # each class has its own dominant colour channel
            suffix = ".png" if k % 2 else ".jpg"
            Image.fromarray(pixels).save(root / name / f"img{k}{suffix}")


def test_image_folder_tree(tmp_path):
    _write_tree(tmp_path / "tree")
    data = images.load_images(tmp_path / "tree", n_train=9, n_test=6, size=16)
    assert data.classes == ("cat", "dog", "fox")
    assert data.x_train.shape == (9, 3, 16, 16) and data.x_train.dtype == np.float32
    assert len(data.x_test) >= 3 and data.x_test.shape[1:] == (3, 16, 16)
    assert np.bincount(data.y_train).tolist() == [3, 3, 3]
    # The dominant channel survives loading and resizing: labels match pictures.
    channel_means = data.x_train.mean(axis=(2, 3))
    assert (channel_means.argmax(axis=1) == data.y_train).all()
    again = images.load_images(str(tmp_path / "tree"), n_train=9, n_test=6, size=16)
    assert np.array_equal(data.x_train, again.x_train)


def test_image_folder_with_train_and_val_splits(tmp_path):
    _write_tree(tmp_path / "imagenette" / "train", per_class=4)
    _write_tree(tmp_path / "imagenette" / "val", per_class=2)
    data = images.load_images(tmp_path / "imagenette", n_train=100, n_test=100, size=8)
    assert len(data.x_train) == 12 and len(data.x_test) == 6
    assert data.classes == ("cat", "dog", "fox")


def _write_cifar(folder, n_per_batch=20):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": labels}, handle)
    names = [n.encode() for n in images.CIFAR10_CLASSES]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": names}, handle)


def test_cifar10_batches(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):
        data = images.load_images(path, n_train=50, n_test=10)
        assert data.x_train.shape == (50, 3, 32, 32) and data.x_train.dtype == np.float32
        assert data.y_train.dtype == np.int64 and data.x_test.shape == (10, 3, 32, 32)
        assert data.classes == images.CIFAR10_CLASSES
        assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    small = images.load_images(tmp_path, n_train=5, n_test=5, size=16)
    assert small.x_train.shape == (5, 3, 16, 16)


def test_cifar_pixels_keep_their_layout(tmp_path):
    folder = tmp_path / "c"
    _write_cifar(folder, n_per_batch=3)
    with open(folder / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = images.load_images(folder, n_train=3, n_test=3)
    expected = batch[b"data"].reshape(-1, 3, 32, 32).astype(np.float32) / 255
    for image, label in zip(data.x_test, data.y_test, strict=True):
        matches = [np.array_equal(image, e) for e in expected]
        assert any(matches)
        assert batch[b"labels"][matches.index(True)] == label


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "one_class"])
def test_bad_path_gives_a_one_line_value_error(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "file":
        path.write_text("not a data set")
    elif kind == "empty":
        path.mkdir()
    elif kind == "one_class":
        _write_tree(path, classes=("only",))
    with pytest.raises(ValueError) as info:
        images.load_images(path, n_train=4, n_test=4)
    message = str(info.value)
    assert "\n" not in message
    assert "ImageFolder" in message and "CIFAR-10" in message and str(path) in message


def test_polarity_light_draws_every_shape_brighter_from_the_same_stream():
    mixed, y_mixed = images.make_shapes(200, seed=5, noise=0.0, clutter=0)
    light, y_light = images.make_shapes(200, seed=5, noise=0.0, clutter=0, polarity="light")
    assert np.array_equal(y_mixed, y_light)
    same = np.all(mixed == light, axis=(1, 2, 3))
    assert 0 < same.sum() < len(same)  # the images whose shape was brighter anyway are unchanged
    with pytest.raises(ValueError, match="polarity"):
        images.make_shapes(5, polarity="dark")


def test_load_images_passes_the_shape_options_on(monkeypatch):
    monkeypatch.delenv("NONLINEARITY_DATA", raising=False)
    options = {"noise": 0.04, "clutter": 0, "polarity": "light"}
    a = images.load_images(None, 30, 10, size=16, shapes=options)
    b = images.shapes_dataset(30, 10, size=16, **options)
    assert np.array_equal(a.x_train, b.x_train) and a.x_train.shape == (30, 3, 16, 16)
