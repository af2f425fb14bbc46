"""Source-dataset selection: kernel two-sample statistics (MMD^2) between embedding distributions."""

from neuroadda.selection.mmd import MMDResult, median_bandwidth, mmd2, mmd_test, pooled_kernel

__all__ = ["MMDResult", "median_bandwidth", "mmd2", "mmd_test", "pooled_kernel"]
