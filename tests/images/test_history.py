"""The Dockerfile line cleaning (``dtr.images.history``): docker's legacy builder, BuildKit,
podman and buildah, and odd input; layers paired with the history entries that made them."""

from __future__ import annotations

from typing import Any

import pytest

from dtr.images.history import dockerfile_line, layer_lines


@pytest.mark.parametrize(("created_by", "line"), [
    # docker's legacy builder
    ('/bin/sh -c #(nop)  CMD ["sh"]', 'CMD ["sh"]'),
    ("/bin/sh -c #(nop) ADD file:9b38b383dd93169a663eed88edf3f2285b837257ead69dc40ab5ed1fb3f52c35 in / ",
     "ADD file:9b38b383dd93169a663eed88edf3f2285b837257ead69dc40ab5ed1fb3f52c35 in /"),
    ("/bin/sh -c #(nop)  ENV PATH=/usr/local/bin:/usr/bin", "ENV PATH=/usr/local/bin:/usr/bin"),
    ("/bin/sh -c apt-get update && apt-get install -y curl", "RUN apt-get update && apt-get install -y curl"),
    ("/bin/sh -c set -eux; \tapt-get update; \trm -rf /var/lib/apt/lists/*",
     "RUN set -eux; \tapt-get update; \trm -rf /var/lib/apt/lists/*"),
    ("|2 VERSION=1.2 TARGET=prod /bin/sh -c make install", "RUN make install"),
    ("|1 GREETING=hello world /bin/sh -c echo $GREETING", "RUN echo $GREETING"),
    # BuildKit
    ("RUN /bin/sh -c apt-get update # buildkit", "RUN apt-get update"),
    ("RUN |1 VERSION=1.2 /bin/sh -c make install # buildkit", "RUN make install"),
    ("COPY . /app # buildkit", "COPY . /app"),
    ("WORKDIR /app", "WORKDIR /app"),
    ('CMD ["python" "app.py"]', 'CMD ["python" "app.py"]'),
    ("EXPOSE map[8080/tcp:{}]", "EXPOSE map[8080/tcp:{}]"),
    ("ARG VERSION=1.2", "ARG VERSION=1.2"),
    ('RUN ["echo", "exec form"] # buildkit', 'RUN ["echo", "exec form"]'),
    # podman and buildah
    ('/bin/sh -c #(nop) CMD ["sh"]', 'CMD ["sh"]'),
    ("/bin/sh -c #(nop) COPY dir:0c2a3fd4 in /srv ", "COPY dir:0c2a3fd4 in /srv"),
    ("/bin/sh -c apk add --no-cache git", "RUN apk add --no-cache git"),
    ("/bin/sh -c #(nop) LABEL maintainer=dev@example.com", "LABEL maintainer=dev@example.com"),
    # odd input
    ("", ""),
    ("   ", ""),
    ("/bin/sh -c", "RUN"),
    ("/bin/sh -c #(nop)", ""),
    ("/bin/shell-script --flag", "/bin/shell-script --flag"),
    ("  MAINTAINER someone  ", "MAINTAINER someone"),
    (None, ""),
    (42, ""),
    (["/bin/sh", "-c", "x"], ""),
    ({"created_by": "x"}, ""),
])
def test_dockerfile_line(created_by: object, line: str) -> None:
    assert dockerfile_line(created_by) == line


def _layer(n: int) -> dict[str, Any]:
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{n:064x}", "size": n}


def test_layers_pair_with_the_entries_that_made_them() -> None:
    history = [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:a in / "},
               {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
               {"created_by": "RUN /bin/sh -c make # buildkit"}]
    lines = layer_lines([_layer(1), _layer(2)], history)
    assert [(x["digest"], x["instruction"], x["emptyLayer"]) for x in lines] == [
        (_layer(1)["digest"], "ADD file:a in /", False), (None, 'CMD ["sh"]', True),
        (_layer(2)["digest"], "RUN make", False)]
    assert lines[0]["created"] == "2024-01-01T00:00:00Z" and lines[0]["size"] == 1 and lines[1]["size"] is None


def test_odd_histories() -> None:
    layers = [_layer(1), _layer(2)]
    # none at all (or not a list): the layers alone
    for missing in (None, "nonsense", {}, []):
        lines = layer_lines(layers, missing)
        assert [x["digest"] for x in lines] == [_layer(1)["digest"], _layer(2)["digest"]]
        assert all(x["instruction"] == "" and x["created"] is None for x in lines)
    # shorter than the layers: the rest follow without instruction
    lines = layer_lines(layers, [{"created_by": "/bin/sh -c a"}])
    assert [(x["digest"], x["instruction"]) for x in lines] == [(_layer(1)["digest"], "RUN a"),
                                                                (_layer(2)["digest"], "")]
    # longer: entries without a layer
    lines = layer_lines([_layer(1)], [{"created_by": "/bin/sh -c a"}, {"created_by": "/bin/sh -c b"}])
    assert [(x["digest"], x["instruction"]) for x in lines] == [(_layer(1)["digest"], "RUN a"), (None, "RUN b")]
    # junk entries and fields are skipped or blanked, never an error
    lines = layer_lines([_layer(1), "junk", {"digest": 5}], [3, {"created_by": 7, "created": 1, "empty_layer": "yes"}])
    assert lines[0] == {"digest": _layer(1)["digest"], "mediaType": _layer(1)["mediaType"], "size": 1,
                        "instruction": "", "created": None, "emptyLayer": False}
    assert lines[1] == {"digest": None, "mediaType": None, "size": None, "instruction": "", "created": None,
                        "emptyLayer": False}
    assert layer_lines([], None) == []
