"""A daisy worker started as a SLURM job: ``python -m neuroadda.workflows.daisy_worker PAYLOAD``.

PAYLOAD is the block function that :func:`neuroadda.workflows.scheduler.run_stage` pickled (cloudpickle) into
the run's work folder; ``DAISY_CONTEXT`` in the environment (set by the submitting worker slot) says where the
daisy server listens. The worker takes blocks until the server has none left.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import pickle

    import daisy

    (payload,) = argv if argv is not None else sys.argv[1:]
    with open(payload, "rb") as f:
        process = pickle.load(f)  # written by this run's own driver, in its own work folder
    client = daisy.Client()
    while True:
        with client.acquire_block() as block:
            if block is None:
                return 0
            process(block)


if __name__ == "__main__":
    sys.exit(main())
