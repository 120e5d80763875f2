"""A page comparing runs (spec §7, §9): ``write_comparison([RUN, ...], OUT_HTML)``.

An overview table with a row per run (model, data, key settings, the health checks, the last epoch's losses), a
table per group of metrics from each run's metrics.json with reference rows for real held-out data, and a card per
run with its samples and a link to its own report.html. Links are relative, so the page works from disk and moves with the runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from .. import runs
from .._fileio import atomic_write_text
from .._runlock import run_lock
from ..errors import InvalidInputError
from ..evaluate.evaluate import METRIC_GROUPS, METRIC_LABELS
from . import html as h
from .run import RunView, checks, final_numbers, metric_cell, model_label, read_run, render

NOT_SETTINGS = {"latent_dim", "epochs", "arch", "conditional", "random_state", "verbose", "device"}  # shown elsewhere, or not settings


def write_comparison(run_dirs, out_html: str | Path) -> Path:
    """Write one self-contained page comparing runs, and (re)write each run's own ``report.html`` it links to.

    Parameters
    ----------
    run_dirs : iterable of str or path-like
        Run directories written by ``genlab train`` (at least one).
    out_html : str or path-like
        The page to write (``.html``); its folder must exist. Links to the runs' pages are relative to it.

    Returns
    -------
    Path of the page.
    """
    run_dirs = [Path(r) for r in run_dirs]
    out = Path(out_html)
    if not run_dirs:
        raise InvalidInputError("give at least one run directory to compare.")
    if out.suffix.lower() not in (".html", ".htm"):
        raise InvalidInputError(f"the comparison page is HTML: give a file name ending in .html, not {out.name!r}.")
    if not out.parent.is_dir():
        raise InvalidInputError(f"the folder {out.parent} does not exist; create it first.")
    for run_dir in run_dirs:
        runs.require_kind(run_dir, "train", "compare runs of `genlab train` (its own page: `genlab report`)")
        if (run_dir / "report.html").resolve() == out.resolve():
            raise InvalidInputError(f"{out} is the report of run {run_dir}; write the comparison elsewhere.")
    views = []
    for run_dir in dict.fromkeys(run_dirs):  # each run once, in the order given
        if not (run_dir / "config.toml").is_file():
            raise InvalidInputError(f"{run_dir} is not a genlab run directory (no config.toml).")
        with run_lock(run_dir, "genlab compare"):  # its report.html is rewritten: not while the run is being written
            view = read_run(run_dir)
            atomic_write_text(run_dir / "report.html", render(view))
        views.append(view)
    atomic_write_text(out, render_comparison(views, out.parent))
    return out


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _settings(view: RunView) -> str:
    """latent_dim, epochs, and every parameter the run set away from its family's default."""
    defaults = view.family.estimator().get_params()
    parts = [f"latent_dim {view.latent_dim}"] if view.latent_dim else []
    parts.append("closed form" if view.history and view.epochs == 0 else f"{view.epochs} epoch{'s' if view.epochs != 1 else ''}")
    for key, value in view.settings.params.items():
        default = defaults.get(key)
        if key not in NOT_SETTINGS and value != (list(default) if isinstance(default, tuple) else default):
            parts.append(f"{key} {'/'.join(map(str, value)) if isinstance(value, list) else value}")
    return h.e(", ".join(parts))


def _health_cell(view: RunView, link: str) -> str:
    findings = view.health
    problems = [f for f in findings if not f.ok]
    if problems:
        text = "<br>".join(f"<span class=is-{f.level}>{h.e(f.topic)}{' (expected)' if f.expected else ''}</span>"
                           for f in problems)
    elif findings:
        text = f"<span class=is-ok>nothing wrong</span> ({checks(len(findings))})"
    else:
        text = "not checked yet"
    if view.metrics is None:
        text += "<div class=sub>sample checks after <code>genlab evaluate</code></div>"
    return f'{text}<div class=sub><a href="{h.e(link)}#health">why</a></div>' if findings else text


