"""``genlab recommend fit | evaluate | predict``: the argument parsing and printing; the work is in
:mod:`genlab.recommending`."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from .cli import Parser, _add_param, _formatter
from .errors import InvalidInputError
from .estimators.recommend import MULTVAE_PARAMS


def add_recommend(sub, common) -> None:
    def wrapped(text: str) -> str:  # the raw formatter keeps line breaks as written
        return textwrap.fill(text, 100)

    rec = sub.add_parser("recommend", parents=[common], formatter_class=_formatter,
                         help="recommend items with a Mult-VAE: fit, evaluate, predict",
                         description=wrapped("Collaborative filtering with a variational autoencoder (Mult-VAE, Liang et al. "
                                             "2018) on a user,item[,rating][,timestamp] table such as MovieLens' ratings.csv "
                                             "or u.data."),
                         epilog=textwrap.dedent("""\
                             examples:
                               genlab recommend fit --ratings ml-latest-small/ratings.csv --out runs/rec
                               genlab recommend evaluate runs/rec
                               genlab recommend predict runs/rec --user 42 -n 10
                               genlab recommend predict runs/rec --all --out recs.csv"""))
    actions = rec.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)

    fit = actions.add_parser("fit", parents=[common], formatter_class=_formatter, help="fit a recommender into a run directory",
                             description=wrapped(
                                 "Read the table (ratings above --threshold are interactions), split the users into train, "
                                 "validation and test users, fit the model and write RUN_DIR: config.toml, interactions.npz, "
                                 "model/, metrics.jsonl, training_curves.png, report.html. The test users are never seen in "
                                 "fitting; the model holds out the validation users itself and keeps the epoch with the best "
                                 "validation NDCG@100."),
                             epilog=textwrap.dedent("""\
                                 examples:
                                   genlab recommend fit --ratings ml-latest-small/ratings.csv --out runs/rec
                                   genlab recommend fit --ratings ml-100k/u.data --model multdae --epochs 50 --seed 0 --out runs/dae
                                   genlab recommend fit --ratings plays.tsv --implicit --min-interactions 10 --out runs/plays"""))
    fit.add_argument("--ratings", required=True, metavar="FILE",
                     help="CSV/TSV of user,item[,rating][,timestamp] rows (header optional, separator sniffed)")
    fit.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to create")
    fit.add_argument("--model", choices=("multvae", "multdae"), default="multvae", help="Mult-VAE (default) or Mult-DAE")
    fit.add_argument("--threshold", type=float, default=3.5, metavar="X",
                     help="a rating above this is an interaction, the others are dropped (default 3.5: 4 stars and up, as Liang "
                          "et al.'s code; to keep 3.5 too, pass 3.49)")
    fit.add_argument("--implicit", action="store_true", help="every row is an interaction, whatever its rating")
    fit.add_argument("--min-interactions", type=int, default=5, metavar="N", help="drop users with fewer items (default 5)")
    fit.add_argument("--sep", default=None, help="column separator, if sniffing the first line gets it wrong")
    fit.add_argument("--heldout-users", type=int, default=None, metavar="N",
                     help="validation users and as many test users (default: 10%% of the users each, at most 10000; "
                          "0: no model selection, nothing to evaluate)")
    fit.add_argument("--overwrite", action="store_true", help="replace RUN_DIR if it exists (only if the new run succeeds)")
    fit.add_argument("--quiet", action="store_true", help="no progress output")
    fit.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                     help="rank the test users' held-out items after fitting, as `recommend evaluate` does (default: on)")
    for name, p in MULTVAE_PARAMS.items():
        if name not in ("verbose", "validation_users"):  # set by --quiet and --heldout-users
            _add_param(fit, name, p)

    ev = actions.add_parser("evaluate", parents=[common], formatter_class=_formatter, help="rank the test users' held-out items",
                            description=wrapped(
                                "Liang et al.'s protocol on the run's test users: give the model a random 80% of each user's "
                                "items, rank the other 20%; the same for a popularity baseline fitted on the training users. "
                                "Prints Recall@20, Recall@50, NDCG@100; writes RUN_DIR/metrics.json and RUN_DIR/report.html."),
                            epilog="examples:\n  genlab recommend evaluate runs/rec\n  genlab recommend evaluate runs/rec --seed 1")
    ev.add_argument("run", metavar="RUN_DIR")
    ev.add_argument("--fraction", type=float, default=0.2, metavar="X", help="share of each test user's items to rank (default 0.2)")
    ev.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the fold-in/held-out split (default 0)")

    pr = actions.add_parser("predict", parents=[common], formatter_class=_formatter, help="top-N new items per user",
                            description=wrapped(
                                "The best items a user does not have yet (in the table with a rating above the threshold), in "
                                "the table's own ids. Score: the decoder's logit (higher is better)."),
                            epilog=textwrap.dedent("""\
                                examples:
                                  genlab recommend predict runs/rec --user 42 -n 10      # rank, item, score per line
                                  genlab recommend predict runs/rec --all --out recs.csv  # user,rank,item,score for every user"""))
    pr.add_argument("run", metavar="RUN_DIR")
    who = pr.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="ID", help="a user id as it appears in the ratings file")
    who.add_argument("--all", action="store_true", help="every user of the run (needs --out)")
    pr.add_argument("-n", type=int, default=10, help="items per user (default 10)")
    pr.add_argument("--out", metavar="FILE.csv", help="with --all: the CSV to write")
    pr.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _print_evaluation(result: dict, run_dir) -> None:
    from .recommending import METRIC_LABELS

    rows = [("metric", result["model_class"], "popularity")]
    rows += [(label, *(f"{v:.4f}" if v is not None else "-" for v in (result["model"][k], result["popularity"][k])))
             for k, label in METRIC_LABELS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]))
    print(f"({result['n_test_users']} test users; wrote {Path(run_dir) / 'metrics.json'} and {Path(run_dir) / 'report.html'})")


