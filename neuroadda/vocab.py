"""The words the schema and every stage share, each defined once (a Literal for pydantic, a tuple for argparse).

- labels kinds: ``3d_instance`` (one id per object in 3-D) or ``2d_instance_per_slice`` (ids per z slice:
  ssTEM sets; the z-affinity is masked in the loss and VI is scored slice by slice);
- tracking loggers: ``csv`` (Lightning CSV logs), ``wandb`` (offline without an API key), ``none``;
- fragment methods: ``ascent`` (default: block-wise runs reproduce it exactly) or ``watershed``.
"""

from __future__ import annotations

from typing import Literal, get_args

LabelsKind = Literal["3d_instance", "2d_instance_per_slice"]
LABELS_KINDS: tuple[str, ...] = get_args(LabelsKind)
THREE_D, TWO_D = LABELS_KINDS

LoggerName = Literal["csv", "wandb", "none"]
LOGGERS: tuple[str, ...] = get_args(LoggerName)

FragmentMethod = Literal["ascent", "watershed"]
FRAGMENTS: tuple[str, ...] = get_args(FragmentMethod)
DEFAULT_FRAGMENTS = "ascent"  # bench/fragments.py compares the two on real affinities
