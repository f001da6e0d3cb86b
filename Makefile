# ocnopt — see README.md.  Two commands a newcomer needs: `make run`, `make test`.
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += $(EXTRA_CFLAGS) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Iinclude -MMD -MP -fPIC
LDLIBS  = -ljansson -lgsl -llapacke -lopenblas -lm
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

ifeq ($(SANITIZE),1)
BUILD   ?= build-san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

# Debian packages the build, tests and tools need (`make deps` installs the missing ones).
DEB_PKGS = gcc make pkg-config libgsl-dev liblapack-dev liblapacke-dev libopenblas-dev \
           libcriterion-dev libjansson-dev python3-numpy valgrind \
           python3-pytest python3-venv python3-setuptools python3-wheel

# CUDA backend: a separately loaded module, $(BUILD)/libocn-cuda.so (issue 11,
# issue 15): `ocn` links no CUDA library and dlopens the module only when the
# cuda backend is asked for.  Built when nvcc (at /usr/local/cuda/bin on these
# machines, off PATH) and a host C++ compiler exist; skipped with the reason
# otherwise.  The sanitizer build leaves it out (ASan and the CUDA runtime do
# not mix).
NVCC ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
HOSTCXX := $(firstword $(shell command -v g++ c++ 2>/dev/null))
ifeq ($(SANITIZE),1)
NVCC :=
endif
ifeq ($(HOSTCXX),)
CUDA_WHY = no host C++ compiler (g++) for nvcc
endif
ifeq ($(NVCC),)
CUDA_WHY = nvcc not found$(if $(filter 1,$(SANITIZE)), or sanitizer build,)
endif
ifeq ($(CUDA_WHY),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_MOD   = $(BUILD)/libocn-cuda.so
CUDA_NOTE  = CUDA backend: module $(CUDA_MOD) built with $(NVCC) (sm_90 + PTX)
else
CUDA_MOD   =
CUDA_NOTE  = CUDA backend: skipped ($(CUDA_WHY))
endif
LDLIBS += -ldl

LIB_SRC  = $(wildcard src/*.c) $(wildcard reference/*.c) $(wildcard harness/*.c) $(wildcard optimized/*.c) $(wildcard optimized/cpu/*.c)
LIB_SRC := $(filter-out src/main.c,$(LIB_SRC))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/*.c)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)
GAMES    = $(wildcard games/*.json)
FIXTURES = $(patsubst %/manifest.json,%,$(wildcard fixtures/*/manifest.json))

.PHONY: all deps run test check-test port-test fixtures fuzz mutants bench clean detect catalogue \
        python-test install link-test
all: $(BUILD)/ocn $(BUILD)/libocn.a $(BUILD)/libocn.so

# nvcc needs a host C++ compiler (a CUDA toolkit without g++ fails with "nvcc
# fatal: Failed to preprocess host compiler properties"), so g++ is a dependency
# wherever nvcc is found.  `make deps` escalates privileges only when asked:
# as root it runs apt-get; otherwise it prints the line to run and stops,
# unless SUDO=sudo (or another command) is given.
DEB_PKGS += $(if $(NVCC),g++,)
SUDO ?=
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ] && [ -z "$(SUDO)" ]; then \
	    echo "make deps: missing Debian packages:$$missing" >&2; \
	    echo "  run as root:  apt-get update && apt-get install -y$$missing" >&2; \
	    echo "  or let make use sudo:  make $(or $(MAKECMDGOALS),deps) SUDO=sudo" >&2; \
	    exit 1; \
	  fi; \
	  echo "make deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then S=; else S="$(SUDO)"; fi; \
	  $$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq $$missing; \
	fi

# Objects are rebuilt when the compiler or the global flags change (e.g. a
# build/ from before -fPIC, which libocn.so needs).
FLAGS_SIG := $(CC) $(CFLAGS)
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD); echo '$(FLAGS_SIG)' | cmp -s - $@ || echo '$(FLAGS_SIG)' > $@
FORCE:

$(BUILD)/%.o: %.c $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/src/main.o: CFLAGS += -DOCN_COMMIT='"$(COMMIT)"'
# optimized/vmath.c passes 32-byte vectors between its static inline kernels: GCC notes an ABI
# change of GCC 4.6 for such parameters (never crossing a library boundary here)
$(BUILD)/optimized/vmath.o: CFLAGS += -Wno-psabi

# The module: the CUDA backend plus the two small library files it needs
# (ocn_fail, the registry's contract record), linked against cuBLAS/cuSOLVER.
$(BUILD)/libocn-cuda.so: optimized/cuda/backend_cuda.cu optimized/backend.h
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -O2 -Iinclude -ccbin $(HOSTCXX) -Xcompiler -fPIC -shared \
	  -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
	  -o $@ optimized/cuda/backend_cuda.cu \
	  -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcusolver -lcublas -lcudart

$(BUILD)/libocn.a: $(LIB_OBJ) $(CUDA_MOD)
	@echo "$(CUDA_NOTE)"
	@rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(BUILD)/ocn: $(BUILD)/src/main.o $(BUILD)/libocn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/ocn_tests: $(TEST_OBJ) $(BUILD)/libocn.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcriterion $(LDLIBS)

$(TEST_OBJ): CFLAGS += -DOCN_BIN='"$(BUILD)/ocn"' -DOCN_PYTHON='"$(PYTHON)"'

# The main job: the harness over the shipped fixtures.
run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/ocn theorems $(FIXTURES)
	$(BUILD)/ocn verify $(FIXTURES)
	$(BUILD)/ocn check --backend cpu --precision both $(FIXTURES)

test: deps
	@$(MAKE) --no-print-directory check-test

check-test: $(BUILD)/ocn $(BUILD)/tests/ocn_tests
	$(BUILD)/tests/ocn_tests $(if $(SANITIZE),--jobs 1,)
	@out=$$($(BUILD)/ocn check --backend checking --precision both $(FIXTURES) 2>&1); st=$$?; \
	if [ $$st -eq 0 ]; then echo "checking backend (issue 11): $$(echo "$$out" | tail -1)"; else echo "$$out"; fi; exit $$st
	@$(MAKE) --no-print-directory detect
	@$(MAKE) --no-print-directory games-fuzz-test
ifneq ($(SANITIZE),1)
	@$(PYTHON) ci/fixture_catalogue.py --check
	@$(MAKE) --no-print-directory port-test
	@$(MAKE) --no-print-directory python-test
	@$(MAKE) --no-print-directory link-test
endif

# A numpy-only port (examples/port_numpy.py) recomputes every shipped fixture's
# whole step from its manifest and input arrays alone and writes it as a fixture
# that `ocn compare` must accept (the format is self-describing); each bug planted
# in the port (--mutant) must be caught by some fixture (ci/port_mutants.sh).
PYTHON ?= /usr/bin/python3
port-test: $(BUILD)/ocn
	@OCN=$(BUILD)/ocn PYTHON=$(PYTHON) bash ci/port_mutants.sh

