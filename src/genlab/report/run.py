"""One run's page (spec §9): ``write_report(RUN_DIR)`` writes ``RUN_DIR/report.html``.

The figures are drawn afresh from the saved model and the run's data, reloaded from config.toml as
``genlab train --resume`` does. When the model or the data cannot be had (a run stopped before its end, data that
moved or changed), the PNGs written at training time are used and the page says so. Sections that do not apply
to the model are left out: reconstructions, traversals and codes for a GAN (no encoder; its interpolation runs
between the codes of its own samples), the nearest-neighbour panel for data that are not images.
"""

from __future__ import annotations

import io
import math
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomllib
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from .. import families, plots, runs
from .._fileio import atomic_write_text
from .._runlock import run_lock
from ..data.split import train_validation_split
from ..errors import InvalidInputError
from ..evaluate.evaluate import METRIC_LABELS
from ..runs.metrics import HISTORY_FILE, read_history, read_metrics
from . import html as h
from .health import THRESHOLDS, Finding, health_checks
from .recommend import write_report as write_recommendation_report

STORED_FIGURES = ("samples", "reconstructions", "interpolation", "traversal", "latent_scatter", "manifold")
ARCH_NAMES = {"conv": "convolutional", "linear": "linear", "mlp": "MLP"}
MAX_REFERENCE = 500  # held-out images whose distance to the training set calibrates the neighbour panel


@dataclass(frozen=True)
class RunView:
    """A run as the pages show it."""

    run_dir: Path
    config: dict  # config.toml as written (for the configuration table)
    settings: runs.RunSettings
    history: list[dict]  # one record per epoch (epoch 0: a closed-form fit)
    metrics: dict | None  # metrics.json, once the run is evaluated
    figures: dict[str, bytes]  # STORED_FIGURES, "neighbours", "thumbnail", "curves", "curves_narrow" -> PNG
    notes: list[str]  # plain text: what could not be redrawn, and why
    neighbour_text: str = ""
    latent_dim: int | None = None

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    @property
    def family(self) -> families.Family:
        return families.get(self.settings.model)

    @property
    def conditional(self) -> bool:
        return self.family.has("conditional", self.settings.params)

    @property
    def epochs(self) -> int:
        return max((int(r.get("epoch", 0)) for r in self.history), default=0)

    @property
    def health(self) -> list[Finding]:
        shape = self.config.get("data_info", {}).get("sample_shape") or []
        return health_checks(self.family, self.settings.params, self.history, self.metrics, self.latent_dim,
                             n_features=math.prod(shape) if shape else None)


def model_label(settings: runs.RunSettings, *, long: bool = False) -> str:
    """"conditional MLP VAE", "convolutional autoencoder", "MLP GAN (wasserstein loss)", ...; ``long`` spells the
    family out ("variational autoencoder")."""
    p, record = settings.params, families.get(settings.model)
    family = (record.name if long else record.short) + record.describe(p)
    arch = f"{ARCH_NAMES.get(p['arch'], str(p['arch']))} " if "arch" in p else ""  # a family may have no arch choice
    return f"{'conditional ' if record.has('conditional', p) else ''}{arch}{family}"


