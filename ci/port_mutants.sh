#!/usr/bin/env bash
# The numpy port as the proof of the fixture format (issue 9 item 5).
#
#   ci/port_mutants.sh [-v] [--allow-skip] [FIXTURE_DIR...]   (default: fixtures/*/)
#
# 1. examples/port_numpy.py recomputes every shipped fixture's whole step from
#    its manifest and input arrays alone and writes it as a fixture; `ocn
#    compare FIXTURE OUT` (the fixture is the reference side) must exit 0 for
#    every one:          port_numpy: N fixtures recomputed, all agree
#    A fixture the port skips as unsupported (its exit 3) is a failure: the
#    port covers every shipped fixture (SPEC §14 conv included).  Only
#    --allow-skip (for fixtures of your own, never in make test) lets it pass,
#    listing the skipped ones.
# 2. each planted port bug (`port_numpy.py --list-mutants`) must make `ocn
#    compare` exit 1 on at least one fixture:
#                        port mutant NAME: caught by N fixtures
#                        port mutants: C/M caught
# Exit 0 when the clean port agrees everywhere and every mutant is caught,
# 1 otherwise, 2 on a usage or environment error.  Builds nothing: needs
# $OCN (default build/ocn, `make all`) and $PYTHON with numpy.
# -v also lists, per mutant, the fixtures that catch it.
set -u
cd "$(dirname "$0")/.." || exit 2
self=$(pwd)/ci/port_mutants.sh
OCN=${OCN:-build/ocn}
PYTHON=${PYTHON:-/usr/bin/python3}
PORT=examples/port_numpy.py
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# --- internal: one mutant over the fixture list (run in parallel below) ----
if [ "${1:-}" = "--one" ]; then
    idx=$2 name=$3 work=$4 list=$5
    mapfile -t fx < "$list"
    out=$work/m$idx
    "$PYTHON" "$PORT" --mutant "$name" --out-root "$out" "${fx[@]}" > "$out.port.log" 2>&1
    caught=()
    for d in "${fx[@]}"; do
        n=$(basename "$d")
        if [ -d "$out/$n" ]; then
            # arrays byte-identical to the clean port's: compare would agree too
            if diff -rq -x manifest.json "$work/clean/$n" "$out/$n" > /dev/null 2>&1; then
                continue
            fi
            "$OCN" compare "$d" "$out/$n" > "$out.$n.log" 2>&1
            rc=$?
        else
            rc=2 # the port died on it: a crash is not a catch
        fi
        [ $rc -eq 1 ] && caught+=("$n")
    done
    { echo "${#caught[@]}"; printf '%s\n' "${caught[@]}"; } > "$work/res.$idx"
    rm -rf "$out"
    exit 0
fi

verbose=0 allow_skip=0
while [ $# -gt 0 ]; do
    case $1 in
        -v) verbose=1; shift ;;
        --allow-skip) allow_skip=1; shift ;;
        --) shift; break ;;
        -*) echo "port_mutants: unknown option $1 (usage: ci/port_mutants.sh [-v] [--allow-skip] [FIXTURE_DIR...])" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ -x "$OCN" ] || { echo "port_mutants: $OCN is not built (run make all)" >&2; exit 2; }
"$PYTHON" -c "import numpy" 2>/dev/null || { echo "port_mutants: $PYTHON has no numpy" >&2; exit 2; }
if [ $# -gt 0 ]; then
    fixtures=("$@")
else
    fixtures=()
    for m in fixtures/*/manifest.json; do fixtures+=("$(dirname "$m")"); done
fi
[ ${#fixtures[@]} -gt 0 ] || { echo "port_mutants: no fixtures" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/port_mutants.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# --- 1. the clean port agrees with every fixture ---------------------------
"$PYTHON" "$PORT" --out-root "$work/clean" "${fixtures[@]}" > "$work/clean.log" 2>&1
good=() skipped=() bad=0
for d in "${fixtures[@]}"; do
    d=${d%/}
    n=$(basename "$d")
    if [ ! -d "$work/clean/$n" ]; then
        if grep -qF "port_numpy: $d: skipped, unsupported" "$work/clean.log"; then
            skipped+=("$n")
            grep -F "port_numpy: $d: skipped" "$work/clean.log"
            [ $allow_skip -eq 1 ] && continue
            echo "port_numpy: $n: skipped by the port: a failure (every fixture must be covered; --allow-skip for fixtures of your own)"
            bad=$((bad + 1))
            continue
        fi
        echo "port_numpy: $n: the port wrote nothing"
        grep -F "$d" "$work/clean.log" | head -5
        bad=$((bad + 1))
        continue
    fi
    if "$OCN" compare "$d" "$work/clean/$n" > "$work/clean.$n.log" 2>&1; then
        good+=("$d")
    else
        echo "port_numpy: $n: ocn compare disagrees:"
        grep -E "FAILED|only in|ocn:" "$work/clean.$n.log" | grep -v -e "^(" -e "^legend" | head -20
        bad=$((bad + 1))
    fi
done
if [ $bad -gt 0 ]; then
    echo "port_numpy: $bad of ${#fixtures[@]} fixtures disagree or were skipped"
    exit 1
fi
note=""
[ ${#skipped[@]} -gt 0 ] && note=" (${#skipped[@]} skipped as unsupported: ${skipped[*]})"
echo "port_numpy: ${#good[@]} fixtures recomputed, all agree$note"

# --- 2. every planted port bug is caught by some fixture -------------------
printf '%s\n' "${good[@]}" > "$work/fixtures.list"
mapfile -t mutants < <("$PYTHON" "$PORT" --list-mutants | awk '{print $1}')
[ ${#mutants[@]} -gt 0 ] || { echo "port_mutants: no mutants listed" >&2; exit 2; }
# one job per mutant, $JOBS at a time (xargs appends IDX NAME as $3 $4)
for i in "${!mutants[@]}"; do printf '%s\0%s\0' "$i" "${mutants[$i]}"; done |
    xargs -0 -n 2 -P "$JOBS" sh -c 'exec bash "$0" --one "$3" "$4" "$1" "$2"' "$self" "$work" "$work/fixtures.list"
caught=0
for i in "${!mutants[@]}"; do
    r=$work/res.$i
    if [ ! -f "$r" ]; then
        echo "port mutant ${mutants[$i]}: NOT caught (the run did not finish)"
        continue
    fi
    n=$(head -1 "$r")
    if [ "$n" -gt 0 ]; then
        echo "port mutant ${mutants[$i]}: caught by $n fixtures"
        caught=$((caught + 1))
        [ $verbose -eq 1 ] && echo "    $(tail -n +2 "$r" | tr '\n' ' ')"
    else
        echo "port mutant ${mutants[$i]}: NOT caught"
    fi
done
echo "port mutants: $caught/${#mutants[@]} caught"
[ $caught -eq ${#mutants[@]} ]