def render_comparison(views: list[RunView], folder: Path) -> str:
    """The comparison page for ``views``, with links relative to ``folder`` (where the page is written).

    An overview table (model, health, final losses), then one table per group of metrics (evaluate's
    ``METRIC_GROUPS``) with the real-data reference rows, so that no table is wider than the page; on a phone
    each row becomes a block of "metric: value" lines."""
    names, links = [], []
    for view in views:
        rel = _relative(view.run_dir, folder)
        names.append(rel if not rel.startswith("..") else view.name)
        links.append(quote(_relative(view.run_dir / "report.html", folder)))
    overview = []
    for view, name, link in zip(views, names, links):
        last = final_numbers(view)  # the family's headline numbers: loss and val_loss, or D's and G's losses and outputs
        numbers = "<br>".join(f"{h.e(k)} {h.number(v)}" for k, v in last.items()) or "–"
        about = f"{h.e(model_label(view.settings))} on <code>{h.e(view.settings.data)}</code>; {_settings(view)}"
        overview.append([f'<a href="{h.e(link)}">{h.e(name)}</a><div class=sub>{about}</div>', _health_cell(view, link), numbers])
    body = [f"<p class=lead>{f'{len(views)} runs side by side' if len(views) > 1 else 'One run'}. Each run's name opens its own "
            "report: health, samples, reconstructions, latent space, training curves and configuration.</p>",
            h.table(["run: model, data, settings", "health", "last epoch"], overview, numeric=(2,), stack=True)]
    evaluated = [v.metrics for v in views if v.metrics is not None]
    present = {k for m in evaluated for k in m["metrics"]}
    references = {}  # data set -> reference metrics (real held-out data), from the first run evaluated on it
    for m in evaluated:
        if m.get("reference"):
            references.setdefault(str(m.get("data", "")), m["reference"])
    others = {k: METRIC_LABELS.get(k, k) for k in sorted(present) if k != "kid_std" and not any(k in g for g in METRIC_GROUPS.values())}
    for group, labels in {**METRIC_GROUPS, "Other metrics": others}.items():  # others: from a newer genlab, say
        keys = [k for k in labels if k in present]
        if not keys:
            continue
        rows = [[f'<a href="{h.e(link)}">{h.e(name)}</a>', *(metric_cell(values, k) for k in keys)]
                for values, name, link in zip(((v.metrics or {}).get("metrics", {}) for v in views), names, links)
                if any(values.get(k) is not None for k in keys)]  # a run without any of these metrics has no row
        classes = [""] * len(rows)
        for data, reference in references.items():
            if all(reference.get(k) is None for k in keys):
                continue
            rows.append([f"real held-out data<div class=sub>reference on <code>{h.e(data)}</code></div>",
                         *(metric_cell(reference, k) for k in keys)])
            classes.append("ref")
        body.append(f"<h3>{h.e(group)}</h3>"
                    + h.table(["run", *(labels[k] for k in keys)], rows, numeric=range(1, len(keys) + 1), row_classes=classes,
                              stack=True))
    descriptions = {}
    for m in evaluated:
        descriptions.update({k: v for k, v in (m.get("descriptions") or {}).items() if k not in descriptions})
    if present:
        body.append("<details><summary>What the metrics mean</summary><ul class=note>"
                    + "".join(f"<li><b>{h.e(METRIC_LABELS.get(k, k))}</b> (<code>{h.e(k)}</code>): {h.e(descriptions.get(k, ''))}</li>"
                              for k in METRIC_LABELS if k in present)
                    + "</ul></details>")
    missing = [name for view, name in zip(views, names) if view.metrics is None]
    if missing:
        body.append(f"<p class=note>Not evaluated yet: {h.e(', '.join(missing))}. Run <code>genlab evaluate RUN</code> "
                    "on each to add its metrics to these tables.</p>")
    body.append("<h2>Samples</h2>\n<div class=cards>")
    for view, name, link in zip(views, names, links):
        if "thumbnail" in view.figures:
            picture = h.image(view.figures["thumbnail"], f"samples of {name}", css_class="pixels")
        elif "samples" in view.figures:
            picture = h.image(view.figures["samples"], f"samples of {name}")
        else:
            picture = "<p class=note>No samples.</p>"
        body.append(f'<div class=card><h3><a href="{h.e(link)}">{h.e(name)}</a></h3>'
                    f"<p class=note>{h.e(model_label(view.settings))} on <code>{h.e(view.settings.data)}</code></p>{picture}</div>")
    body.append("</div>")
    return h.page(f"Comparison of {len(views)} run{'s' if len(views) != 1 else ''}", "\n".join(body), kind="comparison")
