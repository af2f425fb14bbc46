"""Segmentation metrics: Variation of Information and adapted Rand error."""

from neuroadda.metrics.vi import (
    adapted_rand_error,
    contingency,
    evaluate_segmentation,
    variation_of_information,
)

__all__ = [
    "adapted_rand_error",
    "contingency",
    "evaluate_segmentation",
    "variation_of_information",
]
