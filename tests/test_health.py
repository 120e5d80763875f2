"""The health panel (spec §9, issue 16 item 2): each check's threshold on both sides of it, and real runs built to fail
— a collapsed conditional VAE, a GAN whose discriminator wins, a run that skips non-finite batches — named on their
pages and in the comparison; and the demo's conditional VAE, which must not collapse."""

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

import genlab
from genlab.cli import main
from genlab.data.split import train_validation_split
from genlab.demo import demo_runs
from genlab.evaluate import DESCRIPTIONS, METRIC_GROUPS, METRIC_LABELS, RANKING_LABELS, evaluate, reference_metrics
from genlab.evaluate.features import reference_features
from genlab.report import write_comparison, write_report
from genlab.report.health import (
    ACTIVE_COUNTED,
    ACTIVE_SHARE,
    CONDITIONAL_SHARE,
    CRITIC_GROWTH,
    D_SEPARATION,
    MEMORISATION_RATIO,
    THRESHOLDS,
    health_checks,
)

QUICK = ["--batch-size", "128", "--seed", "0", "--quiet"]


def metrics(values: dict, reference: dict) -> dict:
    return {"metrics": values, "reference": reference}


def only(findings, topic):
    [finding] = [f for f in findings if f.topic == topic]
    return finding


# --- each threshold, both sides ---------------------------------------------------------------------

@pytest.mark.parametrize("latent_dim, active, ok", [(8, 4, True), (8, 3, False), (64, 4, True), (64, 3, False), (2, 1, True),
                                                     (2, 0, False)])
def test_posterior_collapse_below_half_the_latent_dimensions_counting_at_most_eight(latent_dim, active, ok):
    last = {"active_units": active, **{f"kl_dim_{i}": 0.3 * (i < active) for i in range(latent_dim)}}
    finding = only(health_checks("vae", {}, [last], None, latent_dim=latent_dim), "posterior collapse")
    assert finding.ok is ok and f"{active} of {latent_dim} latent dimensions" in finding.text
    assert ("free_bits=0.5" in finding.text) is not ok


@pytest.mark.parametrize("recall, coverage, ok", [(0.47, 0.5, True), (0.46, 0.9, False), (0.9, 0.49, False)])
def test_diversity_below_half_of_real_data(recall, coverage, ok):
    finding = only(health_checks("gan", {}, [], metrics({"recall": recall, "coverage": coverage},
                                                        {"recall": 0.94, "coverage": 1.0})), "sample diversity")
    assert finding.ok is ok and f"recall {recall:.2f} (real data 0.94)" in finding.text and not finding.expected


def test_low_diversity_of_a_two_dimensional_code_is_an_expected_limit_on_images_only():
    low = metrics({"recall": 0.1}, {"recall": 0.94})
    finding = only(health_checks("vae", {}, [], low, latent_dim=2, n_features=64), "sample diversity")
    assert (finding.ok, finding.expected, finding.level) == (False, True, "note") and "latent_dim 8" in finding.text
    for family, n_features in (("vae", 2), ("gan", 64)):  # 2-D data fits a 2-D code; a GAN's code is not for drawing
        finding = only(health_checks(family, {}, [], low, latent_dim=2, n_features=n_features), "sample diversity")
        assert finding.level == "problem", (family, n_features)


@pytest.mark.parametrize("covered, ok", [(10, True), (9, False)])
def test_mode_collapse_when_a_class_of_real_data_is_missing(covered, ok):
    finding = only(health_checks("gan", {}, [], metrics({"classes_covered": covered}, {"classes_covered": 10})),
                   "mode collapse")
    assert finding.ok is ok and f"{covered} of the 10 classes" in finding.text


def test_mode_collapse_on_toy_modes():
    finding = only(health_checks("gan", {}, [], metrics({"modes_captured": 5}, {"modes_captured": 8})), "mode collapse")
    assert not finding.ok and "5 of the 8 modes" in finding.text


@pytest.mark.parametrize("ratio, ok", [(0.8, True), (0.79, False)])
def test_memorisation_below_the_ratio(ratio, ok):
    finding = only(health_checks("ae", {}, [], metrics({"memorisation_ratio": ratio}, {})), "memorisation")
    assert finding.ok is ok and f"{ratio:.2f}" in finding.text


@pytest.mark.parametrize("accuracy, ok", [(0.79, True), (0.78, False)])
def test_labels_followed_below_80_percent_of_real_data(accuracy, ok):
    finding = only(health_checks("gan", {}, [], metrics({"conditional_accuracy": accuracy}, {"conditional_accuracy": 0.98})),
                   "labels followed")
    assert finding.ok is ok


