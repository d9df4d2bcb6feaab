#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.py needs on an offline GPU machine that has torch, transformers and
# lightning (the H200 image: Python 3.12, x86-64) but not unirank's other dependencies, nor TRL's row.
# faiss-cpu is left out (a device call carries 64 MiB): see benchmarks/gpu_check.py --mine-here.
# Run here, in the repository root; .whl/ is ignored by git (.git/info/exclude) and travels as carried.
#   bash benchmarks/gpu_wheels.sh            # then, on the GPU machine, first of all:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=()
for n in 2_28 2_27 2_24 2_17 2_5; do platforms+=(--platform "manylinux_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl \
  jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 \
  polars==1.33.1 ir-measures==0.4.3 pytrec-eval-terrier==0.5.11 \
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
du -sh .whl
