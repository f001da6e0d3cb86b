#!/usr/bin/env bash
# valgrind memcheck of the CLI on one shipped fixture: zero errors, zero leaks.
set -euo pipefail
bin=${1:-build/ocn}
fx=${2:-fixtures/resblock-relu-ce}
for cmd in theorems verify; do
  valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=all --show-leak-kinds=all -q \
    "$bin" "$cmd" "$fx" > /dev/null
  echo "valgrind: ocn $cmd $fx: clean"
done
