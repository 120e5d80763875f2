"""Property-based fuzzing of every parser (issue 7, item 6): whatever bytes a file holds, reading it either
works (and returns what the contract says) or raises one of genlab's documented errors, an
:class:`~genlab.errors.InvalidInputError`; no other exception, no hang.

Inputs are random bytes, random text for the tables, and random edits of valid files (which reach the
deeper layers of each format). ``derandomize=True`` makes every run try the same examples.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import signal
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes

import genlab
from genlab.data.interactions import load_interactions
from genlab.errors import InvalidInputError
from genlab.training.checkpoint import LoopState, load_checkpoint, save_checkpoint

# a warning would be a second line on the command line's stderr: count it as a failure (DeprecationWarnings
# raised inside libraries are not shown outside __main__)
pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# a modest number of examples keeps `make test` fast; GENLAB_FUZZ_EXAMPLES=5000 for a long hunt
FUZZ = settings(max_examples=int(os.environ.get("GENLAB_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME_LIMIT = 20  # seconds for one example: a reader that takes longer is hanging


@contextlib.contextmanager
def time_limit(seconds: float = TIME_LIMIT):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    if not hasattr(signal, "SIGALRM"):  # Windows: no alarm clock, no guard
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a parser hangs on this input")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def only_documented_errors(read, *args, **kwargs):
    """``read(*args)``'s result, or None when it raised an InvalidInputError; anything else fails the test."""
    with time_limit():
        try:
            return read(*args, **kwargs)
        except InvalidInputError as err:
            assert str(err).strip(), repr(err)  # something to print
            return None


# --- strategies -------------------------------------------------------------------------------------


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes overwritten, inserted or deleted, and perhaps truncated."""

    @st.composite
    def edit(draw):
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, max(0, len(data) - 1)))
            kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
            if kind == "set" and data:
                data[at] = draw(st.integers(0, 255))
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif kind == "delete":
                del data[at : at + draw(st.integers(1, 8))]
            elif kind == "truncate":
                del data[at:]
        return bytes(data)

    return edit()


def contents(*valid: bytes, prefixes: tuple[bytes, ...] = ()) -> st.SearchStrategy[bytes]:
    """Random bytes, random bytes after a format's magic, or an edit of a valid file."""
    options = [st.binary(max_size=512)]
    options += [st.binary(max_size=256).map(lambda tail, p=p: p + tail) for p in prefixes]
    options += [mutated(v) for v in valid]
    return st.one_of(options)


def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.astype(np.uint8).tobytes()


def _image_bytes(fmt: str, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).convert(mode).save(buf, fmt)
    return buf.getvalue()


@st.composite
def npy_headers(draw) -> bytes:
    """A well-formed .npy header with an arbitrary dtype and shape, then arbitrary bytes."""
    descr = draw(st.sampled_from(["<f4", "<f8", "<f2", "|u1", ">i4", "<i8", "|b1", "<c8", "|O", "<U3", "|S2", "|V4"]))
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 9), st.integers(0, 2**63 - 1)), max_size=5)))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": draw(st.booleans()), "shape": shape})
    return buf.getvalue() + draw(st.binary(max_size=256))


