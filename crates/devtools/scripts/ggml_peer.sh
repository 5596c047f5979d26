#!/usr/bin/env bash
# ggml's CPU backend beside tokenloom's quantized decode logits (issue 30,
# docs/benchmarks/quantized.md "Quantized decode logits and ggml").
#
#   bash crates/devtools/scripts/ggml_peer.sh [rounds]
#
# 1. Builds ggml (the llama.cpp tree inside the llama-cpp-python 0.3.36 sdist from PyPI,
#    pinned by its sha256) and crates/devtools/ggml_peer/ggml_peer.c with cmake from PyPI,
#    native CPU flags, in target/ggml-peer/.
# 2. Lets ggml quantize one (32000, 2048) table per format and write its blocks, its own
#    decoding of 64 rows and its logits of 1 and 8 hidden states.
# 3. Runs tokenloom's `quant_decode` example on those files: bit-exact decoding against
#    ggml's, logits against ggml's and against the exact f64 logits, then its interleaved
#    timings; then, for `rounds` rounds (default 3), ggml's mul_mat and tokenloom's logits
#    one after the other on the same threads, and prints the table of both.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds="${1:-3}"
work="$PWD/target/ggml-peer"
mkdir -p "$work/data"
version=0.3.36
sdist="llama_cpp_python-$version.tar.gz"
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
url="https://pypi.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/$sdist"
formats="${GGML_PEER_FORMATS:-q8_0 q4_K q5_K q6_K iq4_xs mxfp4}"
rows=32000 cols=2048
threads="${GGML_PEER_THREADS:-$(nproc)}"

if [ ! -x "$work/venv/bin/cmake" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check cmake==4.4.5
fi
if [ ! -d "$work/llama_cpp_python-$version" ]; then
    [ -f "$work/$sdist" ] || curl -sSfL -o "$work/$sdist" "$url"
    echo "$sha256  $work/$sdist" | sha256sum -c -
    tar -xzf "$work/$sdist" -C "$work" "llama_cpp_python-$version/vendor/llama.cpp/ggml"
fi
"$work/venv/bin/cmake" -S crates/devtools/ggml_peer -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_SOURCE="$work/llama_cpp_python-$version/vendor/llama.cpp/ggml" -DGGML_NATIVE=ON >/dev/null
"$work/venv/bin/cmake" --build "$work/build" --target ggml_peer -j "$(nproc)" >/dev/null
peer="$work/build/ggml_peer"

for f in $formats; do
    [ -f "$work/data/$f.ggml8.f32" ] || "$peer" write "$f" $rows $cols "$work/data"
done
cargo build --release -q -p tokenloom-devtools --example quant_decode
tokenloom=target/release/examples/quant_decode
# Outputs first (and tokenloom's own interleaved table of read rates).
$tokenloom --ggml "$work/data" --rows $rows --cols $cols --formats "$formats"
# Then ggml and tokenloom, round after round, on the same threads; the median per round.
for r in $(seq "$rounds"); do
    for f in $formats; do
        for n in 1 8; do
            "$peer" time "$f" $rows $cols "$work/data" $n "$threads" 1
        done
    done
    $tokenloom --ggml "$work/data" --rows $rows --cols $cols --formats "$formats" --time-only
done | tee "$work/rounds.txt"
echo
echo "| format | tokens | ggml (median of $rounds rounds) | tokenloom | tokenloom ÷ ggml |"
echo "|---|---|---|---|---|"
python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    who, fmt, tokens, _threads, us = line.split()[:5]
    times.setdefault((fmt, tokens.split("=")[1]), {}).setdefault(who, []).append(float(us.split("=")[1]))
for (fmt, n), t in times.items():
    g, o = statistics.median(t["ggml"]), statistics.median(t["tokenloom"])
    print(f"| {fmt} | {n} | {g:.0f} µs | {o:.0f} µs | {o / g:.2f} |")
PY
