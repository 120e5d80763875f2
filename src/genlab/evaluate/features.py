"""Reference features for image-quality metrics, learned offline by genlab itself (spec §7).

No pretrained network is downloaded, ever. With labels, genlab trains a small classifier on the
data it is given (a CNN for images, an MLP for vectors: seeded 80/20 split, Adam, a few epochs) and
reports its test accuracy; its penultimate layer gives the features for FID, KID and
precision/recall, its softmax the class metrics. Without labels the encoder of a genlab
:class:`~genlab.Autoencoder` gives the features. Vectors with at most ``RAW_MAX_FEATURES``
features (the 2-D toys) are their own features.

Trained networks are cached per data fingerprint (sha256 of X, y, the seed and ``ARCH_VERSION``)
in the user's cache directory (:func:`cache_dir`) as safetensors + a JSON sidecar; loading never
unpickles, and an entry that fails its checks is retrained with a warning.

>>> from genlab.evaluate import reference_features
>>> fe = reference_features(X_train, y_train)        # doctest: +SKIP
>>> fe.note                                           # doctest: +SKIP
"features from genlab's reference CNN trained on these labels (test accuracy 97.8%)"
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes
from sklearn.model_selection import train_test_split
from sklearn.utils.metaestimators import available_if
from torch import nn

from .. import __version__
from .._fileio import atomic_write_bytes, atomic_write_text
from .._params import check_number
from .._validation import check_array, check_labels
from ..errors import InvalidInputError, ModelFileError
from ..estimators import Autoencoder
from ..io import load
from ..nets import MLP, ConvEncoder
from ..training import flush_denormals

ARCH_VERSION = 1  # bump when the networks or their training change: old cache entries are then ignored
FORMAT = "genlab-reference-features"
FEATURE_DIM = 128
RAW_MAX_FEATURES = 16  # vectors this short (the 2-D toys, onehot8) are compared as they are
TEST_FRACTION = 0.2
TARGET_STEPS = 400  # optimiser steps of the classifier, spread over 5..30 epochs
BATCH_SIZE = 128
MIN_LABELLED = 10
PREDICT_BATCH = 1024


def cache_dir() -> Path:
    """genlab's cache: ``$GENLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/genlab``, else ``~/.cache/genlab``."""
    if os.environ.get("GENLAB_CACHE_DIR"):
        return Path(os.environ["GENLAB_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "genlab"
    return Path.home() / ".cache" / "genlab"


# -- networks -------------------------------------------------------------------------------------


class ReferenceNet(nn.Module):
    """Classifier body -> ReLU features (n, FEATURE_DIM) -> linear head (n, n_classes).

    Images at least 8 pixels on each side get strided convolutions (32, 64 channels; a third with
    128 from 32 pixels up), anything else a one-hidden-layer MLP. Inputs are standardised by the
    training data's global mean and std, stored as buffers so they travel with the weights.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        if _is_conv_image(input_shape):
            channels = (32, 64) if min(input_shape[1:]) < 32 else (32, 64, 128)
            self.body = ConvEncoder(input_shape, FEATURE_DIM, channels=channels)
        else:
            self.body = MLP(math.prod(input_shape), (256,), FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, n_classes)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body((x - self.mean) / self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _is_conv_image(input_shape: tuple[int, ...]) -> bool:
    return len(input_shape) == 3 and min(input_shape[1:]) >= 8


# -- the extractor ----------------------------------------------------------------------------------


class FeatureExtractor:
    """Maps samples (in the units of the data it was built on) to features for the metrics.

    Learned features are multiplied by ``scale``, fixed when the network is trained so that the
    training data's features have a root-mean-square of 1: the cubic KID kernel (xᵀy/d + 1)³ then
    works in the regime it was designed for, whatever the network's activation scale.

    Attributes
    ----------
    kind : {"classifier", "autoencoder", "raw"}
    test_accuracy : float or None
        The classifier's accuracy on its held-out 20% (None unless ``kind == "classifier"``).
    note : str
        One sentence for reports: where the features come from and how far to trust them.
    input_shape : tuple of int
    n_classes : int or None
    scale : float
        Factor applied to the network's features (1 for raw data).
    cached : bool
        True when the network was loaded from the cache rather than trained now.
    path : pathlib.Path or None
        The cache entry's JSON sidecar.
    info : dict
        The sidecar's contents (fingerprint, sizes, epochs, training seconds).
    """

    def __init__(self, kind: str, *, input_shape: tuple[int, ...], note: str, test_accuracy: float | None = None,
                 network: ReferenceNet | None = None, autoencoder=None, n_classes: int | None = None, cached: bool = False,
                 path: Path | None = None, info: dict | None = None, scale: float = 1.0):
        self.kind = kind
        self.input_shape = tuple(input_shape)
        self.note = note
        self.test_accuracy = test_accuracy
        self.n_classes = n_classes
        self.cached = cached
        self.path = path
        self.info = info or {}
        self.scale = scale
        self._network = network
        self._autoencoder = autoencoder

    def __repr__(self) -> str:
        return f"FeatureExtractor(kind={self.kind!r}, input_shape={self.input_shape}, test_accuracy={self.test_accuracy})"

    def _check(self, X) -> np.ndarray:
        return check_array(X, expected_shape=self.input_shape)

    @torch.no_grad()
    def _run(self, fn, X) -> np.ndarray:
        x = self._check(X)
        self._network.eval()
        outs = [fn(torch.from_numpy(np.ascontiguousarray(x[s:s + PREDICT_BATCH], dtype=np.float32))).numpy()
                for s in range(0, len(x), PREDICT_BATCH)]
        return np.concatenate(outs).astype(np.float64)

    def features(self, X) -> np.ndarray:
        """Features of ``X`` (n, *input_shape): (n, d) float64."""
        if self.kind == "raw":
            x = self._check(X)
            return x.reshape(len(x), -1).astype(np.float64)  # (n, d)
        if self.kind == "autoencoder":
            return self._autoencoder.transform(self._check(X)).astype(np.float64) * self.scale
        return self._run(self._network.features, X) * self.scale

    def _is_classifier(self) -> bool:
        return self.kind == "classifier"

    @available_if(_is_classifier)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of the reference classifier: (n, n_classes) float64, rows sum to 1."""
        return self._run(lambda x: torch.softmax(self._network(x).double(), dim=1), X)


def reference_features(X_train, y_train=None, *, random_state: int = 0) -> FeatureExtractor:
    """The feature extractor for data like ``X_train``: trained now, or loaded from the cache.

    Parameters
    ----------
    X_train : array (n, d) or (n, c, h, w)
        Real data in the units the compared samples will be given in.
    y_train : array (n,) of int, optional
        Class labels. Given: a reference classifier (CNN for images, MLP for vectors) is trained on
        a seeded 80% and tested on the other 20%. Missing: an autoencoder's encoder gives the features.
    random_state : int, default 0
        Seed of the split, the initial weights and the batches. Part of the cache key.

    Returns
    -------
    FeatureExtractor
    """
    X = check_array(X_train, name="X_train")
    seed = _seed(random_state)
    input_shape = tuple(int(s) for s in X.shape[1:])
    n_features = math.prod(input_shape)
    if len(input_shape) == 1 and n_features <= RAW_MAX_FEATURES:
        return FeatureExtractor("raw", input_shape=input_shape,
                                note=f"the data has {n_features} features: metrics are computed on the data itself "
                                     "(no learned features)")
    if y_train is None:
        return _cached(X, None, seed, "autoencoder")
    y = check_labels(y_train, len(X), name="y_train")
    if len(X) < MIN_LABELLED or len(np.unique(y)) < 2:
        raise InvalidInputError(f"the reference classifier needs at least {MIN_LABELLED} labelled samples of at least 2 "
                                f"classes; got {len(X)} samples of {len(np.unique(y))} class(es). Pass y_train=None to "
                                "use autoencoder features instead.")
    return _cached(X, y, seed, "classifier")


def _seed(random_state) -> int:
    return check_number("random_state", random_state, low=0, what="a non-negative int (it is part of the cache key)")


def fingerprint(X: np.ndarray, y: np.ndarray | None, seed: int, kind: str) -> str:
    """sha256 of everything a reference network depends on: data bytes, labels, seed, kind, ARCH_VERSION."""
    h = hashlib.sha256()
    h.update(f"{FORMAT} v{ARCH_VERSION} {kind} seed={seed} {X.shape} {X.dtype}".encode())
    h.update(np.ascontiguousarray(X).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def _cached(X: np.ndarray, y: np.ndarray | None, seed: int, kind: str) -> FeatureExtractor:
    """Load the entry for (X, y, seed, kind) from the cache, or train it and store it."""
    fp = fingerprint(X, y, seed, kind)
    folder = cache_dir() / "reference"
    sidecar = folder / f"{kind}-{fp[:32]}.json"
    if sidecar.exists():
        try:
            return _load_entry(sidecar, fp, kind)
        except (ModelFileError, OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, SafetensorError) as exc:
            warnings.warn(f"the cached reference network {sidecar} is unreadable ({type(exc).__name__}: {exc}); retraining it.",
                          RuntimeWarning, stacklevel=3)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "classifier":
        return _train_classifier(X, y, seed, fp, sidecar)
    return _train_autoencoder(X, seed, fp, sidecar)


def _entry_files(sidecar: Path, kind: str) -> dict[str, Path]:
    """The files of a cache entry, by the names its sidecar records checksums under."""
    if kind == "autoencoder":
        folder = sidecar.with_suffix("")
        return {f"{folder.name}/{name}": folder / name for name in ("model.json", "model.safetensors")}
    weights = sidecar.with_suffix(".safetensors")
    return {weights.name: weights}


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_entry(sidecar: Path, fp: str, kind: str) -> FeatureExtractor:
    info = json.loads(sidecar.read_text(encoding="utf-8"))
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("fingerprint") != fp or info.get("kind") != kind:
        raise ModelFileError("the sidecar does not describe this data")
    input_shape = tuple(int(s) for s in info["input_shape"])
    # file names follow from the sidecar's own name, never from its contents
    files = _entry_files(sidecar, kind)
    if set(info["files"]) != set(files):
        raise ModelFileError("the sidecar lists other files than this entry has")
    for name, path in files.items():
        if _sha256_file(path) != info["files"][name]:
            raise ModelFileError(f"{name} does not match its checksum")
    if kind == "autoencoder":
        ae = load(sidecar.with_suffix(""))
        return FeatureExtractor(kind, input_shape=input_shape, note=_note(kind, None), autoencoder=ae, cached=True,
                                path=sidecar, info=info, scale=float(info["feature_scale"]))
    n_classes = int(info["n_classes"])
    tensors = safetensors_load(sidecar.with_suffix(".safetensors").read_bytes())
    net = ReferenceNet(input_shape, n_classes)
    net.load_state_dict(tensors, strict=True)  # RuntimeError on missing, unexpected or mis-shaped tensors
    if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
        raise ModelFileError("weights contain NaN or infinity")
    accuracy = float(info["test_accuracy"])
    return FeatureExtractor(kind, input_shape=input_shape, note=_note(kind, accuracy, input_shape), test_accuracy=accuracy,
                            network=net.eval(), n_classes=n_classes, cached=True, path=sidecar, info=info,
                            scale=float(info["feature_scale"]))


def _note(kind: str, accuracy: float | None, input_shape: tuple[int, ...] = ()) -> str:
    if kind == "classifier":
        net = "CNN" if _is_conv_image(input_shape) else "MLP"
        return f"features from genlab's reference {net} trained on these labels (test accuracy {100 * accuracy:.1f}%)"
    return ("no labels: features from an autoencoder's encoder — FID/KID values are not comparable with "
            "classifier-feature values")


def _unit_rms_scale(features: np.ndarray) -> float:
    """1 / root-mean-square of the training features (1 when they are all zero)."""
    rms = float(np.sqrt(np.mean(features ** 2)))
    return 1.0 / rms if rms > 0 else 1.0


def _epochs(n_train: int) -> int:
    return int(np.clip(math.ceil(TARGET_STEPS / math.ceil(n_train / BATCH_SIZE)), 5, 30))


def _split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 80/20 split, stratified when every class has at least two samples."""
    counts = np.bincount(y)
    n_present, n_test = int((counts > 0).sum()), math.ceil(TEST_FRACTION * len(y))
    can_stratify = counts[counts > 0].min() >= 2 and n_present <= min(n_test, len(y) - n_test)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=n_test, random_state=seed,
                                           stratify=y if can_stratify else None)
    return np.sort(train_idx), np.sort(test_idx)


def _train_classifier(X: np.ndarray, y: np.ndarray, seed: int, fp: str, sidecar: Path) -> FeatureExtractor:
    start = time.perf_counter()
    input_shape = tuple(int(s) for s in X.shape[1:])
    n_classes = int(y.max()) + 1
    train_idx, test_idx = _split(y, seed)
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(y)
    x_train, y_train = x[train_idx], yt[train_idx]
    with torch.random.fork_rng(devices=[]):  # seeded initial weights without touching the caller's RNG
        torch.manual_seed(seed)
        net = ReferenceNet(input_shape, n_classes)
    net.mean.fill_(float(x_train.mean()))
    net.std.fill_(max(float(x_train.std()), 1e-6))
    # a plain supervised loop: the generative training engine (genlab.training) has nothing to add here
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    epochs = _epochs(len(train_idx))
    net.train()
    with flush_denormals():
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=generator)
            for s in range(0, len(order), BATCH_SIZE):
                batch = order[s:s + BATCH_SIZE]
                loss = F.cross_entropy(net(x_train[batch]), y_train[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(x[test_idx]).argmax(dim=1) == yt[test_idx]).double().mean())
        scale = _unit_rms_scale(net.features(x_train).double().numpy())
    atomic_write_bytes(sidecar.with_suffix(".safetensors"),
                       safetensors_bytes({k: v.contiguous() for k, v in net.state_dict().items()}))
    info = _write_sidecar(sidecar, "classifier", fp, seed, input_shape, start, n_classes=n_classes, feature_dim=FEATURE_DIM,
                          test_accuracy=accuracy, feature_scale=scale, n_train=len(train_idx), n_test=len(test_idx), epochs=epochs)
    return FeatureExtractor("classifier", input_shape=input_shape, note=_note("classifier", accuracy, input_shape),
                            test_accuracy=accuracy, network=net, n_classes=n_classes, path=sidecar, info=info, scale=scale)


def _write_sidecar(sidecar: Path, kind: str, fp: str, seed: int, input_shape: tuple[int, ...], start: float, **fields) -> dict:
    """Write the entry's JSON sidecar with the checksums of its files — last, so that an entry whose
    files were interrupted mid-write has no sidecar, or one that does not match, and is retrained."""
    info = {"format": FORMAT, "version": 1, "kind": kind, "fingerprint": fp, "architecture_version": ARCH_VERSION,
            "genlab_version": __version__, "seed": seed, "input_shape": list(input_shape), **fields,
            "train_seconds": round(time.perf_counter() - start, 3),
            "files": {name: _sha256_file(path) for name, path in _entry_files(sidecar, kind).items()}}
    atomic_write_text(sidecar, json.dumps(info, indent=1))
    return info


def _train_autoencoder(X: np.ndarray, seed: int, fp: str, sidecar: Path) -> FeatureExtractor:
    start = time.perf_counter()
    input_shape = tuple(int(s) for s in X.shape[1:])
    ae = Autoencoder(latent_dim=min(32, math.prod(input_shape)), arch="conv" if _is_conv_image(input_shape) else "mlp",
                     epochs=_epochs(len(X)), validation_fraction=0.0, device="cpu", random_state=seed).fit(X)
    scale = _unit_rms_scale(ae.transform(X).astype(np.float64))
    ae.save(sidecar.with_suffix(""))
    info = _write_sidecar(sidecar, "autoencoder", fp, seed, input_shape, start, feature_dim=ae.latent_dim, test_accuracy=None,
                          feature_scale=scale, n_train=len(X), epochs=ae.epochs)
    return FeatureExtractor("autoencoder", input_shape=input_shape, note=_note("autoencoder", None), autoencoder=ae,
                            path=sidecar, info=info, scale=scale)


__all__ = ["ARCH_VERSION", "FeatureExtractor", "ReferenceNet", "cache_dir", "fingerprint", "reference_features"]
