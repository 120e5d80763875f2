"""The contract every genlab estimator keeps, checked over one registry of tiny estimators (tests/tiny_estimators.py):
scikit-learn parameters, save/load, seeding, exact resume, train/eval steps, unfitted use, the methods a family
has (and only those), and the command line. Each check is parametrized over exactly the entries it applies to,
decided from the family registry (``genlab.families``) and the estimator itself, never from a list of names."""

from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

import genlab
from genlab import InvalidInputError, families
from genlab.cli import main
from genlab.estimators import GenerativeEstimator
from genlab.models.base import Batch
from genlab.training import SparseRows, make_stepper
from tiny_estimators import RECOMMEND_CLI, TINY, TRAIN_CLI, Tiny, interactions

#: capability -> the methods that exist exactly when a model has it
METHODS = {"encode": ("transform",), "reconstruct": ("reconstruct",), "sample": ("sample",),
           "likelihood": ("score_samples", "elbo"), "classify": ("predict", "predict_proba"),
           "recommend": ("recommend", "item_scores")}
TIMING = {"time", "samples_per_s", "seconds"}  # record keys that measure the machine, not the model
N_ROWS = 16


def _family(t: Tiny) -> families.Family:
    return families.of(t.make())


def _entries(keep) -> list:
    return [pytest.param(t, id=t.id) for t in TINY if keep(t, t.make())]


ALL = _entries(lambda t, est: True)
TORCH = _entries(lambda t, est: isinstance(est, GenerativeEstimator))  # a module_ of genlab.models
LOOP = _entries(lambda t, est: isinstance(est, GenerativeEstimator) and t.loop)
SAVED = _entries(lambda t, est: callable(getattr(est, "save", None)))
NOT_SAVED = _entries(lambda t, est: not callable(getattr(est, "save", None)))


# -- shared fits -------------------------------------------------------------------------------------------------
class Fits:
    """Each entry fitted once per module (torch estimators with a run directory, so exact resume can compare with it)."""

    def __init__(self, root):
        self.root, self.done = root, {}

    def run_dir(self, t: Tiny):
        return self.root / t.id

    def __call__(self, t: Tiny):
        if t.id not in self.done:
            X, y = t.data()
            est = t.make()
            kw = {"run_dir": self.run_dir(t)} if isinstance(est, GenerativeEstimator) else {}
            self.done[t.id] = est.fit(X, y, **kw)
        return self.done[t.id]


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    return Fits(tmp_path_factory.mktemp("fits"))


def _labels_used(est) -> bool:
    """Whether the model takes class labels as an input (conditional) — a semi-supervised GAN learns from them but
    classifies without them."""
    return families.has(est, "conditional")


def outputs(est, X, y) -> dict:
    """Every output method the family (and this configuration) has, as name -> thunk, on a few rows of the data."""
    has = lambda capability: families.of(est).has(capability, est)  # noqa: E731
    rows = X[:N_ROWS]
    lab = {"y": y[:N_ROWS]} if _labels_used(est) else {}
    latent = est.get_params().get("latent_dim")
    out = {}
    if has("encode"):
        out["transform"] = lambda: est.transform(rows, **lab)
    if has("decode"):
        z = np.random.default_rng(0).standard_normal((N_ROWS, latent)).astype(np.float32)
        decode = est.inverse_transform if hasattr(est, "inverse_transform") else est.generate
        out["decode"] = lambda: decode(z, **lab)
    if has("reconstruct"):
        out["reconstruct"] = lambda: est.reconstruct(rows, **lab)
    if has("sample"):
        out["sample"] = lambda: est.sample(8, random_state=1)
    if has("likelihood"):
        out["sample(mean=False)"] = lambda: est.sample(8, random_state=1, mean=False)
        out["score_samples"] = lambda: est.score_samples(rows, random_state=1, **lab)
        out["elbo"] = lambda: est.elbo(rows, random_state=1, **lab)
    if has("classify"):
        out["predict_proba"] = lambda: est.predict_proba(rows)
        out["predict"] = lambda: est.predict(rows)
    if has("recommend"):
        out["item_scores"] = lambda: est.item_scores(rows)
        out["recommend"] = lambda: est.recommend(rows, n=5)
    return out


def _same(a, b) -> bool:
    """Exact equality of fitted state: tensors and arrays bit for bit (NaN equal to NaN), containers by element."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, w) for x, w in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def _records(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def fitted_state(est) -> dict:
    """Everything a fit learned: the module's state_dict and every public fitted attribute (records without timings)."""
    state = {}
    for name, value in vars(est).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, torch.nn.Module):
            value = value.state_dict()
        elif isinstance(value, list) and all(isinstance(r, dict) for r in value):
            value = _records(value)
        state[name] = value
    return state


