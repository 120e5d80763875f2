"""A corpus of broken inputs fed through the command line (issue 7, item 6).

For every data source format and every command that reads data, a broken file gives exit code 2 and
one line on stderr naming the file and the problem: no traceback, no warning, no run directory or
output file left behind, and nothing in the file ever executed.
"""

from __future__ import annotations

import builtins
import gzip
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import genlab
from conftest import assert_user_error, run
from genlab.data import files

# a warning printed by a reader would be a second line on stderr: make it fail the test instead
pytestmark = pytest.mark.filterwarnings("error")

SMALL_CAP = 2**20  # MAX_DECOMPRESSED_BYTES during the bomb cases, so they stay fast
PWNED = "PWNED"  # the pickle payloads below would create this file in the working directory


class _Exec:
    """Unpickling this runs code: it must never happen."""

    def __reduce__(self):
        return (builtins.exec, (f"open({PWNED!r}, 'w').close()",))


@dataclass(frozen=True)
class Case:
    id: str
    write: Callable[[Path], Path]  # writes the input into an empty folder, returns what to pass
    match: str  # regex the message must match
    names: str | None = None  # the name the message must contain (default: the input's own name)
    cap: int | None = None  # MAX_DECOMPRESSED_BYTES for this case

    def __repr__(self):
        return self.id


# --- writers -----------------------------------------------------------------------------------------


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return write


def _text(name: str, text: str) -> Callable[[Path], Path]:
    return _bytes(name, text.encode())


def _npy(name: str, array, **kw) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        np.save(folder / name, array() if callable(array) else array, **kw)
        return folder / name

    return write


def _npz(name: str, compressed: bool = False, **arrays) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (np.savez_compressed if compressed else np.savez)(folder / name, **{k: v() if callable(v) else v for k, v in arrays.items()})
        return folder / name

    return write


