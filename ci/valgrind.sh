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