def read_run(run_dir: str | Path) -> RunView:
    """Everything the pages need from ``run_dir``, with its figures redrawn (see the module docstring)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise InvalidInputError(f"{run_dir} is not a genlab run directory (no config.toml); train one with `genlab train`.")
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{config_path} is not valid TOML: {exc}.") from None
    settings = runs.split_settings(runs.read_config(config_path), source=str(config_path))
    notes: list[str] = []
    est = _open_model(run_dir, notes)
    history = list(est.history_) if est is not None else read_history(run_dir / HISTORY_FILE)
    data = _load_data(settings, config, notes) if est is not None else None
    neighbour_text = ""
    with tempfile.TemporaryDirectory(prefix="genlab-report-") as tmp:
        tmp = Path(tmp)
        if data is not None:
            est.history_ = []  # write_figures would draw the curves too; the page draws them below, in its own layouts
            try:
                runs.write_figures(est, *data, tmp)
            finally:
                est.history_ = history
            if len(est.input_shape_) == 3:  # images: is each sample a copy of a training image?
                neighbour_text = _neighbours(est, data[0], tmp / "neighbours.png")
                (tmp / "thumbnail.png").write_bytes(_thumbnail(est, data[0]))
        source = tmp if data is not None else run_dir
        figures = {name: (source / f"{name}.png").read_bytes() for name in STORED_FIGURES if (source / f"{name}.png").is_file()}
        if neighbour_text:
            figures["neighbours"] = (tmp / "neighbours.png").read_bytes()
            figures["thumbnail"] = (tmp / "thumbnail.png").read_bytes()
        title = f"{type(est).__name__ if est is not None else settings.model.upper()}: training"
        for key, n_cols in (("curves", 3), ("curves_narrow", 1)):  # three panels a row; one on a phone (untitled: no room)
            if plots.save_training_curves(tmp / f"{key}.png", history, title=title if n_cols > 1 else "", n_cols=n_cols,
                                          groups=families.get(settings.model).grouped):
                figures[key] = (tmp / f"{key}.png").read_bytes()
    latent_dim = None if est is None else len(est.code_moments()[0])
    return RunView(run_dir, config, settings, history, _read_metrics(run_dir, notes), figures, notes, neighbour_text, latent_dim)


def _open_model(run_dir: Path, notes: list[str]):
    if not (run_dir / "model.json").is_file():
        notes.append("This run has no saved model (it stopped before the end of training; `genlab train --resume` "
                     "continues it), so its figures are the ones written during training, if any.")
        return None
    try:
        return runs.open_run(run_dir)
    except InvalidInputError as exc:
        notes.append(f"The saved model could not be loaded ({exc}); the figures are the ones written during training.")
        return None


def _load_data(settings: runs.RunSettings, config: dict, notes: list[str]):
    """The run's (X, y) if it can be loaded and is the data the run was trained on; else None and a note."""
    try:
        X, y = settings.load_data()
    except (InvalidInputError, OSError) as exc:
        notes.append(f"The run's data could not be loaded ({exc}); the figures are the ones written during training "
                     "and the nearest-training-neighbour panel is missing.")
        return None
    if config.get("data_info", {}).get("sha256") != runs.data_fingerprint(X, y):
        notes.append(f"The data at {settings.data} changed since this run was trained; the figures are the ones written "
                     "during training and the nearest-training-neighbour panel is missing.")
        return None
    return X, y


def _read_metrics(run_dir: Path, notes: list[str]) -> dict | None:
    try:
        return read_metrics(run_dir)
    except InvalidInputError as exc:  # the page is still written, and says what is wrong with the file
        notes.append(str(exc))
        return None


def _neighbours(est, X: np.ndarray, path: Path) -> str:
    """Draw samples over their nearest training images (pixel space, model units); returns the caption."""
    to_model = est.scaling_.display  # model units before any centring: what a picture shows
    train_rows, heldout_rows = train_validation_split(len(X), est.validation_fraction, est.seed_)  # as fit split them
    train = to_model(X[train_rows]).reshape(len(train_rows), -1)  # (n, c, h, w) -> (n, c*h*w)
    conditional = families.is_conditional(est)
    n = est.n_classes_ if conditional and est.n_classes_ <= 12 else 8  # one per class (they cycle 0..C-1)
    samples = to_model(est.sample(n, random_state=0))
    index = NearestNeighbors(n_neighbors=1).fit(train)
    distances, nearest = index.kneighbors(samples.reshape(n, -1))
    plots.save_neighbours(path, samples, train[nearest[:, 0]].reshape(samples.shape), distances[:, 0],
                          title=f"{type(est).__name__}: samples and their nearest training images")
    text = (f"Each generated image (top) over the training image closest to it (bottom; Euclidean distance over pixels, "
            f"among the {len(train_rows):,} training images{' — samples cycle through the classes' if conditional else ''}).")
    if len(heldout_rows):
        shown = heldout_rows[:MAX_REFERENCE]
        typical = float(np.median(index.kneighbors(to_model(X[shown]).reshape(len(shown), -1))[0]))
        text += (f" For scale: a held-out real image lies at a median distance of {typical:.2f} from its nearest training "
                 "image. Samples much closer than that would be copies of the training data.")
    return text


def _thumbnail(est, X: np.ndarray) -> bytes:
    """Samples as one bare image grid (no axes or title), enlarged 4× with square pixels: for the comparison page's
    cards. Conditional models: a column per class, six rows."""
    to_model = est.scaling_.display  # model units before any centring: what a picture shows
    if families.is_conditional(est):
        n_classes = est.n_classes_
        samples, n_cols = est.sample(6 * n_classes, random_state=0), n_classes  # classes cycle: row r is 0..C-1
    else:
        samples, n_cols = est.sample(64, random_state=0), 8
    grid = plots.image_grid(to_model(samples), n_cols, plots.display_range(to_model(X[:1000])))  # (H, W, c) in [0, 1]
    pixels = (grid * 255).round().astype(np.uint8).repeat(4, axis=0).repeat(4, axis=1)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --- the page -------------------------------------------------------------------------------------