def _npz_members(name: str, members: dict[str, bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        with zipfile.ZipFile(folder / name, "w") as z:
            for member, data in members.items():
                z.writestr(member, data)
        return folder / name

    return write


def _npy_header(shape, descr="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _object_array():
    return np.array([_Exec(), None], dtype=object)


def _idx_header(magic: int, dims) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def _idx(name: str, dims, n_bytes: int | None = None, *, magic: int = 0x803, labels: tuple | None = None):
    """IDX images with ``n_bytes`` of payload (default: what dims declare), gzipped if the name ends in .gz,
    streamed so that a bomb is never held in memory; ``labels`` = (name, count) writes a labels file beside it."""

    def write(folder: Path) -> Path:
        size = int(np.prod(dims)) if n_bytes is None else n_bytes
        with gzip.open(folder / name, "wb", compresslevel=1) if name.endswith(".gz") else open(folder / name, "wb") as f:
            f.write(_idx_header(magic, dims))
            for start in range(0, size, 2**20):
                f.write(bytes(min(2**20, size - start)))
        if labels is not None:
            (folder / labels[0]).write_bytes(_idx_header(0x801, (labels[1],)) + bytes(labels[1]))
        return folder / name

    return write


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (valid CRC): a decompression bomb's calling card."""
    raw = bytearray(_png(np.zeros((1, 1), dtype=np.uint8)))
    ihdr = raw[12:29]  # after the 8-byte signature and the 4-byte length: b"IHDR" + 13 bytes
    ihdr[4:12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    raw[12:29], raw[29:33] = ihdr, zlib.crc32(bytes(ihdr)).to_bytes(4, "big")
    return bytes(raw)


def _folder(name: str, files_: dict[str, bytes | np.ndarray]) -> Callable[[Path], Path]:
    """An image folder: relative path -> file bytes, or an array to save as PNG (a path ending in / is an empty folder)."""

    def write(folder: Path) -> Path:
        root = folder / name
        root.mkdir()
        for rel, content in files_.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith("/"):
                target.mkdir(exist_ok=True)
            else:
                target.write_bytes(_png(content) if isinstance(content, np.ndarray) else content)
        return root

    return write


def _zeros(shape, dtype=np.uint8) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def _with(value, at, shape=(4, 3)) -> np.ndarray:
    X = np.ones(shape)
    X[at] = value
    return X


def _gzip_bomb(name: str, n_bytes: int) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        with gzip.open(folder / name, "wb", compresslevel=1) as f:
            for _ in range(n_bytes // 2**20):
                f.write(bytes(2**20))
        return folder / name

    return write


def _npz_patched(name: str, flag_bits: int = 0, method: int | None = None) -> Callable[[Path], Path]:
    """A valid .npz whose member is marked encrypted or uses an unknown compression method."""

    def write(folder: Path) -> Path:
        buf = io.BytesIO()
        np.savez(buf, X=np.ones((2, 2)))
        raw = bytearray(buf.getvalue())
        for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
            at = raw.find(signature)
            raw[at + flags_at] |= flag_bits
            if method is not None:
                raw[at + method_at : at + method_at + 2] = method.to_bytes(2, "little")
        (folder / name).write_bytes(bytes(raw))
        return folder / name

    return write


# --- the corpus -------------------------------------------------------------------------------------

GRAY = np.zeros((4, 4), dtype=np.uint8)
FORGED_DIMS = (2**21, 2**21, 2**22)  # their product is 2**64: wraps to 0 in int64 arithmetic

DATA_CASES = [
    # .npy
    Case("npy-empty-file", _bytes("x.npy", b""), "not a .npy file"),
    Case("npy-not-numpy", _bytes("x.npy", b"just some text\n"), "not a .npy file"),
    Case("npy-nan", _npy("x.npy", _with(np.nan, (2, 1))), r"non-finite value nan at sample 2"),
    Case("npy-inf", _npy("x.npy", _with(-np.inf, (0, 0))), r"non-finite value -inf at sample 0"),
    Case("npy-beyond-float32", _npy("x.npy", _with(1e300, (3, 2))), r"non-finite value 1e\+300 at sample 3.*float32"),
    Case("npy-float16-inf", _npy("x.npy", _with(np.inf, (1, 1)).astype(np.float16)), "non-finite value inf at sample 1"),
    Case("npy-1d", _npy("x.npy", np.arange(5.0)), r"1-D array of 5 values: reshape"),
    Case("npy-0d", _npy("x.npy", np.array(3.0)), "single number"),
    Case("npy-no-samples", _npy("x.npy", np.zeros((0, 3))), "no data"),
    Case("npy-5d", _npy("x.npy", np.zeros((2, 1, 1, 1, 1))), "expected"),
    Case("npy-strings", _npy("x.npy", np.array([["1", "2"]])), "not numbers"),
    Case("npy-complex", _npy("x.npy", np.ones((2, 2), complex)), "not numbers"),
    Case("npy-object-pickle", _npy("x.npy", _object_array, allow_pickle=True), "genlab never unpickles"),
    Case("npy-truncated", _bytes("x.npy", _npy_header((1000, 1000)) + bytes(10)), "cannot read"),
    Case("npy-huge-header", _bytes("x.npy", _npy_header((10**7, 10**7)) + bytes(64)), "cannot read"),
    # .npz
    Case("npz-empty-file", _bytes("x.npz", b""), "cannot read .* as a .npz archive"),
    Case("npz-not-zip", _bytes("x.npz", b"PK\x03\x04 truncated zip"), "cannot read .* as a .npz archive"),
    Case("npz-no-arrays", _npz("x.npz"), "cannot tell which one is the data"),
    Case("npz-two-arrays", _npz("x.npz", a=np.ones((2, 2)), b=np.ones((2, 2))), "cannot tell which one is the data"),
    Case("npz-nan", _npz("x.npz", X=_with(np.nan, (1, 2))), r"x.npz\['X'\] has a non-finite value nan at sample 1"),
    Case("npz-1d", _npz("x.npz", X=np.arange(3.0)), "1-D array"),
    Case("npz-strings", _npz("x.npz", X=np.array([["a", "b"]])), "not numbers"),
    Case("npz-object-pickle", _npz("x.npz", X=_object_array), "without pickle"),
    Case("npz-object-labels", _npz("x.npz", X=np.ones((2, 2)), y=_object_array), "without pickle"),
    Case("npz-too-many-labels", _npz("x.npz", X=np.ones((3, 2)), y=np.arange(4)), "4 labels but the data has 3 samples"),
    Case("npz-too-few-labels", _npz("x.npz", X=np.ones((3, 2)), y=np.arange(2)), "2 labels but the data has 3 samples"),
    Case("npz-2d-labels", _npz("x.npz", X=np.ones((2, 2)), y=np.ones((2, 2))), r"labels must be one class per sample"),
    Case("npz-nan-labels", _npz("x.npz", X=np.ones((2, 2)), y=np.array([0.0, np.nan])), "not an integer class id"),
    Case("npz-huge-labels", _npz("x.npz", X=np.ones((2, 2)), y=np.array([0.0, 1e30])), "not an integer class id"),
    Case("npz-member-not-array", _npz_members("x.npz", {"X.npy": b"hello world, not an array"}), "magic string"),
    Case("npz-member-huge-header", _npz_members("x.npz", {"X.npy": _npy_header((10**7, 10**7)) + bytes(64)}),
         r"declares shape \(10000000, 10000000\) of float64 but holds only"),
    Case("npz-encrypted-member", _npz_patched("x.npz", flag_bits=0x1), "encrypted"),
    Case("npz-unknown-compression", _npz_patched("x.npz", method=99), "compression"),
    Case("npz-deflate-bomb", _npz("x.npz", compressed=True, X=lambda: np.zeros((1024, 1024), np.float32)),
         rf"inflates to \d+ bytes, more than the limit of {SMALL_CAP}", cap=SMALL_CAP),
    # text tables
    Case("csv-empty-file", _text("x.csv", ""), "is empty"),
    Case("csv-blank-lines", _text("x.csv", "\n  \n# only a comment\n"), "is empty"),
    Case("csv-header-only", _text("x.csv", "a,b\n"), "no data rows"),
    Case("csv-nan", _text("x.csv", "a,b\n1,2\n3,nan\n"), r"line 3, column 2 \('b'\) is 'nan', not finite"),
    Case("csv-inf", _text("x.csv", "1,2\n-inf,4\n"), r"line 2, column 1 is '-inf', not finite"),
    Case("csv-beyond-float32", _text("x.csv", "1,2\n3,1e39\n"), r"line 2, column 2 is '1e39', not finite in float32"),
    Case("csv-string", _text("x.csv", "1,2\n3,x7\n"), r"line 2, column 2 is not a number: 'x7'"),
    Case("csv-empty-field", _text("x.csv", "1,2\n3,\n"), r"line 2, column 2 is empty"),
    Case("csv-ragged-long", _text("x.csv", "1,2\n3,4,5\n"), r"line 2: 3 fields but line 1 has 2"),
    Case("csv-ragged-short", _text("x.csv", "1,2,3\n4,5\n"), r"line 2: 2 fields but line 1 has 3"),
    Case("csv-not-utf8", _bytes("x.csv", bytes(range(256))), "not UTF-8 text"),
    Case("tsv-nan", _text("x.tsv", "1\t2\nNaN\t4\n"), r"line 2, column 1 is 'NaN', not finite"),
    Case("tsv-ragged", _text("x.tsv", "1\t2\n3\n"), r"line 2: 1 fields but line 1 has 2"),
    Case("txt-string", _text("x.txt", "1 2\n3 four\n"), r"line 2, column 2 is not a number: 'four'"),
    Case("csv-gz-bomb", _gzip_bomb("x.csv.gz", 8 * 2**20), "unsupported file type"),  # refused unopened
    # MNIST IDX
    Case("idx-empty-file", _bytes("t-images-idx3-ubyte", b""), "magic number nothing"),
    Case("idx-bad-magic", _idx("t-images-idx3-ubyte", (2, 3, 3), magic=0x801), "magic number 0x00000801, expected 0x00000803"),
    Case("idx-short-header", _bytes("t-images-idx3-ubyte", _idx_header(0x803, (2,))), "truncated"),
    Case("idx-zero-dims", _idx("t-images-idx3-ubyte", (0, 3, 3)), "no data"),
    Case("idx-truncated", _idx("t-images-idx3-ubyte", (2, 3, 3), n_bytes=10), "holds 10 data bytes but its header declares"),
    Case("idx-too-long", _idx("t-images-idx3-ubyte", (2, 3, 3), n_bytes=30), "holds 30 data bytes but its header declares"),
    Case("idx-forged-dims", _idx("t-images-idx3-ubyte", FORGED_DIMS, n_bytes=0), "header declares"),
    Case("idx-labels-wrong-count", _idx("t-images-idx3-ubyte", (2, 3, 3), labels=("t-labels-idx1-ubyte", 3)),
         "has 3 labels but .* has 2 images", names="t-labels-idx1-ubyte"),
    Case("idx-labels-file-given", _idx("t-labels-idx1-ubyte", (3,), magic=0x801), "is an IDX labels file"),
    Case("idx-gz-not-gzip", _bytes("t-images-idx3-ubyte.gz", b"\x1f\x8b not really gzip"), "cannot read"),
    Case("idx-gz-truncated", _idx("t-images-idx3-ubyte.gz", (2, 3, 3), n_bytes=10), "truncated"),
    Case("idx-gz-forged-dims", _idx("t-images-idx3-ubyte.gz", FORGED_DIMS, n_bytes=0), f"declares {2**64} bytes of data"),
    # a bomb: the header declares 8 bytes, the stream inflates to 8 MiB; reading stops after 9
    Case("idx-gz-bomb", _idx("t-images-idx3-ubyte.gz", (2, 2, 2), n_bytes=8 * 2**20),
         "inflates to more than the 8 bytes its header declares"),
    # an honest header beyond the cap: refused before anything is inflated or allocated
    Case("idx-gz-past-cap", _idx("t-images-idx3-ubyte.gz", (2 * SMALL_CAP // 784, 28, 28)),
         rf"declares \d+ bytes of data, more than the limit of {SMALL_CAP}", cap=SMALL_CAP),
    # folders of images
    Case("images-empty-folder", _folder("imgs", {}), "is empty"),
    Case("images-empty-class", _folder("imgs", {"a/1.png": GRAY, "b/": b""}), "has no images", names="b"),
    Case("images-mixed-sizes", _folder("imgs", {"a.png": GRAY, "b.png": _zeros((4, 5))}), r"b.png is 5x4 but .*a.png is 4x4"),
    Case("images-non-image-file", _folder("imgs", {"a.png": GRAY, "notes.txt": b"hello"}), "notes.txt is not an image file"),
    Case("images-corrupt-png", _folder("imgs", {"a.png": GRAY, "b.png": b"\x89PNG\r\n\x1a\n garbage"}), "b.png is not a readable"),
    Case("images-empty-png", _folder("imgs", {"a.png": b""}), "a.png is not a readable"),
    Case("images-truncated-png", _folder("imgs", {"a.png": _png(_zeros((32, 32)) + 7)[:60]}), "a.png is not a readable"),
    Case("images-16-bit", _folder("imgs", {"a.png": _zeros((4, 4), np.uint16)}), r"error: \S*a\.png has pixel mode I;16"),
    Case("images-loose-file", _folder("imgs", {"cls/a.png": GRAY, "b.png": GRAY}), "b.png.*inside one"),
    # Pillow warns above MAX_IMAGE_PIXELS (89M) and refuses above twice that
    Case("images-bomb-warning-size", _folder("imgs", {"a.png": _png_declaring(10_000, 10_000)}), "a.png is not a readable.*bomb"),
    Case("images-bomb-error-size", _folder("imgs", {"a.png": _png_declaring(20_000, 20_000)}), "a.png is not a readable.*bomb"),
    # anything else
    Case("unsupported-extension", _bytes("x.parquet", b"PAR1"), "unsupported file type"),
    Case("missing-file", lambda folder: folder / "nowhere.npz", "unknown data source"),
]


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """A fitted autoencoder's folder, for the commands that apply a model to data."""
    path = tmp_path_factory.mktemp("ae")
    X, _ = genlab.datasets.load("onehot8")
    genlab.Autoencoder(2, hidden=(4,), epochs=1, random_state=0).fit(X).save(path)
    return path


DATA_COMMANDS = {
    "train-ae": lambda data, run, tmp: ["train", "ae", "--data", data, "--epochs", "1", "--quiet", "--out", tmp / "run"],
    "train-vae": lambda data, run, tmp: ["train", "vae", "--data", data, "--epochs", "1", "--quiet", "--out", tmp / "run"],
    "train-gan": lambda data, run, tmp: ["train", "gan", "--data", data, "--epochs", "1", "--quiet", "--out", tmp / "run"],
    "encode": lambda data, run, tmp: ["encode", run, "--data", data, "--out", tmp / "z.npy"],
    "reconstruct": lambda data, run, tmp: ["reconstruct", run, "--data", data, "--out", tmp / "r.npy", "--png", tmp / "r.png"],
    "interpolate": lambda data, run, tmp: ["interpolate", run, "--data", data, "--index", "0", "1", "--out", tmp / "i.png"],
    "traverse": lambda data, run, tmp: ["traverse", run, "--data", data, "--out", tmp / "t.png"],
}


def run_cli(capsys, argv) -> tuple[int, str]:
    code, _, err = run(capsys, *argv)
    return code, err


def check_one_line_user_error(code: int, err: str, case: Case, given: Path) -> None:
    assert_user_error(code, err, case.names or given.name)
    assert re.search(case.match, err), err


def _write(case: Case, tmp_path: Path, monkeypatch) -> Path:
    """Write the case's input into tmp_path/in, with tmp_path the working directory (where PWNED would land)."""
    monkeypatch.chdir(tmp_path)
    if case.cap is not None:
        monkeypatch.setattr(files, "MAX_DECOMPRESSED_BYTES", case.cap)
    (tmp_path / "in").mkdir()
    return case.write(tmp_path / "in")


# every case through a training command and an applying command; one case per format (and the pickle and bomb
# cases) through every other command: they all read data through the same datasets.load
FULL_CORPUS_COMMANDS = ("train-ae", "encode")
ONE_PER_FORMAT = {"npy-nan", "npy-object-pickle", "npz-too-many-labels", "npz-deflate-bomb", "csv-ragged-long", "tsv-nan",
                  "txt-string", "idx-bad-magic", "idx-gz-bomb", "images-mixed-sizes", "images-corrupt-png", "unsupported-extension"}
DATA_RUNS = [pytest.param(case, command, id=f"{case.id}-{command}") for command in DATA_COMMANDS for case in DATA_CASES
             if command in FULL_CORPUS_COMMANDS or case.id in ONE_PER_FORMAT]


@pytest.mark.parametrize(("case", "command"), DATA_RUNS)
def test_bad_data_is_one_line_exit_2_and_leaves_nothing(case, command, ae_run, tmp_path, capsys, monkeypatch):
    data = _write(case, tmp_path, monkeypatch)
    code, err = run_cli(capsys, DATA_COMMANDS[command](data, ae_run, tmp_path))
    check_one_line_user_error(code, err, case, data)
    # no run directory (nor a hidden partial one), no output file, no PWNED: only the input is there
    assert [p.name for p in tmp_path.iterdir()] == ["in"]


# --- ratings tables (genlab recommend fit) ----------------------------------------------------------

RATINGS_CASES = [
    Case("empty-file", _text("r.csv", ""), "is empty"),
    Case("blank-lines", _text("r.csv", "\n \n\n"), "is empty"),
    Case("header-only", _text("r.csv", "userId,movieId,rating,timestamp\n"), "no data rows"),
    Case("one-column", _text("r.csv", "1\n2\n3\n"), "line 1: 1 fields"),
    Case("five-columns", _text("r.csv", "1,2,3,4,5\n"), "line 1: 5 fields"),
    Case("ragged", _text("r.csv", "1,10,4.0\n1,20\n"), "line 2: 2 fields, but the rows before have 3"),
    Case("nan-rating", _text("r.tsv", "1\t10\t4\n1\t20\tnan\n"), "line 2: the rating 'nan' is not finite"),
    Case("inf-rating", _text("r.csv", "1,10,inf\n"), "line 1: the rating 'inf' is not finite"),
    Case("string-rating", _text("r.csv", "userId,movieId,rating\n1,10,4.0\n1,20,great\n"), "line 3: the rating 'great' is not a number"),
    Case("empty-user", _text("r.csv", "1,10,4\n,20,4\n"), "line 2: the user id is empty"),
    Case("not-utf8", _bytes("r.csv", bytes(range(256))), "not UTF-8 text"),
    Case("gz-bomb", _gzip_bomb("r.csv.gz", 8 * 2**20), "not UTF-8 text"),  # refused at its first bytes, never inflated
    Case("all-below-threshold", _text("r.csv", "1,10,1.0\n1,20,2.0\n"), r"no rating .* is above threshold=3.5"),
    Case("too-few-per-user", _text("r.csv", "1,10,5\n2,20,5\n"), "no user .* has min_interactions=5"),
    Case("missing-file", lambda folder: folder / "nowhere.csv", "does not exist"),
]


@pytest.mark.parametrize("case", RATINGS_CASES, ids=repr)
def test_bad_ratings_table_is_one_line_exit_2_and_leaves_nothing(case, tmp_path, capsys, monkeypatch):
    ratings = _write(case, tmp_path, monkeypatch)
    code, err = run_cli(capsys, ["recommend", "fit", "--ratings", ratings, "--quiet", "--out", tmp_path / "run"])
    check_one_line_user_error(code, err, case, ratings)
    assert [p.name for p in tmp_path.iterdir()] == ["in"]


# --- broken model folders (genlab sample / encode RUN_DIR) ---------------------------------------------


def _edit_json(edit):
    def write(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        (folder / "model.json").write_text(json.dumps(edit(meta)))

    return write


def _write_weights(data: bytes | Callable[[bytes], bytes]):
    def write(folder: Path) -> None:
        old = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data(old) if callable(data) else data)

    return write


def _nan_weights(folder: Path) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    first = sorted(k for k in tensors if k.startswith("module/"))[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(folder / "model.safetensors"))


MODEL_CASES = [  # (id, how to break a copy of the model folder, the file named, regex)
    ("truncated-weights", _write_weights(lambda old: old[: len(old) // 2]), "model.safetensors", "not a readable safetensors"),
    ("bad-header-length", _write_weights((10**12).to_bytes(8, "little") + b"{}"), "model.safetensors", "not a readable safetensors"),
    ("pickle-weights", _write_weights(pickle.dumps(_Exec())), "model.safetensors", "not a readable safetensors"),
    ("nan-weights", _nan_weights, "model.safetensors", "contains NaN or infinity"),
    ("missing-weights", lambda folder: (folder / "model.safetensors").unlink(), "model.safetensors", "is missing"),
    ("json-garbage", lambda folder: (folder / "model.json").write_bytes(b"\x00{not json"), "model.json", "not valid JSON"),
    ("unknown-class", _edit_json(lambda m: {**m, "class": "os.system"}), "model.json", "not a genlab estimator"),
    ("future-version", _edit_json(lambda m: {**m, "format_version": 99}), "model.json", "format version 99"),
    ("huge-latent-dim", _edit_json(lambda m: {**m, "params": {**m["params"], "latent_dim": 10**9}}), "model.json", "does not match"),
]


@pytest.mark.parametrize("command", ["sample", "encode"])
@pytest.mark.parametrize(("case", "break_it", "names", "match"), MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_broken_model_folder_is_one_line_exit_2(case, break_it, names, match, command, ae_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "in"
    shutil.copytree(ae_run, run)
    break_it(run)
    argv = ["sample", run, "-n", "4"] if command == "sample" else ["encode", run, "--data", "onehot8"]
    code, err = run_cli(capsys, [*argv, "--out", tmp_path / "out.npy"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert names in err and re.search(match, err), err
    assert [p.name for p in tmp_path.iterdir()] == ["in"]


# --- labels that would build an absurd model --------------------------------------------------------


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_conditional_model_refuses_huge_class_ids(family, tmp_path, capsys):
    # class ids size the one-hot inputs: 10**12 used to make the allocator fail (exit 1) instead of a user error
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).random((20, 4), dtype=np.float32), y=np.arange(20) * 10**11)
    code, err = run_cli(capsys, ["train", family, "--data", tmp_path / "d.npz", "--conditional", "--epochs", "1", "--quiet",
                                 "--out", tmp_path / "run"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "class id 1900000000000" in err and "renumber" in err
    assert not (tmp_path / "run").exists()


# --- the real process: stderr is exactly one line ----------------------------------------------------


def test_real_stderr_is_one_line_for_a_value_beyond_float32(tmp_path):
    # in-process runs cannot see a warning printed by NumPy; a subprocess can
    np.save(tmp_path / "big.npy", _with(1e300, (1, 1)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "genlab", "train", "ae", "--data", str(tmp_path / "big.npy"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "big.npy" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cls", [genlab.Autoencoder, genlab.VAE, genlab.GAN, genlab.MultVAE, genlab.EASE])
def test_verbose_takes_a_bool_as_scikit_learn_users_pass_it(cls, capsys):
    """verbose=False is 0 and True is 1 (scikit-learn's estimators take both); other non-integers stay errors."""
    from sklearn.base import clone

    assert cls(verbose=False)._validated_params()["verbose"] == 0
    assert cls(verbose=True)._validated_params()["verbose"] == 1
    assert clone(cls(verbose=False)).get_params()["verbose"] is False  # the parameter is kept as given
    for bad in (-1, 0.5, "yes"):
        with pytest.raises(genlab.InvalidInputError, match="verbose must be an integer >= 0 or a bool"):
            cls(verbose=bad)._validated_params()
