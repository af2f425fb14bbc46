"""Block-wise inference: affinities from a lazy EM volume into a zarr v3 array."""

from neuroadda.inference.blockwise import (
    PredictionInputError,
    finalize_zarr,
    open_prediction_zarr,
    predict_blockwise,
    tmp_path_for,
)

__all__ = ["PredictionInputError", "finalize_zarr", "open_prediction_zarr", "predict_blockwise", "tmp_path_for"]
