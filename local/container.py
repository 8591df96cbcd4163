"""A container image run on the host without Docker: the Dockerfile's
``WORKDIR``, ``COPY``, ``ENV`` and ``ENTRYPOINT`` laid out as symlinks, so a
file the Dockerfile forgets to copy is missing here too (``RUN`` and ``USER``
are ignored: the host provides what ``RUN`` installs).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sys
from pathlib import Path, PurePosixPath


class DockerfileError(Exception):
    """A Dockerfile instruction the host run cannot reproduce."""


@dataclasses.dataclass(frozen=True)
class HostImage:
    """What running the image takes: where its files sit on the host, its
    working directory there, its environment and its command."""

    root: Path
    workdir: Path
    env: dict[str, str]
    argv: list[str]


_IGNORED = frozenset({"RUN", "USER", "LABEL", "EXPOSE", "ARG", "HEALTHCHECK", "SHELL"})


def host_image(build_dir: Path, dockerfile: str, root: Path) -> HostImage:
    """Lay the image out under ``root`` from ``build_dir`` (the build context)
    as ``dockerfile`` says. A Python entry point runs on this interpreter.
    Whatever an earlier run left under ``root`` is removed first."""
    shutil.rmtree(root, ignore_errors=True)
    workdir = PurePosixPath("/")
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    stages = 0
    for instruction, argument in _instructions((build_dir / dockerfile).read_text()):
        if instruction == "FROM":
            stages += 1
            if stages > 1:
                raise DockerfileError(f"{dockerfile}: multi-stage builds are not run")
        elif instruction == "WORKDIR":
            workdir = workdir / argument
        elif instruction == "ENV":
            env.update(_env_pairs(argument))
        elif instruction in ("COPY", "ADD"):
            _copy(build_dir, root, workdir, argument, dockerfile)
        elif instruction in ("ENTRYPOINT", "CMD"):
            if instruction == "ENTRYPOINT" or not entrypoint:
                entrypoint = _exec_form(argument, dockerfile)
        elif instruction not in _IGNORED:
            raise DockerfileError(f"{dockerfile}: {instruction} is not run on the host")
    if not entrypoint:
        raise DockerfileError(f"{dockerfile}: no ENTRYPOINT or CMD")
    if Path(entrypoint[0]).name.startswith("python"):
        entrypoint[0] = sys.executable
    host_workdir = root / workdir.relative_to("/")
    host_workdir.mkdir(parents=True, exist_ok=True)
    return HostImage(root=root, workdir=host_workdir, env=env, argv=entrypoint)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, argument = stripped.partition(" ")
            found.append((instruction.upper(), argument.strip()))
    return found


def _env_pairs(argument: str) -> dict[str, str]:
    words = shlex.split(argument)
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def _exec_form(argument: str, dockerfile: str) -> list[str]:
    try:
        command = json.loads(argument)
    except json.JSONDecodeError:
        raise DockerfileError(
            f"{dockerfile}: write the entry point in exec form, e.g. "
            '["python3", "-m", "worker"]'
        ) from None
    return [str(word) for word in command]


def _copy(
    build_dir: Path,
    root: Path,
    workdir: PurePosixPath,
    argument: str,
    dockerfile: str,
) -> None:
    words = [w for w in shlex.split(argument) if not w.startswith("--chown")]
    if any(w.startswith("--") for w in words):
        raise DockerfileError(f"{dockerfile}: COPY {argument}: flags are not run")
    *sources, destination = words
    target = workdir / destination
    for source in sources:
        origin = build_dir / source
        if not origin.exists():
            raise DockerfileError(
                f"{dockerfile}: COPY {source}: not in the build context {build_dir}"
            )
        if origin.is_dir():
            # Docker copies a directory's contents into the destination.
            into = root / target.relative_to("/")
            into.mkdir(parents=True, exist_ok=True)
            for child in sorted(origin.iterdir()):
                _link(into / child.name, child, dockerfile)
        elif destination.endswith("/") or len(sources) > 1:
            _link(root / (target / origin.name).relative_to("/"), origin, dockerfile)
        else:
            _link(root / target.relative_to("/"), origin, dockerfile)


def _link(placed: Path, origin: Path, dockerfile: str) -> None:
    if placed.exists() or placed.is_symlink():
        raise DockerfileError(f"{dockerfile}: two COPY instructions write {placed}")
    placed.parent.mkdir(parents=True, exist_ok=True)
    placed.symlink_to(origin.resolve(), target_is_directory=origin.is_dir())
