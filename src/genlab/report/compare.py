"""A page comparing runs (spec §7, §9): ``write_comparison([RUN, ...], OUT_HTML)``.

One table with a row per run (model, data, key settings, the metrics of each run's metrics.json, the last epoch's
losses), reference rows with the metrics of real held-out data, and a card per run with its samples and a link to
its own report.html. Links are relative, so the page works from disk and moves with the runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from .._fileio import atomic_write_text
from ..errors import InvalidInputError
from ..runs import FAMILIES
from . import html as h
from .run import RunView, final_numbers, model_label, read_run, render

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
        if (run_dir / "interactions.npz").is_file():
            raise InvalidInputError(f"{run_dir} is a recommendation run; compare runs of `genlab train` "
                                    "(its own page: `genlab report`).")
        if (run_dir / "report.html").resolve() == out.resolve():
            raise InvalidInputError(f"{out} is the report of run {run_dir}; write the comparison elsewhere.")
    views = []
    for run_dir in dict.fromkeys(run_dirs):  # each run once, in the order given
        view = read_run(run_dir)
        atomic_write_text(run_dir / "report.html", render(view))
        views.append(view)
    atomic_write_text(out, render_comparison(views, out.parent))
    return out


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _settings(view: RunView) -> str:
    """latent_dim, epochs, and every parameter the run set away from its family's default."""
    defaults = FAMILIES[view.settings.model]().get_params()
    parts = [f"latent_dim {view.latent_dim}"] if view.latent_dim else []
    parts.append("closed form" if view.history and view.epochs == 0 else f"{view.epochs} epoch{'s' if view.epochs != 1 else ''}")
    for key, value in view.settings.params.items():
        default = defaults.get(key)
        if key not in NOT_SETTINGS and value != (list(default) if isinstance(default, tuple) else default):
            parts.append(f"{key} {'/'.join(map(str, value)) if isinstance(value, list) else value}")
    return h.e(", ".join(parts))


def render_comparison(views: list[RunView], folder: Path) -> str:
    """The comparison page for ``views``, with links relative to ``folder`` (where the page is written)."""
    names, links = [], []
    for view in views:
        rel = _relative(view.run_dir, folder)
        names.append(rel if not rel.startswith("..") else view.name)
        links.append(quote(_relative(view.run_dir / "report.html", folder)))
    evaluated = [v.metrics for v in views if v.metrics is not None]
    metric_names = list(dict.fromkeys(name for m in evaluated for name in m["metrics"]))
    metric_names.sort(key=lambda name: -sum(name in m["metrics"] for m in evaluated))  # shared metrics first (stable)
    head = ["run: model, data, settings", "final loss (train / validation)", "final D / G loss", *metric_names]
    rows, classes = [], []
    for view, name, link in zip(views, names, links):
        values = (view.metrics or {}).get("metrics", {})
        last = final_numbers(view.history)
        loss = f"{h.number(last['loss'])} / {h.number(last.get('val_loss'))}" if "loss" in last else "–"
        gan = f"{h.number(last['d_loss'])} / {h.number(last['g_loss'])}" if "d_loss" in last else "–"
        about = f"{h.e(model_label(view.settings))} on <code>{h.e(view.settings.data)}</code>; {_settings(view)}"
        rows.append([f'<a href="{h.e(link)}">{h.e(name)}</a><div class=sub>{about}</div>', loss, gan,
                     *(h.number(values.get(m)) for m in metric_names)])
        classes.append("")
    references = {}  # data set -> reference metrics (real held-out data), from the first run evaluated on it
    for m in evaluated:
        if m.get("reference"):
            references.setdefault(str(m.get("data", "")), m["reference"])
    for data, reference in references.items():
        rows.append([f"real held-out data<div class=sub>reference values on <code>{h.e(data)}</code></div>", "", "",
                     *(h.number(reference.get(m)) for m in metric_names)])
        classes.append("ref")
    numeric = range(1, len(head))
    body = [f"<p class=lead>{f'{len(views)} runs side by side' if len(views) > 1 else 'One run'}. Each run's name opens its own "
            "report: samples, reconstructions, latent space, training curves and configuration.</p>",
            h.table(head, rows, numeric=numeric, row_classes=classes, sticky=True)]
    descriptions = {}
    for m in evaluated:
        descriptions.update({k: v for k, v in (m.get("descriptions") or {}).items() if k not in descriptions})
    if metric_names:
        body.append("<details><summary>What the metrics mean</summary><ul class=note>"
                    + "".join(f"<li><code>{h.e(m)}</code>: {h.e(descriptions.get(m, ''))}</li>" for m in metric_names)
                    + "</ul></details>")
    missing = [name for view, name in zip(views, names) if view.metrics is None]
    if missing:
        body.append(f"<p class=note>Not evaluated yet: {h.e(', '.join(missing))}. Run <code>genlab evaluate RUN</code> "
                    "on each to add its metrics to this table.</p>")
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
