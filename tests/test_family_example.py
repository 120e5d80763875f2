"""A new family from outside the package: two files (family_tied_model.py, family_tied_estimator.py) and one
registry entry make it work through the Python API, save/load, the CLI, the run directory and the report — the
claim ARCHITECTURE.md makes ("Adding a family"). Nothing in src/ knows this family."""

import numpy as np
import pytest

import genlab
from family_tied_estimator import TiedAutoencoder
from genlab import families
from genlab.cli import main
from genlab.report import write_report


@pytest.fixture
def tied():
    family = families.register(families.Family("tied", TiedAutoencoder, "tied-weight autoencoder", "tied AE", "train",
                                               ("loss", "val_loss"), frozenset({"encode", "decode", "reconstruct", "sample"})))
    yield family
    families.unregister("tied")


def test_the_registered_family_trains_saves_and_loads_through_the_python_api(tied, tmp_path):
    X, _ = genlab.datasets.load("digits")
    est = TiedAutoencoder(3, epochs=3, random_state=0).fit(X[:400])
    assert families.of(est) is tied and families.has(est, "encode") and not families.has(est, "likelihood")
    assert est.transform(X[:5]).shape == (5, 3) and est.reconstruct(X[:5]).shape == X[:5].shape
    assert est.history_[-1]["loss"] < est.history_[0]["loss"]  # the loop trained it
    same = genlab.load(est.save(tmp_path / "model"))
    assert type(same) is TiedAutoencoder
    np.testing.assert_array_equal(same.transform(X[:50]), est.transform(X[:50]))
    np.testing.assert_array_equal(same.sample(4, random_state=1), est.sample(4, random_state=1))


def test_the_registered_family_is_a_genlab_train_model_with_a_run_directory_and_a_report(tied, tmp_path, capsys):
    run = tmp_path / "tied"
    assert main(["train", "tied", "--data", "digits", "--latent-dim", "2", "--epochs", "2", "--seed", "0", "--quiet",
                 "--out", str(run)]) == 0
    assert "loss" in capsys.readouterr().out
    assert {"config.toml", "model.json", "samples.png", "reconstructions.png", "latent_scatter.png"} <= {p.name for p in run.iterdir()}
    assert main(["encode", str(run), "--data", "digits", "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (1797, 2)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert len(genlab.load(run).history_) == 3
    page = write_report(run).read_text()
    assert "tied-weight autoencoder" in page and "Reconstructions" in page


def test_a_family_key_or_class_name_cannot_be_registered_twice(tied):
    with pytest.raises(ValueError, match="registered already"):
        families.register(tied)
    with pytest.raises(ValueError, match="unknown capabilities"):
        families.Family("odd", TiedAutoencoder, "odd", "odd", "train", (), frozenset({"fly"}))
