"""``genlab train``: a model run from the command line (or a TOML config), and ``--resume``."""

from __future__ import annotations

import argparse
import textwrap

from .. import families
from ..errors import InvalidInputError
from ..runs import command_settings, resume_run, train_run
from ..training import distributed
from .common import Parser, add_param, formatter

NPROC_HELP = ("train with N processes on this machine (torchrun, data parallel; --batch-size stays the global batch); "
              "for several machines run `torchrun ... -m genlab train ...` instead")
NOT_PARAMS = ("command", "debug", "family", "resume", "config", "overwrite", "quiet", "nproc")


def add_parser(sub, common) -> None:
    train = sub.add_parser("train", parents=[common], formatter_class=formatter, help="train a model into a run directory",
                           description="Train a model; writes a run directory (config, model, metrics, figures).",
                           epilog=textwrap.dedent("""\
                               examples:
                                 genlab train ae --data digits --arch conv --latent-dim 10 --epochs 30 --out runs/ae
                                 genlab train ae --data my_images/ --config ae.toml --out runs/mine
                                 genlab train --resume runs/ae            # continue from the last checkpoint"""))
    train.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its newest checkpoint")
    train.add_argument("--epochs", type=int, default=argparse.SUPPRESS, help="with --resume: train up to this many epochs")
    train.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="with --resume: no progress output")
    train.add_argument("--nproc", type=int, default=argparse.SUPPRESS, metavar="N", help=NPROC_HELP)
    models = train.add_subparsers(dest="family", metavar="MODEL", parser_class=Parser)
    for key in families.keys("train"):
        cls = families.FAMILIES[key].estimator
        fp = models.add_parser(key, parents=[common], formatter_class=formatter, help=f"{cls.__name__}",
                               description=(cls.__doc__ or "").strip().splitlines()[0],
                               epilog=f"example:\n  genlab train {key} --data digits --latent-dim 10 --out runs/{key}")
        fp.add_argument("--data", default=argparse.SUPPRESS, metavar="SOURCE",
                        help="built-in name (see `genlab datasets`) or a .npz/.npy/.csv/IDX file or image folder")
        fp.add_argument("--label-column", default=argparse.SUPPRESS, help="CSV column holding labels (index or name)")
        fp.add_argument("--out", default=argparse.SUPPRESS, metavar="RUN_DIR", help="run directory to create")
        fp.add_argument("--config", metavar="FILE.toml", help="read options from TOML; command-line options win")
        fp.add_argument("--overwrite", action="store_true", help="replace RUN_DIR if it exists (only if the new run succeeds)")
        fp.add_argument("--quiet", action="store_true", help="no progress output")
        fp.add_argument("--nproc", type=int, default=argparse.SUPPRESS, metavar="N", help=NPROC_HELP)
        for name, p in cls._params.items():
            if name != "verbose":
                add_param(fp, name, p)


def run(args) -> int:
    given = {k: v for k, v in vars(args).items() if k not in NOT_PARAMS}
    if args.resume:
        if args.family:
            raise InvalidInputError("--resume takes its model and options from the run; give no MODEL after it.")
        est = resume_run(args.resume, overrides={**given, **({"verbose": 0} if getattr(args, "quiet", False) else {})})
        if distributed.env_rank() == 0:
            print(f"resumed {args.resume}: {len(est.history_)} epochs in total")
        return 0
    if not args.family:
        raise InvalidInputError(f"say which model to train: genlab train {{{','.join(families.keys('train'))}}} "
                                "--data SOURCE --out RUN_DIR")
    run_settings, out = command_settings(args.family, given, args.config)
    est = train_run(run_settings, out, overwrite=args.overwrite, verbose=0 if args.quiet else 1)
    numbers = families.of(est).headline_numbers(est.history_[-1] if est.history_ else {})
    if distributed.env_rank() == 0:
        print(f"wrote {out}  ({'  '.join(f'{k} {v:.4g}' for k, v in numbers.items())})")
    return 0


COMMANDS = {"train": run}
