"""What every command group of the ``genlab`` command shares: the parser class with one-line errors, the help
layout, and the options generated from an estimator's declared parameters (``_params``)."""

from __future__ import annotations

import argparse
import dataclasses

from .._params import Param


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of a usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


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


def add_param(parser: argparse.ArgumentParser, name: str, p: Param) -> None:
    """The command-line option of one declared parameter (``--latent-dim N``, ``--hidden N,N``, ``--seed N``)."""
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
        number = int if p.kind == "int" else float
        parser.add_argument(flag, type=_or_none(number) if p.none_ok else number, metavar="N" if p.kind == "int" else "X",
                            help=p.help, **kw)


def _or_none(number):
    """A number, or the word none (or auto) for a parameter that takes None; Param.from_cli turns the word into None."""
    def parse(text: str):
        if text.strip().lower() in ("none", "auto"):
            return "none"
        try:
            return number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if number is int else 'a number'} or 'none'; "
                                             f"got {text!r}") from None
    parse.__name__ = number.__name__  # argparse names the type in its messages
    return parse


def add_run_data(parser: argparse.ArgumentParser) -> None:
    """A trained run and the data to apply it to: RUN_DIR --data SOURCE [--label-column C]."""
    parser.add_argument("run", metavar="RUN_DIR")
    parser.add_argument("--data", required=True, metavar="SOURCE")
    parser.add_argument("--label-column", default=None)
