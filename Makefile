# make train: set up .venv on first use and run the main job: python -m fasthg.train (ARGS=... for options).
# make test:  set up .venv on first use and run the test suite (pytest, then the AOT build + ctest).
# make gpucheck: on a machine with an NVIDIA GPU, every kernel's parity, safety and speed (python -m fasthg.gpucheck).
# make bench: the benchmarks (python -m bench): results/ and bench/RESULTS.md; ARGS=--quick for a reduced run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# What defines the install: the package's metadata and the torch installer.
INSTALL_FILES := pyproject.toml scripts/install_torch.sh
STAMP := $(VENV)/.installed-$(shell cat $(INSTALL_FILES) | cksum | cut -d' ' -f1)
export TRITON_DEFAULT_FP_FUSION ?= 1
# pytest-xdist workers for `make test`: the Triton interpreter keeps one core busy per process.
# --dist loadscope runs each module's tests in one worker, so a module fixture is made once (xdist_group
# marks do nothing with pytest 9.2: pytest-dev/pytest-xdist#1386).
TEST_JOBS ?= auto

.PHONY: setup train test pytest aot bench gpucheck clean

setup: $(STAMP)

$(STAMP): $(INSTALL_FILES)
	$(PYTHON) -c 'import sys; sys.exit("fasthg needs Python >= 3.10") if sys.version_info < (3, 10) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PY=$(PY) bash scripts/install_torch.sh
	$(PY) -m pip install -e '.[test,bench]'
	touch $@

train: $(STAMP)
	$(PY) -m fasthg.train $(ARGS)

test: pytest aot

pytest: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadscope tests $(ARGS)

aot: $(STAMP)
	cmake -S . -B build/aot -DPython_EXECUTABLE=$(abspath $(PY)) > /dev/null
	cmake --build build/aot
	cd build/aot && ctest --output-on-failure

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

gpucheck: $(STAMP)
	$(PY) -m fasthg.gpucheck $(ARGS)

clean:
	rm -rf build .pytest_cache
