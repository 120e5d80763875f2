"""The genlab command: runs, outputs, configs, resume, and user errors as one line with exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from PIL import Image

import genlab
from conftest import assert_user_error, run
from genlab import families
from genlab.cli import main

QUICK = ["--epochs", "2", "--batch-size", "64", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    assert main(["train", "ae", "--data", "digits", "--arch", "conv", "--latent-dim", "6", *QUICK, "--out", str(out)]) == 0
    return out


def test_run_directory_contents(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.toml", "model.json", "model.safetensors", "metrics.jsonl", "checkpoints",
            "reconstructions.png", "samples.png", "training_curves.png"} <= names
    for png in ("reconstructions.png", "samples.png", "training_curves.png"):
        with Image.open(trained_run / png) as im:
            assert im.size[0] > 100 and im.size[1] > 50
    text = (trained_run / "config.toml").read_text()
    assert 'arch = "conv"' in text and "seed = 0" in text and "torch =" in text and "sha256" in text
    model = genlab.load(trained_run)
    assert model.latent_dim == 6 and model.arch == "conv"


def test_encode_reconstruct_sample(trained_run, tmp_path, capsys):
    X, _ = genlab.datasets.load("digits")
    model = genlab.load(trained_run)
    assert run(capsys, "encode", trained_run, "--data", "digits", "--out", tmp_path / "z.npy")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), model.transform(X))
    code, _, _ = run(capsys, "reconstruct", trained_run, "--data", "digits", "--out", tmp_path / "r.csv",
                     "--png", tmp_path / "r.png")
    assert code == 0 and (tmp_path / "r.png").stat().st_size > 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "r.csv", delimiter=","), model.reconstruct(X).reshape(len(X), -1), atol=1e-5)
    assert run(capsys, "sample", trained_run, "-n", "10", "--seed", "1", "--out", tmp_path / "s.npz", "--png", tmp_path / "s.png")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npz")["X"], model.sample(10, random_state=1))
    code, _, err = run(capsys, "sample", trained_run, "-n", "10", "--out", tmp_path / "s.npz")
    assert_user_error(code, err, "already exists")
    code, _, err = run(capsys, "sample", trained_run, "-n", "10", "--draw", "--out", tmp_path / "d.npz")  # an autoencoder
    assert_user_error(code, err, "defines no likelihood")


def test_refuses_to_overwrite_and_overwrite_keeps_old_run_on_failure(trained_run, tmp_path, capsys):
    before = (trained_run / "model.safetensors").read_bytes()
    code, _, err = run(capsys, "train", "ae", "--data", "digits", *QUICK, "--out", trained_run)
    assert_user_error(code, err, "already exists", "--overwrite")
    code, _, err = run(capsys, "train", "ae", "--data", tmp_path / "missing.npz", *QUICK, "--out", trained_run, "--overwrite")
    assert_user_error(code, err, "missing.npz")
    assert (trained_run / "model.safetensors").read_bytes() == before
    assert not [p for p in trained_run.parent.iterdir() if p.name.startswith(".")]


def test_broken_file_is_one_line_and_leaves_no_run(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5\n")
    code, _, err = run(capsys, "train", "ae", "--data", bad, *QUICK, "--out", tmp_path / "run")
    assert_user_error(code, err, "bad.csv", "line 2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, words", [
    (["train", "ae", "--data", "digits", "--latent-dim", "0", "--out", "R"], ["latent_dim"]),
    (["train", "ae", "--data", "digits", "--arch", "rnn", "--out", "R"], ["invalid choice"]),
    (["train", "ae", "--data", "nope", "--out", "R"], ["nope"]),
    (["train", "ae", "--out", "R"], ["--data"]),
    (["train", "ae", "--data", "digits"], ["--out"]),
    (["train", "ae", "--data", "digits", "--arch", "conv", "--channels", "8,8,8,8", "--out", "R"], ["too small"]),
    (["train"], ["which model"]),
    (["encode", "nowhere", "--data", "digits", "--out", "z.npy"], ["nowhere"]),
])
def test_user_errors(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert_user_error(code, err, *words)
    assert not (tmp_path / "R").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(genlab.InvalidInputError):
        main(["train", "ae", "--data", "digits", "--latent-dim", "0", "--out", str(tmp_path / "R"), "--debug"])


def test_config_file_with_command_line_override(tmp_path, capsys):
    cfg = tmp_path / "ae.toml"
    cfg.write_text('data = "onehot8"\nvalidation-fraction = 0\n[params]\nlatent_dim = 3\nepochs = 1\nhidden = [16]\n')
    code, _, err = run(capsys, "train", "ae", "--config", cfg, "--epochs", "3", "--seed", "0", "--quiet", "--out", tmp_path / "r")
    assert code == 0, err
    model = genlab.load(tmp_path / "r")
    assert (model.latent_dim, model.epochs, model.hidden, model.validation_fraction) == (3, 3, (16,), 0.0)
    cfg.write_text('data = "onehot8"\nlatnet_dim = 3\n')
    code, _, err = run(capsys, "train", "ae", "--config", cfg, "--out", tmp_path / "r2")
    assert_user_error(code, err, "latnet_dim")
    # a run's own config.toml is a valid --config
    code, _, err = run(capsys, "train", "ae", "--config", tmp_path / "r" / "config.toml", "--quiet", "--out", tmp_path / "r3")
    assert code == 0, err


def test_resume_continues_the_run_exactly(tmp_path, capsys):
    args = ["--data", "digits", "--arch", "mlp", "--batch-size", "128", "--seed", "4", "--quiet"]
    assert run(capsys, "train", "ae", *args, "--epochs", "4", "--out", tmp_path / "straight")[0] == 0
    assert run(capsys, "train", "ae", *args, "--epochs", "2", "--out", tmp_path / "split")[0] == 0
    code, out, err = run(capsys, "train", "--resume", tmp_path / "split", "--epochs", "4")
    assert code == 0, err
    assert (tmp_path / "split" / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()
    assert len((tmp_path / "split" / "metrics.jsonl").read_text().splitlines()) == 4
    code, _, err = run(capsys, "train", "--resume", tmp_path / "split", "--latent-dim", "3")
    assert_user_error(code, err)


def test_trains_on_user_npz_and_image_folder(tmp_path, capsys):
    X, y = genlab.datasets.load("digits")
    np.savez(tmp_path / "mine.npz", X=(X[:300] * 255).astype(np.uint8), y=y[:300])
    assert run(capsys, "train", "ae", "--data", tmp_path / "mine.npz", *QUICK, "--out", tmp_path / "r1")[0] == 0
    m = genlab.load(tmp_path / "r1")
    assert m.scaling_.high == 255.0 and m.reconstruct((X[:5] * 255).astype(np.uint8)).max() > 2
    folder = tmp_path / "imgs"
    for i in range(40):
        (folder / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((X[i, 0] * 255).astype(np.uint8)).resize((12, 12)).save(folder / str(y[i]) / f"{i}.png")
    code, _, err = run(capsys, "train", "ae", "--data", folder, "--arch", "conv", *QUICK, "--out", tmp_path / "r2")
    assert code == 0, err
    assert genlab.load(tmp_path / "r2").input_shape_ == (1, 12, 12)


def test_datasets_lists_every_builtin(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for name in genlab.datasets.BUILTIN_NAMES:
        assert name in out
    assert "1x8x8" in out and "1x28x28" in out


def test_every_command_explains_itself_with_an_example(capsys):
    commands = ["train", "encode", "reconstruct", "predict", "sample", "interpolate", "traverse", "evaluate", "compare", "report",
                "datasets", "demo"] + [f"train {f}" for f in families.keys("train")]
    for cmd in [""] + commands:
        assert main([*cmd.split(), "--help"]) == 0
        assert "example" in capsys.readouterr().out


def test_console_script_and_module_entry_points(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    script = Path(sys.executable).with_name("genlab")
    for cmd in ([str(script)], [sys.executable, "-m", "genlab"]):
        done = subprocess.run([*cmd, "datasets"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0 and "digits" in done.stdout
    done = subprocess.run([str(script), "train", "ae", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "x.npy" in done.stderr


@pytest.mark.parametrize("family, extra", [("ae", []), ("ae", ["--arch", "linear"]), ("vae", ["--latent-dim", "2"]),
                                           ("vae", ["--conditional"])])
def test_every_family_trains_reloads_and_samples(family, extra, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", family, "--data", "digits", *extra, *QUICK, "--out", out)
    assert code == 0, err
    model = genlab.load(out)
    assert type(model) is families.get(family).estimator
    expected = {"reconstructions.png", "samples.png", "metrics.jsonl"} | (set() if "linear" in extra else {"training_curves.png"})
    assert expected <= {p.name for p in out.iterdir()}  # the closed-form PCA has no epochs to plot
    label = ["--label", "3"] if "--conditional" in extra else []
    assert run(capsys, "sample", out, "-n", "4", "--seed", "0", *label, "--out", tmp_path / "s.npy")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), model.sample(4, random_state=0, **({"y": 3} if label else {})))
    assert run(capsys, "encode", out, "--data", "digits", "--out", tmp_path / "z.npy")[0] == 0


def test_conditional_model_needs_labels(tmp_path, capsys):
    X, _ = genlab.datasets.load("digits")
    np.save(tmp_path / "unlabelled.npy", X[:200])
    code, _, err = run(capsys, "train", "vae", "--data", tmp_path / "unlabelled.npy", "--conditional", *QUICK, "--out", tmp_path / "r")
    assert_user_error(code, err, "labels")
    assert not (tmp_path / "r").exists()


def test_gan_runs_sample_but_do_not_encode(tmp_path, capsys):
    out = tmp_path / "gan"
    code, stdout, err = run(capsys, "train", "gan", "--data", "digits", "--conditional", *QUICK, "--out", out)
    assert code == 0, err
    assert "d_loss" in stdout and {"samples.png", "training_curves.png"} <= {p.name for p in out.iterdir()}
    assert run(capsys, "sample", out, "-n", "4", "--label", "7", "--seed", "0", "--out", tmp_path / "s.npy")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), genlab.load(out).sample(4, y=7, random_state=0))
    code, _, err = run(capsys, "encode", out, "--data", "digits", "--out", tmp_path / "z.npy")
    assert_user_error(code, err, "no encoder")
    automatic = tomllib.loads((out / "config.toml").read_text())["automatic"]  # what the None defaults became
    assert automatic["lr_g"] == automatic["lr_d"] == 1e-3 and automatic["latent_dim"] == 16 and automatic["d_steps"] == 1
    code, _, err = run(capsys, "train", "gan", "--config", out / "config.toml", "--out", tmp_path / "again")
    assert code == 0, err  # the informational table is ignored when the file is read back
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_semi_supervised_gan_from_a_file_with_unlabelled_rows_then_predict(tmp_path, capsys):
    X, y = genlab.datasets.load("digits")
    np.savez(tmp_path / "partial.npz", X=X[:300], y=np.where(np.arange(300) % 10 == 0, y[:300], -1))  # 30 labels
    out = tmp_path / "ssgan"
    code, _, err = run(capsys, "train", "gan", "--data", tmp_path / "partial.npz", "--semi-supervised", *QUICK, "--out", out)
    assert code == 0, err
    code, stdout, err = run(capsys, "predict", out, "--data", "digits", "--out", tmp_path / "p.npy")
    assert code == 0, err
    proba = np.load(tmp_path / "p.npy")
    assert proba.shape == (1797, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(proba, genlab.load(out).predict_proba(X), rtol=1e-6)
    assert "predicted classes" in stdout
    code, _, err = run(capsys, "predict", out, "--data", "digits", "--out", tmp_path / "p.npy")
    assert_user_error(code, err, "already exists")
    code, _, err = run(capsys, "train", "ae", "--data", "digits", *QUICK, "--out", tmp_path / "ae")
    code, _, err = run(capsys, "predict", tmp_path / "ae", "--data", "digits", "--out", tmp_path / "q.npy")
    assert_user_error(code, err, "no classifier")


def test_interpolate_and_traverse(tmp_path, capsys):
    out = tmp_path / "vae"
    assert run(capsys, "train", "vae", "--data", "digits", "--latent-dim", "2", *QUICK, "--out", out)[0] == 0
    assert {"latent_scatter.png", "interpolation.png", "traversal.png", "manifold.png"} <= {p.name for p in out.iterdir()}
    model = genlab.load(out)
    X, _ = genlab.datasets.load("digits")
    code, _, err = run(capsys, "interpolate", out, "--data", "digits", "--index", "0", "7", "--steps", "5",
                       "--out", tmp_path / "i.png", "--npy", tmp_path / "i.npy")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "i.npy"), genlab.latent.interpolate(model, X[0], X[7], n_steps=5), atol=1e-6)
    code, _, err = run(capsys, "sample", out, "-n", "50", "--seed", "2", "--draw", "--out", tmp_path / "d.npy")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), model.sample(50, random_state=2, mean=False))
    assert set(np.unique(np.load(tmp_path / "d.npy"))) == {0.0, 1.0}  # Bernoulli pixels, in the data's units
    code, _, err = run(capsys, "traverse", out, "--data", "digits", "--index", "3", "--dim", "1", "--out", tmp_path / "t.png",
                       "--npy", tmp_path / "t.npy")
    assert code == 0, err
    assert np.load(tmp_path / "t.npy").shape == (1, 9, 1, 8, 8)
    # any number of steps sweeps the same range, the code distribution's mean ± 3σ (it was -3..3 unless steps was 9)
    code, _, err = run(capsys, "traverse", out, "--data", "digits", "--index", "3", "--dim", "1", "--steps", "5",
                       "--out", tmp_path / "t5.png", "--npy", tmp_path / "t5.npy")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "t5.npy")[0], genlab.latent.traverse(model, X[3], 1, steps=5), atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "t5.npy")[0, [0, 2, 4]], np.load(tmp_path / "t.npy")[0, [0, 4, 8]], atol=1e-5)
    assert_user_error(*run(capsys, "traverse", out, "--data", "digits", "--index", "9999", "--out", tmp_path / "u.png")[::2],
                      "out of range")
    assert_user_error(*run(capsys, "interpolate", out, "--data", "digits", "--index", "0", "1", "--out", tmp_path / "i.png")[::2],
                      "already exists")
