"""genlab recommend fit / evaluate / predict on real MovieLens-layout files: the run directory, the paper's
protocol against popularity, original ids in and out, and user errors as one line with exit 2."""

import csv
import json
import re

import numpy as np
import pytest
import tomllib

import genlab
from conftest import assert_user_error, run
from genlab.cli import main
from genlab.data.protocol import make_interactions

TINY = ["--epochs", "5", "--hidden", "32", "--latent-dim", "8", "--batch-size", "100", "--lr", "0.01", "--seed", "0", "--quiet"]
N_USERS, N_ITEMS = 400, 120


def _ratings(random_state=0):
    """(user id, item id, rating) rows in original ids: planted interactions rated 4–5, plus low ratings
    (1–3) of other items that the 3.5 threshold must drop. Ids are not row numbers, so mix-ups show."""
    data = make_interactions(N_USERS, N_ITEMS, 4, items_per_user=(8, 25), random_state=random_state)
    rng = np.random.default_rng(random_state)
    user_id = 1000 + 7 * np.arange(N_USERS)
    item_id = 50 + 3 * rng.permutation(N_ITEMS)
    users, items = data.matrix.nonzero()
    rows = [(user_id[u], item_id[i], float(rng.choice([4.0, 4.5, 5.0]))) for u, i in zip(users, items)]
    dense = data.matrix.toarray() > 0
    for u in range(0, N_USERS, 3):
        for i in rng.choice(np.flatnonzero(~dense[u]), 3, replace=False):
            rows.append((user_id[u], item_id[i], float(rng.choice([1.0, 2.0, 3.0]))))
    order = rng.permutation(len(rows))
    return [rows[k] for k in order]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rows = _ratings()
    ratings_csv = folder / "ratings.csv"
    ratings_csv.write_text("userId,movieId,rating,timestamp\n"
                           + "".join(f"{u},{i},{r:.1f},{964982703 + k}\n" for k, (u, i, r) in enumerate(rows)))
    u_data = folder / "u.data"
    u_data.write_text("".join(f"{u}\t{i}\t{int(r)}\t{881250949 + k}\n" for k, (u, i, r) in enumerate(rows)))
    liked = {}
    for u, i, r in rows:
        if r > 3.5:
            liked.setdefault(u, set()).add(i)
    return {"csv": ratings_csv, "u.data": u_data, "liked": liked, "items": {i for _, i, _ in rows}}