# ---- For users (issue 15): the Python package, an installable library -------
# python/ocnopt installed into a fresh venv (system site packages: Debian's
# numpy, setuptools, pytest; no network) from a copy of python/, then its tests
# run against the installed package and this build's ocn.
python-test: $(BUILD)/ocn
	@rm -rf $(BUILD)/venv $(BUILD)/pysrc && mkdir -p $(BUILD) && cp -r python $(BUILD)/pysrc && \
	  rm -rf $(BUILD)/pysrc/build $(BUILD)/pysrc/*.egg-info $(BUILD)/pysrc/tests
	@$(PYTHON) -m venv --system-site-packages $(BUILD)/venv
	@$(BUILD)/venv/bin/pip install -q --no-index --no-build-isolation $(BUILD)/pysrc > $(BUILD)/venv/install.log 2>&1 \
	  || { cat $(BUILD)/venv/install.log; exit 1; }
	@cd python/tests && OCN=$(CURDIR)/$(BUILD)/ocn OCNOPT_INSTALLED=$(CURDIR)/$(BUILD)/venv \
	  $(CURDIR)/$(BUILD)/venv/bin/python -m pytest -q -p no:cacheprovider .

# `make install PREFIX=DIR [DESTDIR=…]`: ocn, its man page, the headers, libocn.a
# and libocn.so (every object built with -fPIC), ocnopt.pc for pkg-config, and
# the CUDA module lib/libocn-cuda.so where it was built (OCN_CUDA_MODULE names it).
PREFIX  ?= /usr/local
DESTDIR ?=
OCN_VERSION := $(shell sed -n 's/^\#define OCN_VERSION "\(.*\)"/\1/p' include/ocn/version.h)
OCN_SOMAJOR := $(shell sed -n 's/^\#define OCN_VERSION_MAJOR \([0-9]*\)/\1/p' include/ocn/version.h)
INST = $(DESTDIR)$(PREFIX)

$(BUILD)/libocn.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libocn.so.$(OCN_SOMAJOR) -o $@ $^ $(LDLIBS)

$(BUILD)/ocn.1: $(BUILD)/ocn
	@{ echo '.TH OCN 1 "" "ocnopt $(OCN_VERSION)" "ocnopt"'; echo '.SH NAME'; \
	   echo 'ocn \- the ocnopt command-line tool: fixtures, verification, comparison'; \
	   echo '.SH SYNOPSIS'; echo '.nf'; $(BUILD)/ocn --help | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./'; echo '.fi'; \
	   echo '.SH SEE ALSO'; echo 'README.md, docs/fixtures.md and docs/port-guide.md in the ocnopt sources'; } > $@

install: $(BUILD)/ocn $(BUILD)/libocn.a $(BUILD)/libocn.so $(BUILD)/ocn.1 $(CUDA_MOD)
	install -d $(INST)/bin $(INST)/include/ocn $(INST)/lib/pkgconfig $(INST)/share/man/man1
	install -m 755 $(BUILD)/ocn $(INST)/bin/ocn
	install -m 644 include/ocn/*.h $(INST)/include/ocn/
	install -m 644 $(BUILD)/libocn.a $(INST)/lib/libocn.a
	install -m 755 $(BUILD)/libocn.so $(INST)/lib/libocn.so.$(OCN_VERSION)
	ln -sfn libocn.so.$(OCN_VERSION) $(INST)/lib/libocn.so.$(OCN_SOMAJOR)
	ln -sfn libocn.so.$(OCN_SOMAJOR) $(INST)/lib/libocn.so
	install -m 644 $(BUILD)/ocn.1 $(INST)/share/man/man1/ocn.1
	$(if $(CUDA_MOD),install -m 755 $(CUDA_MOD) $(INST)/lib/libocn-cuda.so,@echo "install: $(CUDA_NOTE)")
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(OCN_VERSION)|' -e 's|@LIBS_PRIVATE@|$(LDLIBS)|' \
	  ocnopt.pc.in > $(INST)/lib/pkgconfig/ocnopt.pc

# examples/link/ built against an installed temporary prefix through
# `pkg-config --cflags --libs ocnopt` (shared) and `--static` (libocn.a), then run.
link-test: $(BUILD)/ocn
	@rm -rf $(BUILD)/prefix $(BUILD)/link
	@$(MAKE) --no-print-directory -s install PREFIX=$(CURDIR)/$(BUILD)/prefix > /dev/null
	@PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/prefix/lib/pkgconfig $(MAKE) --no-print-directory -s -C examples/link \
	  OUT=$(CURDIR)/$(BUILD)/link
	@LD_LIBRARY_PATH=$(CURDIR)/$(BUILD)/prefix/lib $(BUILD)/link/link_shared fixtures/mlp-tanh-ce
	@$(BUILD)/link/link_static fixtures/mlp-tanh-ce
	@LD_LIBRARY_PATH=$(CURDIR)/$(BUILD)/prefix/lib ldd $(BUILD)/link/link_shared | grep -q "$(CURDIR)/$(BUILD)/prefix/lib/libocn.so" || \
	  { echo "link-test: link_shared does not load the installed libocn.so"; exit 1; }

# Regenerate the shipped fixtures from games/*.json (committed), then the catalogue.
fixtures: $(BUILD)/ocn
	@for g in $(GAMES); do n=$$(basename $$g .json); $(BUILD)/ocn gen $$g -o fixtures/$$n --force || exit 1; done
	@$(MAKE) --no-print-directory catalogue

# SPEC §10 rev. 2 detection power of the shipped set: the issue's bar is a
# worst fixture at 1e-8 (float64) with at most 5% weak gain/value arrays.
detect: $(BUILD)/ocn
	@out=$$($(BUILD)/ocn detect --max-power 1e-8 --max-weak 0.05 $(FIXTURES)); st=$$?; \
	if [ $$st -eq 0 ]; then echo "$$out" | tail -1; else echo "$$out"; fi; exit $$st

catalogue:
	@$(PYTHON) ci/fixture_catalogue.py

# The benchmark program (ratios measured in one run; see docs/performance.md).
$(BUILD)/ocn-bench: $(BUILD)/bench/bench.o $(BUILD)/bench/cnn.o $(BUILD)/libocn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Issue 13: DDPNOpt's Table 3 DIGITS row with `ocn train` (ci/digits.py): learning-rate
# search on a validation part of the training split, 10 seeds per optimizer, the table,
# docs/digits.svg and docs/results.md.  Not part of `make test` (about 10 minutes on 2 cores;
# EXTRA=1 adds the ablation with the exact ce terminal Hessian, a few minutes more).
.PHONY: digits
digits: deps
	@$(MAKE) --no-print-directory $(BUILD)/ocn
	OCN=$(BUILD)/ocn OUT=$(BUILD)/digits EXTRA=$(EXTRA) $(PYTHON) ci/digits.py

# Issue 14: a small CNN on the 8x8 DIGITS images (ci/digits_cnn.py, the protocol of `make
# digits`): SGD-m, Adam, KFAC and DDPNOpt (KFC curvature), 10 seeds; docs/digits-cnn.svg and
# the CNN section of docs/results.md.  Not part of `make test`; its own budget is 15 minutes
# on 2 cores (the script says when it ran over).
.PHONY: digits-cnn
digits-cnn: deps
	@$(MAKE) --no-print-directory $(BUILD)/ocn
	OCN=$(BUILD)/ocn OUT=$(BUILD)/digits-cnn $(PYTHON) ci/digits_cnn.py

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/ocn-bench
	$(BUILD)/ocn-bench

# Differential fuzzing of games (issue 10, tests/fuzz/fuzz_games.c): random
# valid games, reference (measured c, R = 2) vs the optimized path at f64 and
# f32, plus invalid mutants the loader must refuse.  `make test` replays the
# kept failures (tests/fuzz/regress-games/) and runs a fixed-seed bounded set;
# `make fuzz-games SECONDS=N` runs for N seconds with a time-based seed.
.PHONY: fuzz-games games-fuzz-test
FUZZ_GAMES_SEED ?= 1
ifeq ($(SANITIZE),1)
FUZZ_GAMES_N    ?= 500
else
FUZZ_GAMES_N    ?= 8000
endif
SECONDS         ?= 300
$(BUILD)/fuzz-games: $(BUILD)/tests/fuzz/fuzz_games.o $(BUILD)/libocn.a
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LDLIBS) -ldl

fuzz-games: deps
	@$(MAKE) --no-print-directory $(BUILD)/fuzz-games
	$(BUILD)/fuzz-games --seed time --seconds $(SECONDS) --reasons

games-fuzz-test: $(BUILD)/fuzz-games
	@$(BUILD)/fuzz-games --replay tests/fuzz/regress-games
	@$(BUILD)/fuzz-games --seed $(FUZZ_GAMES_SEED) --games $(FUZZ_GAMES_N) --timeout 20

-include $(BUILD)/tests/fuzz/fuzz_games.d

# Mutation testing of the optimized path: each compile-time fault
# (optimized/opt.h, OCN_MUTANT=1..7, 10) must make `ocn check` fail, at float64
# and (all but 6, a float64-only fault) at float32 too, where the fixtures'
# cond_f32 is the c (docs/decisions.md, "§10 amendments from the game fuzzer").
MUTANTS = 1 2 3 4 5 6 7 10
# §13 state mutants (optimized/opt.h 8, 9): caught by tests/test_opt_state.c until
# trajectory fixtures ship for `ocn check` to catch them too.
STATE_MUTANTS = 8 9
mutants: deps
	@caught=0; total=0; \
	for m in $(MUTANTS); do \
	  total=$$((total+1)); \
	  $(MAKE) --no-print-directory -s BUILD=build-mut/$$m EXTRA_CFLAGS=-DOCN_MUTANT=$$m build-mut/$$m/ocn > /dev/null || exit 1; \
	  if build-mut/$$m/ocn check --precision f64 $(FIXTURES) > build-mut/$$m/check.log 2>&1; then \
	    echo "mutant $$m: NOT caught"; \
	  else \
	    st=$$?; [ $$st -eq 1 ] || { echo "mutant $$m: ocn check exited $$st"; tail -3 build-mut/$$m/check.log; exit 1; }; \
	    echo "mutant $$m: caught ($$(grep -c FAILED build-mut/$$m/check.log) rows FAILED)"; caught=$$((caught+1)); \
	  fi; \
	  if [ $$m -ne 6 ]; then \
	    total=$$((total+1)); \
	    if build-mut/$$m/ocn check --precision f32 $(FIXTURES) > build-mut/$$m/check32.log 2>&1; then \
	      echo "mutant $$m: NOT caught at float32"; \
	    else \
	      echo "mutant $$m: caught at float32 ($$(grep -c 'FAILED$$' build-mut/$$m/check32.log) rows FAILED)"; caught=$$((caught+1)); \
	    fi; \
	  fi; \
	done; \
	for m in $(STATE_MUTANTS); do \
	  total=$$((total+1)); \
	  $(MAKE) --no-print-directory -s BUILD=build-mut/$$m EXTRA_CFLAGS=-DOCN_MUTANT=$$m build-mut/$$m/tests/ocn_tests > /dev/null || exit 1; \
	  if build-mut/$$m/tests/ocn_tests --filter 'opt_state/*' > build-mut/$$m/state.log 2>&1; then \
	    echo "mutant $$m: NOT caught"; \
	  else \
	    echo "mutant $$m: caught by the opt_state tests ($$(grep -c 'Assertion Failed' build-mut/$$m/state.log) assertions)"; caught=$$((caught+1)); \
	  fi; \
	done; \
	echo "mutants: $$caught/$$total caught"; [ $$caught -eq $$total ]

# libFuzzer targets (clang) for the .npy reader, the manifest reader and the
# game loader; each runs FUZZ_RUNS inputs or FUZZ_SECONDS, whichever is first.
FUZZ_CC      ?= clang
FUZZ_RUNS    ?= 1000000
FUZZ_SECONDS ?= 300
FUZZ_TARGETS  = npy manifest game
FUZZ_SRC      = $(filter-out src/main.c,$(wildcard src/*.c))

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(wildcard include/ocn/*.h)
	@mkdir -p build-fuzz
	$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o $@ $< $(FUZZ_SRC) -ljansson -lm

fuzz: deps $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus-$$t; \
	  echo "=== fuzz $$t"; \
	  case $$t in manifest) len=65536;; *) len=16384;; esac; \
	  build-fuzz/fuzz_$$t -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) -max_len=$$len \
	    -artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus-$$t tests/fuzz/corpus/$$t \
	    > build-fuzz/fuzz-$$t.log 2>&1 || { tail -30 build-fuzz/fuzz-$$t.log; exit 1; }; \
	  grep -E "^Done [0-9]+ runs" build-fuzz/fuzz-$$t.log | sed "s/^/fuzz $$t: /"; \
	done

clean:
	rm -rf build build-san build-fuzz build-mut build-vg

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/src/main.d