def summary(view: RunView) -> str:
    """One sentence (HTML): what was trained on what data."""
    p, info = view.settings.params, view.config.get("data_info", {})
    details = [f"latent_dim {view.latent_dim}"] if view.latent_dim else []
    details += view.family.details(p)
    if view.epochs == 0 and view.history:
        how = "fitted in closed form (PCA)"
    else:
        how = f"trained for {view.epochs} epoch{'s' if view.epochs != 1 else ''}"
    shape = "×".join(str(s) for s in info.get("sample_shape", []))
    data = f"<code>{h.e(view.settings.data)}</code>"
    if info:
        data += f": {info.get('n_samples', 0):,} samples of shape {h.e(shape)}" + (" with labels" if info.get("labels") else "")
    heldout = p.get("validation_fraction", 0) or 0
    if heldout:
        data += f", {heldout:.0%} held out for validation"
    label = model_label(view.settings, long=True)
    article = "An" if label.startswith(("a", "e", "i", "o", "u", "MLP")) else "A"
    return f"{article} {h.e(label)}{' (' + h.e(', '.join(details)) + ')' if details else ''} {how} on {data}."


def final_numbers(view: RunView) -> dict[str, float]:
    """The last epoch's headline numbers (the family's: loss and val_loss, or for GANs D/G losses and D's outputs)."""
    return view.family.headline_numbers(view.history[-1]) if view.history else {}


def _samples_section(view: RunView) -> str:
    shape = view.config.get("data_info", {}).get("sample_shape", [])
    if view.conditional:
        caption = "Samples of each class, one row per class (class 0 at the top)."
    elif len(shape) == 1 and shape[0] == 2:
        caption = "1,000 samples drawn as points in the plane."
    else:
        caption = view.family.captions.get("samples", "Samples decoded from random draws of the prior, with a fixed seed.")
    return h.figure(view.figures["samples"], "grid of generated samples", h.e(caption))


def _latent_section(view: RunView) -> str:
    parts, encodes = [], view.family.has("encode")
    for key, title, alt, caption in (
        ("interpolation", "Interpolations", "rows of images decoded along paths between two codes",
         ("Each row decodes the path between the codes of two examples (linear, then spherical). " if encodes
          else f"Each row generates along the path between the codes of two of the {view.family.short}'s own samples "
               "(linear, then spherical; it has no encoder to find the codes of data).")
         + ("For a conditional model both ends are of the same class." if view.conditional
            else "The ends are of different classes when labels are known." if encodes else "")),
        ("traversal", "Traversals", "rows of images, one latent coordinate swept per row",
         "Each row sweeps one latent coordinate from −3σ to +3σ around a typical example's code, the others fixed."),
        ("latent_scatter", "Codes of the data", "scatter plot of the codes of the data",
         "The codes of up to 2,000 examples (coloured by label when there are labels); more than two dimensions are "
         "shown by their first two principal components."),
        ("manifold", "The 2-D latent space decoded", "grid of images decoded over the latent plane",
         "Codes on a grid over the prior's quantiles, decoded: z₀ grows to the right, z₁ upwards."),
    ):
        if key in view.figures:
            parts.append(f"<h3>{h.e(title)}</h3>" + h.figure(view.figures[key], alt, h.e(caption)))
    return "\n".join(parts)


def metric_cell(values: dict, key: str) -> str:
    """A metric's value for a table cell; KID with its standard error ("0.0151 ± 0.0123")."""
    if key == "kid" and values.get("kid") is not None and values.get("kid_std") is not None:
        return f"{h.number(values['kid'])} ± {h.number(values['kid_std'])}"
    return h.number(values.get(key))


def _metrics_section(view: RunView) -> str:
    doc = view.metrics
    if doc is None:
        return (f"<p>Not evaluated yet: run <code>genlab evaluate {h.e(shlex.quote(str(view.run_dir)))}</code> to compute its metrics "
                "(reconstruction error, likelihood, sample quality and diversity, memorisation) against held-out data.</p>")
    values, reference, descriptions = doc["metrics"], doc.get("reference") or {}, doc.get("descriptions") or {}
    shown = [k for k in values if not (k == "kid_std" and "kid" in values)]  # the standard error is shown with KID
    label = lambda k: "KID" if k == "kid" and values.get("kid_std") is None else METRIC_LABELS.get(k, k)  # noqa: E731
    rows = [[f"{h.e(label(k))}<div class=sub><code>{h.e(k)}</code></div>", metric_cell(values, k),
             metric_cell(reference, k), h.e(descriptions.get(k, ""))] for k in shown]
    parts = [h.table(["metric", "this model", "reference", "what it measures"], rows, numeric=(1, 2), stack=True)]
    about = []
    if doc.get("n_heldout") is not None:
        data = h.e(doc.get("data", view.settings.data))
        which = f": {h.e(doc['heldout'])}" if doc.get("heldout") else ""
        about.append(f"Evaluated on {h.number(doc['n_heldout'])} held-out samples of <code>{data}</code>{which}.")
    extractor = doc.get("feature_extractor") or {}
    if extractor:  # the note usually says what the features are; else the kind
        accuracy = extractor.get("test_accuracy")
        text = str(extractor.get("note") or extractor.get("kind") or "unknown").strip().rstrip(".")
        if isinstance(accuracy, (int, float)) and math.isfinite(accuracy) and f"{accuracy:.1%}" not in text:
            text += f" (test accuracy {accuracy:.1%})"
        about.append(f"Image features: {h.e(text)}.")
    about.append("The reference column is the same metric for real held-out data, where it applies.")
    parts.append(f"<p class=note>{' '.join(about)}</p>")
    return "\n".join(parts)


