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
    # xz halves gzip's size, which keeps binaries and Fashion-MNIST within the 64 MiB a copy may take.
    tar -cJf .gpu/bin.txz -C /tmp/wgml-gpu .
    cp -r "$data" .gpu/data
    du -sh .gpu
}

run() {
    local out=$1 bin=/tmp/wgml-gpu
    mkdir -p "$out" "$bin"
    python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu/bin.txz "$bin"
    # Test binaries read their fixtures from here rather than the tree they were built in.
    export WGML_FIXTURES=$PWD/tests/golden PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt" || true
    "$bin/wgml" devices | tee -a "$out/gpu.txt"
    # The figures first, each under a time limit, so that a slow step cannot take the others' time.
    # The tutorial MLP, 10 epochs of 60,000 samples, beside PyTorch CUDA; matmuls up to 4096³.
    timeout 200 python3 benches/peers.py .gpu/data --epochs 10 --rounds 3 --wgml "$bin/wgml" --device cuda |
        tee "$out/peers.txt" || true
    # examples/mnist's CNN on the 60,000 samples beside PyTorch CUDA, and its kernels.
    timeout 150 python3 benches/cnn_peers.py .gpu/data --epochs 2 --rounds 3 --wgml "$bin/wgml" \
        --device cuda | tee "$out/cnn-peers.txt" || true
    timeout 60 "$bin/wgml" bench --json | tee "$out/bench.json" || true
    timeout 60 "$bin/wgml" bench --model cnn --samples 60000 | tee "$out/bench-cnn.txt" || true
    # Every test binary's log in one file: what comes back from a GPU machine is a few files.
    for t in kernels gradients golden linear_cross_entropy train conv pool small_head; do
        echo "=== tests/$t.rs" >>"$out/tests.log"
        if timeout 40 "$bin/$t" --test-threads=8 >>"$out/tests.log" 2>&1; then r=pass; else r=FAIL; fi
        echo "tests/$t.rs: $r ($(grep -o '[0-9]* passed; [0-9]* failed' "$out/tests.log" | tail -1))"
    done
    # The slow cases CPU adapters leave out: 2 GiB of logits, and memory over 50 epochs.
    echo "=== ignored: tests/linear_cross_entropy.rs, tests/train.rs soak" >>"$out/tests.log"
    timeout 60 "$bin/linear_cross_entropy" --ignored >>"$out/tests.log" 2>&1 || echo "2 GiB case: FAIL"
    timeout 60 "$bin/train" soak --ignored >>"$out/tests.log" 2>&1 || echo "soak: FAIL"
    grep -A12 'panicked' "$out/tests.log" | head -80 || true
}

"$@"
