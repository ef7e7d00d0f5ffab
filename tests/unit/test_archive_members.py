"""Unpacking the registry's archive refuses members that would land outside its folder, also on a
Python without tarfile's extraction filters (Debian 12 ships 3.11.2)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from samtykke.devstack.parts import StackError
from samtykke.devstack.registry import _contained_members


def archive_with(tmp_path: Path, *members: tarfile.TarInfo) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, 1 if kind == tarfile.REGTYPE else 0
    return info


def test_files_folders_and_inner_links_are_kept(tmp_path: Path) -> None:
    archive = archive_with(
        tmp_path,
        entry("app", tarfile.DIRTYPE),
        entry("app/lib.jar"),
        entry("app/current.jar", tarfile.SYMTYPE, "lib.jar"),
        entry("app/copy.jar", tarfile.LNKTYPE, "app/lib.jar"),
    )
    assert [m.name for m in _contained_members(archive, tmp_path)] == [
        "app",
        "app/lib.jar",
        "app/current.jar",
        "app/copy.jar",
    ]


@pytest.mark.parametrize(
    "member",
    [
        entry("../escape.jar"),
        entry("/etc/cron.d/job"),
        entry("app/link", tarfile.SYMTYPE, "../../etc/passwd"),
        entry("app/hard", tarfile.LNKTYPE, "../outside"),
        entry("app/fifo", tarfile.FIFOTYPE),
    ],
)
def test_a_member_leaving_the_folder_is_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    with pytest.raises(StackError):
        _contained_members(archive_with(tmp_path, member), tmp_path)
