#!/usr/bin/env bash
# valgrind memcheck of the CLI on shipped fixtures (FNE, GR, GT-P2 paths):
# zero errors, zero leaks, or a non-zero exit.  It checks a build without the
# CUDA backend (build-vg/): linking the CUDA libraries makes glibc's loader
# trip memcheck's strncmp false positives at start-up, before any of our code.
set -euo pipefail
make --no-print-directory -s BUILD=build-vg NVCC= build-vg/ocn
bin=build-vg/ocn
fixtures=("$@")
[ ${#fixtures[@]} -gt 0 ] || fixtures=(fixtures/resblock-relu-ce fixtures/coop-block-gr fixtures/resblock-gtp2)
for fx in "${fixtures[@]}"; do
  for cmd in theorems verify check; do
    valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=all --show-leak-kinds=all -q \
      "$bin" "$cmd" "$fx" > /dev/null
    echo "valgrind: ocn $cmd $fx: clean (0 errors, 0 leaks)"
  done
done
# the producers (8 §10 perturbation runs each), compare and detect
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg() { valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=all --show-leak-kinds=all -q "$@" > /dev/null; }
vg "$bin" gen games/coop-block-gr.json -o "$tmp/ref"
echo "valgrind: ocn gen games/coop-block-gr.json: clean (0 errors, 0 leaks)"
vg "$bin" gen games/coop-block-gr.json -o "$tmp/opt" --backend cpu
echo "valgrind: ocn gen --backend cpu games/coop-block-gr.json: clean (0 errors, 0 leaks)"
vg "$bin" compare "$tmp/ref" "$tmp/opt" --require gains --json "$tmp/r.json" --junit "$tmp/r.xml"
echo "valgrind: ocn compare --json --junit: clean (0 errors, 0 leaks)"
vg "$bin" detect fixtures/coop-block-gr fixtures/mlp-tanh-ce
echo "valgrind: ocn detect: clean (0 errors, 0 leaks)"
