# spirtd: one command from a fresh clone: `make demo` (see it train) or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU wheel of exactly this version is on local disk; an unpinned torch
# would pull several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
NATIVE_SRC := $(wildcard spirtd/_native/*.c spirtd/_native/*.h)
STAMP := $(VENV)/.installed

.PHONY: demo test test-faults venv module compose-tool asan test-asan bench proto docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py $(NATIVE_SRC)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

module: $(STAMP)
	@$(BIN)/spirtd store path

# Three peers on this machine train an MLP on digits; node2 is SIGKILLed
# mid-job and restarted; prints each peer's test accuracy and digest, and
# keeps the plot and the peers' logs in demo-out/ (1-3 minutes on 2 cores).
# DEMO_ARGS: examples/demo.py's flags (--rounds, --kill-at, --out).
demo: $(STAMP)
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

# Debian's docker-compose (1.29), which validates docker-compose.yml offline
# for tests/deploy (no Docker needed, nor installed: no recommends). Needs
# root; without it the compose tests skip, except under CI.
compose-tool:
	@command -v docker-compose >/dev/null || [ "$$(id -u)" != 0 ] || { \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends docker-compose >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends docker-compose >/dev/null; }; }
	@command -v docker-compose >/dev/null || echo "docker-compose is missing (installing it needs root): the compose tests will skip"

# Every test but the module's own (tests/module), which run against its
# AddressSanitizer + UBSan build (each once: the suite stays under 15 minutes).
# Under CI (CI=true, as root) the multi-host and compose tests must run, never skip.
test: $(STAMP) compose-tool
	SPIRTD_REQUIRE_NETNS=$${CI:+1} SPIRTD_REQUIRE_COMPOSE=$${CI:+1} $(BIN)/python -m pytest -q --durations=20 --ignore=tests/module
	$(MAKE) --no-print-directory test-asan

# The job on three hosts through a partition and a SIGKILL alone (50 s; also in make test).
test-faults: $(STAMP)
	SPIRTD_REQUIRE_NETNS=1 $(BIN)/python -m pytest -q -m "faults_across_hosts"

# The module's tests once more, against a build with AddressSanitizer.
ASAN_MODULE := build/asan/spirt_redis.so
$(ASAN_MODULE): $(NATIVE_SRC)
	mkdir -p build/asan
	gcc -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined -DSPIRT_NO_TARGET_CLONES -fno-math-errno \
	    -fPIC -shared -pthread -o $@ spirtd/_native/*.c -lm

asan: $(ASAN_MODULE)

test-asan: $(STAMP) $(ASAN_MODULE)
	SPIRTD_MODULE_PATH=$(abspath $(ASAN_MODULE)) SPIRTD_SANITIZER=asan \
	    $(BIN)/python -m pytest -q tests/module

bench: $(STAMP)
	$(BIN)/python bench/aggregate.py

# Regenerates spirtd/api/ from proto/ (checked in; tests/api checks it is current).
proto: $(STAMP)
	$(BIN)/python proto/generate.py

# Regenerates docs/settings.md from the config dataclasses (tests/daemon checks it is current).
docs: $(STAMP)
	$(BIN)/python -m spirtd.daemon.settings_doc > docs/settings.md

clean:
	rm -rf $(VENV) build *.egg-info spirtd/_native/*.so
