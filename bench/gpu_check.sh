#!/usr/bin/env bash
# Every GPU check in one call (run on the lent device machine, from the repository root, at most 8 minutes):
#   1. the scan kernels against the roofline (bench/bench_scan.py);
#   2. compiled mamba and hawk models executed on CUDA through the Triton scans, TF32 off, against the
#      interpreter, with compile time, parameters, channels and throughput against rnn (bench/bench_ssm.py);
#      a hawk model checks its integrators' exp rounding on the device before running (it raises if CUDA's
#      exp rounds otherwise: the log says so);
#   3. the SSM tests (HF block parity, HF export, Triton) on this machine.
# Results land in $OUT (or bench/out) for docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
pip install -q torch==2.13.0 -e ".[test]" >"$OUT/pip.log" 2>&1 || pip install -q -e ".[test]" >>"$OUT/pip.log" 2>&1
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
timeout 200 python bench/bench_scan.py --out "$OUT/scan.md" >"$OUT/scan.log" 2>&1; echo "bench_scan rc=$?"
timeout 180 python -m bench.bench_ssm --device cuda --out "$OUT/ssm_cuda.md" >"$OUT/ssm.log" 2>&1
echo "bench_ssm rc=$?"
timeout 60 python -m pytest -q -p no:cacheprovider tests/test_ssm.py >"$OUT/test_ssm.log" 2>&1
echo "test_ssm rc=$?"
tail -n 40 "$OUT/ssm_cuda.md" "$OUT/scan.md" 2>/dev/null
