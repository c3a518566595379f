#!/usr/bin/env bash
# Every GPU check in one call (run on the lent device machine, from the repository root, at most 8 minutes):
#   1. the scan kernels against the roofline (bench/bench_scan.py);
#   2. compiled mamba models executed on CUDA through the Triton scan, TF32 off, against the interpreter,
#      with compile time, parameters, channels and throughput against rnn (bench/bench_mamba.py);
#   3. the mamba tests (HF mixer parity, HF export) on this machine.
# Results land in $OUT (or bench/out) for docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
pip install -q torch==2.13.0 -e ".[test]" >"$OUT/pip.log" 2>&1 || pip install -q -e ".[test]" >>"$OUT/pip.log" 2>&1
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
timeout 240 python bench/bench_scan.py --out "$OUT/scan.md" >"$OUT/scan.log" 2>&1; echo "bench_scan rc=$?"
timeout 150 python -m bench.bench_mamba --device cuda --out "$OUT/mamba_cuda.md" >"$OUT/mamba.log" 2>&1
echo "bench_mamba rc=$?"
timeout 60 python -m pytest -q -p no:cacheprovider tests/test_mamba.py >"$OUT/test_mamba.log" 2>&1
echo "test_mamba rc=$?"
tail -n 40 "$OUT/mamba_cuda.md" "$OUT/scan.md" 2>/dev/null