@pytest.fixture(scope="module")
def fitted(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "rec"
    assert main(["recommend", "fit", "--ratings", str(files["csv"]), "--out", str(out), "--no-evaluate", *TINY]) == 0
    return out


def test_one_command_from_a_ratings_file_to_the_papers_metrics(files, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["recommend", "fit", "--ratings", str(files["csv"]), "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "NDCG@100" in printed and "Recall@20" in printed and "popularity" in printed
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["model"]["ndcg_at_100"] > doc["popularity"]["ndcg_at_100"]


def test_fit_writes_the_run_directory(fitted, files):
    names = {p.name for p in fitted.iterdir()}
    assert {"config.toml", "interactions.npz", "model", "metrics.jsonl", "training_curves.png", "report.html"} <= names
    assert "checkpoints" not in names and not any(n.startswith(".") for n in names)
    config = tomllib.loads((fitted / "config.toml").read_text())
    assert config["ratings"] == str(files["csv"]) and len(config["data_info"]["sha256"]) == 64
    assert config["threshold"] == 3.5 and config["implicit"] is False and config["min_interactions"] == 5
    assert config["model"] == "multvae" and config["seed"] == 0 and config["params"]["hidden"] == [32]
    assert config["heldout_users"] == 40 and config["params"]["validation_users"] == 40  # 10% of 400 users, each
    assert (config["split"]["users"], config["split"]["items"]) == (N_USERS, N_ITEMS)
    assert [config["split"][k] for k in ("train_users", "validation_users", "test_users")] == [320, 40, 40]

    with np.load(fitted / "interactions.npz", allow_pickle=False) as f:
        arrays = dict(f)
    assert tuple(arrays["shape"]) == (N_USERS, N_ITEMS) and arrays["user_ids"].dtype == np.int64
    assert set(arrays["user_ids"].tolist()) == {1000 + 7 * u for u in range(N_USERS)}
    assert len(arrays["indptr"]) == N_USERS + 1 and len(arrays["data"]) == sum(map(len, files["liked"].values()))
    parts = [set(arrays[k].tolist()) for k in ("train_rows", "validation_rows", "test_rows")]
    assert [len(p) for p in parts] == [320, 40, 40] and set().union(*parts) == set(range(N_USERS))

    model = genlab.load(fitted / "model")
    assert isinstance(model, genlab.MultVAE) and model.hidden == (32,) and model.n_features_in_ == N_ITEMS
    records = [json.loads(line) for line in (fitted / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5 and {"loss", "nll", "kl", "beta", "val_ndcg_at_100"} <= set(records[0])
    page = (fitted / "report.html").read_text()
    assert "Not evaluated yet" in page and "data:image/png;base64," in page


def test_evaluate_beats_popularity_and_writes_metrics_and_report(fitted, capsys):
    code, out, err = run(capsys, "recommend", "evaluate", fitted)
    assert code == 0, err
    result = json.loads((fitted / "metrics.json").read_text())
    assert result["n_test_users"] == 40
    assert set(result["model"]) == set(result["popularity"]) == {"recall_at_20", "recall_at_50", "ndcg_at_100"}
    assert result["model"]["ndcg_at_100"] > result["popularity"]["ndcg_at_100"]  # planted groups: popularity cannot see them
    lines = out.strip().splitlines()
    assert lines[0].split() == ["metric", "MultVAE", "popularity", "EASE"]
    assert lines[3].split()[0] == "NDCG@100" and float(lines[3].split()[1]) == pytest.approx(result["model"]["ndcg_at_100"], abs=1e-4)

    page = (fitted / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page), "the report must not load anything from the network"
    assert "Not evaluated yet" not in page and "<table" in page and "NDCG@100" in page and "popularity" in page
    assert f"{result['model']['ndcg_at_100']:.4f}" in page and f"{result['popularity']['ndcg_at_100']:.4f}" in page
    assert re.search(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)
    assert 'name=viewport content="width=device-width' in page


def test_predict_user_prints_unseen_items_in_original_ids(fitted, files, capsys):
    user = 1000 + 7 * 12
    code, out, err = run(capsys, "recommend", "predict", fitted, "--user", user, "-n", 7)
    assert code == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(1, 8))
    items = [int(r[1]) for r in rows]
    assert set(items) <= files["items"] and not set(items) & files["liked"][user] and len(set(items)) == 7
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_predict_all_writes_every_user_in_original_ids(fitted, files, tmp_path, capsys):
    out_csv = tmp_path / "recs.csv"
    code, out, err = run(capsys, "recommend", "predict", fitted, "--all", "--out", out_csv, "-n", 5)
    assert code == 0, err
    with open(out_csv, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["user", "rank", "item", "score"] and len(rows) == 1 + N_USERS * 5
    by_user = {}
    for user, rank, item, _ in rows[1:]:
        by_user.setdefault(int(user), []).append((int(rank), int(item)))
    assert set(by_user) == set(files["liked"])
    for user, recs in by_user.items():
        assert [r for r, _ in recs] == [1, 2, 3, 4, 5]
        assert not {i for _, i in recs} & files["liked"][user]
    first = run(capsys, "recommend", "predict", fitted, "--user", rows[1][0], "-n", 5)[1].splitlines()
    assert [line.split("\t")[1] for line in first] == [item for _, _, item, _ in rows[1:6]]  # --all agrees with --user
    assert_user_error(*run(capsys, "recommend", "predict", fitted, "--all", "--out", out_csv)[::2], "already exists")


def test_u_data_with_mult_dae_and_a_nearly_exhausted_user(files, tmp_path, capsys):
    """Tabs and no header; -n beyond a user's unseen items gives fewer rows, never a padded −1 as an id."""
    out = tmp_path / "dae"
    code, _, err = run(capsys, "recommend", "fit", "--ratings", files["u.data"], "--model", "multdae", "--heldout-users", 0,
                       "--out", out, *TINY)
    assert code == 0, err
    assert genlab.load(out / "model").__class__ is genlab.MultDAE
    user = 1000 + 7 * 5
    n_unseen = N_ITEMS - len(files["liked"][user])
    code, printed, err = run(capsys, "recommend", "predict", out, "--user", f" {user} ", "-n", N_ITEMS)
    assert code == 0, err
    items = [int(line.split("\t")[1]) for line in printed.splitlines()]
    assert len(items) == n_unseen and set(items) == files["items"] - files["liked"][user]
    assert_user_error(*run(capsys, "recommend", "evaluate", out)[::2], "no test users")
    code, _, err = run(capsys, "recommend", "fit", "--ratings", files["u.data"], "--out", out, "--overwrite", *TINY)
    assert code == 0, err  # replaced by a run with the default split, evaluated on its test users straight away
    assert "ndcg@100" in (out / "report.html").read_text().lower() and [p.name for p in tmp_path.iterdir()] == ["dae"]
    assert (out / "metrics.json").is_file()


def test_bad_ratings_files_leave_nothing_behind(files, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "recommend", "fit", "--ratings", tmp_path / "missing.csv", "--out", out, *TINY)
    assert_user_error(code, err, "missing.csv")
    assert not out.exists() and stdout == ""

    lines = files["csv"].read_text().splitlines()
    lines[57] = lines[57] + ",extra"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "recommend", "fit", "--ratings", bad, "--out", out, *TINY)
    assert_user_error(code, err, "line 58")
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]

    code, _, err = run(capsys, "recommend", "fit", "--ratings", files["csv"], "--out", out, "--heldout-users", 200, *TINY)
    assert_user_error(code, err, "n_heldout=200")
    assert not out.exists()


def test_an_existing_run_is_refused_and_left_as_it_was(fitted, files, capsys):
    before = {p: p.read_bytes() for p in sorted(fitted.rglob("*")) if p.is_file()}
    code, _, err = run(capsys, "recommend", "fit", "--ratings", files["csv"], "--out", fitted, *TINY)
    assert_user_error(code, err, "already exists", "--overwrite")
    assert {p: p.read_bytes() for p in sorted(fitted.rglob("*")) if p.is_file()} == before
    assert sorted(p.name for p in fitted.parent.iterdir()) == [fitted.name]


def test_unknown_users_and_bad_run_directories(fitted, tmp_path, capsys):
    assert_user_error(*run(capsys, "recommend", "predict", fitted, "--user", "999999")[::2], "unknown user id")
    assert_user_error(*run(capsys, "recommend", "predict", fitted, "--user", "abc")[::2], "unknown user id")
    assert_user_error(*run(capsys, "recommend", "evaluate", tmp_path)[::2], "not a recommendation run directory")
    assert_user_error(*run(capsys, "recommend", "predict", fitted, "--all")[::2], "--out")


def test_string_ids_round_trip_without_pickle(tmp_path, capsys):
    """Two columns (user,item; every row an interaction) with text ids: stored as fixed-width unicode, matched exactly."""
    data = make_interactions(60, 30, 3, items_per_user=(6, 12), random_state=1)
    users, items = data.matrix.nonzero()
    table = tmp_path / "plays.csv"
    table.write_text("user,item\n" + "".join(f"u{u:03d},tt{i:04d}\n" for u, i in zip(users, items)))
    out = tmp_path / "run"
    code, _, err = run(capsys, "recommend", "fit", "--ratings", table, "--out", out, *TINY)
    assert code == 0, err
    with np.load(out / "interactions.npz", allow_pickle=False) as f:
        assert f["user_ids"].dtype.kind == f["item_ids"].dtype.kind == "U" and f["user_ids"][3] == "u003"
    code, printed, err = run(capsys, "recommend", "predict", out, "--user", "u007", "-n", 3)
    assert code == 0, err
    seen = {f"tt{i:04d}" for i in data.matrix[7].indices}
    recs = [line.split("\t")[1] for line in printed.splitlines()]
    assert len(recs) == 3 and all(r.startswith("tt") for r in recs) and not set(recs) & seen
    assert_user_error(*run(capsys, "recommend", "predict", out, "--user", "7")[::2], "unknown user id")


@pytest.mark.parametrize("cmd", ["recommend", "recommend fit", "recommend evaluate", "recommend predict"])
def test_recommend_commands_explain_themselves_with_an_example(cmd, capsys):
    assert main([*cmd.split(), "--help"]) == 0
    assert "example" in capsys.readouterr().out


def test_a_run_that_diverges_leaves_nothing_behind(files, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, "recommend", "fit", "--ratings", files["csv"], "--out", out, *TINY, "--lr", "inf")
    assert code == 1 and "non-finite" in err and "--resume" not in err  # no command resumes a recommendation run
    assert list(tmp_path.iterdir()) == []


def test_evaluate_and_report_of_a_recommendation_run_take_its_lock(fitted, capsys):
    """One writer per run (issue 16 item 4): while another writer holds the run, evaluate and report change nothing."""
    from genlab._runlock import run_lock

    before = {p.name: p.stat().st_mtime_ns for p in fitted.iterdir()}
    with run_lock(fitted, "genlab recommend fit"):  # a real flock, as another process would hold it
        for argv in (("recommend", "evaluate", fitted), ("report", fitted)):
            code, _, err = run(capsys, *argv)
            assert_user_error(code, err, "being written by", "genlab recommend fit")
    assert {p.name: p.stat().st_mtime_ns for p in fitted.iterdir()} == before
