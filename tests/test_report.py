"""The run report and the comparison page (spec §9), read as HTML: the right sections for each model family and none
that do not apply, every image inlined, nothing fetched from the network, text from config files escaped, and
relative links between the pages. The same pages in a real browser: test_report_browser.py."""

import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

import genlab
from genlab.cli import main
from genlab.errors import InvalidInputError
from genlab.report import write_comparison, write_report

QUICK = ["--batch-size", "128", "--seed", "0", "--quiet"]
METRICS = {"format": "genlab-metrics", "version": 1, "model": "GAN", "data": "digits", "n_heldout": 180,
           "feature_extractor": {"kind": "classifier", "test_accuracy": 0.968, "note": "genlab's reference CNN trained on these labels"},
           "metrics": {"frechet_distance": 31.25, "precision": 0.5, "classes_covered": 9},
           "reference": {"frechet_distance": 1.5, "precision": 0.91, "classes_covered": 10},
           "descriptions": {"frechet_distance": "Fréchet distance between sample and real features; lower is better",
                            "precision": "share of samples on the real data's manifold; higher is better",
                            "classes_covered": "classes the samples fall into; higher is better"}}


class Page(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.h3, self.urls, self.tags, self._in = [], [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        self.urls += [(tag, name, value) for name, value in attrs.items() if name in ("src", "srcset", "href")]
        self._in = tag if tag == "h3" else None

    def handle_data(self, data):
        if self._in == "h3":
            self.h3.append(data)


def train(out, *argv):
    assert main([str(a) for a in ["train", *argv, *QUICK, "--out", out]]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    X, y = genlab.datasets.load("digits")
    weird = root / "<script>alert(1)</script>"  # a data path that would inject a script if it were not escaped
    weird.mkdir(parents=True)
    np.savez(weird / "digits.npz", X=X[:300], y=y[:300])
    made = {
        "ae": train(root / "ae", "ae", "--data", "digits", "--latent-dim", "3", "--epochs", "1"),
        "vae": train(root / "vae", "vae", "--data", "digits", "--latent-dim", "2", "--epochs", "2"),
        "cgan": train(root / "cgan", "gan", "--data", "digits", "--conditional", "--epochs", "1"),
        "toy": train(root / "toy", "ae", "--data", "ring8", "--arch", "linear", "--latent-dim", "1"),
        "weird": train(root / "weird", "ae", "--data", weird / "digits.npz", "--arch", "linear", "--latent-dim", "2"),
    }
    (made["cgan"] / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    return made


@pytest.fixture(scope="module")
def pages(runs):
    return {name: write_report(run).read_text(encoding="utf-8") for name, run in runs.items()}


@pytest.mark.parametrize("name, sections", [
    ("ae", ["samples", "neighbours", "reconstructions", "latent", "metrics", "training", "configuration"]),
    ("vae", ["samples", "neighbours", "reconstructions", "latent", "metrics", "training", "configuration"]),
    ("cgan", ["samples", "neighbours", "latent", "metrics", "training", "configuration"]),  # no encoder: no reconstructions;
    # its latent section is the interpolation between its own samples' codes
    ("toy", ["samples", "reconstructions", "latent", "metrics", "configuration"]),  # 2-D points; closed form: no curves
])
def test_each_family_gets_its_sections_and_no_others(pages, name, sections):
    page = Page(pages[name])
    assert page.sections == ["health", *sections]  # the health panel first, above the table of contents
    assert [a[2] for a in page.urls if a[1] == "href"] == [f"#{s}" for s in sections]  # the table of contents


def test_section_contents_follow_the_model(pages):
    vae, ae, cgan, toy = (Page(pages[n]) for n in ("vae", "ae", "cgan", "toy"))
    assert "The 2-D latent space decoded" in vae.h3 and "The 2-D latent space decoded" not in ae.h3  # manifold: 2-D codes only
    assert {"Interpolations", "Traversals", "Codes of the data"} <= set(ae.h3)
    assert "KL per latent dimension" in pages["vae"] and "trained for 2 epochs" in pages["vae"]
    assert "d_real and d_fake" in pages["cgan"] and "one row per class" in pages["cgan"]
    assert "fitted in closed form" in pages["toy"] and "1,000 samples drawn as points" in pages["toy"]
    assert "conditional MLP generative adversarial network" in pages["cgan"]


def test_metrics_table_with_reference_values_or_a_pointer_to_evaluate(pages, runs):
    page = pages["cgan"]
    table = page[page.index('<section id="metrics">'):page.index('<section id="training">')]
    assert table.count("<tr>") == 4  # header + 3 metrics
    for text in ("FID", "frechet_distance", "classes covered", "31.25", "1.5", "0.91", "lower is better", "reference CNN",
                 "96.8%", "180 held-out"):
        assert text in table
    assert "Not evaluated yet" in pages["ae"] and f"genlab evaluate {runs['ae']}" in pages["ae"]


def test_pages_are_self_contained(pages):
    for name, text in pages.items():
        page = Page(text)
        images = [v for tag, attr, v in page.urls if attr in ("src", "srcset")]
        assert images and all(v.startswith("data:image/png;base64,") for v in images), name
        assert not re.search(r"https?://", " ".join(v for _, _, v in page.urls)), name
        assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
        assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in text  # the browser loads nothing else
        assert 'name=viewport content="width=device-width' in text


def test_text_from_the_config_is_escaped(pages, runs, tmp_path):
    page = pages["weird"]
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    hostile = {**METRICS, "descriptions": {"precision": "<img src=x onerror=alert(1)>"}, "metrics": {"<b>x</b>": 1.0}}
    (runs["weird"] / "metrics.json").write_text(json.dumps(hostile), encoding="utf-8")
    try:
        again = Page(write_report(runs["weird"]).read_text(encoding="utf-8"))
    finally:
        (runs["weird"] / "metrics.json").unlink()
    assert [tag for tag in again.tags if tag in ("b", "script")] == []
    assert all(v.startswith(("data:", "#")) for _, _, v in again.urls)


def test_without_its_data_the_page_uses_the_stored_figures_and_says_why(tmp_path):
    X, y = genlab.datasets.load("digits")
    np.savez(tmp_path / "d.npz", X=X[:200], y=y[:200])
    run = train(tmp_path / "run", "ae", "--data", tmp_path / "d.npz", "--arch", "linear", "--latent-dim", "2")
    (tmp_path / "d.npz").unlink()
    text = write_report(run).read_text(encoding="utf-8")
    assert "could not be loaded" in text
    assert Page(text).sections == ["health", "samples", "reconstructions", "latent", "metrics", "configuration"]  # no neighbours


def test_a_run_without_its_model_still_gets_a_page(runs, tmp_path):
    run = tmp_path / "stopped"
    shutil.copytree(runs["ae"], run)
    for name in ("model.json", "model.safetensors", "report.html"):
        (run / name).unlink(missing_ok=True)
    text = write_report(run).read_text(encoding="utf-8")
    assert "no saved model" in text and "genlab train --resume" in text
    assert "training" in Page(text).sections  # the curves come from metrics.jsonl


def test_comparison_links_each_run_relatively(runs, tmp_path):
    out = write_comparison([runs["ae"], runs["cgan"]], runs["ae"].parent / "compare.html")
    page = Page(out.read_text(encoding="utf-8"))
    links = [v.split("#")[0] for tag, attr, v in page.urls if attr == "href"]
    assert sorted(set(links)) == ["ae/report.html", "cgan/report.html"]
    assert (runs["ae"] / "report.html").is_file() and (runs["cgan"] / "report.html").is_file()
    text = out.read_text(encoding="utf-8")
    for expected in ("<th class=n>FID</th>", "31.25", "real held-out data", "Not evaluated yet: ae", "conditional MLP GAN",
                     "latent_dim 3, 1 epoch<", "<span class=is-problem>mode collapse</span>"):  # 9 of 10 classes
        assert expected in text
    assert all(v.startswith("data:image/png;base64,") for _, attr, v in page.urls if attr == "src")
    elsewhere = write_comparison([runs["ae"]], tmp_path / "c.html")  # from another folder: links climb out of it
    link = next(v for _, attr, v in Page(elsewhere.read_text(encoding="utf-8")).urls if attr == "href")
    assert link.startswith("../") and (tmp_path / link).resolve() == (runs["ae"] / "report.html").resolve()


def test_bad_arguments_are_user_errors(runs, tmp_path):
    with pytest.raises(InvalidInputError, match="not a genlab run directory"):
        write_report(tmp_path)
    with pytest.raises(InvalidInputError, match="at least one run"):
        write_comparison([], tmp_path / "c.html")
    with pytest.raises(InvalidInputError, match=r"\.html"):
        write_comparison([runs["toy"]], tmp_path / "c.png")
    with pytest.raises(InvalidInputError, match="does not exist"):
        write_comparison([runs["toy"]], tmp_path / "missing" / "c.html")
    with pytest.raises(InvalidInputError, match="is the report of run"):
        write_comparison([runs["toy"]], runs["toy"] / "report.html")