@pytest.mark.parametrize("params, real, fake, level", [
    ({"loss": "minimax"}, 0.9, 0.05, "ok"), ({"loss": "minimax"}, 0.97, 0.05, "problem"),
    ({}, 0.97, 0.05, "problem"),  # the default loss
    ({"label_smoothing": 0.9}, 0.87, 0.05, "problem"),  # D(x) aims at 0.9: 0.82 > 0.9 × 0.9
    ({"label_smoothing": 0.9}, 0.85, 0.05, "ok"),
    ({"semi_supervised": True}, 0.99, 0.01, "note"),  # a strong discriminator is the point there
])
def test_a_discriminator_that_separates_the_data_has_won(params, real, fake, level):
    record = {"d_loss": 0.1, "g_loss": 5.0, "d_real": real, "d_fake": fake}
    assert only(health_checks("gan", params, [record], None), "GAN balance").level == level


def wgan(gaps):
    return [{"d_loss": -g, "g_loss": 0.0, "d_real": g, "d_fake": 0.0} for g in gaps]


@pytest.mark.parametrize("late, ok", [(1.5, True), (1.6, False)])
def test_a_growing_wasserstein_gap(late, ok):
    gaps = [3.0, 3.0, 1.0, 1.0, 1.2, 1.2, late, late]  # quarters of two epochs: second quarter mean 1.0
    assert only(health_checks("gan", {"loss": "wasserstein"}, wgan(gaps), None), "GAN balance").ok is ok


def test_a_noisy_or_negative_critic_gap_is_not_an_alarm():
    noisy = [0.5, -0.16, 1.21, 0.3, 0.9, -0.1, 1.0, 0.4, 0.8, 0.2, 1.1, 0.3]  # per-epoch noise around a flat level
    assert only(health_checks("gan", {"loss": "wasserstein"}, wgan(noisy), None), "GAN balance").ok
    negative = [0.1, 0.1, -0.01, -0.01, 0.0, 0.01, 0.02, 0.02]  # "grew from -0.01 to 0.02" is no trend
    assert only(health_checks("gan", {"loss": "wasserstein"}, wgan(negative), None), "GAN balance").ok
    assert [f for f in health_checks("gan", {"loss": "wasserstein"}, wgan([1, 2, 3]), None) if f.topic == "GAN balance"] == []


@pytest.mark.parametrize("d_loss, ok", [(0.5, True), (0.05, False)])
def test_hinge_margins_both_met(d_loss, ok):
    record = {"d_loss": d_loss, "g_loss": 1.0, "d_real": 1.6, "d_fake": -1.4}  # a gap near 2 is the margin working
    assert only(health_checks("gan", {"loss": "hinge"}, [record], None), "GAN balance").ok is ok


def test_non_finite_losses_and_skipped_batches():
    diverged = only(health_checks("gan", {}, [{"d_loss": float("nan"), "g_loss": 1.0, "d_real": 0.5, "d_fake": 0.5}], None),
                    "GAN balance")
    assert not diverged.ok and "not finite" in diverged.text
    assert only(health_checks("ae", {}, [{"skipped_batches": 0}] * 2, None), "non-finite skips").ok
    skipped = only(health_checks("ae", {}, [{"skipped_batches": 0}, {"skipped_batches": 3}], None), "non-finite skips")
    assert not skipped.ok and "3 batches were skipped" in skipped.text and "in 1 of 2 epochs" in skipped.text
    assert [f for f in health_checks("ae", {}, [{"loss": 1.0}], None) if f.topic == "non-finite skips"] == []


def test_checks_that_do_not_apply_are_left_out():
    assert health_checks("ae", {}, [{"loss": 1.0}], None) == []  # no metrics yet, no records to judge
    assert [f.topic for f in health_checks("vae", {}, [{"active_units": 2}], None, latent_dim=2)] == ["posterior collapse"]


def test_every_metric_has_a_name_for_the_pages():
    assert set(DESCRIPTIONS) == set(METRIC_LABELS)
    grouped = [k for group in METRIC_GROUPS.values() for k in group]
    assert len(grouped) == len(set(grouped)) and set(grouped) | {"kid_std"} | set(RANKING_LABELS) == set(DESCRIPTIONS)


def test_the_thresholds_are_stated_on_the_page_and_in_the_readme(failing_runs):
    _, runs = failing_runs
    page = (runs["dwins"] / "report.html").read_text(encoding="utf-8")
    assert all(html.escape(t, quote=True) in page for t in THRESHOLDS)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("**The health panel**"):]
    for value in (f"{ACTIVE_SHARE:.0%}".replace("50%", "half"), f"counting at most {ACTIVE_COUNTED}", f"{MEMORISATION_RATIO:g}",
                  f"{CONDITIONAL_SHARE:.0%}", f"> {D_SEPARATION:g}", f"{CRITIC_GROWTH:g}×"):
        assert value in table, value


def test_an_unchecked_run_is_not_called_healthy(tmp_path):
    run = tmp_path / "ae"
    assert main(["train", "ae", "--data", "digits", "--arch", "linear", "--latent-dim", "2", *QUICK, "--out", str(run)]) == 0
    page = write_report(run).read_text(encoding="utf-8")
    assert "Health: not checked yet" in page and "nothing looks wrong" not in page


