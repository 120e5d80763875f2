"""``genlab recommend fit | evaluate | predict``: the argument parsing and printing; the work is in
:mod:`genlab.runs.recommend`, the page in :mod:`genlab.report.recommend`."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path

from .. import families
from .._params import Param
from ..errors import InvalidInputError
from ..estimators.ease import DEFAULT_MAX_ITEMS
from ..evaluate import RANKING_LABELS
from ..report import write_report
from ..report.recommend import ease_note
from ..runs import recommend as recommending
from ..training import distributed
from .common import Parser, add_param, formatter


def model_options() -> dict[str, tuple[Param, list[str]]]:
    """The options of the recommendation models (every registered family that ``recommend fit`` fits): each
    parameter but those the run sets, with the keys of the families that have it."""
    options: dict[str, tuple[Param, list[str]]] = {}
    for key in families.keys("recommend"):
        for name, p in families.get(key).estimator._params.items():
            if name not in recommending.SET_BY_RUN:
                options.setdefault(name, (p, []))[1].append(key)
    return options


def add_parser(sub, common) -> None:
    def wrapped(text: str) -> str:  # the raw formatter keeps line breaks as written
        return textwrap.fill(text, 100)

    rec = sub.add_parser("recommend", parents=[common], formatter_class=formatter,
                         help="recommend items with a Mult-VAE (or Mult-DAE, EASE): fit, evaluate, predict",
                         description=wrapped("Collaborative filtering with a variational autoencoder (Mult-VAE, Liang et al. "
                                             "2018) on a user,item[,rating][,timestamp] table such as MovieLens' ratings.csv "
                                             "or u.data, judged against popularity and EASE (Steck 2019) baselines."),
                         epilog=textwrap.dedent("""\
                             examples:
                               genlab recommend fit --ratings ml-latest-small/ratings.csv --out runs/rec
                               genlab recommend evaluate runs/rec
                               genlab recommend predict runs/rec --user 42 -n 10
                               genlab recommend predict runs/rec --all --out recs.csv"""))
    actions = rec.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)

    fit = actions.add_parser("fit", parents=[common], formatter_class=formatter, help="fit a recommender into a run directory",
                             description=wrapped(
                                 "Read the table (ratings above --threshold are interactions), split the users into train, "
                                 "validation and test users, fit the model and write RUN_DIR: config.toml, interactions.npz, "
                                 "model/, metrics.jsonl, training_curves.png (not for EASE: no epochs), report.html. The test "
                                 "users are never seen in fitting; the model holds out the validation users itself and keeps "
                                 "the epoch (EASE: the l2) with the best validation NDCG@100. Then, as `recommend evaluate`, "
                                 "prints the test metrics of the model, popularity and EASE."),
                             epilog=textwrap.dedent("""\
                                 examples:
                                   genlab recommend fit --ratings ml-latest-small/ratings.csv --out runs/rec
                                   genlab recommend fit --ratings ml-100k/u.data --model multdae --epochs 50 --seed 0 --out runs/dae
                                   genlab recommend fit --ratings ml-latest-small/ratings.csv --model ease --out runs/ease
                                   genlab recommend fit --ratings plays.tsv --implicit --min-interactions 10 --out runs/plays"""))
    fit.add_argument("--ratings", required=True, metavar="FILE",
                     help="CSV/TSV of user,item[,rating][,timestamp] rows (header optional, separator sniffed)")
    fit.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to create")
    models = families.keys("recommend")
    fit.add_argument("--model", choices=models, default="multvae",
                     help=", ".join(f"{k}: {families.get(k).short}" + (" (closed form)" if families.get(k).closed_form else "")
                                    for k in models) + " (default multvae); the options below say which models have them")
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
    fit.add_argument("--nproc", type=int, default=argparse.SUPPRESS, metavar="N",
                     help="fit Mult-VAE / Mult-DAE with N processes on this machine (torchrun, data parallel; --batch-size is global)")
    fit.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                     help="rank the test users' held-out items after fitting, as `recommend evaluate` does (default: on)")
    for name, (p, owners) in model_options().items():
        some = "" if len(owners) == len(models) else ", ".join(families.get(k).short for k in owners) + ": "
        add_param(fit, name, dataclasses.replace(p, help=some + p.help + (f" (default {p.default})" if p.default is not None else "")))

    ev = actions.add_parser("evaluate", parents=[common], formatter_class=formatter, help="rank the test users' held-out items",
                            description=wrapped(
                                "Liang et al.'s protocol on the run's test users: give the model a random 80% of each user's "
                                "items, rank the other 20%; the same for two baselines fitted on the training users: "
                                "popularity, and EASE with its l2 chosen on the run's validation users (not when the model is "
                                "EASE; skipped, with the reason, past --ease-max-items items). Prints Recall@20, Recall@50, "
                                "NDCG@100; writes RUN_DIR/metrics.json and RUN_DIR/report.html."),
                            epilog=textwrap.dedent("""\
                                examples:
                                  genlab recommend evaluate runs/rec
                                  genlab recommend evaluate runs/rec --seed 1
                                  genlab recommend evaluate runs/big --ease-max-items 40000 --ease-l2 500"""))
    ev.add_argument("run", metavar="RUN_DIR")
    ev.add_argument("--fraction", type=float, default=0.2, metavar="X", help="share of each test user's items to rank (default 0.2)")
    ev.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the fold-in/held-out split (default 0)")
    ev.add_argument("--ease-max-items", type=int, default=DEFAULT_MAX_ITEMS, metavar="N",
                    help=f"fit the EASE baseline up to this many items (default {DEFAULT_MAX_ITEMS}; it holds an items × items "
                         "float64 matrix, 8·items² bytes)")
    ev.add_argument("--ease-l2", type=float, default=None, metavar="X",
                    help="the EASE baseline's l2 (default: chosen on the validation users, one fit per grid value)")

    pr = actions.add_parser("predict", parents=[common], formatter_class=formatter, help="top-N new items per user",
                            description=wrapped(
                                "The best items a user does not have yet (in the table with a rating above the threshold), in "
                                "the table's own ids. Score: Mult-VAE's decoder logit, or EASE's x·B (higher is better)."),
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
    columns = [(result["model_class"], result["model"]), ("popularity", result["popularity"])]
    if "ease" in result:  # absent when the model is EASE itself
        columns.append(("EASE", result["ease"] or {}))
    rows = [("metric", *(title for title, _ in columns))]
    rows += [(label, *(f"{s[k]:.4f}" if s.get(k) is not None else "-" for _, s in columns)) for k, label in RANKING_LABELS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]))
    if "ease" in result:
        print(ease_note(result))
    print(f"({result['n_test_users']} test users; wrote {Path(run_dir) / 'metrics.json'} and {Path(run_dir) / 'report.html'})")


def _model_params(args) -> dict:
    """The model options given on the command line; one that is not the chosen model's is a user error."""
    options, table = model_options(), families.get(args.model).estimator._params
    given = {k: v for k, v in vars(args).items() if k in options}
    foreign = sorted(k for k in given if k not in table)
    if foreign:
        flags = ", ".join("--seed" if k == "random_state" else "--" + k.replace("_", "-") for k in foreign)
        raise InvalidInputError(f"{flags} {'does' if len(foreign) == 1 else 'do'} not apply to --model {args.model}.")
    return {k: table[k].from_cli(v) for k, v in given.items()}


