"""``genlab evaluate``, ``genlab compare`` and ``genlab report``: parsing and printing only; the work
is in :mod:`genlab.evaluate` and :mod:`genlab.report`."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from ..errors import InvalidInputError
from ..evaluate import evaluate_run
from ..report import write_comparison, write_report
from ..runs import require_kind, run_kind
from ..runs.metrics import read_metrics
from .common import formatter


def add_parsers(sub, common) -> None:
    p = sub.add_parser("evaluate", parents=[common], formatter_class=formatter, help="measure a trained model (metrics.json)",
                       description=textwrap.fill(
                           "Compare a run's samples (and reconstructions, likelihoods) with held-out real data: FID and "
                           "KID in the features of genlab's own reference classifier (trained and cached per data set), "
                           "precision/recall, density/coverage, class coverage, memorisation. Reference values are the "
                           "same metrics for held-out real data. Writes RUN_DIR/metrics.json and prints a table.", 100),
                       epilog=textwrap.dedent("""\
                           examples:
                             genlab evaluate runs/vae
                             genlab evaluate runs/vae --data digits --samples 2000"""))
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--data", default=None, metavar="SOURCE", help="held-out data from another source (default: the run's own split)")
    p.add_argument("--samples", type=int, default=1000, metavar="N", help="samples to draw from the model (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed for sampling and the KID subsets (default 0)")

    p = sub.add_parser("compare", parents=[common], formatter_class=formatter, help="several runs in one table and page",
                       description="Put several runs' metrics side by side (terminal table and an HTML page). Runs that "
                                   "have no metrics.json yet are evaluated first.",
                       epilog="example:\n  genlab compare runs/demo/ae-conv runs/demo/vae-2d runs/demo/gan --out compare.html")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default=None, metavar="FILE.html", help="the comparison page (default: print the table only)")

    p = sub.add_parser("report", parents=[common], formatter_class=formatter, help="write a run's report.html",
                       description="Write RUN_DIR/report.html: one self-contained page (no network) with the configuration, "
                                   "training curves, reconstructions, samples, latent figures, metrics and nearest training "
                                   "neighbours.",
                       epilog="examples:\n  genlab report runs/vae\n  genlab report runs/vae --evaluate   # compute metrics first")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--evaluate", action="store_true", help="run `genlab evaluate` first if the run has no metrics.json")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]) for r in rows)


def _check_run(run: Path) -> Path:
    """A model run directory (recommendation runs have their own `genlab recommend evaluate`)."""
    require_kind(run, "train", f"`genlab recommend evaluate {run}` measures it, and its report.html shows the metrics "
                               "against popularity")
    if not (run / "config.toml").is_file():  # a folder written by save() has a model but no data to evaluate it on
        raise InvalidInputError(f"{run} is not a genlab run directory (no config.toml); train one with `genlab train`.")
    return run


def _metrics_doc(run: Path, *, evaluate_if_missing: bool) -> dict | None:
    doc = read_metrics(run)
    return evaluate_run(run) if doc is None and evaluate_if_missing else doc


def run_evaluate(args) -> int:
    _check_run(Path(args.run))
    doc = evaluate_run(args.run, data=args.data, n_samples=args.samples, random_state=args.seed)
    rows = [("metric", doc["model"], "real data")]
    rows += [(name, _fmt(value), _fmt(doc["reference"].get(name))) for name, value in doc["metrics"].items()]
    notes = [""] + [doc["descriptions"].get(name, "") for name in doc["metrics"]]
    for line, note in zip(_table(rows).splitlines(), notes):
        print(f"{line}  {note}".rstrip())
    print(doc["feature_extractor"]["note"])
    if doc.get("heldout"):
        print(doc["heldout"])
    print(f"wrote {Path(args.run) / 'metrics.json'}")
    return 0


def run_compare(args) -> int:
    runs = [_check_run(Path(r)) for r in args.runs]
    docs = {run: _metrics_doc(run, evaluate_if_missing=True) for run in runs}
    names = [n for n in dict.fromkeys(k for d in docs.values() for k in d["metrics"])]
    rows = [("metric", *(run.name for run in runs))]
    rows += [(name, *(_fmt(docs[run]["metrics"].get(name)) for run in runs)) for name in names]
    print(_table(rows))
    if args.out:
        print(f"wrote {write_comparison(runs, args.out)}")
    return 0


def run_report(args) -> int:
    run = Path(args.run)
    if run_kind(run) == "train":  # a recommendation run's page shows its own evaluation
        _metrics_doc(_check_run(run), evaluate_if_missing=args.evaluate)
    print(f"wrote {write_report(run)}")
    return 0


COMMANDS = {"evaluate": run_evaluate, "compare": run_compare, "report": run_report}
