"""What a Dockerfile decides, read without Docker: entrypoint, environment, ports, user.

`check_dockerfile` compares a Dockerfile with its build context and `Settings`:
every COPY source exists and is not excluded by .dockerignore, and the ENV
settings are valid, naming folders that something in the image creates.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings

from .settings_check import env_prefix, settings_problems


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments left out."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_entrypoint(dockerfile: Path) -> list[str]:
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword == "ENTRYPOINT":
            words = json.loads(value) if value.startswith("[") else value.split()
            return [str(word) for word in words]
    return []


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword != "ENV":
            continue
        words = shlex.split(value)
        if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
            env[words[0]] = " ".join(words[1:])
        else:
            for word in words:
                key, _, assigned = word.partition("=")
                env[key] = assigned
    return env


def dockerfile_exposed(dockerfile: Path) -> set[int]:
    return {
        int(port.split("/")[0])
        for keyword, value in dockerfile_instructions(dockerfile)
        if keyword == "EXPOSE"
        for port in value.split()
    }


def dockerfile_user(dockerfile: Path) -> str | None:
    """The user (`uid[:gid]` or name) the image runs as; None when it stays root."""
    users = [value for keyword, value in dockerfile_instructions(dockerfile) if keyword == "USER"]
    return users[-1] if users else None


class Image(NamedTuple):
    """What the Dockerfile decides for every container: its environment and user."""

    env: dict[str, str]
    uid: str | None

    @classmethod
    def read(cls, dockerfile: Path) -> Image:
        user = dockerfile_user(dockerfile)
        return cls(dockerfile_env(dockerfile), user.split(":")[0] if user else None)


# -- the Dockerfile against its build context and Settings ---------------------------


def check_dockerfile(dockerfile: Path, context: Path, settings_cls: type[BaseSettings] = Settings) -> list[str]:
    """COPY sources exist and are sent; image settings are valid and their folders exist."""
    return [
        *_copy_problems(dockerfile, context),
        *(f"ENV {p}" for p in settings_problems(dockerfile_env(dockerfile), settings_cls)),
        *_image_path_problems(dockerfile, context, settings_cls),
    ]


def _copy_problems(dockerfile: Path, context: Path) -> list[str]:
    ignored = _dockerignore_patterns(context)
    problems: list[str] = []
    for sources, _, _ in _copies(dockerfile):
        for source in sources:
            path = source.rstrip("/")
            if not (context / path).exists():
                problems.append(f"COPY source {source} does not exist in the build context")
            elif any(Path(path).match(pattern) for pattern in ignored):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
    return problems


def _copies(dockerfile: Path) -> Iterator[tuple[list[str], str, str]]:
    """(sources, destination, working directory) of each COPY/ADD from the build context."""
    workdir = "/"
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / value)
        if keyword not in {"COPY", "ADD"} or "--from" in value:
            continue  # a copy from another stage is not from the context
        args = [word for word in value.split() if not word.startswith("--")]
        yield args[:-1], args[-1], workdir


def _image_path_problems(dockerfile: Path, context: Path, settings_cls: type[BaseSettings]) -> list[str]:
    """A folder an image setting names is copied into the image or created by a RUN."""
    fields = settings_cls.model_fields
    runs = " ".join(value for keyword, value in dockerfile_instructions(dockerfile) if keyword == "RUN")
    problems: list[str] = []
    for key, value in dockerfile_env(dockerfile).items():
        field = key.removeprefix(env_prefix(settings_cls)).lower()
        if field not in fields or fields[field].annotation is not Path:
            continue
        copied = _copied_from(dockerfile, PurePosixPath(value))
        if copied is not None and not (context / copied).exists():
            problems.append(f"ENV {key}={value}: {copied} is not in the build context")
        elif copied is None and value not in runs:
            problems.append(f"ENV {key}={value}: nothing in the image creates {value}")
    return problems


def _copied_from(dockerfile: Path, path: PurePosixPath) -> str | None:
    """The build-context path that ends up at `path` in the image, if a COPY puts it there."""
    for sources, destination, workdir in _copies(dockerfile):
        target = PurePosixPath(workdir) / destination
        if len(sources) == 1 and destination.endswith("/") and path.is_relative_to(target):
            return str(PurePosixPath(sources[0]) / path.relative_to(target))
    return None


def _dockerignore_patterns(context: Path) -> list[str]:
    """Exclusions, simplified: matched against the end of a path; `!` re-includes are ignored."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return []
    lines = (line.strip() for line in ignore_file.read_text(encoding="utf-8").splitlines())
    return [line.rstrip("/").removeprefix("**/") for line in lines if line and not line.startswith(("#", "!"))]
