"""`genlab recommend` with EASE: `fit --model ease` end to end on a MovieLens-format file, and the EASE baseline
next to popularity in every evaluation (skipped, with the reason, past its memory cap; old runs still render)."""

import json

import numpy as np
import pytest

import genlab
from conftest import assert_user_error, run
from genlab.cli import main
from genlab.data.protocol import make_interactions
from genlab.estimators.ease import L2_GRID
from genlab.report import write_report

TINY = ["--epochs", "3", "--hidden", "16", "--latent-dim", "4", "--batch-size", "100", "--seed", "0", "--quiet"]
N_USERS, N_ITEMS = 300, 90


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    """userId,movieId,rating,timestamp: planted groups rated 4–5 (interactions) and some 1–3 (dropped), ids not row numbers."""
    data = make_interactions(N_USERS, N_ITEMS, 3, items_per_user=(8, 20), random_state=0)
    rng = np.random.default_rng(0)
    users, items = data.matrix.nonzero()
    rows = [(1 + 2 * u, 100 + 7 * i, rng.choice([4.0, 4.5, 5.0])) for u, i in zip(users, items)]
    rows += [(1 + 2 * u, 100 + 7 * int(rng.integers(N_ITEMS)), rng.choice([1.0, 2.5, 3.0])) for u in range(0, N_USERS, 4)]
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n"
                    + "".join(f"{u},{i},{r:.1f},{964982703 + k}\n" for k, (u, i, r) in enumerate(rows)))
    return path


@pytest.fixture(scope="module")
def multvae_run(ratings_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["recommend", "fit", "--ratings", str(ratings_csv), "--out", str(out), *TINY]) == 0
    return out


def _table(printed: str) -> list[list[str]]:
    lines = printed.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("metric"))
    return [line.split() for line in lines[start:start + 4]]


def test_fit_model_ease_end_to_end(ratings_csv, tmp_path, capsys):
    out = tmp_path / "ease"
    code, printed, err = run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--model", "ease", "--seed", "0", "--out", out)
    assert code == 0, err
    table = _table(printed)
    assert table[0] == ["metric", "EASE", "popularity"]  # the model is EASE: no second EASE column
    doc = json.loads((out / "metrics.json").read_text())
    assert "ease" not in doc and doc["model_class"] == "EASE"
    assert doc["model"]["ndcg_at_100"] > doc["popularity"]["ndcg_at_100"]
    assert float(table[3][1]) == pytest.approx(doc["model"]["ndcg_at_100"], abs=1e-4)
    names = {p.name for p in out.iterdir()}
    assert {"config.toml", "interactions.npz", "model", "metrics.jsonl", "metrics.json", "report.html"} <= names
    assert "training_curves.png" not in names and "checkpoints" not in names  # no epochs
    model = genlab.load(out / "model")
    assert isinstance(model, genlab.EASE) and model.n_features_in_ == N_ITEMS and model.max_items == 25_000
    path = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["l2"] for r in path] == list(L2_GRID) and model.l2_ in [r["l2"] for r in path]
    with np.load(out / "interactions.npz") as f:  # the model held out exactly the run's validation users
        assert len(f["validation_rows"]) == 30 and len(model.validation_rows_) == 30
    assert f"l2 {model.l2_:g} (chosen)" in printed and "EASE l2=1:" in err  # progress on stderr
    page = (out / "report.html").read_text()
    assert "Choosing λ" in page and "EASE has no epochs" in page and f"{doc['model']['ndcg_at_100']:.4f}" in page

    code, printed, err = run(capsys, "recommend", "evaluate", out, "--seed", "1")
    assert code == 0, err
    assert _table(printed)[0] == ["metric", "EASE", "popularity"]
    code, printed, err = run(capsys, "recommend", "predict", out, "--user", 3, "-n", 4)
    assert code == 0, err
    recs = [line.split("\t") for line in printed.splitlines()]
    assert [int(r[0]) for r in recs] == [1, 2, 3, 4] and all(int(r[1]) >= 100 for r in recs)


