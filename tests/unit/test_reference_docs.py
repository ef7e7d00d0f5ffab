"""The generated tables in docs/ (every setting, every metric) match the code, and drift is caught.

The committed documents must be what `samtykke docs export` writes; an edited copy must fail
`samtykke docs check` naming the document and the command that fixes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from samtykke import docs, reference
from samtykke.adapters.settings import Settings, checkout_root

DOCS = docs.docs_dir()


def committed() -> dict[str, str | None]:
    return {name: (DOCS / name).read_text("utf-8") for name in reference.DOCUMENTS}


def block(text: str, name: str) -> list[str]:
    """The lines of one generated table, markers excluded."""
    lines = text.split("\n")
    start = lines.index(reference.begin_marker(name))
    return lines[start + 1 : lines.index(reference.end_marker(name))]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in reference.DOCUMENTS:
        shutil.copy(DOCS / name, tmp_path / name)
    return tmp_path


def test_committed_documents_match_the_code() -> None:
    drifts = docs.find_drift(reference.reference_documents(committed()), DOCS)
    assert not drifts, f"{[d.summary() for d in drifts]}: run `samtykke docs export` and commit the result"


def test_every_setting_is_a_row_with_a_description() -> None:
    rows = reference.configuration_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name}: add Field(..., description=...) for docs/configuration.md"
        assert f"| `SAMTYKKE_{name.upper()}` |" in rows, name


def test_every_series_of_every_service_is_a_row() -> None:
    table = reference.metrics_table()
    for registry in reference.service_registries().values():
        for family in registry.collect():
            assert f"`{reference.exposed_name(family.name, family.type)}`" in table, family.name
    assert "| `samtykke_consent_changes_total` | counter | `purpose`, `status`, `source` | consent |" in table
    assert "| `samtykke_http_request_duration_seconds` | histogram |" in table and "| consent, suppression |" in table


def test_the_tables_are_the_same_in_every_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tables = reference.configuration_table(), reference.metrics_table()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMTYKKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SAMTYKKE_TOPIC_PARTITIONS", "12")
    assert (reference.configuration_table(), reference.metrics_table()) == tables
    root = checkout_root(Path(__file__))
    assert root is not None and str(root) not in tables[0] and str(tmp_path) not in tables[0]


def test_an_edited_default_is_reported_by_document(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = copy / "configuration.md"
    text = document.read_text("utf-8")
    [row] = [line for line in text.split("\n") if line.startswith("| `SAMTYKKE_TOPIC_PARTITIONS` |")]
    document.write_text(text.replace(row, row.replace("| `6` |", "| `7` |")), "utf-8")

    assert docs.check_reference(copy) == 1
    report = capsys.readouterr().err
    assert "configuration.md: differs from the code (+1 -1 lines)" in report
    assert f"+{row}" in report and "operations.md" not in report
    assert "run `samtykke docs export`" in report


def test_a_deleted_metric_row_is_reported(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = copy / "operations.md"
    text = document.read_text("utf-8")
    row = next(line for line in block(text, "metrics") if line.startswith("| `samtykke_"))
    document.write_text(text.replace(row + "\n", ""), "utf-8")

    assert docs.check_reference(copy) == 1
    report = capsys.readouterr().err
    assert "operations.md: differs from the code (+1 -0 lines)" in report and f"+{row}" in report
    assert "configuration.md" not in report and "run `samtykke docs export`" in report


def test_export_rewrites_only_the_tables(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = {name: (copy / name).read_text("utf-8") for name in reference.DOCUMENTS}
    for name, text in original.items():
        table = reference.DOCUMENTS[name][0]
        (copy / name).write_text(text.replace("\n".join(block(text, table)), "| stale |"), "utf-8")

    assert docs.export_reference(copy) == 0
    assert {name: (copy / name).read_text("utf-8") for name in reference.DOCUMENTS} == original
    assert docs.check_reference(copy) == 0
    assert "generated tables in" in capsys.readouterr().out


def test_a_lost_marker_names_the_document(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = copy / "operations.md"
    document.write_text(document.read_text("utf-8").replace(reference.end_marker("metrics"), ""), "utf-8")

    assert docs.check_reference(copy) == 1
    assert docs.export_reference(copy) == 1
    report = capsys.readouterr().err
    assert "operations.md: needs exactly one `<!-- BEGIN generated: metrics -->`" in report
    assert "run `samtykke docs export`" in report


def test_a_missing_document_is_reported_and_exported_as_its_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs.check_reference(tmp_path) == 1
    assert "configuration.md: missing" in capsys.readouterr().err

    assert docs.export_reference(tmp_path) == 0
    written = (tmp_path / "configuration.md").read_text("utf-8")
    assert written.startswith(reference.begin_marker("configuration"))
    assert block(written, "configuration") == reference.configuration_table().split("\n")
