"""The health panel (spec §9): what the numbers of a run say is wrong with it, in plain sentences.

:func:`health_checks` reads a run's per-epoch records and its ``metrics.json`` and returns one
:class:`Finding` per check that applies: posterior collapse (VAE), sample diversity, mode collapse,
memorisation, labels followed (conditional models), the GAN's balance, and skipped non-finite batches.
Each says the number it rests on and, when it fails, what to try. The thresholds are the constants
below; the run page lists them (:data:`THRESHOLDS`) and the README repeats them.

The comparison with real data is always with the ``reference`` column of ``metrics.json``: the same
metric computed for real held-out data against the training data, so a threshold reads "at least half
of what real data scores" and does not depend on the data set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import families
from ..families import Family

ACTIVE_SHARE = 0.5       # posterior collapse: fewer than half of the latent dimensions in use ...
ACTIVE_COUNTED = 8       # ... counting at most this many (a large code need not use all of its dimensions)
DIVERSITY_SHARE = 0.5    # recall or coverage below half of real data's
CONDITIONAL_SHARE = 0.8  # conditional accuracy below 80% of real data's
MEMORISATION_RATIO = 0.8  # samples nearer to training images than held-out images are, by this factor
D_SEPARATION = 0.9       # D(x) − D(G(z)) above this (probability outputs): the discriminator has won
CRITIC_GROWTH = 1.5      # Wasserstein / hinge: the critic's gap grew by this factor over the second half

THRESHOLDS = (
    f"posterior collapse: fewer than {ACTIVE_SHARE:.0%} of the latent dimensions active, counting at most "
    f"{ACTIVE_COUNTED} (active: the variance over the data of a dimension's posterior mean above 0.01);",
    f"sample diversity: recall or coverage below {DIVERSITY_SHARE:.0%} of the real-data reference (a note, not a problem, "
    "for a code of 1 or 2 dimensions on higher-dimensional data);",
    "mode collapse: fewer classes (or toy modes) among the samples than the real-data reference shows;",
    f"memorisation: nearest-neighbour ratio below {MEMORISATION_RATIO:g};",
    f"labels followed: conditional accuracy below {CONDITIONAL_SHARE:.0%} of the real-data reference;",
    f"GAN balance: D(x) − D(G(z)) above {D_SEPARATION:g} × the real label (1, or label_smoothing) in the last epoch "
    f"(minimax, non-saturating; a note for the semi-supervised GAN, whose discriminator is meant to be strong); the "
    f"critic's mean gap over the last quarter of training above {CRITIC_GROWTH:g}× that over the second quarter "
    "(Wasserstein); both hinge margins met, d_loss below 0.1 (hinge); or a non-finite loss;",
    "non-finite skips: any batch skipped.",
)


@dataclass(frozen=True)
class Finding:
    """One check: ``topic`` (a few words), ``ok``, and ``text``, a plain sentence with the number behind it.
    ``expected``: failed, but as the settings make it bound to (a 2-D code cannot hold the data's variety); the
    pages show it as a note, not as a problem."""

    topic: str
    ok: bool
    text: str
    expected: bool = False

    @property
    def level(self) -> str:
        return "ok" if self.ok else "note" if self.expected else "problem"


def health_checks(family: Family | str, params: dict, history: list[dict], metrics: dict | None,
                  latent_dim: int | None = None, n_features: int | None = None) -> list[Finding]:
    """The checks that apply to a run of ``family`` (its registry record, or its key) trained with ``params``: the shared ones,
    and those the family names in ``checks`` (:data:`FAMILY_CHECKS`).

    ``history``: the per-epoch records (metrics.jsonl); ``metrics``: the parsed metrics.json or None
    (then only the checks on the records are made); ``n_features``: values per sample of the data.
    """
    family = families.get(family) if isinstance(family, str) else family
    values = (metrics or {}).get("metrics") or {}
    reference = (metrics or {}).get("reference") or {}
    known = set(family.estimator._params)  # a family's own checks advise only parameters it has (a VAE-GAN has no beta)
    own = [FAMILY_CHECKS[topic](history, params, latent_dim, known) for topic in family.checks]
    small_code = family.has("encode") and latent_dim is not None and latent_dim <= 2 < (n_features or 0)
    findings = [
        *own[:1],  # the family's first check (the VAE's posterior, ...) leads: it explains the ones below it
        _diversity(values, reference, small_code),
        _modes(values, reference),
        _memorisation(values, images=(n_features or 0) > 2),
        _labels(values, reference),
        *own[1:],
        _skips(history),
    ]
    return [f for f in findings if f is not None]


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _try(known: set[str], *options: tuple[str, str]) -> str:
    """"Try a, b or c." of the remedies (text, the parameter it sets) that this family has."""
    texts = [text for text, param in options if param in known]
    if not texts:
        return "Try a smaller lr or more epochs."
    return "Try " + (texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + ", or " + texts[-1]) + "."


def _posterior(history: list[dict], params: dict, latent_dim: int | None, known: set[str]) -> Finding | None:
    last = history[-1] if history else {}
    active = _number(last.get("active_units"))
    kl = [v for k, v in sorted(last.items()) if k.startswith("kl_dim_") and _number(v) is not None]
    if active is None or not latent_dim:
        return None
    spread = f" (KL per dimension {min(kl):.2f} to {max(kl):.2f} nats)" if kl else ""
    if active >= ACTIVE_SHARE * min(latent_dim, ACTIVE_COUNTED):
        return Finding("posterior collapse", True, f"{active:.0f} of {latent_dim} latent dimensions carry information{spread}.")
    return Finding("posterior collapse", False,
                   f"Only {active:.0f} of {latent_dim} latent dimensions are used{spread}: the decoder largely ignores the "
                   "code, so samples will vary little. " + _try(known, ("free_bits=0.5", "free_bits"), ("a smaller beta (0.25)", "beta"),
                                                                ("for grey-level data likelihood='gaussian' with a small sigma2 (0.02)",
                                                                 "likelihood")))


def _diversity(values: dict, reference: dict, small_code: bool) -> Finding | None:
    pairs = {k: (_number(values.get(k)), _number(reference.get(k))) for k in ("recall", "coverage")}
    pairs = {k: v for k, v in pairs.items() if v[0] is not None and v[1]}
    if not pairs:
        return None
    said = ", ".join(f"{k} {ours:.2f} (real data {ref:.2f})" for k, (ours, ref) in pairs.items())
    if all(ours >= DIVERSITY_SHARE * ref for ours, ref in pairs.values()):
        return Finding("sample diversity", True, f"Samples spread over the data: {said}.")
    hint = ("A 2-D code is meant for drawing the codes in the plane; it cannot hold the data's variety, so this is "
            "expected — for varied samples use latent_dim 8 or more." if small_code
            else "Samples cover little of the data's variety (blurred or alike); see posterior collapse above for a VAE, "
                 "or train longer / use a larger latent_dim.")
    return Finding("sample diversity", False, f"Low diversity: {said}. {hint}", expected=small_code)


def _modes(values: dict, reference: dict) -> Finding | None:
    for key, what in (("classes_covered", "classes"), ("modes_captured", "modes")):
        ours, ref = _number(values.get(key)), _number(reference.get(key))
        if ours is None or not ref:
            continue
        if ours >= ref:
            return Finding("mode collapse", True, f"The samples show {ours:.0f} of the {ref:.0f} {what} real data shows.")
        return Finding("mode collapse", False,
                       f"The samples show only {ours:.0f} of the {ref:.0f} {what} real data shows: the model drops part of "
                       "the data (mode collapse). For a GAN try more epochs, a smaller lr, loss='wasserstein' with "
                       "penalty='gp', or conditional=True with labels.")
    return None


def _memorisation(values: dict, *, images: bool) -> Finding | None:
    ratio = _number(values.get("memorisation_ratio"))
    if ratio is None:
        return None
    what = "ratio of the samples' median distance to their nearest training example to the same for held-out data"
    if ratio >= MEMORISATION_RATIO:
        return Finding("memorisation", True, f"Samples are not copies of training examples: {ratio:.2f} ({what}; about 1 "
                                             f"for new examples, copies score well below {MEMORISATION_RATIO:g}).")
    look = "Look at the nearest-neighbour panel; try" if images else "Try"
    return Finding("memorisation", False,
                   f"Samples lie much closer to training examples than held-out data does: {ratio:.2f} ({what}). The model "
                   f"may be copying its training data. {look} fewer epochs, early_stopping=True or more data.")


def _labels(values: dict, reference: dict) -> Finding | None:
    ours, ref = _number(values.get("conditional_accuracy")), _number(reference.get("conditional_accuracy"))
    if ours is None or not ref:
        return None
    if ours >= CONDITIONAL_SHARE * ref:
        return Finding("labels followed", True, f"Samples are of the class asked for: conditional accuracy {ours:.2f} "
                                                f"(real data {ref:.2f}).")
    return Finding("labels followed", False,
                   f"Samples often are not of the class asked for: conditional accuracy {ours:.2f} (real data {ref:.2f}). "
                   "Train longer, or check that the labels match the data.")


def _balance(history: list[dict], params: dict, latent_dim: int | None, known: set[str]) -> Finding | None:
    records = [r for r in history if "d_real" in r and "d_fake" in r]
    if not records:
        return None
    last = records[-1]
    if any(_number(last.get(k)) is None for k in ("d_loss", "g_loss", "d_real", "d_fake")):
        return Finding("GAN balance", False, "The last epoch's losses are not finite: training diverged. "
                       + _try(known, ("a smaller lr_d", "lr_d"), ("grad_clip=1.0", "grad_clip"), ("spectral_norm=True", "spectral_norm")))
    real, fake = float(last["d_real"]), float(last["d_fake"])
    loss = params.get("loss") or "nonsaturating"
    if loss == "wasserstein":
        return _critic_gap([float(r["d_real"]) - float(r["d_fake"]) for r in records], known)
    if loss == "hinge":
        if float(last["d_loss"]) < 0.1:
            return Finding("GAN balance", False,
                           f"The discriminator meets both hinge margins (D(x) {real:.2f} ≥ 1, D(G(z)) {fake:.2f} ≤ −1; d_loss "
                           f"{float(last['d_loss']):.3f}): the generator gets little signal. "
                           + _try(known, ("a smaller lr_d", "lr_d"), ("more generator steps (g_steps=2)", "g_steps"),
                                  ("spectral_norm=True", "spectral_norm")))
        return Finding("GAN balance", True, f"The discriminator does not meet both hinge margins: d_loss "
                                            f"{float(last['d_loss']):.3f}, D(x) {real:.2f}, D(G(z)) {fake:.2f}.")
    target = float(params.get("label_smoothing") or 1.0)  # D(x) aims at the real label, 1 or the smoothed one
    if real - fake > D_SEPARATION * target:
        strong = bool(params.get("semi_supervised"))
        return Finding("GAN balance", False,
                       f"The discriminator tells real from generated almost perfectly (D(x) {real:.2f}, D(G(z)) {fake:.2f})"
                       + (": in the semi-supervised GAN it is meant to be a strong classifier, so this is expected."
                          if strong else ": the generator gets little signal. "
                          + _try(known, ("a smaller lr_d", "lr_d"), ("label_smoothing=0.9", "label_smoothing"),
                                 ("instance_noise=0.1", "instance_noise"))), expected=strong)
    return Finding("GAN balance", True, f"Neither player wins outright: D(x) {real:.2f}, D(G(z)) {fake:.2f}.")


def _critic_gap(gaps: list[float], known: set[str]) -> Finding | None:
    """Wasserstein: the critic's gap E D(x) − E D(G(z)) estimates W1 up to the critic's Lipschitz constant; it should
    not grow late in training. Mean of the second quarter of the epochs against the mean of the last quarter."""
    if len(gaps) < 8:
        return None  # too few epochs to tell a trend from the epoch-to-epoch noise
    quarter = len(gaps) // 4
    early, late = float(np.mean(gaps[quarter:2 * quarter])), float(np.mean(gaps[-quarter:]))
    if early > 0 and late > CRITIC_GROWTH * early:
        return Finding("GAN balance", False,
                       f"The critic's gap E D(x) − E D(G(z)) grew from {early:.3g} (second quarter of training, mean) to "
                       f"{late:.3g} (last quarter): the generator is falling behind. "
                       + _try(known, ("more generator steps (g_steps=2)", "g_steps"), ("a smaller lr_d", "lr_d")))
    return Finding("GAN balance", True, f"The critic's gap E D(x) − E D(G(z)) is {late:.3g} over the last quarter of "
                                        f"training ({early:.3g} over the second).")


#: The checks a family has of its own, by the topic its registry record names in ``checks``.
FAMILY_CHECKS = {"posterior collapse": _posterior, "GAN balance": _balance}


def _skips(history: list[dict]) -> Finding | None:
    counts = [r["skipped_batches"] for r in history if _number(r.get("skipped_batches")) is not None]
    if not counts:
        return None  # nonfinite="stop": a non-finite batch would have stopped the run
    skipped = int(sum(counts))
    if skipped == 0:
        return Finding("non-finite skips", True, "No batch was skipped for a non-finite loss or gradient.")
    return Finding("non-finite skips", False,
                   f"{skipped} batch{'es were' if skipped != 1 else ' was'} skipped for a non-finite loss or gradient "
                   f"(in {sum(c > 0 for c in counts)} of {len(counts)} epochs). Try a smaller lr or grad_clip=1.0.")


__all__ = ["FAMILY_CHECKS", "THRESHOLDS", "Finding", "health_checks"]