def test_multvae_is_shown_against_popularity_and_ease(multvae_run, capsys):
    code, printed, err = run(capsys, "recommend", "evaluate", multvae_run)
    assert code == 0, err
    table = _table(printed)
    assert table[0] == ["metric", "MultVAE", "popularity", "EASE"] and all(len(row) == 4 for row in table)
    doc = json.loads((multvae_run / "metrics.json").read_text())
    assert set(doc["ease"]) == {"recall_at_20", "recall_at_50", "ndcg_at_100"}
    assert doc["ease"]["ndcg_at_100"] > doc["popularity"]["ndcg_at_100"]
    assert float(table[3][3]) == pytest.approx(doc["ease"]["ndcg_at_100"], abs=1e-4)
    fit = doc["ease_fit"]
    assert fit["l2_chosen"] and fit["validation_users"] == 30 and fit["l2"] in L2_GRID
    assert f"λ = {fit['l2']:g}" in printed
    page = (multvae_run / "report.html").read_text()
    assert ">EASE</th>" in page and f"{doc['ease']['ndcg_at_100']:.4f}" in page and "Steck" in page


def test_a_given_ease_l2_and_the_memory_cap(multvae_run, capsys):
    code, printed, err = run(capsys, "recommend", "evaluate", multvae_run, "--ease-l2", "50")
    assert code == 0, err
    fit = json.loads((multvae_run / "metrics.json").read_text())["ease_fit"]
    assert fit["l2"] == 50 and not fit["l2_chosen"] and [r["l2"] for r in fit["validation"]] == [50]

    code, printed, err = run(capsys, "recommend", "evaluate", multvae_run, "--ease-max-items", "50")
    assert code == 0, err  # past the cap the evaluation still succeeds
    table = _table(printed)
    assert table[0][-1] == "EASE" and [row[-1] for row in table[1:]] == ["-", "-", "-"]
    why = [line for line in printed.splitlines() if line.startswith("EASE")]
    assert len(why) == 1 and "90 items" in why[0] and "max_items=50" in why[0] and "--ease-max-items 90" in why[0]
    doc = json.loads((multvae_run / "metrics.json").read_text())
    assert doc["ease"] is None and "--ease-max-items 90" in doc["ease_fit"]["skipped"]
    page = (multvae_run / "report.html").read_text()
    assert "EASE: not fitted" in page and "max_items=50" in page


def test_runs_evaluated_before_ease_still_render(multvae_run, capsys):
    assert run(capsys, "recommend", "evaluate", multvae_run)[0] == 0
    path = multvae_run / "metrics.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("ease", "ease_fit")}
    path.write_text(json.dumps(old))  # metrics.json as genlab wrote it before EASE was a baseline
    page = write_report(multvae_run).read_text()
    assert ">popularity</th>" in page and ">EASE</th>" not in page and f"{old['model']['ndcg_at_100']:.4f}" in page


def test_user_errors(ratings_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--model", "lightgcn", "--out", out)
    assert code == 2 and "invalid choice" in err and not out.exists()
    assert_user_error(*run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--model", "ease", "--epochs", 3,
                           "--out", out)[::2], "--epochs", "--model ease")
    assert_user_error(*run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--model", "ease", "--l2", "-1",
                           "--out", out)[::2], "l2 must be")
    assert_user_error(*run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--model", "ease", "--max-items", 10,
                           "--out", out)[::2], "90 items", "--max-items 90")
    assert_user_error(*run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--model", "ease", "--heldout-users", 0,
                           "--out", out)[::2], "--l2")
    assert_user_error(*run(capsys, "recommend", "fit", "--ratings", ratings_csv, "--l2", 5, "--out", out)[::2],
                      "--l2", "--model multvae")
    assert not out.exists() and list(tmp_path.iterdir()) == []