# --- real runs built to fail -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def failing_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("failing")
    X, _ = genlab.datasets.load("digits")
    X = X.reshape(len(X), -1)[:400].astype(np.float32) / 16
    X[7] = 1e30  # a row whose squared error overflows: its batch is skipped every epoch
    np.savez(root / "overflow.npz", X=X)
    runs = {"collapsed": root / "collapsed", "dwins": root / "dwins", "skips": root / "skips"}
    # the demo's conditional VAE before issue 16: Bernoulli likelihood on grey digits
    assert main(["train", "vae", "--data", "digits", "--latent-dim", "8", "--conditional", "--epochs", "60", *QUICK,
                 "--out", str(runs["collapsed"])]) == 0
    assert main(["evaluate", str(runs["collapsed"]), "--samples", "500"]) == 0
    assert main(["train", "gan", "--data", "digits", "--lr-g", "1e-7", "--lr-d", "2e-3", "--epochs", "3", *QUICK,
                 "--out", str(runs["dwins"])]) == 0
    assert main(["train", "vae", "--data", str(root / "overflow.npz"), "--likelihood", "gaussian", "--scaling", "none",
                 "--nonfinite", "skip", "--latent-dim", "3", "--epochs", "2", *QUICK, "--out", str(runs["skips"])]) == 0
    write_comparison(list(runs.values()), root / "index.html")
    return root, runs


def test_a_collapsed_conditional_vae_is_named_on_its_page(failing_runs):
    _, runs = failing_runs
    page = (runs["collapsed"] / "report.html").read_text(encoding="utf-8")
    panel = page[page.index('<section id=health'):page.index("</section>")]
    assert "problems found" in panel
    assert "latent dimensions are used" in panel and "free_bits=0.5" in panel  # fewer than half of the 8 in use
    assert "Low diversity: recall" in panel
    doc = json.loads((runs["collapsed"] / "metrics.json").read_text())
    assert doc["metrics"]["recall"] < 0.5 * doc["reference"]["recall"]  # the run really is collapsed


def test_a_gan_whose_discriminator_wins_and_a_run_with_skipped_batches(failing_runs):
    _, runs = failing_runs
    gan = (runs["dwins"] / "report.html").read_text(encoding="utf-8")
    assert "1 problem found" in gan and "tells real from generated almost perfectly" in gan
    assert "genlab evaluate" in gan  # the sample checks come after an evaluation
    skips = (runs["skips"] / "report.html").read_text(encoding="utf-8")
    assert "2 batches were skipped" in skips and "in 2 of 2 epochs" in skips


def test_the_comparison_page_has_a_health_column(failing_runs):
    root, _ = failing_runs
    page = (root / "index.html").read_text(encoding="utf-8")
    overview = page[:page.index("</table>")]
    assert "<th>health</th>" in overview
    for topic in ("posterior collapse", "sample diversity", "GAN balance", "non-finite skips"):
        assert f"<span class=is-problem>{topic}</span>" in overview
    assert 'href="collapsed/report.html#health"' in overview
    assert write_report(root / "collapsed").is_file()  # rewriting a page keeps working


# --- the demo's conditional VAE ---------------------------------------------------------------------

def test_the_demo_conditional_vae_samples_differ_within_a_class():
    """Issue 16 item 1: recall at least half of the real-data reference, and (nearly) every latent dimension in use."""
    settings = demo_runs()["cvae"]
    X, y = genlab.datasets.load(settings.data)
    vae = genlab.VAE(**settings.params).fit(X, y)
    train, held = train_validation_split(len(X), vae.validation_fraction, vae.seed_)
    features = reference_features(X[train], y[train])
    ours = evaluate(vae, X[held], y[held], X_train=X[train], y_train=y[train], n_samples=500, features=features)
    real = reference_metrics(X[held], y[held], X_train=X[train], n_samples=500, features=features)
    assert ours["recall"] >= 0.5 * real["recall"], (ours["recall"], real["recall"])
    assert vae.active_units(X[held], y[held]) >= 6
    findings = health_checks("vae", settings.params, vae.history_, {"metrics": ours, "reference": real}, latent_dim=8)
    assert all(f.ok for f in findings), [f.text for f in findings if not f.ok]


@pytest.mark.parametrize("key", [k for k in genlab.families.keys("train") if genlab.families.get(k).checks])
def test_a_familys_own_checks_advise_only_parameters_it_has(key):
    """A collapsed code and a winning discriminator, judged for each family with checks of its own: every `name=`
    the advice suggests is a parameter of that family (a VAE-GAN has no free_bits or label_smoothing)."""
    records = [{"active_units": 0, "d_loss": 0.01, "g_loss": 3.0, "d_real": 0.99, "d_fake": 0.01},
               {"active_units": 0, "d_loss": float("nan"), "g_loss": 3.0, "d_real": 0.99, "d_fake": 0.01}]
    params = set(genlab.families.get(key).estimator._params)
    texts = [f.text for r in records for f in health_checks(key, {}, [r], None, latent_dim=8) if not f.ok]
    assert texts
    for text in texts:
        named = set(re.findall(r"\b([a-z_0-9]+)=", text))
        assert named <= params, (key, text)
