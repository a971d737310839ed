#!/usr/bin/env bash
# wgml on a machine with a real GPU, beside PyTorch CUDA in the same run.
#
#   benches/gpu-check.sh pack [DATA_DIR] # here: build release binaries, pack them and the data in .gpu/
#   benches/gpu-check.sh run OUT         # there: GPU tests, `wgml bench`, epochs beside PyTorch
#
# The GPU machine needs PyTorch with CUDA as `python3`, a Vulkan driver and the Vulkan loader
# (../shared/gpu-check/README.md says how to bring the loader as .deb files in .gl/). Binaries built
# here run there unchanged; results land in OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

pack() {
    local data=${1:-/usr/share/datasets/fashion-mnist}
    cargo build --release
    local tests
    tests=$(cargo test --release --no-run 2>&1 |
        grep -o 'target/release/deps/\(kernels\|gradients\|golden\|linear_cross_entropy\|train\|conv\|pool\|small_head\)-[0-9a-f]*')
    rm -rf .gpu /tmp/wgml-gpu && mkdir -p .gpu /tmp/wgml-gpu
    strip -o /tmp/wgml-gpu/wgml target/release/wgml
    for t in $tests; do
        local name
        name=$(basename "$t")
        strip -o "/tmp/wgml-gpu/${name%-*}" "$t"
    done
    tar -czf .gpu/bin.tgz -C /tmp/wgml-gpu .
    cp -r "$data" .gpu/data
    du -sh .gpu
}

run() {
    local out=$1 bin=/tmp/wgml-gpu
    mkdir -p "$out" "$bin"
    tar -xzf .gpu/bin.tgz -C "$bin"
    # Test binaries read their fixtures from here rather than the tree they were built in.
    export WGML_FIXTURES=$PWD/tests/golden
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt" || true
    "$bin/wgml" devices | tee -a "$out/gpu.txt"
    for t in kernels gradients golden linear_cross_entropy train conv pool small_head; do
        if "$bin/$t" --test-threads=4 --nocapture >"$out/test-$t.log" 2>&1; then r=pass; else r=FAIL; fi
        echo "tests/$t.rs: $r ($(grep -o '[0-9]* passed; [0-9]* failed' "$out/test-$t.log" | tail -1))"
        grep -h '^trajectory:' "$out/test-$t.log" || true
    done
    # PyTorch's own spread on the golden trajectory (CPU, CUDA, float64), beside wgml's above;
    # then over 250 steps of the whole subset, where float32 trajectories part.
    (cd tests/golden && python3 spread.py cpu cuda float64 &&
        STEPS=250 SAMPLES=all python3 spread.py float64 cpu cuda) 2>&1 | tee "$out/spread.txt" || true
    "$bin/wgml" bench --json | tee "$out/bench.json"
    # The 64×64 tiled layout everywhere, as the baseline of the layout choice.
    "$bin/wgml" bench --layout tiled --samples 640 | tee "$out/bench-tiled.txt"
    PYTHONUNBUFFERED=1 python3 benches/peers.py .gpu/data --epochs 10 --wgml "$bin/wgml" --device cuda |
        tee "$out/peers.txt"
    # examples/mnist's CNN on the 60,000 samples beside PyTorch CUDA, and its kernels.
    "$bin/wgml" bench --model cnn --samples 60000 | tee "$out/bench-cnn.txt"
    PYTHONUNBUFFERED=1 python3 benches/cnn_peers.py .gpu/data --epochs 2 --rounds 3 --wgml "$bin/wgml" \
        --device cuda | tee "$out/cnn-peers.txt"
}

"$@"