def run_recommend(args) -> int:
    if args.action == "fit":
        est, run = recommending.fit_run(args.ratings, args.out, model=args.model, params=_model_params(args),
                                        threshold=args.threshold, implicit=args.implicit, min_interactions=args.min_interactions,
                                        sep=args.sep, heldout_users=args.heldout_users, overwrite=args.overwrite,
                                        verbose=0 if args.quiet else 1)
        if distributed.env_rank() != 0:  # under torchrun rank 0 reports and evaluates
            return 0
        print(f"wrote {args.out}  ({type(est).__name__}: {run.matrix.shape[0]} users × {run.matrix.shape[1]} items; "
              f"{len(run.train_rows)} train, {len(run.validation_rows)} validation, {len(run.test_rows)} test users; "
              f"{recommending.fit_summary(est)})")
        result = recommending.evaluate_run(args.out) if args.evaluate and len(run.test_rows) else None  # ratings -> the paper's metrics
        write_report(args.out)
        if result is not None:
            _print_evaluation(result, args.out)
    elif args.action == "evaluate":
        result = recommending.evaluate_run(args.run, fraction=args.fraction, random_state=args.seed,
                                           ease_max_items=args.ease_max_items, ease_l2=args.ease_l2)
        write_report(args.run)
        _print_evaluation(result, args.run)
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


COMMANDS = {"recommend": run_recommend}
