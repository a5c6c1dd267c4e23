"""The wheel ships what users need beside the code: the type marker (PEP 561), the settings
template, the API's OpenAPI document and the console's files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import repo_root


def test_the_wheel_carries_its_data_files(tmp_path: Path) -> None:
    # A copy of what the build reads, so the build leaves nothing in the work tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root() / name, src / name)
    shutil.copytree(
        repo_root() / "dispatcher",
        src / "dispatcher",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    # An isolated build, as a user's pip does it (setuptools from the package index).
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("dispatcher_sms-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for wanted in (
        "dispatcher/py.typed",
        "dispatcher/config_template.toml",
        "dispatcher/api/openapi.json",
        "dispatcher/api/console/index.html",
        "dispatcher/api/console/console.js",
        "dispatcher/api/console/console.css",
    ):
        assert wanted in names, wanted
    assert not any(n.startswith("tests/") for n in names)
