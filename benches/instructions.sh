#!/usr/bin/env bash
# Instructions that lavapipe's worker threads execute for one epoch of `wgml train` on the bundled
# 8,000-sample subset (125 steps of batch 64, then the 2,000-sample evaluation), counted by
# valgrind's callgrind: the same count on every run of the same binary, however loaded the
# machine is, so two builds compare exactly where wall-clock times on a shared machine do not.
#
#     benches/instructions.sh [WGML_BINARY ...]      (default: target/release/wgml)
#
# Needs valgrind and a Vulkan lavapipe; takes about three minutes per binary. Lavapipe runs the
# kernels on one worker thread per core, so the count sums the threads that ran neither the
# program's main nor lavapipe's queue (callgrind's parts 01, 02) nor wgml's kernel compiles
# (`wgml::gpu::compile`), with wgml's spinners off (WGML_KEEP_AWAKE=0): they would add
# whatever they spun.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${WGML_DATA:-../shared/datasets/mnist-10k}
[ $# -gt 0 ] || set -- target/release/wgml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for bin in "$@"; do
  rm -rf "$work"/*
  WGML_BACKEND=vulkan WGML_KEEP_AWAKE=0 valgrind --tool=callgrind --separate-threads=yes --smc-check=all-non-file \
    --callgrind-out-file="$work/cg" "$bin" train --data "$data" --epochs 1 --json \
    --out "$work/run" >/dev/null 2>&1
  total=0
  for part in "$work"/cg-*; do
    case $part in *-01 | *-02) continue ;; esac
    grep -q 'wgml::gpu::compile::' "$part" && continue
    n=$(awk '/^summary:/ { print $2; exit }' "$part")
    total=$((total + ${n:-0}))
  done
  printf '%s\t%d instructions on the worker threads\n' "$bin" "$total"
done