def _differences(a: dict, b: dict) -> list[str]:
    if a.keys() != b.keys():
        return [f"fitted attributes {sorted(a.keys() ^ b.keys())}"]
    out = []
    for name in a:
        if isinstance(a[name], dict) and name == "module_":
            out += [f"module_.{k}" for k in a[name] if not _same(a[name][k], b[name].get(k))]
        elif not _same(a[name], b[name]):
            out.append(name)
    return out


# -- 1. parameters -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", ALL)
def test_clone_and_set_params_round_trip(t, fits):
    est = t.make()
    params = est.get_params()
    assert clone(est).get_params() == params
    assert clone(est).set_params(**params).get_params() == params
    for name, value in params.items():  # each parameter is stored as given and read back, the others untouched
        marker = object()
        changed = clone(est).set_params(**{name: marker}).get_params()
        assert changed[name] is marker and {k: v for k, v in changed.items() if k != name} == {k: v for k, v in params.items()
                                                                                            if k != name}
        assert est.get_params()[name] == value
    fitted = fits(t)
    unfitted = clone(fitted)
    assert unfitted.get_params() == fitted.get_params()
    assert not [k for k in vars(unfitted) if k.endswith("_") and not k.startswith("_")], "clone carried fitted state"


# -- 2. save / load ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", SAVED)
def test_save_load_gives_identical_outputs(t, fits, tmp_path):
    est = fits(t)
    X, y = t.data()
    genlab.save(est, tmp_path / "model")
    loaded = genlab.load(tmp_path / "model")
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    before, after = outputs(est, X, y), outputs(loaded, X, y)
    assert before and before.keys() == after.keys()
    for name in before:
        a, b = before[name](), after[name]()
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert np.array_equal(a, b), f"{name} differs after save/load"
    state, restored = fitted_state(est), fitted_state(loaded)  # what loading restores is what fitting learned
    assert restored.keys() <= state.keys() and (not isinstance(est, GenerativeEstimator) or "module_" in restored)
    assert _differences({k: state[k] for k in restored}, restored) == []


@pytest.mark.parametrize("t", NOT_SAVED)
def test_models_genlab_does_not_save_are_refused(t, fits, tmp_path):
    with pytest.raises(InvalidInputError, match="not a model genlab saves"):
        genlab.save(fits(t), tmp_path / "model")
    assert not (tmp_path / "model").exists()


# -- 3. seeding --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", ALL)
def test_same_seed_gives_identical_fits(t, fits):
    X, y = t.data()
    again = t.make().fit(X, y)  # without a run directory: where metrics and checkpoints go changes nothing learned
    first = fits(t)
    state = fitted_state(first)
    assert state and (not isinstance(first, GenerativeEstimator) or state["module_"])
    assert not _differences(state, fitted_state(again))


# -- 4. exact resume ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", TORCH)
def test_only_loop_trained_models_checkpoint(t, fits):
    """The registry's ``loop`` flag is true: exactly the loop-trained entries leave checkpoints (so resume covers them)."""
    fits(t)
    ckpts = fits.run_dir(t) / "checkpoints"
    assert (ckpts.is_dir() and any(ckpts.iterdir())) == t.loop


@pytest.mark.parametrize("t", LOOP)
def test_resume_continues_exactly(t, fits, tmp_path, monkeypatch):
    straight = fits(t)
    X, y = t.data()
    epochs = straight.epochs
    assert epochs >= 2 and len(straight.history_) == epochs
    part = t.make().set_params(epochs=epochs - 1).fit(X, y, run_dir=tmp_path)
    assert len(part.history_) == epochs - 1

    steps = []  # the resumed fit trains only the missing epoch: count the updates it takes
    module_cls = type(part.module_)
    train_step = module_cls.train_step
    monkeypatch.setattr(module_cls, "train_step", lambda self, *a, **kw: steps.append(1) or train_step(self, *a, **kw))
    part.set_params(epochs=epochs).fit(X, y, run_dir=tmp_path, resume=True)
    monkeypatch.undo()

    assert len(steps) == straight.history_[-1]["step"] - straight.history_[-2]["step"] > 0
    sa, sb = straight.module_.state_dict(), part.module_.state_dict()
    assert sa.keys() == sb.keys()
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []
    assert _same(_records(straight.history_), _records(part.history_))
    assert [r["loss"] for r in straight.history_] == [r["loss"] for r in part.history_]


# -- 5. train and eval steps -------------------------------------------------------------------------------------
def _batch(est, X, y) -> Batch:
    """A batch of the fit data in model units, with labels where the model trains on them."""
    if families.has(est, "recommend"):
        return Batch(SparseRows(X)[0:32])
    x = torch.from_numpy(np.ascontiguousarray(est.scaling_.forward(X[:32]), dtype=np.float32))
    takes_labels = families.has(est, "conditional") or families.has(est, "classify")
    return Batch(x, torch.from_numpy(np.asarray(y[:32], dtype=np.int64)) if takes_labels else None)


