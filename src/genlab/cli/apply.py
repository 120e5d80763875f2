"""The commands that use a trained model run: ``encode``, ``reconstruct``, ``predict``, ``sample``, ``interpolate``,
``traverse``, and ``datasets`` (what ``--data`` accepts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import datasets, families, latent, plots
from ..errors import InvalidInputError
from ..runs import label_kwargs, open_run, write_array
from .common import add_run_data, formatter

#: command -> (the capability it needs, the estimator method it calls, what it writes)
APPLY = {"encode": ("encode", "transform", "latent codes of the data"),
         "reconstruct": ("reconstruct", "reconstruct", "reconstructions of the data"),
         "predict": ("classify", "predict_proba", "class probabilities of the data (semi-supervised GAN runs)")}


def add_parsers(sub, common) -> None:
    for name, (_, _, what) in APPLY.items():
        p = sub.add_parser(name, parents=[common], formatter_class=formatter, help=f"write the {what}",
                           description=f"Write the {what} computed by a trained model.",
                           epilog=f"example:\n  genlab {name} runs/ae --data digits --out {name}d.npy")
        add_run_data(p)
        p.add_argument("--out", required=True, metavar="FILE", help=".npy, .npz or .csv")
        p.add_argument("--overwrite", action="store_true")
        if name == "reconstruct":
            p.add_argument("--png", metavar="FILE.png", help="also draw originals over reconstructions")

    p = sub.add_parser("interpolate", parents=[common], formatter_class=formatter, help="decode a path between two inputs' codes",
                       description="Encode two samples of the data, interpolate their codes (linear or spherical) and decode.",
                       epilog="example:\n  genlab interpolate runs/vae --data digits --index 0 7 --steps 10 --out path.png")
    add_run_data(p)
    p.add_argument("--index", type=int, nargs=2, required=True, metavar=("I", "J"), help="rows of the data to start and end at")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--method", choices=("linear", "spherical"), default="linear")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npy", metavar="FILE.npy", help="also save the decoded path as an array")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("traverse", parents=[common], formatter_class=formatter, help="vary one latent coordinate of an input",
                       description="Encode one sample, sweep latent coordinates over mean ± 3σ of the codes' distribution, "
                                   "decode.",
                       epilog="example:\n  genlab traverse runs/vae --data digits --index 0 --dim 1 --out dim1.png")
    add_run_data(p)
    p.add_argument("--index", type=int, default=0, help="row of the data to start from")
    p.add_argument("--dim", type=int, nargs="+", default=None, help="latent coordinates (default: all, up to 10)")
    p.add_argument("--steps", type=int, default=9, help="values per coordinate, from mean − 3σ to mean + 3σ (default 9)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npy", metavar="FILE.npy", help="also save the decoded grid as an array")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("sample", parents=[common], formatter_class=formatter, help="draw samples from a trained model",
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

    sub.add_parser("datasets", parents=[common], help="list the built-in data sources and file formats",
                   description="List the built-in data sources (with shapes) and the file formats --data accepts.",
                   epilog="example:\n  genlab datasets")


def _open(args, capability: str, works: str):
    """The run's model, if its family (and configuration) has ``capability``; else a one-line error."""
    est = open_run(args.run)
    if not families.has(est, capability):
        part = {"encode": "encoder", "reconstruct": "encoder", "classify": "classifier", "sample": "sampler"}[capability]
        raise InvalidInputError(f"this {type(est).__name__} has no {part}, so `genlab {args.command}` does not apply to "
                                f"{args.run}; it works on {works}.")
    return est


def _works_on(capability: str) -> str:
    """The runs a command works on, from the registry: "ae and vae runs", "semi-supervised gan runs"."""
    keys = [f.key for f in families.FAMILIES.values() if f.run == "train" and capability in f.can]
    switched = {families.FAMILIES[k].switch.get(capability) for k in keys} - {None}
    return " and ".join(keys) + " runs" + (f" ({', '.join(sorted(switched))}=true)" if switched else "")


def run_apply(args) -> int:
    capability, method, _ = APPLY[args.command]
    est = _open(args, capability, _works_on(capability))
    X, y = datasets.load(args.data, label_column=args.label_column)
    labels = label_kwargs(est, y) if capability != "classify" else {}
    out = getattr(est, method)(X, **labels)  # predict: one row per sample, the C class probabilities
    if args.command == "reconstruct" and args.png:
        plots.save_reconstructions(args.png, est.scaling_.display(X[:32]), est.scaling_.display(out[:32]))
    write_array(args.out, out, overwrite=args.overwrite)
    print(f"wrote {args.out}  {out.shape}")
    if capability == "classify":
        print(f"predicted classes of the first rows: {' '.join(map(str, out[:10].argmax(1)))}")
    return 0


def run_sample(args) -> int:
    est = _open(args, "sample", _works_on("sample"))
    labels = {} if args.label is None else label_kwargs(est, args.label)
    out = est.sample(args.n_samples, random_state=args.seed, mean=not args.draw, **labels)
    write_array(args.out, out, overwrite=args.overwrite)
    if args.png:
        plots.save_samples(args.png, est.scaling_.display(out), value_range=est.scaling_.target)
    print(f"wrote {args.out}  {out.shape}")
    return 0


def _latent_inputs(args):
    est = _open(args, "encode", _works_on("encode"))
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


def run_interpolate(args) -> int:
    est, X, y = _latent_inputs(args)
    i, j = args.index
    cond = {} if y is None else {"y0": y[i], "y1": y[j]}
    path = latent.interpolate(est, X[i], X[j], n_steps=args.steps, method=args.method, **cond)
    plots.save_interpolation(args.out, [est.scaling_.display(path)], title=f"{args.method} interpolation, rows {i} -> {j}")
    if args.npy:
        write_array(args.npy, path, overwrite=True)
    print(f"wrote {args.out}  {path.shape}")
    return 0


def run_traverse(args) -> int:
    est, X, y = _latent_inputs(args)
    dims = args.dim if args.dim is not None else list(range(min(est.latent_dim, 10)))
    cond = {} if y is None else {"y": y[args.index]}
    grid = np.stack([latent.traverse(est, X[args.index], d, steps=args.steps, **cond) for d in dims])  # mean ± 3σ of the codes
    plots.save_traversal(args.out, est.scaling_.display(grid.reshape(-1, *grid.shape[2:])).reshape(grid.shape),
                         title=f"traversal of row {args.index}", row_labels=[f"z{d}" for d in dims])
    if args.npy:
        write_array(args.npy, grid, overwrite=True)
    print(f"wrote {args.out}  {grid.shape}")
    return 0


def run_datasets(args) -> int:
    rows = [(s.name, "x".join(map(str, s.shape)), str(s.n_samples), "yes" if s.has_labels else "no",
             s.description if s.available else f"{s.description} [{s.hint}]") for s in datasets.list_sources()]
    header = ("name", "sample shape", "samples", "labels", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    print("\nfiles: .npz/.npy (arrays; labels key y), .csv/.tsv (numeric; --label-column), "
          "MNIST IDX (*-images-idx3-ubyte[.gz]), image folders (PNG/JPEG; sub-folders are classes)")
    return 0


COMMANDS = {**dict.fromkeys(APPLY, run_apply), "sample": run_sample, "interpolate": run_interpolate,
            "traverse": run_traverse, "datasets": run_datasets}
