"""The family registry: one frozen record per model family, read by every part of the front door.

The CLI's model names, the run directories, the pages (run report, comparison, recommendation page), the latent
tools and ``genlab.load`` all look a family up here instead of sniffing record keys, file names or attributes:

* ``key`` names the family on the command line and in ``config.toml`` (``model = "vae"``); ``estimator`` is its
  class (``model.json`` names the class, :func:`by_class_name` finds it back);
* ``name`` / ``short`` are how pages and messages call it;
* ``run`` is the command that writes its run directories: ``"train"`` (``genlab train``), ``"recommend"``
  (``genlab recommend fit``) or None (a baseline no command trains on its own);
* ``headline`` are the record keys summarised after training and on the pages; ``grouped`` maps the record-key
  prefixes of per-coordinate series (a VAE's ``kl_dim_j``) to the title of their one panel and the legend's
  prefix for the coordinate;
* ``can`` lists capabilities; the ones that depend on a parameter name it in ``switch`` (a GAN classifies only
  with ``semi_supervised=True``) — :meth:`Family.has` answers for a fitted estimator or a run's parameters;
* ``closed_form``: fitted in one solve, not by the training loop (no epochs, no checkpoints, one process);
* what the pages say about a run of it: ``describe`` (the parameters that change what the model is, for its label:
  "with β = 4"), ``details`` (the short facts of its one-sentence summary), ``captions`` (the family's own caption of
  a figure: "curves", "samples"; the pages' generic ones otherwise) and ``checks`` (the names of the health checks
  that only it has, from :data:`genlab.report.health.FAMILY_CHECKS`).

A field the pages read has a default that suits a new family, so registering one needs none of them.

Adding a family: its module in ``models/``, its estimator in ``estimators/``, and one :func:`register` call
(ARCHITECTURE.md, "Adding a family"; ``tests/test_family_example.py`` does it from outside the package).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError
from .estimators import EASE, GAN, VAE, VAEGAN, Autoencoder, MultDAE, MultVAE, Popularity
from .models.vae import KL_DIM

#: What a family may do. encode: transform (codes of data); decode: codes -> data (an autoencoder's inverse_transform,
#: a generator's generate); reconstruct: data -> data through the code; sample: draw new data; likelihood: p(x|z) (score_samples, elbo,
#: sample(mean=False)); classify: predict / predict_proba; conditional: takes class labels; recommend: ranks items.
CAPABILITIES = frozenset({"encode", "decode", "reconstruct", "sample", "likelihood", "classify", "conditional", "recommend"})
RUN_KINDS = ("train", "recommend")


@dataclass(frozen=True)
class Family:
    key: str
    estimator: type
    name: str
    short: str
    run: str | None
    headline: tuple[str, ...]
    can: frozenset[str]
    grouped: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # key prefix -> (panel title, legend prefix)
    switch: Mapping[str, str] = field(default_factory=dict)  # capability -> the bool parameter that turns it on
    closed_form: bool = False
    describe: Callable[[Mapping[str, Any]], str] = lambda params: ""  # noqa: E731  e.g. " with β = 4"
    details: Callable[[Mapping[str, Any]], tuple[str, ...]] = lambda params: ()  # noqa: E731  e.g. ("gaussian likelihood",)
    captions: Mapping[str, str] = field(default_factory=dict)  # figure -> caption
    checks: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = set(self.can) - CAPABILITIES
        if unknown:
            raise ValueError(f"family {self.key!r}: unknown capabilities {sorted(unknown)}")
        if not set(self.switch) <= set(self.can):
            raise ValueError(f"family {self.key!r}: switch names {sorted(set(self.switch) - set(self.can))}, not in can")
        declared = getattr(self.estimator, "_has_likelihood", None)  # what sample(mean=False) checks in the estimator
        if declared is not None and declared != ("likelihood" in self.can):
            raise ValueError(f"family {self.key!r}: 'likelihood' in can must agree with {self.estimator.__name__}._has_likelihood")
        if self.run is not None and self.run not in RUN_KINDS:
            raise ValueError(f"family {self.key!r}: run must be one of {RUN_KINDS} or None; got {self.run!r}")

    def has(self, capability: str, model: Any = None) -> bool:
        """Whether this family (or one configured model of it: an estimator, or a dict of its parameters) has the
        capability; a switched one needs its parameter on."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; one of {', '.join(sorted(CAPABILITIES))}")
        if capability not in self.can:
            return False
        param = self.switch.get(capability)
        if param is None or model is None:
            return True
        params = model if isinstance(model, Mapping) else model.get_params()
        return bool(params.get(param, False))

    def headline_numbers(self, record: Mapping[str, Any]) -> dict[str, float]:
        """The headline keys that ``record`` holds as numbers, in the family's order."""
        return {k: float(record[k]) for k in self.headline if isinstance(record.get(k), (int, float))}



FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family (its key and its estimator's class name must be new); returns it."""
    if family.key in FAMILIES:
        raise ValueError(f"a family {family.key!r} is registered already")
    if any(f.estimator.__name__ == family.estimator.__name__ for f in FAMILIES.values()):
        raise ValueError(f"an estimator class named {family.estimator.__name__!r} is registered already")
    FAMILIES[family.key] = family
    return family


def unregister(key: str) -> None:
    """Remove a family (tests that register one of their own clean up with this)."""
    FAMILIES.pop(key, None)


def get(key: str, *, run: str | None = None, source: str = "model") -> Family:
    """The family named ``key`` (of run kind ``run`` if given); a one-line error naming the choices otherwise."""
    choices = keys(run)
    if key not in choices:
        raise InvalidInputError(f"{source} must be one of {', '.join(choices)}; got {key!r}.")
    return FAMILIES[key]


def keys(run: str | None = None) -> tuple[str, ...]:
    """The families' keys (those whose runs ``run`` writes, if given), in registration order."""
    return tuple(k for k, f in FAMILIES.items() if run is None or f.run == run)


def find(model: Any) -> Family | None:
    """The family of an estimator (or estimator class); None for anything else."""
    cls = model if isinstance(model, type) else type(model)
    for base in cls.__mro__:  # the most specific registered class (MultDAE before the MultVAE it extends)
        family = by_class_name(base.__name__)
        if family is not None and family.estimator is base:
            return family
    return None


def of(model: Any) -> Family:
    """The family of an estimator (or estimator class); a one-line error for anything else."""
    family = find(model)
    if family is None:
        raise InvalidInputError(f"{(model if isinstance(model, type) else type(model)).__name__} is not a genlab model.")
    return family


def by_class_name(name: Any) -> Family | None:
    """The family whose estimator class is called ``name`` (as ``model.json`` records it); None if none is."""
    return next((f for f in FAMILIES.values() if f.estimator.__name__ == name), None)


def has(model: Any, capability: str) -> bool:
    """``of(model).has(capability, model)``: may this fitted estimator do that?"""
    return of(model).has(capability, model)


def is_conditional(model: Any) -> bool:
    """Whether this estimator takes class labels (a conditional VAE or GAN)."""
    return has(model, "conditional")


_LOSS = ("loss", "val_loss")


def _beta(params: Mapping[str, Any]) -> str:
    beta = params.get("beta", 1.0)
    return f" with β = {beta:g}" if beta != 1.0 else ""


def _gan_loss(params: Mapping[str, Any]) -> str:
    loss = params.get("loss", "nonsaturating")
    return f" ({loss} loss)" if loss != "nonsaturating" else ""


register(Family("ae", Autoencoder, "autoencoder", "autoencoder", "train", _LOSS, frozenset({"encode", "decode", "reconstruct", "sample"}),
                captions={"samples": "Codes drawn from a Gaussian mixture fitted to the training codes, decoded (an autoencoder has "
                                     "no prior of its own, so these samples are only as good as that fit)."}))
register(Family("vae", VAE, "variational autoencoder", "VAE", "train", _LOSS,
                frozenset({"encode", "decode", "reconstruct", "sample", "likelihood", "conditional"}),
                grouped={KL_DIM: ("KL per latent dimension", "z")}, switch={"conditional": "conditional"}, describe=_beta,
                details=lambda p: (f"{p.get('likelihood', 'bernoulli')} likelihood",), checks=("posterior collapse",),
                captions={"curves": "loss is the negative ELBO per example (reconstruction + β·KL); dashed lines are the validation "
                                    "split. “KL per latent dimension” shows which dimensions carry information: one that stays "
                                    "near 0 is unused."}))
register(Family("gan", GAN, "generative adversarial network", "GAN", "train", ("d_loss", "g_loss", "d_real", "d_fake"),
                frozenset({"decode", "sample", "classify", "conditional"}),
                switch={"conditional": "conditional", "classify": "semi_supervised"}, describe=_gan_loss, checks=("GAN balance",),
                captions={"curves": "d_loss and g_loss are the discriminator's and the generator's losses; d_real and d_fake are the "
                                    "discriminator's mean output on real and on generated data."}))
register(Family("multvae", MultVAE, "multinomial variational autoencoder", "Mult-VAE", "recommend", _LOSS,
                frozenset({"encode", "recommend"})))
register(Family("multdae", MultDAE, "multinomial denoising autoencoder", "Mult-DAE", "recommend", _LOSS,
                frozenset({"encode", "recommend"})))
register(Family("ease", EASE, "EASE (item-item ridge regression)", "EASE", "recommend", ("l2", "ndcg_at_100"),
                frozenset({"recommend"}), closed_form=True))
register(Family("popularity", Popularity, "popularity baseline", "popularity", None, (), frozenset({"recommend"}), closed_form=True))

register(Family("vaegan", VAEGAN, "adversarially trained variational autoencoder", "VAE-GAN", "train",
                ("feature_rec", "kl", "d_loss", "g_loss"), frozenset({"encode", "decode", "reconstruct", "sample"}),
                grouped={KL_DIM: ("KL per latent dimension", "z")}, describe=_gan_loss, checks=("posterior collapse", "GAN balance"),
                captions={"curves": "feature_rec is the reconstruction error in the discriminator's feature space, kl the KL term; "
                                    "d_loss and g_loss are the adversarial losses, d_real and d_fake the discriminator's mean "
                                    "output on real data and on reconstructions and prior samples; pixel_mse is the "
                                    "reconstruction's squared error in pixels, for reference."}))
