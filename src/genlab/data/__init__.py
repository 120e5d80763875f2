"""Data: built-in sources and file readers (``sources``, ``files``), scaling, splits.

The public entry point is :mod:`genlab.datasets`; this package re-exports the same loading API.
"""

from .sources import BUILTIN_NAMES, SourceInfo, ToyModes, list_sources, load, toy_modes

__all__ = ["BUILTIN_NAMES", "SourceInfo", "ToyModes", "list_sources", "load", "toy_modes"]