def run_recommend(args) -> int:
    from . import recommending

    if args.action == "fit":
        params = {k: (None if v == "none" else v) for k, v in vars(args).items() if k in MULTVAE_PARAMS}
        est, run = recommending.fit_run(args.ratings, args.out, model=args.model, params=params, threshold=args.threshold,
                                        implicit=args.implicit, min_interactions=args.min_interactions, sep=args.sep,
                                        heldout_users=args.heldout_users, overwrite=args.overwrite, verbose=0 if args.quiet else 1)
        best = est.history_[est.best_epoch_ - 1] if est.history_ and est.best_epoch_ else {}
        kept = (f"kept epoch {est.best_epoch_}, validation NDCG@100 {best['val_ndcg_at_100']:.4f}" if "val_ndcg_at_100" in best
                else f"{len(est.history_)} epochs")
        print(f"wrote {args.out}  ({type(est).__name__}: {run.matrix.shape[0]} users × {run.matrix.shape[1]} items; "
              f"{len(run.train_rows)} train, {len(run.validation_rows)} validation, {len(run.test_rows)} test users; {kept})")
        if args.evaluate and len(run.test_rows):  # one command from a ratings file to the paper's metrics
            _print_evaluation(recommending.evaluate_run(args.out), args.out)
    elif args.action == "evaluate":
        _print_evaluation(recommending.evaluate_run(args.run, fraction=args.fraction, random_state=args.seed), args.run)
    elif args.all:
        if not args.out:
            raise InvalidInputError("--all writes a CSV: give it with --out FILE.csv")
        n_rows = recommending.predict_all(args.run, args.out, n=args.n, overwrite=args.overwrite)
        print(f"wrote {args.out}  ({n_rows} rows: user,rank,item,score)")
    else:
        if args.out:
            raise InvalidInputError("--out goes with --all; --user prints its items")
        for rank, item, score in recommending.predict_user(args.run, args.user, n=args.n):
            print(f"{rank}\t{item}\t{score:.6g}")
    return 0
