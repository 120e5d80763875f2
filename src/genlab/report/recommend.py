"""The page of a recommendation run, ``RUN/report.html`` (see :mod:`genlab.runs.recommend`): the data and its split,
the test metrics of the model against the popularity and EASE baselines, how the model was chosen (Mult-VAE's
epochs, EASE's λ), and the configuration. Self-contained; the look is :mod:`genlab.report.html`'s."""

from __future__ import annotations

import html
import json
from pathlib import Path

import tomllib

from .. import families
from .._fileio import atomic_write_text
from ..models.ranking import RANKING_LABELS, SELECTION_METRIC
from ..runs.metrics import read_history
from ..runs.recommend import CURVES
from . import html as pagestyle


def write_report(run_dir: str | Path, *, name: str | None = None) -> Path:
    """(Re)write ``run_dir/report.html``: configuration, test metrics against the baselines (once evaluated) and
    how the model was chosen. Runs evaluated before EASE was a baseline (no ``"ease"`` in metrics.json) show
    popularity alone."""
    run_dir = Path(run_dir)
    name = name or run_dir.name
    config = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    history = read_history(run_dir / "metrics.jsonl")
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    split = config.get("split", {})
    model = config.get("model")
    model_name = families.FAMILIES[model].short if model in families.keys("recommend") else str(model)
    e = html.escape
    parts = [f"<p class=lead>{e(str(config.get('ratings', '')))}: {split.get('users', '?')} users × {split.get('items', '?')} items, "
             f"{split.get('interactions', '?')} interactions. Users: {split.get('train_users', '?')} train, "
             f"{split.get('validation_users', '?')} validation, {split.get('test_users', '?')} test.</p>",
             "<h2>Test metrics</h2>"]
    if metrics is None:
        parts.append(f"<p class=note>Not evaluated yet: run <code>genlab recommend evaluate {e(name)}</code> to rank the "
                     "test users' held-out items with this model and the baselines.</p>")
    else:
        parts.append(_metrics_table(metrics, model_name))
    if model in families.keys("recommend") and families.get(model).closed_form:  # no epochs: the λ it chose and why
        parts.append("<h2>Choosing λ</h2>")
        parts.append(_selection_section(history))
    else:
        parts.append("<h2>Training</h2>")
        parts.extend(_training_section(run_dir, history))
    parts.append("<h2>Configuration</h2>")
    parts.append(pagestyle.config_table(config))
    path = run_dir / "report.html"
    atomic_write_text(path, pagestyle.page(f"{model_name} recommender: {name}", "\n".join(parts), kind="recommendation run"))
    return path


