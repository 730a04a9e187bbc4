"""The GitHub workflows that publish the book and the package.

Each file must pass check-jsonschema against the GitHub workflow schema that
ships inside the package (no download), and keep the properties they exist for.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from _book import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ["book.yml", "release.yml"]


@pytest.fixture(scope="module")
def lint(tmp_path_factory) -> str:
    """check-jsonschema's report on the workflows and on a broken copy of each.

    One run for all files: the linter takes seconds to import.
    """
    broken = tmp_path_factory.mktemp("broken")
    for name in NAMES:
        # A misspelt key in the first job: GitHub rejects such a workflow, so must the linter.
        (broken / name).write_text((WORKFLOWS / name).read_text().replace("    steps:", "    step:", 1))
    paths = [str(WORKFLOWS / name) for name in NAMES] + [str(broken / name) for name in NAMES]
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *paths]
    result = subprocess.run(command, capture_output=True, text=True)
    return result.stdout + result.stderr


def _load(name: str) -> dict:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)
    return workflow


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


@pytest.mark.parametrize("name", NAMES)
def test_workflow_passes_the_schema(name, lint):
    assert "Schema validation errors were encountered" in lint, f"the linter did not run:\n{lint}"
    assert str(WORKFLOWS / name) not in lint, lint


@pytest.mark.parametrize("name", NAMES)
def test_the_linter_rejects_a_broken_copy(name, lint):
    assert re.search(rf"broken\d*/{re.escape(name)}::\$\.jobs\.\w+: ", lint), lint
    assert "'step' was unexpected" in lint


def test_book_builds_strictly_on_every_push_and_deploys_from_main():
    workflow = _load("book.yml")
    assert workflow["on"]["push"] is None, "every branch, no filter"
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert "make book" in [step.get("run") for step in build["steps"]]
    assert " -W " in (ROOT / "Makefile").read_text().split("\nbook:")[1].split("\n\n")[0]
    assert "actions/upload-pages-artifact" in _uses(build)
    assert _uses(deploy) == ["actions/deploy-pages"]
    assert deploy["if"] == "github.ref == 'refs/heads/main'"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert workflow["permissions"] == {"contents": "read"}


def test_release_publishes_with_trusted_publishing():
    workflow = _load("release.yml")
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    commands = "\n".join(step.get("run", "") for step in build["steps"])
    assert "python -m build" in commands and "twine check" in commands
    assert "requirements.txt" in commands, "build and twine at the pinned versions"
    assert _uses(publish)[-1] == "pypa/gh-action-pypi-publish"
    assert publish["permissions"] == {"id-token": "write"}
    assert all("password" not in step.get("with", {}) for step in publish["steps"]), "trusted publishing needs no password"