@pytest.mark.parametrize("t", TORCH)
def test_eval_step_changes_nothing_and_a_train_step_changes_weights(t, fits):
    est = fits(t)
    X, y = t.data()
    module = copy.deepcopy(est.module_)
    batch = _batch(est, X, y)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    terms = module.eval_step(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(terms["loss"])
    assert [k for k, v in module.state_dict().items() if not torch.equal(before[k], v)] == []

    params = {k: p.detach().clone() for k, p in module.named_parameters()}
    module.train()
    module.train_step(batch, make_stepper(module), torch.Generator().manual_seed(0), lambda: batch)
    assert [k for k, p in module.named_parameters() if not torch.equal(params[k], p)]
    assert all(torch.equal(v, est.module_.state_dict()[k]) for k, v in before.items()), "the fitted model changed"


# -- 6. unfitted use ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", ALL)
def test_unfitted_use_is_refused(t, tmp_path):
    est = t.make()
    X, y = t.data()
    calls = outputs(est, X, y)
    assert calls
    wrong = []
    for name, call in calls.items():
        try:
            call()
            wrong.append((name, "returned"))
        except InvalidInputError as exc:
            if "not fitted" not in str(exc):
                wrong.append((name, str(exc)))
        except Exception as exc:  # noqa: BLE001 - any other error is a broken contract: name it
            wrong.append((name, repr(exc)))
    assert wrong == [], "(method, what happened) for output methods of an unfitted model"
    with pytest.raises(InvalidInputError):
        genlab.save(est, tmp_path / "model")
    if callable(getattr(est, "save", None)):
        with pytest.raises(InvalidInputError, match="not fitted"):
            est.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


# -- 7. methods a model does not have are absent ------------------------------------------------------------------
@pytest.mark.parametrize("t", ALL)
def test_methods_exist_exactly_with_their_capability(t, fits):
    est = fits(t)
    family = families.of(est)
    wrong = [(m, cap, family.has(cap, est)) for cap, names in METHODS.items() for m in names
             if hasattr(est, m) != family.has(cap, est)]
    assert wrong == [], "(method, capability, has capability) where hasattr disagrees"
    assert hasattr(t.make(), "transform") == family.has("encode", est)  # decided by the parameters, fitted or not


# -- 8. the command line -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", families.keys("train"))
def test_cli_trains_samples_and_encodes(key, tmp_path):
    run = tmp_path / "run"
    assert main(["train", key, "--data", "digits", "--epochs", "1", "--out", str(run), "--quiet", *TRAIN_CLI[key]]) == 0
    assert (run / "model.json").is_file()
    model = genlab.load(run)
    assert families.of(model).key == key
    X, _ = genlab.datasets.load("digits")

    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "x.npy").shape == (4, *X.shape[1:])

    can_encode = families.FAMILIES[key].has("encode", model)
    assert main(["encode", str(run), "--data", "digits", "--out", str(tmp_path / "z.npy")]) == (0 if can_encode else 2)
    assert (tmp_path / "z.npy").is_file() == can_encode
    if can_encode:
        assert np.load(tmp_path / "z.npy").shape == (len(X), model.latent_dim)


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    """user,item,rating rows in original ids: the interactions rated 4–5, and as many low ratings the threshold drops."""
    matrix = interactions()[0]
    rng = np.random.default_rng(0)
    users, items = matrix.nonzero()
    file = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    with file.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user", "item", "rating"])
        for u, i in zip(users, items):
            out.writerow([100 + u, 5000 + i, rng.choice([4.0, 5.0])])
        for u in range(0, matrix.shape[0], 4):
            out.writerow([100 + u, 5000 + int(rng.integers(matrix.shape[1])), 1.0])
    return file


@pytest.mark.parametrize("key", families.keys("recommend"))
def test_cli_fits_recommenders(key, ratings_csv, tmp_path):
    run = tmp_path / "run"
    assert main(["recommend", "fit", "--ratings", str(ratings_csv), "--out", str(run), "--quiet", "--model", key,
                 *RECOMMEND_CLI[key]]) == 0
    model = genlab.load(run / "model")
    assert families.of(model).key == key
    assert (run / "metrics.json").is_file()


# -- the registry covers every family ----------------------------------------------------------------------------
def test_every_family_has_tiny_entries_and_cli_options():
    covered = {}
    for t in TINY:
        covered.setdefault(_family(t).key, []).append(t.make())
    assert set(families.FAMILIES) <= set(covered), "a family without a tiny estimator: add one to tests/tiny_estimators.py"
    for key, family in families.FAMILIES.items():
        for capability in family.switch:  # a switched capability is covered both on and off
            assert {family.has(capability, est) for est in covered[key]} == {True, False}, (key, capability)
    assert set(TRAIN_CLI) == set(families.keys("train"))
    assert set(RECOMMEND_CLI) == set(families.keys("recommend"))
    assert len({t.id for t in TINY}) == len(TINY)
