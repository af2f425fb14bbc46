#!/usr/bin/env bash
# One-shot GPU check of NeuroADDA (training at fp32 and bf16-mixed, whole vs block-wise prediction, a longer
# pretraining), for a machine that has torch + CUDA, pytorch-lightning, numpy, scipy, scikit-image, h5py, pyyaml,
# tqdm, matplotlib and cloudpickle but no internet: the rest comes from the wheels in .gpu_wheels/ (cp312).
#
#   bash bench/gpu_check.sh            everything goes to $OUT (default runs/gpu_check_out): gpu_check.log (all
#                                      output), gpu_check.json (every number), env.txt (nvidia-smi, pip list),
#                                      gala-train-gpu.pt + gala-train-gpu-metrics.csv (stage c's backbone and loss)
#
# Environment: GPU_CHECK_LIMIT (s, default 460: the whole script incl. installs aims to end by then),
# GPU_CHECK_QUICK=1 (CPU test: no venv, the project's .venv, 10 steps), GPU_CHECK_BASE_PY (python3),
# GPU_CHECK_WHEELS (.gpu_wheels), GPU_CHECK_VENV (/tmp/venv), GPU_CHECK_ARGS (extra bench/gpu_check.py arguments).
#
# Running it on the device machine (from a session that has one):
#   1. `bash bench/gpu_wheels.sh` first: .gpu_wheels/ is ignored by git (/.gpu_wheels/ in .git/info/exclude), so a
#      fresh checkout lacks it; the script downloads the 22 pinned wheels (~18 MiB) and checks their sha256.
#   2. The working tree that travels is limited to 64 MiB: move the bundled data folders other than
#      drosophila_medulla_fibsem_gala and drosophila_medulla_fibsem_neuroproof out of it for the call, e.g.
#        mkdir -p /tmp/dataparking && for d in datasets/data/*/; do case "$d" in
#          *fibsem_gala/|*fibsem_neuroproof/) ;; *) mv "$d" /tmp/dataparking/ ;; esac; done
#   3. run(command="bash bench/gpu_check.sh", carry=[".gpu_wheels"], timeout_s=540)
#   4. move them back right after (mv /tmp/dataparking/* datasets/data/) and check `git status` shows no deletions.
set -u -o pipefail
export PYTHONUNBUFFERED=1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$REPO/runs/gpu_check_out}"
mkdir -p "$OUT"
export GPU_CHECK_START="$(date +%s)"
export GPU_CHECK_LIMIT="${GPU_CHECK_LIMIT:-460}"
QUICK="${GPU_CHECK_QUICK:-0}"

elapsed() { echo "$(( $(date +%s) - GPU_CHECK_START ))"; }

setup() {  # sets PY (and PYTHONPATH where needed)
  local base="${GPU_CHECK_BASE_PY:-python3}" venv="${GPU_CHECK_VENV:-/tmp/venv}"
  local wheels="${GPU_CHECK_WHEELS:-$REPO/.gpu_wheels}"
  if [ "$QUICK" = 1 ] && [ -z "${GPU_CHECK_BASE_PY:-}" ]; then
    PY="${GPU_CHECK_PY:-$REPO/.venv/bin/python}"
    [ -x "$PY" ] || PY="$(command -v python3)"
    echo "quick: no venv, using $PY"
    return 0
  fi
  echo "base interpreter: $(command -v "$base") ($("$base" --version 2>&1))"
  echo "wheels: $(ls "$wheels"/*.whl 2>/dev/null | wc -l) in $wheels ($(du -sh "$wheels" 2>/dev/null | cut -f1))"
  rm -rf "$venv"
  PY=""
  if timeout 120 "$base" -m venv --system-site-packages "$venv" && "$venv/bin/python" -m pip --version; then
    PY="$venv/bin/python"
    # the base interpreter's own site-packages too: when python3 is itself a venv, --system-site-packages
    # would only show the packages of the interpreter under it (not its torch)
    local vsite
    vsite="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    "$base" -c 'import site; print("\n".join(site.getsitepackages()))' > "$vsite/_gpu_check_base_site.pth"
    echo "venv $venv; base site-packages added: $(tr '\n' ' ' < "$vsite/_gpu_check_base_site.pth")"
    if timeout 240 "$PY" -m pip install --no-index --no-deps --disable-pip-version-check "$wheels"/*.whl \
        > /tmp/gpu_check_pip.log 2>&1; then
      echo "wheels installed at $(elapsed) s"
    else
      echo "!! wheel install failed"
    fi
    grep -vE "^(Processing|Requirement already)" /tmp/gpu_check_pip.log | tail -30
    # neuroadda itself, editable and without dependencies: the image's torch stays the one used
    if timeout 120 "$PY" -m pip install --no-index --no-deps --no-build-isolation --disable-pip-version-check \
        -e "$REPO" > /tmp/gpu_check_pip_e.log 2>&1; then
      echo "neuroadda installed (editable) at $(elapsed) s"
    else
      tail -20 /tmp/gpu_check_pip_e.log
      echo "!! editable install failed: neuroadda from PYTHONPATH"
      export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    fi
  else
    echo "!! venv with pip not possible: pip install --target /tmp/gpu_check_site, PYTHONPATH"
    PY="$(command -v "$base")"
    rm -rf /tmp/gpu_check_site
    timeout 240 "$PY" -m pip install --no-index --no-deps --disable-pip-version-check --target /tmp/gpu_check_site \
      "$wheels"/*.whl > /tmp/gpu_check_pip.log 2>&1 || echo "!! wheel install failed"
    tail -20 /tmp/gpu_check_pip.log
    export PYTHONPATH="/tmp/gpu_check_site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # neuroadda by module path either way: python -m neuroadda.cli.main (what the console script calls)
  "$PY" -c 'import neuroadda, sys; print("neuroadda from", neuroadda.__file__)' \
    || { echo "!! neuroadda not importable: adding the repository to PYTHONPATH"; export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"; }
}

main() {
  cd "$REPO" || return 1
  echo "== gpu_check start $(date -u +%FT%TZ) on $(hostname), $(nproc) cores, limit ${GPU_CHECK_LIMIT} s, quick=$QUICK"
  {
    echo "== nvidia-smi"; timeout 20 nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    echo "== python3"; command -v python3; python3 --version 2>&1
    echo "== df -h /tmp ."; df -h /tmp . 2>&1
  } > "$OUT/env.txt" 2>&1
  head -20 "$OUT/env.txt"
  setup
  echo "== setup done at $(elapsed) s; PY=$PY PYTHONPATH=${PYTHONPATH:-}"
  {
    echo "== pip list ($PY)"; "$PY" -m pip list --disable-pip-version-check 2>&1
    echo "== pip check"; "$PY" -m pip check --disable-pip-version-check 2>&1
  } >> "$OUT/env.txt"
  grep -iE "^(torch|pytorch-lightning|lightning|torchmetrics|monai|pydantic|pydantic_core|zarr|numcodecs|daisy|funlib|waterz|ome-zarr|dask|numpy|scipy|scikit-image|h5py|neuroadda|typing_extensions|setuptools|cloudpickle) " \
    "$OUT/env.txt" || true
  # shellcheck disable=SC2086
  "$PY" "$REPO/bench/gpu_check.py" --out "$OUT" $([ "$QUICK" = 1 ] && echo --quick) ${GPU_CHECK_ARGS:-}
  local rc=$?
  echo "== gpu_check end $(date -u +%FT%TZ): rc $rc after $(elapsed) s"
  ls -la "$OUT"
  return $rc
}

main 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
