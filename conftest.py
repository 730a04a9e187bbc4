"""pytest configuration shared by the unit tests and nbval."""

import os
from pathlib import Path

# The Makefile exports these to every process it starts, and the stored outputs of
# the notebooks were produced under them (PYTHONHASHSEED fixes the order of sets);
# nbval's kernels inherit this process's environment, so `pytest --nbval` sets them
# too when they are not set already.
_NOTEBOOK_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0"}


def pytest_configure(config):
    for name, value in _NOTEBOOK_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # pyproject.toml's addopts names the sanitize file relative to the repository's
    # root; find it there when pytest starts in another directory (e.g. book/).
    sanitize = config.getoption("nbval_sanitize_with", default=None)
    if sanitize and not Path(sanitize).exists():
        config.option.nbval_sanitize_with = str(config.rootpath / sanitize)


def pytest_collectstart(collector):
    # TensorFlow writes C++ log lines to stderr at unpredictable moments, and the
    # kernel that nbval starts does not capture them the way nbconvert did when
    # the outputs were stored. nbval's documented remedy: do not compare stderr.
    if collector.path is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)
