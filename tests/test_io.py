"""Saving and loading: identical outputs, and loading never executes code from the files."""

import ast
import json
import pathlib
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import genlab
from genlab import Autoencoder, ModelFileError
from genlab.cli import main
from genlab.training.checkpoint import load_checkpoint


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
    # sizes edited consistently in the parameters and the architecture: refused before anything that large is built
    (lambda m: {**m, "params": {**m["params"], "latent_dim": 10**9},
                "module": {**m["module"], "config": {**m["module"]["config"], "latent_dim": 10**9}}}, "shape"),
    (lambda m: {**m, "params": {**m["params"], "latent_dim": 2**62}}, "does not describe a valid Autoencoder"),
    (lambda m: {**m, "fitted": {**m["fitted"], "input_shape_": ["x"]}}, "does not describe a valid Autoencoder"),
    (lambda m: {**m, "fitted": {**m["fitted"], "n_features_in_": float("inf")}}, "does not describe a valid Autoencoder"),
    (lambda m: {**m, "fitted": {**m["fitted"], "scaling_": "x"}}, "does not describe a valid Autoencoder"),
    (lambda m: {**m, "module": 5}, "does not match"),
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


# --- loading never executes code: the package source, and checkpoints carrying a payload -------------

UNPICKLING_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "marshal", "shelve"}


def _dotted(node) -> str:
    """``np.lib.format.read_array`` for the expression of a call's function ('' when it is not a plain name)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _is_constant(keywords: dict, key: str, value) -> bool:
    return isinstance(keywords.get(key), ast.Constant) and keywords[key].value is value


def unsafe_loaders(source: str) -> list[str]:
    """Lines of ``source`` that import an unpickling module, call torch.load without weights_only=True,
    pass allow_pickle anything but False, load TorchScript or YAML, or call eval/exec."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{node.lineno}: import {m}" for m in modules if m.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.split(".")[0] in UNPICKLING_MODULES:
                found.append(f"{node.lineno}: {name}")
            keywords = {k.arg: k.value for k in node.keywords}
            if name.split(".")[-1] == "load" and name.split(".")[0] == "torch" and not _is_constant(keywords, "weights_only", True):
                found.append(f"{node.lineno}: {name} without weights_only=True")
            if "allow_pickle" in keywords and not _is_constant(keywords, "allow_pickle", False):
                found.append(f"{node.lineno}: {name}(allow_pickle=...)")
            if None in keywords and name.split(".")[-1] == "load":  # load(**options): cannot tell, refuse
                found.append(f"{node.lineno}: {name}(**...)")
            if name in ("eval", "exec", "builtins.eval", "builtins.exec") or name.endswith(
                    ("jit.load", "yaml.load", "yaml.unsafe_load", "read_pickle")):
                found.append(f"{node.lineno}: {name}")
    return found


def test_unsafe_loader_scan_catches_what_it_should():
    bad = """
import pickle
from joblib import load
import _pickle as cp
a = pickle.loads(b)
b = np.load(path, allow_pickle=True)
c = numpy.lib.format.read_array(f, allow_pickle=flag)
d = torch.load(path)
e = torch.load(path, weights_only=False)
f = torch.load(
    path,
    map_location="cpu",
)
g = torch.jit.load(path)
h = eval(text)
i = np.load(path, **options)
"""
    assert {int(hit.split(":")[0]) for hit in unsafe_loaders(bad)} == {2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16}
    good = """
a = np.load(path, allow_pickle=False)
b = np.load(path, mmap_mode="r")
c = torch.load(path, map_location=device(x), weights_only=True)
d = safetensors.torch.load_file(path)
e = module.eval()
"""
    assert unsafe_loaders(good) == []


def test_package_source_has_no_unsafe_loaders():
    root = pathlib.Path(genlab.__file__).parent
    sources = sorted(root.rglob("*.py"))
    assert root / "training" / "checkpoint.py" in sources and root / "io.py" in sources
    offenders = [f"{p.relative_to(root)}:{hit}" for p in sources for hit in unsafe_loaders(p.read_text())]
    assert offenders == []


def _checkpoint_parts():
    module = torch.nn.Linear(3, 2)
    return module, {"main": torch.optim.Adam(module.parameters())}, {"data": torch.Generator().manual_seed(0)}


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_checkpoint_with_a_pickle_payload_is_refused_and_not_run(writer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "step-000000001.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"model/weight": _Payload()}))
    else:  # a zip of pickles: what torch.save writes, and torch.load(weights_only=False) would run
        torch.save({"model/weight": _Payload()}, path)
    with pytest.raises(ModelFileError, match="could not be read"):
        load_checkpoint(path, *_checkpoint_parts())
    assert not (tmp_path / "PWNED").exists()


def test_model_weights_written_by_torch_save_are_refused_and_not_run(saved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _copy(saved[1], tmp_path)
    torch.save({"module/encoder.net.0.weight": _Payload()}, bad / "model.safetensors")
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        genlab.load(bad)
    assert not (tmp_path / "PWNED").exists()


def test_resume_from_a_pickle_payload_checkpoint_is_a_user_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "ae", "--data", "onehot8", "--hidden", "4", "--latent-dim", "2", "--epochs", "1", "--seed", "0", "--quiet"]
    assert main([*argv, "--out", str(run)]) == 0
    capsys.readouterr()
    checkpoints = [p for p in (run / "checkpoints").iterdir() if p.suffix == ".safetensors"]
    assert checkpoints
    for p in checkpoints:
        p.write_bytes(pickle.dumps(_Payload()))
    code = main(["train", "--resume", str(run), "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "checkpoint" in err
    assert not (tmp_path / "PWNED").exists()
