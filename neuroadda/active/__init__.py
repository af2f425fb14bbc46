"""Source-free active learning: a candidate pool, per-candidate uncertainty / embeddings, selection strategies."""

from neuroadda.active.pool import candidate_pool
from neuroadda.active.strategies import STRATEGIES, select
from neuroadda.active.uncertainty import binary_entropy, embed_candidates, score_candidates

__all__ = ["candidate_pool", "binary_entropy", "score_candidates", "embed_candidates", "select", "STRATEGIES"]
