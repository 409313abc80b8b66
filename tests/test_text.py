"""dtr.text: the one check of client text and JSON."""

from __future__ import annotations

import pytest

from dtr import text


@pytest.mark.parametrize("raw, message", [
    (b'{"deadline": Infinity}', "Infinity is not a JSON number"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'[-Infinity]', "-Infinity is not a JSON number"),
    (b'{"a": 1e400}', "too large"),
    (b'[' * 65 + b']' * 65, "nested more than 64"),
    (b'[' * 100_000, "nested more than 64"),
    (b'{"fullName": "a\\u0000b"}', "fullName contains a NUL character"),
    (b'{"x": {"y": ["ok", "\\ud800"]}}', "x.y[1] contains an unpaired surrogate"),
    (b'{"a\\u0000": 1}', "a field name in the body contains a NUL"),
    (b'"\xff"', "not UTF-8"),
    (b'{"a": }', "not valid JSON"),
])
def test_refused(raw: bytes, message: str) -> None:
    with pytest.raises(text.BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        text.loads(raw)


def test_accepted() -> None:
    assert text.loads(b'{"a": [1, 2.5, "\\u00e9", {"b": null}], "c": 1e308}') == {
        "a": [1, 2.5, "é", {"b": None}], "c": 1e308}
    assert text.loads(b'["\\u0000"]', text=False) == ["\x00"]
    assert text.loads(b'[' * 64 + b']' * 64)


def test_dumps_never_writes_what_loads_refuses() -> None:
    with pytest.raises(ValueError):
        text.dumps({"deadline": float("inf")})
    assert text.dumps({"a": 1}) == b'{"a":1}'


def test_check_params_names_the_parameter_at_fault() -> None:
    text.check_params([("n", "10"), ("x", 5)])
    with pytest.raises(text.BadInput, match="the query parameter last contains a NUL") as bad:
        text.check_params([("n", "10"), ("last", "a\x00")])
    assert bad.value.parameter == "last"
    with pytest.raises(text.BadInput, match="a parameter's name contains an unpaired surrogate") as bad:
        text.check_params([("\ud800", "v")], "parameter")
    assert bad.value.parameter == "\ud800"
