"""Evaluation: sample-quality and likelihood metrics for generative models (``evaluate``, ``metrics``),
the reference features they are computed in (``features``), and the recommenders' ranking metrics
(re-exported from :mod:`genlab.models.ranking`).

>>> from genlab.evaluate import evaluate, evaluate_run, frechet_distance, reference_features
>>> from genlab.evaluate import recall_at_k, ndcg_at_k, top_n
"""

from ..models.ranking import RANKING_LABELS, ndcg_at_k, recall_at_k, top_n
from .evaluate import DESCRIPTIONS, METRIC_GROUPS, METRIC_LABELS, detect_toy, evaluate, evaluate_run, reference_metrics, sample_metrics
from .features import FeatureExtractor, cache_dir, reference_features
from .metrics import (
    class_histogram,
    conditional_accuracy,
    density_coverage,
    frechet_distance,
    inception_score,
    kernel_distance,
    memorisation,
    mode_coverage,
    precision_recall,
)

__all__ = [
    "DESCRIPTIONS", "METRIC_GROUPS", "METRIC_LABELS", "RANKING_LABELS", "FeatureExtractor", "cache_dir",
    "class_histogram", "conditional_accuracy", "density_coverage", "detect_toy",
    "evaluate", "evaluate_run", "frechet_distance", "inception_score", "kernel_distance", "memorisation", "mode_coverage",
    "ndcg_at_k", "precision_recall", "recall_at_k", "reference_features", "reference_metrics", "sample_metrics", "top_n",
]
