"""The pins live in requirements.txt; environment.yml and pyproject.toml must agree with it."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s#]+)")


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_environment_yml_lists_the_same_pins_as_requirements():
    requirements = _pins(ROOT / "requirements.txt")
    environment = _pins(ROOT / "environment.yml")
    assert requirements, "requirements.txt pins nothing"
    assert environment == requirements


def test_every_dependency_and_extra_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    names = {re.split(r"[<>=!\[ ;]", requirement)[0].lower() for requirement in wanted}
    names.discard("nnsave")  # an extra may name others: nnsave[keras,sklearn]
    assert names - set(_pins(ROOT / "requirements.txt")) == set()


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in _pins(ROOT / "requirements.txt").items():
        assert version(name) == pinned, name
