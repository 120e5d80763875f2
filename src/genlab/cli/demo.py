"""``genlab demo``: the demo's parser and its one line of output; the demo itself is :mod:`genlab.demo`."""

from __future__ import annotations

from ..demo import run_demo
from .common import formatter


def add_parser(sub, common) -> None:
    p = sub.add_parser("demo", parents=[common], formatter_class=formatter, help="train the demo models on digits",
                       description="Train the demo models on the built-in digits: a conv autoencoder, the linear (PCA) "
                                   "autoencoder, a VAE with a 2-D latent, a conditional VAE and a conditional GAN; evaluate "
                                   "each against held-out digits and write one comparison report (index.html).",
                       epilog="example:\n  genlab demo --out runs/demo")
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--epochs", type=int, default=30, metavar="N",
                   help="base epochs (default 30): the autoencoder trains N, the VAEs 4N, the GAN 5N")


def run(args) -> int:
    index = run_demo(args.out, epochs=args.epochs, overwrite=args.overwrite).resolve()
    print(f"demo: wrote {args.out}; open the comparison report in a browser: {index.as_uri()}")
    return 0


COMMANDS = {"demo": run}
