# `make test` and `make book` each set up the pinned environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.nnsave-installed
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
NB ?= $(NOTEBOOKS)

# Keep TensorFlow's C++ logging and oneDNN notices out of every process we start
# (conftest.py sets the same three for `pytest --nbval`).
export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0
export PYTHONHASHSEED := 0

.PHONY: all env test book translations figures-zh notebooks lab clean

all: test book

env: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Exactly `pytest --nbval` typed at the root: pyproject.toml names the tests, the
# notebooks, the workers and the sanitize file. The browser test reads the built
# HTML, so the book is built first (the test builds it itself when it is missing).
# Then the Keras format tests again under Keras's JAX backend.
KERAS_FORMAT_TESTS := tests/test_formats_keras.py tests/test_formats_safetensors.py \
	tests/test_keras_safe_mode.py tests/test_keras_models.py

test: book
	$(BIN)/python -m pytest --nbval
	KERAS_BACKEND=jax $(BIN)/python -m pytest $(KERAS_FORMAT_TESTS)

# The English edition at _build/html, then the Chinese one, from the same pages
# and outputs with the catalogues in locale/zh_CN, at _build/html/zh_CN.
book: $(INSTALLED)
	$(BIN)/jupyter-book build . -W -n --keep-going
	$(BIN)/python book/_tools/editions.py build zh_CN

# After an English edit: bring the catalogues in step (new messages arrive empty,
# changed ones fuzzy), then list what is left to translate.
translations: $(INSTALLED)
	$(BIN)/python book/_tools/editions.py update
	-$(BIN)/python book/_tools/editions.py check

# Redraw the Chinese edition's figures (locale/zh_CN/figures) by re-running the
# notebooks with Chinese labels; e.g. `make figures-zh NB=book/training.ipynb`.
figures-zh: $(INSTALLED)
	$(BIN)/python book/_tools/editions.py figures $(if $(filter command line environment,$(origin NB)),$(NB))

# Re-execute every notebook in place so that its stored outputs are current.
notebooks: $(INSTALLED)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 \
		--NotebookClient.record_timing=False \
		--NotebookClient.extra_arguments="['--IPKernelApp.capture_fd_output=False']" $(NB)

# JupyterLab in the pinned environment, opened on the book's chapters. Options
# pass through, e.g. `make lab LAB_OPTIONS="--no-browser --port=8899"`.
lab: $(INSTALLED)
	$(BIN)/jupyter lab --ServerApp.root_dir=book $(LAB_OPTIONS)

clean:
	rm -rf _build .pytest_cache

# Benchmarks (benchmarks/): nnsave against raw Keras, joblib, pickle, skops,
# safetensors and plain file IO (run.py), then against plain s3fs on a local S3
# server, moto on 127.0.0.1 (cloud.py). The full run writes benchmarks/results/
# and takes about fifteen minutes on two cores; the quick one (small workloads,
# for CI) writes _build/bench-quick/. bench-book times each notebook and `make test`.
.PHONY: bench bench-quick bench-book

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.cloud

bench-quick: $(INSTALLED)
	$(BIN)/python -m benchmarks.run --quick
	$(BIN)/python -m benchmarks.cloud --quick

bench-book: $(INSTALLED)
	$(BIN)/python -m benchmarks.book_timing --make-test
