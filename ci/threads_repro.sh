#!/usr/bin/env bash
# Reproducible bytes (issue 9 item 6): on one machine the reference's fixture
# arrays must not depend on the BLAS thread count or the core affinity.
# Generates every games/*.json with OPENBLAS_NUM_THREADS=1, with =2, and (when
# taskset works here) with =2 pinned to core 0, then compares every .npy byte
# for byte with the 1-thread run; exit 1 naming each file that differs or is
# missing on one side.
# OCN=path/to/ocn uses that binary; otherwise build/ocn is brought up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OCN:-}" ]; then
  make --no-print-directory -s build/ocn
  OCN=build/ocn
fi
games=(games/*.json)
[ -e "${games[0]}" ] || { echo "threads: no games/*.json" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ocn-threads.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset GOTO_NUM_THREADS OMP_NUM_THREADS # OPENBLAS_NUM_THREADS alone decides

# gen_all NAME THREADS [PREFIX...]: every game into $tmp/NAME/<game>, in parallel
gen_all() {
  local name=$1 threads=$2
  shift 2
  mkdir -p "$tmp/$name"
  printf '%s\n' "${games[@]}" |
    OPENBLAS_NUM_THREADS=$threads xargs -P "$(nproc)" -I{} sh -c \
      'g=$1; shift; out=$1; shift; "$@" gen "$g" -o "$out/$(basename "$g" .json)" --force >/dev/null ||
         { echo "threads: ocn gen $g failed ($out)" >&2; exit 255; }' \
      sh {} "$tmp/$name" "$@" "$OCN"
}

runs=(t2)
gen_all t1 1
gen_all t2 2
if command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null; then
  gen_all pin0 2 taskset -c 0
  runs+=(pin0)
  echo "threads: also compared OPENBLAS_NUM_THREADS=2 under taskset -c 0"
else
  echo "threads: taskset -c 0 not available here, affinity run skipped"
fi

# byte comparison of every array (diff -q compares bytes, as cmp does, in one
# process); anything diff reports -- differing or one-sided -- is a failure
n=$(cd "$tmp/t1" && find . -name '*.npy' | wc -l)
bad=0
for r in "${runs[@]}"; do
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    if [[ $line =~ ^Files\ $tmp/t1/(.*)\ and\ .*\ differ$ ]]; then line=${BASH_REMATCH[1]}; fi
    echo "threads: DIFFERS (1 thread vs $r): ${line//$tmp\//}"
    bad=$((bad + 1))
  done < <(diff -rq -x '*.json' "$tmp/t1" "$tmp/$r" || true)
done
[ "$n" -gt 0 ] || { echo "threads: no .npy files were written" >&2; exit 1; }
if [ "$bad" -gt 0 ]; then
  echo "threads: $bad of $n files differ across 1/2 threads"
  exit 1
fi
echo "threads: $n files byte-identical across 1/2 threads"
