"""The ``genlab`` command. It parses, calls the public API and prints; the work is elsewhere.

Exit codes: 0 success, 2 user error (one line on stderr, no traceback unless --debug),
1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from pathlib import Path

import numpy as np

from . import __version__, datasets
from ._params import Param
from .cli_errors import ENVIRONMENT_ERRNOS, EXIT_ENVIRONMENT, USER_ERRORS, environment_message, interrupted_message
from .errors import InvalidInputError
from .launch import check_nproc, launch, report_user_error, strip_nproc
from .runs import FAMILIES, label_kwargs, read_config, resume_run, split_settings, train_run, write_array
from .training import NonFiniteLossError, distributed


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of a usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _ints(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none", "()"):
        return ()
    try:
        return tuple(int(t) for t in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 256,128; got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,0.999; got {text!r}") from None


def _add_param(parser: argparse.ArgumentParser, name: str, p: Param) -> None:
    flag = "--" + name.replace("_", "-")
    p = dataclasses.replace(p, help=p.help.replace("%", "%%"))  # argparse %-formats help ("80% of ...")
    kw = {"default": argparse.SUPPRESS, "dest": name}
    if p.kind == "bool":
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=p.help, **kw)
    elif p.kind == "seed":
        parser.add_argument("--seed", type=int, metavar="N", help=p.help, **kw)
    elif p.kind == "ints":
        parser.add_argument(flag, type=_ints, metavar="N,N", help=p.help, **kw)
    elif p.kind == "floats":
        parser.add_argument(flag, type=_floats, metavar="X,X", help=p.help, **kw)
    elif p.choices:
        choices = list(p.choices) + (["none"] if p.none_ok else [])
        parser.add_argument(flag, choices=choices, help=p.help, **kw)
    else:
        parser.add_argument(flag, type=int if p.kind == "int" else float, metavar="N" if p.kind == "int" else "X",
                            help=p.help, **kw)


NPROC_HELP = ("train with N processes on this machine (torchrun, data parallel; --batch-size stays the global batch); "
              "for several machines run `torchrun ... -m genlab train ...` instead")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = Parser(prog="genlab", parents=[common], formatter_class=_formatter,
                    description="Autoencoders, VAEs and GANs on your data, from one command.",
                    epilog=textwrap.dedent("""\
                        examples:
                          genlab datasets
                          genlab train ae --data digits --arch conv --latent-dim 10 --out runs/ae
                          genlab reconstruct runs/ae --data digits --out recon.npy --png recon.png
                          genlab recommend fit --ratings ml-latest-small/ratings.csv --out runs/rec
                          genlab demo --out runs/demo"""))
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser("train", parents=[common], formatter_class=_formatter, help="train a model into a run directory",
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
    families = train.add_subparsers(dest="family", metavar="MODEL", parser_class=Parser)
    for family, cls in FAMILIES.items():
        fp = families.add_parser(family, parents=[common], formatter_class=_formatter, help=f"{cls.__name__}",
                                 description=(cls.__doc__ or "").strip().splitlines()[0],
                                 epilog=f"example:\n  genlab train {family} --data digits --latent-dim 10 --out runs/{family}")
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
                _add_param(fp, name, p)

    for name, what in (("encode", "latent codes of the data"), ("reconstruct", "reconstructions of the data"),
                       ("predict", "class probabilities of the data (semi-supervised GAN runs)")):
        p = sub.add_parser(name, parents=[common], formatter_class=_formatter, help=f"write the {what}",
                           description=f"Write the {what} computed by a trained model.",
                           epilog=f"example:\n  genlab {name} runs/ae --data digits --out {name}d.npy")
        p.add_argument("run", metavar="RUN_DIR")
        p.add_argument("--data", required=True, metavar="SOURCE")
        p.add_argument("--label-column", default=None)
        p.add_argument("--out", required=True, metavar="FILE", help=".npy, .npz or .csv")
        p.add_argument("--overwrite", action="store_true")
        if name == "reconstruct":
            p.add_argument("--png", metavar="FILE.png", help="also draw originals over reconstructions")

    p = sub.add_parser("interpolate", parents=[common], formatter_class=_formatter, help="decode a path between two inputs' codes",
                       description="Encode two samples of the data, interpolate their codes (linear or spherical) and decode.",
                       epilog="example:\n  genlab interpolate runs/vae --data digits --index 0 7 --steps 10 --out path.png")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="SOURCE")
    p.add_argument("--label-column", default=None)
    p.add_argument("--index", type=int, nargs=2, required=True, metavar=("I", "J"), help="rows of the data to start and end at")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--method", choices=("linear", "spherical"), default="linear")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npy", metavar="FILE.npy", help="also save the decoded path as an array")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("traverse", parents=[common], formatter_class=_formatter, help="vary one latent coordinate of an input",
                       description="Encode one sample, set one latent coordinate to a range of values, decode.",
                       epilog="example:\n  genlab traverse runs/vae --data digits --index 0 --dim 1 --out dim1.png")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="SOURCE")
    p.add_argument("--label-column", default=None)
    p.add_argument("--index", type=int, default=0, help="row of the data to start from")
    p.add_argument("--dim", type=int, nargs="+", default=None, help="latent coordinates (default: all, up to 10)")
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npy", metavar="FILE.npy", help="also save the decoded grid as an array")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("sample", parents=[common], formatter_class=_formatter, help="draw samples from a trained model",
                       description="Draw new samples from a trained model (in the data's units).",
                       epilog="example:\n  genlab sample runs/ae -n 64 --seed 0 --out samples.npy --png samples.png")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("-n", "--n-samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, metavar="FILE", help=".npy, .npz or .csv")
    p.add_argument("--png", metavar="FILE.png")
    p.add_argument("--label", type=int, default=None, help="conditional models: generate this class (default: cycle classes)")
    p.add_argument("--draw", action="store_true",
                   help="VAE: draw x ~ p(x|z) (binary pixels for Bernoulli, mean + noise for Gaussian) instead of its mean")
    p.add_argument("--overwrite", action="store_true")

    from .cli_evaluate import add_evaluation
    from .cli_recommend import add_recommend

    add_evaluation(sub, common)
    add_recommend(sub, common)

    sub.add_parser("datasets", parents=[common], help="list the built-in data sources and file formats",
                   description="List the built-in data sources (with shapes) and the file formats --data accepts.",
                   epilog="example:\n  genlab datasets")

    p = sub.add_parser("demo", parents=[common], formatter_class=_formatter, help="train the demo models on digits",
                       description="Train the demo models on the built-in digits: a conv autoencoder, the linear (PCA) "
                                   "autoencoder, a VAE with a 2-D latent, a conditional VAE and a conditional GAN; evaluate "
                                   "each against held-out digits and write one comparison report (index.html).",
                       epilog="example:\n  genlab demo --out runs/demo")
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--epochs", type=int, default=30, metavar="N",
                   help="base epochs (default 30): the autoencoder trains N, the VAEs 4N, the GAN 5N")
    return parser


def _cmd_train(args) -> int:
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "debug", "family", "resume", "config", "overwrite", "quiet", "nproc")}
    if args.resume:
        if args.family:
            raise InvalidInputError("--resume takes its model and options from the run; give no MODEL after it.")
        est = resume_run(args.resume, overrides={**given, **({"verbose": 0} if getattr(args, "quiet", False) else {})})
        if distributed.env_rank() == 0:
            print(f"resumed {args.resume}: {len(est.history_)} epochs in total")
        return 0
    if not args.family:
        raise InvalidInputError(f"say which model to train: genlab train {{{','.join(FAMILIES)}}} --data SOURCE --out RUN_DIR")
    settings = read_config(args.config) if args.config else {}
    settings.update({"model": args.family})
    params = FAMILIES[args.family]._params
    settings.update({k: (params[k].from_cli(v) if k in params else v) for k, v in given.items()})
    if "seed" in settings:
        settings["random_state"] = settings.pop("seed")
    out = settings.pop("out", None)
    if not out:
        raise InvalidInputError("give the run directory to create with --out RUN_DIR")
    run = split_settings(settings, source=args.config or "command line")
    est = train_run(run, out, overwrite=args.overwrite, verbose=0 if args.quiet else 1)
    last = est.history_[-1] if est.history_ else {}
    shown = ("d_loss", "g_loss", "d_real", "d_fake") if "d_loss" in last else ("loss", "val_loss")
    summary = "  ".join(f"{k} {last[k]:.4g}" for k in shown if k in last)
    if distributed.env_rank() == 0:
        print(f"wrote {out}  ({summary})")
    return 0


def _cmd_apply(args) -> int:
    from .runs import open_run

    est = open_run(args.run)
    method = {"encode": "transform", "reconstruct": "reconstruct", "predict": "predict_proba"}[args.command]
    if not hasattr(est, method):
        part, works = ("encoder", "ae and vae runs") if args.command != "predict" else ("classifier", "semi-supervised gan runs")
        raise InvalidInputError(f"this {type(est).__name__} has no {part}, so `genlab {args.command}` does not apply to "
                                f"{args.run}; it works on {works}.")
    X, y = datasets.load(args.data, label_column=args.label_column)
    labels = label_kwargs(est, y) if args.command != "predict" else {}
    if args.command == "predict":  # one row per sample: the C class probabilities
        out = est.predict_proba(X)
    elif args.command == "encode":
        out = est.transform(X, **labels)
    else:
        out = est.reconstruct(X, **labels)
        if args.png:
            from . import plots

            plots.save_reconstructions(args.png, est.scaling_.forward(X[:32]), est.scaling_.forward(out[:32]))
    write_array(args.out, out, overwrite=args.overwrite)
    print(f"wrote {args.out}  {out.shape}")
    if args.command == "predict":
        print(f"predicted classes of the first rows: {' '.join(map(str, out[:10].argmax(1)))}")
    return 0


def _cmd_sample(args) -> int:
    from .runs import open_run

    if args.n_samples < 1:
        raise InvalidInputError(f"-n must be a positive number of samples; got {args.n_samples}.")
    est = open_run(args.run)
    labels = {} if args.label is None else label_kwargs(est, args.label)
    out = est.sample(args.n_samples, random_state=args.seed, mean=not args.draw, **labels)
    write_array(args.out, out, overwrite=args.overwrite)
    if args.png:
        from . import plots

        plots.save_samples(args.png, est.scaling_.forward(out), value_range=est.scaling_.target)
    print(f"wrote {args.out}  {out.shape}")
    return 0


def _latent_inputs(args):
    from .runs import open_run

    est = open_run(args.run)
    if not hasattr(est, "transform"):
        raise InvalidInputError(f"a {type(est).__name__} has no encoder; `genlab {args.command}` works on ae and vae runs.")
    for path in filter(None, (args.out, args.npy)):
        if Path(path).exists() and not args.overwrite:
            raise InvalidInputError(f"{path} already exists; choose another file or pass --overwrite.")
    X, y = datasets.load(args.data, label_column=args.label_column)
    rows = args.index if isinstance(args.index, list) else [args.index]
    bad = [i for i in rows if not 0 <= i < len(X)]
    if bad:
        raise InvalidInputError(f"--index {bad[0]} is out of range: {args.data} has rows 0..{len(X) - 1}.")
    labels = label_kwargs(est, y)
    return est, X, (None if not labels else labels["y"])


def _cmd_interpolate(args) -> int:
    from . import latent, plots

    est, X, y = _latent_inputs(args)
    i, j = args.index
    cond = {} if y is None else {"y0": y[i], "y1": y[j]}
    path = latent.interpolate(est, X[i], X[j], n_steps=args.steps, method=args.method, **cond)
    plots.save_interpolation(args.out, [est.scaling_.forward(path)], title=f"{args.method} interpolation, rows {i} -> {j}")
    if args.npy:
        write_array(args.npy, path, overwrite=True)
    print(f"wrote {args.out}  {path.shape}")
    return 0


def _cmd_traverse(args) -> int:
    from . import latent, plots

    est, X, y = _latent_inputs(args)
    dims = args.dim if args.dim is not None else list(range(min(est.latent_dim, 10)))
    cond = {} if y is None else {"y": y[args.index]}
    grid = np.stack([latent.traverse(est, X[args.index], d, steps=args.steps, **cond) for d in dims])  # mean ± 3σ of the codes
    plots.save_traversal(args.out, est.scaling_.forward(grid.reshape(-1, *grid.shape[2:])).reshape(grid.shape),
                         title=f"traversal of row {args.index}", row_labels=[f"z{d}" for d in dims])
    if args.npy:
        write_array(args.npy, grid, overwrite=True)
    print(f"wrote {args.out}  {grid.shape}")
    return 0


def _cmd_datasets(args) -> int:
    rows = [(s.name, "x".join(map(str, s.shape)), str(s.n_samples), "yes" if s.has_labels else "no",
             s.description if s.available else f"{s.description} [{s.hint}]") for s in datasets.list_sources()]
    header = ("name", "sample shape", "samples", "labels", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    print("\nfiles: .npz/.npy (arrays; labels key y), .csv/.tsv (numeric; --label-column), "
          "MNIST IDX (*-images-idx3-ubyte[.gz]), image folders (PNG/JPEG; sub-folders are classes)")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    index = run_demo(args.out, epochs=args.epochs, overwrite=args.overwrite).resolve()
    print(f"demo: wrote {args.out}; open the comparison report in a browser: {index.as_uri()}")
    return 0


def _cmd_recommend(args) -> int:
    from .cli_recommend import run_recommend

    return run_recommend(args)


def _cmd_evaluation(args) -> int:
    from . import cli_evaluate

    commands = {"evaluate": cli_evaluate.run_evaluate, "compare": cli_evaluate.run_compare, "report": cli_evaluate.run_report}
    return commands[args.command](args)


COMMANDS = {"train": _cmd_train, "encode": _cmd_apply, "reconstruct": _cmd_apply, "predict": _cmd_apply,
            "sample": _cmd_sample,
            "interpolate": _cmd_interpolate, "traverse": _cmd_traverse, "recommend": _cmd_recommend,
            "evaluate": _cmd_evaluation, "compare": _cmd_evaluation, "report": _cmd_evaluation,
            "datasets": _cmd_datasets, "demo": _cmd_demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (exit 2)
        return int(exc.code or 0)
    debug = getattr(args, "debug", False)
    rank = distributed.env_rank()
    try:
        if getattr(args, "nproc", None) is not None:
            check_nproc(args.nproc)
            if args.nproc > 1:
                return launch(args.nproc, strip_nproc(argv))
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        if debug:
            raise
        message = str(exc) if isinstance(exc, InvalidInputError) else f"{exc.strerror or exc}: {exc.filename}"
        line = f"genlab {args.command}: error: {' '.join(message.split())}"
        if not report_user_error(line, rank) and rank == 0:  # every process meets the same bad input: said once
            print(line, file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        if debug:
            raise
        print(f"genlab {args.command}: training failed: {exc} {' '.join(getattr(exc, '__notes__', []))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"genlab {args.command}: {interrupted_message(args)}", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            raise
        if exc.errno in ENVIRONMENT_ERRNOS:
            print(f"genlab {args.command}: {environment_message(exc, args)}", file=sys.stderr)
            return EXIT_ENVIRONMENT
        print(f"genlab {args.command}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        if debug:
            raise
        who = f" (process {rank})" if distributed.env_world_size() > 1 else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"genlab {args.command}{who}: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
