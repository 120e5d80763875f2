"""`genlab evaluate`, `genlab compare` and `genlab report` on real (tiny) runs: metrics.json, the
terminal tables, the pages, and one-line errors for bad input."""

import json

import pytest

from genlab.cli import main


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE_DIR", str(root / "cache"))
        assert main(["train", "vae", "--data", "digits", "--latent-dim", "4", "--hidden", "32", "--epochs", "2", "--seed", "0",
                     "--quiet", "--out", str(root / "vae")]) == 0
        assert main(["train", "gan", "--data", "digits", "--hidden", "32", "--epochs", "2", "--seed", "0", "--quiet",
                     "--out", str(root / "gan")]) == 0
    return root


@pytest.fixture(autouse=True)
def _private_cache(two_runs, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE_DIR", str(two_runs / "cache"))


def test_evaluate_writes_metrics_json_and_prints_the_table(two_runs, capsys):
    assert main(["evaluate", str(two_runs / "vae"), "--samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "frechet_distance" in out and "nll" in out and "real data" in out and "reference CNN" in out
    doc = json.loads((two_runs / "vae" / "metrics.json").read_text())
    assert doc["format"] == "genlab-metrics" and doc["model"] == "VAE"
    assert doc["metrics"]["frechet_distance"] > doc["reference"]["frechet_distance"] >= 0  # real data beats a 2-epoch VAE


def test_compare_puts_runs_side_by_side_and_writes_a_page(two_runs, capsys):
    out_html = two_runs / "compare.html"
    assert main(["compare", str(two_runs / "vae"), str(two_runs / "gan"), "--out", str(out_html)]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0].split()
    assert header == ["metric", "vae", "gan"]
    assert "frechet_distance" in table and (two_runs / "gan" / "metrics.json").is_file()  # evaluated on the way
    page = out_html.read_text()
    assert "vae/report.html" in page and "https://" not in page


def test_report_writes_the_page(two_runs, capsys):
    assert main(["report", str(two_runs / "gan")]) == 0
    assert (two_runs / "gan" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "nowhere"], "not a genlab run"),
    (["compare", "nowhere"], "not a genlab run"),
    (["report", "nowhere"], "not a genlab run"),
    (["evaluate", "RUN", "--samples", "5"], "at least 10"),
])
def test_bad_input_is_one_line_and_exit_2(two_runs, capsys, argv, message, tmp_path):
    argv = [str(two_runs / "vae") if a == "RUN" else (str(tmp_path / a) if a == "nowhere" else a) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_recommendation_runs_and_foreign_metrics_files_are_one_line_errors(two_runs, tmp_path, capsys):
    from genlab.data.protocol import make_interactions

    data = make_interactions(120, 40, 2, random_state=0)
    rows = zip(*data.matrix.nonzero())
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n" + "".join(f"{u},{i},5\n" for u, i in rows))
    rec = tmp_path / "rec"
    assert main(["recommend", "fit", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(rec), "--epochs", "2",
                 "--hidden", "16", "--latent-dim", "4", "--quiet"]) == 0
    capsys.readouterr()
    for argv in (["evaluate", str(rec)], ["compare", str(two_runs / "vae"), str(rec)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "recommendation run" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(rec)]) == 0  # its own page
    for argv in (["sample", str(rec), "-n", "2", "--out", str(tmp_path / "s.npy")], ["train", "--resume", str(rec)]):
        capsys.readouterr()
        assert main(argv) == 2 and "genlab recommend" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.toml").write_text((two_runs / "vae" / "config.toml").read_text())
    (foreign / "metrics.json").write_text('{"something": "else"}')
    capsys.readouterr()
    assert main(["compare", str(foreign)]) == 2
    assert "not a genlab metrics file" in capsys.readouterr().err
