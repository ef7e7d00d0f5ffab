"""The installed package is the whole package: every sub-package and every data file the services
read is inside the wheel that `pip install .` (and so the image) installs.

The check compares the wheel with the source tree rather than with a list kept by hand, so a new
sub-package or a data file of a kind package-data does not name fails here, not in production.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "services" / "samtykke"


def source_files(package: Path) -> set[str]:
    """Every file of the package as the wheel would name it (`samtykke/...`), caches left out."""
    return {
        path.relative_to(package.parent).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def build_wheel(project: Path, out: Path) -> set[str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(project)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    [wheel] = out.glob("samtykke-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.startswith("samtykke-")}


def missing_from_wheel(project: Path, out: Path) -> list[str]:
    return sorted(source_files(project / "services" / "samtykke") - build_wheel(project, out))


@pytest.fixture
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's build inputs in a folder of their own: setuptools leaves a build/ folder behind
    whose stale files would end up in the next wheel built from the same place."""
    copy = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copy(ROOT / "README.md", copy)
    shutil.copytree(PACKAGE, copy / "services" / "samtykke", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_wheel_holds_every_module_and_data_file(project_copy: Path, tmp_path: Path) -> None:
    assert missing_from_wheel(project_copy, tmp_path) == []


def test_the_wheel_holds_the_avro_schemas_and_sql(project_copy: Path, tmp_path: Path) -> None:
    names = build_wheel(project_copy, tmp_path)
    assert {"samtykke/schemas/avro/ConsentChanged.avsc", "samtykke/consent/schema.sql"} <= names
    assert "samtykke/devstack/files/pom.xml" in names


def test_a_data_file_package_data_does_not_name_is_reported(project_copy: Path, tmp_path: Path) -> None:
    (project_copy / "services" / "samtykke" / "consent" / "retention.yaml").write_text("days: 730\n")
    assert missing_from_wheel(project_copy, tmp_path) == ["samtykke/consent/retention.yaml"]


def test_a_sub_package_left_out_of_the_build_is_reported(project_copy: Path, tmp_path: Path) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text()
    # the hand-kept list this project used to have, one sub-package short
    pyproject.write_text(text.replace('include = ["samtykke*"]', 'include = ["samtykke", "samtykke.domain"]'))
    missing = missing_from_wheel(project_copy, tmp_path)
    assert "samtykke/consent/service.py" in missing and "samtykke/domain/consent.py" not in missing