def _number(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _metrics_table(metrics: dict, model_name: str) -> str:
    """Test metrics, one column per recommender (the best of each row in bold), and what each baseline is."""
    fraction = metrics.get("fraction", 0.2)
    columns = [(model_name, metrics["model"]), ("popularity", metrics["popularity"])]
    if "ease" in metrics:  # absent: evaluated before EASE was a baseline, or the model is EASE
        columns.append(("EASE", metrics["ease"] or {}))
    rows = []
    for key, label in RANKING_LABELS.items():
        values = [scores.get(key) for _, scores in columns]
        best = max((v for v in values if v is not None), default=None)
        cells = "".join(f"<td class='n{' better' if v is not None and v == best else ''}'>{_number(v)}</td>" for v in values)
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    head = "".join(f"<th class=n>{html.escape(title)}</th>" for title, _ in columns)
    notes = [f"Higher is better; the best of each row is in bold. {metrics['n_test_users']} test users: each one's items are "
             f"split at random (seed {metrics.get('seed', 0)}); the recommender is given {100 * (1 - fraction):g}% and ranks all "
             f"the items it was not given to find the other {100 * fraction:g}%, as in Liang et al. (WWW 2018). Popularity "
             "recommends the items most training users have, to everyone."]
    if "ease" in metrics:
        notes.append(html.escape(ease_note(metrics)))
    return (f"<div class=wide><table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + "".join(f"<p class=note>{n}</p>" for n in notes))


def ease_note(metrics: dict) -> str:
    """One line on the EASE baseline of an evaluation: how it was fitted and its λ, or why it is missing."""
    fit = metrics.get("ease_fit") or {}
    if metrics.get("ease") is None:
        return f"EASE: not fitted ({fit.get('skipped', 'no reason recorded')})."
    how = "chosen by the validation users' NDCG@100" if fit.get("l2_chosen") else "given"
    return (f"EASE (Steck, WWW 2019) is fitted on the training users with λ = {fit.get('l2', float('nan')):g} ({how}; "
            f"{fit.get('validation_users', '?')} validation users, as the model's), in {fit.get('fit_seconds', float('nan')):.1f} s.")


def _training_section(run_dir: Path, history: list[dict]) -> list[str]:
    parts = []
    key = f"val_{SELECTION_METRIC}"
    ranked = [r for r in history if key in r]
    if ranked:
        best = max(ranked, key=lambda r: r[key])  # the first maximum, as the training loop keeps it
        parts.append(f"<p>{len(history)} epochs; the model kept is epoch {best['epoch']}, with validation "
                     f"{RANKING_LABELS[SELECTION_METRIC]} {best[key]:.4f}.</p>")
    elif history:
        parts.append(f"<p>{len(history)} epochs, no validation users: the last epoch is kept.</p>")
    curves = run_dir / CURVES
    if curves.is_file():
        parts.append(pagestyle.figure(curves.read_bytes(), "training curves: loss, nll, kl, beta and validation ranking metrics per epoch"))
    if history:
        parts.append("<p class=note>Validation loss terms are computed from the validation users' fold-in items (80%), so "
                     "they sit below the training ones; the epoch is chosen by the ranking metrics.</p>")
        parts.append(_epoch_table(history))
    return parts


def _selection_section(history: list[dict]) -> str:
    """EASE's λ path from metrics.jsonl (one record per λ tried): the validation metrics, the kept λ in bold."""
    if not history:
        return "<p>λ was given and no validation users were held out: there was nothing to choose.</p>"
    best = max(history, key=lambda r: r[SELECTION_METRIC])  # the first maximum, as EASE keeps it
    rows = "".join(f"<tr><td class='n{' better' if r is best else ''}'>{r['l2']:g}</td>"
                   + "".join(f"<td class=n>{_number(r.get(k))}</td>" for k in RANKING_LABELS)
                   + f"<td class=n>{r.get('seconds', 0):.2f}</td></tr>" for r in history)
    head = "".join(f"<th class=n>validation {label}</th>" for label in RANKING_LABELS.values())
    return (f"<p>EASE has no epochs: it is fitted in closed form once per λ. λ = {best['l2']:g} is kept, with validation NDCG@100 "
            f"{best[SELECTION_METRIC]:.4f}; its weights are those fitted on the training users.</p>"
            f"<div class=wide><table><thead><tr><th class=n>λ</th>{head}<th class=n>seconds</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def _epoch_table(history: list[dict]) -> str:
    named = {"loss": "loss", "nll": "nll", "kl": "kl", "beta": "β", **{f"val_{k}": f"val {v}" for k, v in RANKING_LABELS.items()}}
    columns = [(k, label) for k, label in named.items() if k in history[0]]
    head = "".join(f"<th class=n>{html.escape(label)}</th>" for _, label in columns)
    body = "".join("<tr><td class=n>" + str(r.get("epoch", "")) + "</td>"
                   + "".join(f"<td class=n>{r[k]:.4g}</td>" for k, _ in columns) + "</tr>" for r in history)
    return (f"<details><summary>per epoch</summary><div class=wide><table><thead><tr><th class=n>epoch</th>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table></div></details>")
