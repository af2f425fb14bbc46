#!/usr/bin/env bash
# Re-downloads the wheels bench/gpu_check.sh installs on the device machine (which has no internet) into .gpu_wheels/
# (ignored by git: add `/.gpu_wheels/` to .git/info/exclude): the exact 22 files, cp312 / manylinux x86_64, pinned
# by version and checked by sha256. Only `pip download` (no install): the project's .venv is not touched; any
# python3 with pip will do, whatever its own version, because of --python-version/--platform.
#
#   bash bench/gpu_wheels.sh                  all 22 into .gpu_wheels/ (files already there are kept, then checked)
#   GPU_WHEELS_DIR=/tmp/w GPU_WHEELS_ONLY="locket toolz" bash bench/gpu_wheels.sh     a subset elsewhere (a dry check)
#
# Environment: GPU_WHEELS_DIR (.gpu_wheels), GPU_WHEELS_PY (python3: the pip that downloads), GPU_WHEELS_ONLY
# (space-separated distribution names, as in the list below). Exit status 1 when a file is missing or differs.
set -u -o pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${GPU_WHEELS_DIR:-$REPO/.gpu_wheels}"
PY="${GPU_WHEELS_PY:-python3}"

# name==version   sha256   file (as downloaded on 2026-12-04)
WHEELS="
annotated_types==0.8.0 f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0 annotated_types-0.8.0-py3-none-any.whl
daisy==2.0.0 061ce78ef036dbe03dc09b1a557d982a72db1beee7e1cfd69e21e18a128cac75 daisy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
dask==2026.8.0 ccc0c83a189b0398602435189771d28dad7b5773b6089bb8dce14ae732dd782c dask-2026.8.0-py3-none-any.whl
deprecated==1.3.1 597bfef186b6f60181535a29fbe44865ce137a5079f295b479886c82729d5f3f deprecated-1.3.1-py2.py3-none-any.whl
donfig==0.8.1.post1 2a3175ce74a06109ff9307d90a230f81215cbac9a751f4d1c6194644b8204f9d donfig-0.8.1.post1-py3-none-any.whl
funlib.geometry==0.3.0 f03ef8438674205b0faef1a780b2a346daa115ac2b83962f71a63288c269b6d0 funlib.geometry-0.3.0-py3-none-any.whl
google_crc32c==1.9.0 3abb18297d9ef0ab120531838be0e6d68c9fa876570e11c229c48f2edac23ce7 google_crc32c-1.9.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
locket==1.0.0 b6c819a722f7b6bd955b80781788e4a66a55628b858d347536b7e81325a3a5e3 locket-1.0.0-py2.py3-none-any.whl
monai==1.6.1 dbd3b1dd309e752e0477ed73fde03b92f80ac74bfb8a8c4260f018b5d6ab2b0b monai-1.6.1-py3-none-any.whl
numcodecs==0.16.6 609fd6f5ab1dd27fcde21d3e2bbf7e05846d5d5fdd23cf34e02375278a44252f numcodecs-0.16.6-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl
ome_zarr==0.17.0 9e9d32e943ac352311722d2b3f72ed4708bc328f7590a3d035a98c99d9ed300f ome_zarr-0.17.0-py3-none-any.whl
packaging==26.4 81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2 packaging-26.4-py3-none-any.whl
partd==1.4.2 978e4ac767ec4ba5b86c6eaa52e5a2a3bc748a2ca839e8cc798f1cc6ce6efb0f partd-1.4.2-py3-none-any.whl
pydantic==2.14.4 653a2ad9f6d8858529c77c72717d0ea991d6c6837fe683246b2f4b2bbfc3fadc pydantic-2.14.4-py3-none-any.whl
pydantic_core==2.50.5 470bbc2495367f60d3ca849a8039e4c164701d10637e7743f4427d92651bdb6d pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
setuptools==84.2.1 ca140b45d5325a9478f880e351484f62fef15f336462e449ca0c03c873d589c2 setuptools-84.2.1-py3-none-any.whl
toolz==1.2.0 890f820b1cb8152785aaf9386d8707770110809035800985ca65cb24ce1120ef toolz-1.2.0-py3-none-any.whl
typing_extensions==4.16.0 481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8 typing_extensions-4.16.0-py3-none-any.whl
typing_inspection==0.4.5 bc210535442b39e1bf2805e0c7a17dfd6a4ace760c84c7f7d16245d23a6b1c39 typing_inspection-0.4.5-py3-none-any.whl
waterz==0.10.1 5f696befbc48730f2a3b3052cccf32359eb519d468e6a8db336b12e07c3b63cf waterz-0.10.1-cp311-abi3-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
wrapt==2.5.2 092472b7b1494deef40dac5e9f6295013a9d51b112b5fbc4350f64dc2574e46a wrapt-2.5.2-cp312-cp312-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl
zarr==3.1.6 b5a82c5079d1c3d4ee8f06746fa3b9a98a7d804300fa3f4be154362a33e1207e zarr-3.1.6-py3-none-any.whl
"

mkdir -p "$DIR"
reqs=()
while read -r req _ _; do
  [ -n "$req" ] || continue
  if [ -n "${GPU_WHEELS_ONLY:-}" ] && ! [[ " $GPU_WHEELS_ONLY " == *" ${req%%==*} "* ]]; then continue; fi
  reqs+=("$req")
done <<< "$WHEELS"
[ "${#reqs[@]}" -gt 0 ] || { echo "nothing selected (GPU_WHEELS_ONLY=${GPU_WHEELS_ONLY:-})"; exit 1; }
echo "pip download of ${#reqs[@]} wheels into $DIR with $("$PY" -m pip --version)"
"$PY" -m pip download --disable-pip-version-check --only-binary=:all: --no-deps --dest "$DIR" \
  --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_28_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 \
  "${reqs[@]}" || echo "!! pip download failed (status $?)"

bad=0
while read -r req sha file; do
  [ -n "$req" ] || continue
  if [ -n "${GPU_WHEELS_ONLY:-}" ] && ! [[ " $GPU_WHEELS_ONLY " == *" ${req%%==*} "* ]]; then continue; fi
  if [ ! -f "$DIR/$file" ]; then
    echo "!! missing: $file"; bad=1
  elif [ "$(sha256sum "$DIR/$file" | cut -d' ' -f1)" != "$sha" ]; then
    echo "!! sha256 differs: $file"; bad=1
  fi
done <<< "$WHEELS"
echo "$DIR: $(ls "$DIR"/*.whl 2>/dev/null | wc -l) wheels, $(du -sh "$DIR" | cut -f1)"
[ "$bad" = 0 ] && echo "all ${#reqs[@]} selected wheels present with the pinned sha256"
exit "$bad"
