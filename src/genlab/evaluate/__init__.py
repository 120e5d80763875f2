"""Evaluation: ranking metrics for recommenders (``ranking``).

>>> from genlab.evaluate import recall_at_k, ndcg_at_k, top_n
"""

from .ranking import ndcg_at_k, recall_at_k, top_n

__all__ = ["ndcg_at_k", "recall_at_k", "top_n"]
