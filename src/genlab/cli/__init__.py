"""The ``genlab`` command: one module per command group (``train``, ``apply`` — encode, reconstruct, predict,
sample, interpolate, traverse, datasets —, ``evaluate`` — evaluate, compare, report —, ``recommend``, ``demo``),
each with its parser and its handlers; they parse, call the library and print. This module builds the parser
and turns errors into exit codes.

Exit codes: 0 success, 2 user error (one line on stderr, no traceback unless --debug),
1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from .. import __version__
from ..errors import InvalidInputError
from ..launch import check_nproc, launch, report_user_error, strip_nproc
from ..training import NonFiniteLossError, distributed
from . import apply, demo, evaluate, recommend, train
from .common import Parser, formatter
from .errors import ENVIRONMENT_ERRNOS, EXIT_ENVIRONMENT, USER_ERRORS, environment_message, interrupted_message

GROUPS = (train, apply, evaluate, recommend, demo)  # in the order `genlab --help` lists their commands
COMMANDS = {name: handler for group in GROUPS for name, handler in group.COMMANDS.items()}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = Parser(prog="genlab", parents=[common], formatter_class=formatter,
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
    train.add_parser(sub, common)
    apply.add_parsers(sub, common)
    evaluate.add_parsers(sub, common)
    recommend.add_parser(sub, common)
    demo.add_parser(sub, common)
    return parser


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
