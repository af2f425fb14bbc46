"""NeuroADDA: active discriminative domain adaptation for connectomics.

Public API: :func:`variation_of_information` (VI in bits, split = H(seg|gt), merge = H(gt|seg)) and
:func:`mmd2` (squared Maximum Mean Discrepancy, unbiased U-statistic, Gaussian kernel).
"""

from neuroadda._version import __version__

__all__ = ["__version__", "mmd2", "variation_of_information"]


def __getattr__(name):  # lazy, so `import neuroadda` stays cheap
    if name == "variation_of_information":
        from neuroadda.metrics.vi import variation_of_information

        return variation_of_information
    if name == "mmd2":
        from neuroadda.selection.mmd import mmd2

        return mmd2
    raise AttributeError(f"module 'neuroadda' has no attribute {name!r}")
