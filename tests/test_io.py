"""Saving and loading: identical outputs, and loading never executes code from the files."""

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import genlab
from genlab import Autoencoder, ModelFileError


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    X = digits[0][:200]
    path = tmp_path_factory.mktemp("model")
    ae = Autoencoder(4, arch="conv", epochs=2, batch_size=64, random_state=0).fit(X)
    ae.save(path)
    return ae, path, X


@pytest.mark.parametrize("params", [
    dict(arch="mlp"), dict(arch="conv"), dict(arch="linear"), dict(arch="linear", solver="gradient"),
    dict(arch="mlp", loss="bce", hidden=(32,), sampler_components=2),
])
def test_round_trip_gives_identical_outputs(params, digits, tmp_path):
    X = digits[0][:200]
    ae = Autoencoder(4, epochs=2, batch_size=64, random_state=0, **params).fit(X)
    ae.save(tmp_path)
    same = genlab.load(tmp_path)
    assert type(same) is Autoencoder and same.get_params() == ae.get_params()
    np.testing.assert_array_equal(same.transform(X), ae.transform(X))
    np.testing.assert_array_equal(same.reconstruct(X), ae.reconstruct(X))
    np.testing.assert_array_equal(same.sample(8, random_state=1), ae.sample(8, random_state=1))
    assert same.history_ == ae.history_


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_refused_and_not_run(saved, tmp_path, monkeypatch):
    _, path, _ = saved
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text((path / "model.json").read_text())
    (bad / "model.safetensors").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ModelFileError, match="safetensors"):
        genlab.load(bad)
    assert not (tmp_path / "PWNED").exists()


def _copy(path, tmp_path, *, meta=None, tensors=None):
    out = tmp_path / "copy"
    out.mkdir()
    m = json.loads((path / "model.json").read_text())
    (out / "model.json").write_text(json.dumps(meta(m) if meta else m))
    if tensors is None:
        (out / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    else:
        from safetensors.torch import load_file

        save_file(tensors(load_file(str(path / "model.safetensors"))), str(out / "model.safetensors"))
    return out


def _set(d, key, value):
    d[key] = value
    return d


@pytest.mark.parametrize("edit, match", [
    (lambda m: _set(m, "class", "os.system"), "not a genlab estimator"),
    (lambda m: _set(m, "format_version", 99), "format version 99"),
    (lambda m: _set(m, "format", "other"), "not a genlab model"),
    (lambda m: {**m, "params": {**m["params"], "latent_dim": 5}}, "does not match"),
    (lambda m: {**m, "params": {**m["params"], "arch": "rnn"}}, "arch"),
])
def test_malformed_model_json(saved, tmp_path, edit, match):
    with pytest.raises(ModelFileError, match=match):
        genlab.load(_copy(saved[1], tmp_path, meta=edit))


def _first_module_key(t):
    return sorted(k for k in t if k.startswith("module/"))[0]


@pytest.mark.parametrize("edit, match", [
    (lambda t: {k: v for k, v in t.items() if k != _first_module_key(t)}, "missing"),
    (lambda t: {**t, "module/extra": torch.zeros(1)}, "unexpected"),
    (lambda t: {**t, _first_module_key(t): torch.zeros(3, 3)}, "shape"),
    (lambda t: {**t, _first_module_key(t): t[_first_module_key(t)].double()}, "float64"),
    (lambda t: {**t, _first_module_key(t): torch.full_like(t[_first_module_key(t)], float("nan"))}, "NaN"),
])
def test_malformed_weights(saved, tmp_path, edit, match):
    with pytest.raises(ModelFileError, match=match):
        genlab.load(_copy(saved[1], tmp_path, tensors=edit))


def test_truncated_and_missing_files(saved, tmp_path):
    out = _copy(saved[1], tmp_path)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        genlab.load(out)
    (out / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        genlab.load(out)
    with pytest.raises(ModelFileError, match="does not exist"):
        genlab.load(tmp_path / "nowhere")
    with pytest.raises(ModelFileError, match="no model.json"):
        genlab.load(tmp_path)


def test_package_source_has_no_unsafe_loaders():
    import pathlib
    import re

    root = pathlib.Path(genlab.__file__).parent
    pattern = re.compile(r"pickle\.loads?\(|allow_pickle\s*=\s*True|torch\.load\((?![^)]*weights_only=True)")
    offenders = [f"{p.name}:{i}" for p in root.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