@st.composite
def idx_files(draw) -> bytes:
    """An IDX header with the images magic and arbitrary dimensions, then arbitrary bytes."""
    dims = draw(st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=0, max_size=4))
    return (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + draw(st.binary(max_size=256))


@st.composite
def zips(draw) -> bytes:
    """A zip archive of arbitrary members (a data key, a label key, anything else) with arbitrary contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as z:
        names = draw(st.lists(st.sampled_from(["X.npy", "y.npy", "data", "labels.npy", "other.npy"]), max_size=3, unique=True))
        for name in names:
            z.writestr(name, draw(st.one_of(st.binary(max_size=128), npy_headers())))
    return buf.getvalue()


VALID_X = np.arange(12, dtype=np.float32).reshape(4, 3)
VALID_LABELS = np.array([0, 1, 1, 0])
TABLE_ALPHABET = "0123456789.,;\t -+eEnaifNI#\"x\n\r"

FORMATS = {  # file name -> what to write into it
    "data.npy": contents(_npy_bytes(VALID_X), _npy_bytes(np.zeros((2, 3, 4), np.uint8)), prefixes=(b"\x93NUMPY",)) | npy_headers(),
    "data.npz": contents(_npz_bytes(X=VALID_X, y=VALID_LABELS), prefixes=(b"PK\x03\x04",)) | zips(),
    "data.csv": st.text(TABLE_ALPHABET, max_size=200).map(str.encode) | contents(b"a,b,c\n1,2,3\n4,5,6\n"),
    "data.tsv": st.text(TABLE_ALPHABET, max_size=200).map(str.encode) | contents(b"1\t2\n3\t4\n"),
    "data.txt": st.text(TABLE_ALPHABET, max_size=200).map(str.encode),
    "train-images-idx3-ubyte": contents(_idx_bytes(np.zeros((2, 3, 3)), 0x803)) | idx_files(),
    "train-images-idx3-ubyte.gz": (contents(_idx_bytes(np.zeros((2, 3, 3)), 0x803)) | idx_files()).map(gzip.compress)
    | contents(gzip.compress(_idx_bytes(np.zeros((2, 3, 3)), 0x803)), prefixes=(b"\x1f\x8b",)),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_datasets_load_survives_any_bytes(name):
    @FUZZ
    @given(FORMATS[name])
    def check(data: bytes):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            result = only_documented_errors(genlab.datasets.load, path)
        if result is not None:  # then it must be what load() promises
            X, y = result
            assert X.ndim in (2, 4) and len(X) >= 1 and X.dtype in (np.uint8, np.float32)
            assert X.dtype == np.uint8 or np.isfinite(X).all()
            assert y is None or (y.dtype == np.int64 and y.shape == (len(X),))

    check()


def test_idx_labels_beside_the_images_survive_any_bytes():
    images = _idx_bytes(np.zeros((2, 3, 3)), 0x803)

    @FUZZ
    @given(contents(_idx_bytes(np.arange(2), 0x801), prefixes=((0x801).to_bytes(4, "big"),)))
    def check(labels: bytes):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "t-images-idx3-ubyte").write_bytes(images)
            (Path(folder) / "t-labels-idx1-ubyte").write_bytes(labels)
            only_documented_errors(genlab.datasets.load, Path(folder) / "t-images-idx3-ubyte")

    check()


IMAGES = {".png": _image_bytes("PNG"), ".jpg": _image_bytes("JPEG"), ".bmp": _image_bytes("BMP", "RGB"), ".gif": _image_bytes("GIF")}


@pytest.mark.parametrize("suffix", list(IMAGES))
def test_image_folder_survives_any_bytes(suffix):
    @FUZZ
    @given(contents(IMAGES[suffix], prefixes=(IMAGES[suffix][:8],)))
    def check(data: bytes):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "a.png").write_bytes(IMAGES[".png"])  # a good image first: the bad one is compared to it
            (Path(folder) / f"b{suffix}").write_bytes(data)
            only_documented_errors(genlab.datasets.load, Path(folder))

    check()


RATINGS = b"userId,movieId,rating,timestamp\n1,10,4.0,9\n1,20,5.0,9\n2,10,3.0,9\n"


@pytest.mark.parametrize("name", ["ratings.csv", "u.data", "ratings.dat"])
def test_load_interactions_survives_any_bytes(name):
    @FUZZ
    @given(st.text(TABLE_ALPHABET + ":u", max_size=300).map(str.encode) | contents(RATINGS),
           st.sampled_from([None, ",", "\t", "::", " "]), st.booleans())
    def check(data: bytes, sep, implicit):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            result = only_documented_errors(load_interactions, path, sep=sep, implicit=implicit, min_interactions=1)
        if result is not None:
            assert result.matrix.shape == (len(result.user_ids), len(result.item_ids)) and result.matrix.nnz >= 1

    check()


# --- saved models and checkpoints -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["Autoencoder", "VAE", "GAN"])
def saved_model(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    X, _ = genlab.datasets.load("onehot8")
    getattr(genlab, request.param)(2, hidden=(4,), epochs=1, random_state=0).fit(X).save(path)
    return (path / "model.json").read_bytes(), (path / "model.safetensors").read_bytes()


def _load_model_files(model_json: bytes, weights: bytes):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "model.json").write_bytes(model_json)
        (Path(folder) / "model.safetensors").write_bytes(weights)
        return only_documented_errors(genlab.load, folder)


def test_model_files_survive_any_bytes(saved_model):
    model_json, weights = saved_model

    @FUZZ
    @given(contents(model_json), contents(weights, prefixes=(weights[:8],)), st.sampled_from(["json", "weights", "both"]))
    def check(new_json: bytes, new_weights: bytes, which: str):
        _load_model_files(new_json if which != "weights" else model_json, new_weights if which != "json" else weights)

    check()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every key path into a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def test_model_json_survives_any_field_value(saved_model):
    model_json, weights = saved_model
    meta = json.loads(model_json)
    paths = sorted(_paths(meta), key=repr)

    @FUZZ
    @given(st.sampled_from(paths), JSON_VALUES, st.booleans())
    def check(path, value, delete):
        doc = json.loads(model_json)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        _load_model_files(json.dumps(doc).encode(), weights)

    check()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny module, and a fresh (module, optimisers, rngs) to load it into."""
    def parts():
        module = torch.nn.Linear(3, 2)
        return module, {"main": torch.optim.Adam(module.parameters())}, {"data": torch.Generator().manual_seed(0)}

    module, optimizers, rngs = parts()
    module(torch.ones(1, 3)).sum().backward()
    optimizers["main"].step()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt"), module, optimizers, rngs, LoopState(epoch=1, global_step=1))
    return path.read_bytes(), parts


def _load_checkpoint_bytes(data: bytes, parts):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "step-000000001.safetensors"
        path.write_bytes(data)
        return only_documented_errors(load_checkpoint, path, *parts())


def test_checkpoint_survives_any_bytes(checkpoint):
    valid, parts = checkpoint

    @FUZZ
    @given(contents(valid, prefixes=(valid[:8],)))
    @example(valid.replace(b'"rng/data"', b'" ng/data"'))  # one byte edit renames a tensor: KeyError
    def check(data: bytes):
        _load_checkpoint_bytes(data, parts)

    check()


def test_checkpoint_survives_any_metadata(checkpoint):
    """A well-formed safetensors file whose genlab metadata (JSON) or tensors are arbitrary."""
    valid, parts = checkpoint
    tensors = safetensors_load(valid)
    header = json.loads(valid[8 : 8 + int.from_bytes(valid[:8], "little")])  # safetensors: u64 length, JSON header
    meta = json.loads(header["__metadata__"]["genlab_checkpoint"])
    paths = sorted(_paths(meta), key=repr)

    @FUZZ
    @given(st.sampled_from(paths), JSON_VALUES, st.sets(st.sampled_from(sorted(tensors)), max_size=2))
    def check(path, value, dropped):
        doc = json.loads(json.dumps(meta))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        kept = {k: v for k, v in tensors.items() if k not in dropped}
        data = safetensors_bytes(kept, metadata={"genlab_checkpoint": json.dumps(doc)})
        _load_checkpoint_bytes(data, parts)

    check()


def test_time_limit_catches_a_hang():
    with pytest.raises(TimeoutError), time_limit(0.2):
        while True:
            math.sqrt(2.0)
