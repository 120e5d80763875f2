"""Load data as ``(X, y)``: built-in data sets by name, or your own files and folders.

>>> import genlab.datasets as ds
>>> X, y = ds.load("digits")                       # (1797, 1, 8, 8) float32 in [0, 1], int64 labels
>>> X, y = ds.load("ring8", n_samples=1000, random_state=0)
>>> [s.name for s in ds.list_sources()]
['digits', 'mnist-5k', 'onehot8', 'ring8', 'grid25']

Files: ``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt`` (``label_column=``), MNIST IDX
(``*-images-idx3-ubyte[.gz]``) and folders of images (one sub-folder per class). See :func:`load`.

Recommendation data is a users × items sparse matrix with its ids, an :class:`Interactions`:
:func:`load_interactions` reads ``user,item[,rating][,timestamp]`` tables (MovieLens ``ratings.csv``,
``u.data``, ``ratings.dat`` as they are) and :func:`make_interactions` draws synthetic data with
planted user groups.
"""

from .data.interactions import Interactions, load_interactions
from .data.protocol import make_interactions
from .data.sources import (
    BUILTIN_NAMES,
    SourceInfo,
    ToyModes,
    list_sources,
    load,
    toy_modes,
)
from .errors import DataError

__all__ = [
    "BUILTIN_NAMES",
    "DataError",
    "Interactions",
    "SourceInfo",
    "ToyModes",
    "list_sources",
    "load",
    "load_interactions",
    "make_interactions",
    "toy_modes",
]
