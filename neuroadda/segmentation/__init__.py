"""Affinities -> neuron segmentation (waterz agglomeration)."""

from neuroadda.segmentation.agglomerate import AffinityInputError, agglomerate, segment, silence_c_stdout

__all__ = ["AffinityInputError", "agglomerate", "segment", "silence_c_stdout"]
