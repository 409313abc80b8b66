"""The Dockerfile behind an image, as DTR showed it: each history entry of the image config
(``history[].created_by``) cleaned into the instruction a person wrote, paired with the layer it
made. Pure functions, no I/O.

Builders record ``created_by`` differently:
- docker's legacy builder: ``/bin/sh -c #(nop)  CMD ["sh"]`` for an instruction without a
  command, ``/bin/sh -c apt-get update`` for a RUN, ``|2 A=1 B=2 /bin/sh -c make`` for a RUN
  with build arguments;
- BuildKit: the instruction itself (``COPY . /app # buildkit``, ``ENV A=b``), a RUN as
  ``RUN /bin/sh -c make # buildkit`` or ``RUN |1 A=1 /bin/sh -c make # buildkit``;
- podman and buildah: like the legacy builder (``/bin/sh -c #(nop) CMD ["sh"]``,
  ``/bin/sh -c apk add x``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from typing_extensions import TypedDict

_SHELL = "/bin/sh -c"
_NOP = "#(nop)"
_BUILDKIT = "# buildkit"
#: The build arguments a RUN was given (``|2 A=1 B=2 ``): their count, then ``KEY=value`` pairs.
_ARGS = re.compile(r"^\|\d+\s+(?:[^\s=]+=\S*\s+)*")


class LayerLine(TypedDict):
    """One Dockerfile instruction in build order, with the layer it made (``digest``, ``mediaType``
    and ``size`` None for an instruction that made none, ``emptyLayer``). A layer the history does
    not explain has ``instruction`` ''."""

    digest: str | None
    mediaType: str | None
    size: int | None
    instruction: str
    created: str | None
    emptyLayer: bool


def dockerfile_line(created_by: object) -> str:
    """The Dockerfile instruction behind a history entry's ``created_by`` ('' for anything not a
    string): ``#(nop)`` markers, shell prefixes, build-argument prefixes and BuildKit's marker
    removed, a shell command shown as ``RUN <command>``, whitespace trimmed."""
    if not isinstance(created_by, str):
        return ""
    line = created_by.strip()
    if line.endswith(_BUILDKIT):
        line = line[:-len(_BUILDKIT)].rstrip()
    run = line.startswith("RUN ")
    if run:
        line = line[4:].lstrip()
    if line.startswith("|") and f" {_SHELL} " in f"{line} ":
        line = line[line.index(f" {_SHELL}") + 1:]
    else:
        line = _ARGS.sub("", line)
    if line == _SHELL or line.startswith(_SHELL + " "):
        command = line[len(_SHELL):].strip()
        if command.startswith(_NOP):
            return command[len(_NOP):].strip()
        return f"RUN {command}".strip()
    return f"RUN {line}".strip() if run else line


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def layer_lines(layers: Sequence[Any], history: Any) -> list[LayerLine]:
    """Each history entry in order, the ones that made a layer (not ``empty_layer: true``) paired
    with ``layers`` in order; layers left over (no or short history) follow with no instruction,
    entries left over (history claiming more layers than the manifest has) have no layer."""
    entries = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    descriptors = [d for d in layers if isinstance(d, dict)]
    out: list[LayerLine] = []
    i = 0
    for h in entries:
        empty = h.get("empty_layer") is True
        d: dict[str, Any] = {}
        if not empty and i < len(descriptors):
            d, i = descriptors[i], i + 1
        out.append({"digest": _str(d.get("digest")), "mediaType": _str(d.get("mediaType")), "size": _int(d.get("size")),
                    "instruction": dockerfile_line(h.get("created_by")), "created": _str(h.get("created")),
                    "emptyLayer": empty})
    for d in descriptors[i:]:
        out.append({"digest": _str(d.get("digest")), "mediaType": _str(d.get("mediaType")), "size": _int(d.get("size")),
                    "instruction": "", "created": None, "emptyLayer": False})
    return out