def _training_section(view: RunView) -> str:
    numbers = final_numbers(view)
    caption = view.family.captions.get("curves", "The reconstruction loss per epoch; dashed lines are the validation split.")
    last = ", ".join(f"{h.e(k)} {h.number(v)}" for k, v in numbers.items())
    return (h.figure(view.figures["curves"], "training curves: every logged loss term per epoch", h.e(caption),
                     narrow_png=view.figures.get("curves_narrow"))
            + (f"<p>After epoch {view.epochs}: {last}.</p>" if last else ""))


def checks(n: int) -> str:
    return f"{n} check{'s' if n != 1 else ''}"


def _health_panel(view: RunView) -> str:
    findings = view.health
    problems, notes = (sum(f.level == level for f in findings) for level in ("problem", "note"))
    verdict = (f"{problems} problem{'s' if problems != 1 else ''} found" if problems
               else f"nothing looks wrong ({checks(len(findings))})" if findings else "not checked yet")
    if notes:
        verdict += f", {notes} expected limit{'s' if notes != 1 else ''}"
    items = "".join(f"<li class=is-{f.level}><b>{h.e(f.topic)}</b>: {h.e(f.text)}</li>" for f in findings)
    pending = ("" if view.metrics is not None else
               f"<p class=note>The checks on samples (diversity, mode collapse, memorisation) come with "
               f"<code>genlab evaluate {h.e(shlex.quote(str(view.run_dir)))}</code>.</p>")
    thresholds = ("<details><summary>How these are judged</summary><ul class=note>"
                  + "".join(f"<li>{h.e(t)}</li>" for t in THRESHOLDS) + "</ul></details>")
    return (f'<section id=health class=health><h2>Health: {h.e(verdict)}</h2>'
            f"{f'<ul>{items}</ul>' if items else ''}{pending}{thresholds}</section>")


def render(view: RunView) -> str:
    """The run's page as an HTML document."""
    sections = []
    if "samples" in view.figures:
        sections.append(("samples", "Samples", _samples_section(view)))
    if "neighbours" in view.figures:
        sections.append(("neighbours", "Nearest training neighbours",
                         h.figure(view.figures["neighbours"], "generated images above their nearest training images",
                                  h.e(view.neighbour_text))))
    if "reconstructions" in view.figures:
        images = len(view.config.get("data_info", {}).get("sample_shape", [])) == 3
        caption = ("Examples spread over the data set (rows marked <i>original</i>), each above its reconstruction." if images
                   else "Examples spread over the data set and their reconstructions.")
        sections.append(("reconstructions", "Reconstructions",
                         h.figure(view.figures["reconstructions"], "originals and their reconstructions", caption)))
    latent = _latent_section(view)
    if latent:
        sections.append(("latent", "Latent space", latent))
    sections.append(("metrics", "Metrics", _metrics_section(view)))
    if "curves" in view.figures:
        sections.append(("training", "Training", _training_section(view)))
    sections.append(("configuration", "Configuration",
                     "<p class=note>As recorded in <code>config.toml</code>; <code>genlab train --config</code> accepts that file.</p>"
                     + h.config_table(view.config)))
    body = [f"<p class=lead>{summary(view)}</p>", _health_panel(view)]
    body += [f"<p class=warn>{h.e(note)}</p>" for note in view.notes]
    body.append(h.toc((anchor, title) for anchor, title, _ in sections))
    body += [h.section(*s) for s in sections]
    return h.page(f"{view.name}: {model_label(view.settings)}", "\n".join(body), kind="run report")


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html``: one self-contained page about a training run.

    Parameters
    ----------
    run_dir : str or path-like
        A run directory written by ``genlab train`` (or a recommendation run of ``genlab recommend fit``, whose
        own page is written).

    Returns
    -------
    Path of the page. Every figure is inlined (base64 PNG); the page loads nothing from the network.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise InvalidInputError(f"{run_dir} is not a genlab run directory (no config.toml); train one with `genlab train`.")
    with run_lock(run_dir, "genlab report"):  # it writes into the run: not while the run trains or is evaluated
        if runs.run_kind(run_dir) == "recommend":  # a recommendation run: its page shows rankings, not images
            return write_recommendation_report(run_dir)
        path = run_dir / "report.html"
        atomic_write_text(path, render(read_run(run_dir)))
    return path
