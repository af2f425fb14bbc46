#!/usr/bin/env bash
# Regenerate every table in bench/README.md in one go (run from the repository root; ~25 min on a 2-core CPU,
# ~8 GB peak RAM in the VI case; --quick skips the largest cases). Each script prints its table and writes JSON to bench/results/.
# Run on an otherwise idle machine: the scripts time things side by side, but other jobs still add noise.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
mkdir -p bench/results
for name in vi mmd predict loader; do  # extra arguments (e.g. --quick) go to these four
  echo "== bench/$name.py"
  python "bench/$name.py" --json "bench/results/$name.json" "$@"
done
echo "== bench/demo.py"
python bench/demo.py --json bench/results/demo.json
