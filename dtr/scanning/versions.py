"""Version order per ecosystem, as each ecosystem's own tool orders versions.

- ``deb``: dpkg (epoch, upstream version, Debian revision; ``~`` sorts before everything, letters
  before other characters); versions dpkg rejects raise, those it only warns about are ordered.
- ``apk``: apk-tools 3 (digits, one letter, ``_alpha _beta _pre _rc`` < none <
  ``_cvs _svn _git _hg _p`` suffixes, ``~hash``, ``-rN``); what ``apk version -c`` calls invalid raises.
- ``rpm``: rpm's ``rpmverCmp`` on ``epoch:version-release`` (``rpmvercmp`` per part: ``~`` before
  everything, ``^`` after the end; a missing epoch is 0, a missing release before any release).
- ``pypi``: PEP 440 (``packaging.version``).
- ``npm``: node-semver in loose mode (a leading ``v``/``=``); ``cargo``: strict SemVer 2.0;
  ``golang``: Go modules (``golang.org/x/mod/semver``; the ``v`` may be missing, as in OSV;
  ``+incompatible`` is build metadata; pseudo-versions are prereleases). Build metadata never counts.
- ``maven``: Maven's ``ComparableVersion`` (qualifiers alpha < beta < milestone < rc = cr <
  snapshot < "" = ga = final = release < sp < others; trailing zeros and release qualifiers dropped).
- ``gem``: RubyGems' ``Gem::Version`` (``-`` means ``.pre.``; a letter makes a prerelease).

Parsed keys are cached, so comparing the same versions again costs a dictionary lookup.
An empty version raises ``InvalidVersion`` in every ecosystem.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeAlias

from packaging import version as pep440

_CACHE_SIZE = 1 << 16


class InvalidVersion(ValueError):
    """A version the ecosystem cannot order (or an ecosystem without a version order)."""


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as or newer than ``b`` in ``ecosystem``.
    Raises ``InvalidVersion`` naming the version that cannot be ordered."""
    scheme = _scheme(ecosystem)
    return scheme.cmp(scheme.key(a), scheme.key(b))


def sort_key(ecosystem: str, v: str) -> Any:
    """A key for ``sorted``/``min`` that orders versions as ``compare`` does. Raises ``InvalidVersion``."""
    scheme = _scheme(ecosystem)
    key = scheme.key(v)
    return scheme.sort(key) if scheme.sort is not None else key


class _Scheme:
    __slots__ = ("cmp", "key", "sort")

    def __init__(self, key: Callable[[str], Any], cmp: Callable[[Any, Any], int] | None = None) -> None:
        self.key = key
        self.cmp: Callable[[Any, Any], int] = cmp if cmp is not None else _cmp
        self.sort: Callable[[Any], Any] | None = functools.cmp_to_key(cmp) if cmp is not None else None


def _scheme(ecosystem: str) -> _Scheme:
    try:
        return _SCHEMES[ecosystem]
    except KeyError:
        raise InvalidVersion(f"no version order for ecosystem {ecosystem!r}") from None


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _invalid(ecosystem: str, v: str, why: str) -> InvalidVersion:
    return InvalidVersion(f"invalid {ecosystem} version {v!r}: {why}")


def _ascii_digits_end(s: str, i: int) -> int:
    n = len(s)
    while i < n and "0" <= s[i] <= "9":
        i += 1
    return i


# --- dpkg ----------------------------------------------------------------------------------------

_DpkgPart: TypeAlias = tuple[tuple[tuple[int, ...], int], ...]
_DPKG_EPOCH = re.compile(r"[+-]?[0-9]+")
_DPKG_END = ((0,), 0)


def _dpkg_weight(c: str) -> int:
    if "a" <= c <= "z" or "A" <= c <= "Z":
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _dpkg_part(s: str) -> _DpkgPart:
    """dpkg's ``verrevcmp`` as a key: (non-digit run's character weights ended by 0, number) pairs,
    ended by the pair an exhausted string compares as. ``""`` orders as ``"0"``."""
    pairs = []
    i, n = 0, len(s)
    while True:
        j = i
        while j < n and not "0" <= s[j] <= "9":
            j += 1
        k = _ascii_digits_end(s, j)
        pairs.append(((*(_dpkg_weight(c) for c in s[i:j]), 0), int(s[j:k]) if k > j else 0))
        i = k
        if i >= n:
            break
    pairs.append(_DPKG_END)
    return tuple(pairs)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _dpkg_key(v: str) -> tuple[int, _DpkgPart, _DpkgPart]:
    s = v.strip(" \t")
    if not s:
        raise _invalid("deb", v, "empty")
    if any(c in s for c in " \t"):
        raise _invalid("deb", v, "embedded spaces")
    epoch = 0
    head, colon, rest = s.partition(":")
    if colon:
        if not head:
            raise _invalid("deb", v, "epoch is empty")
        if not _DPKG_EPOCH.fullmatch(head):
            raise _invalid("deb", v, "epoch is not a number")
        epoch = int(head)
        if epoch < 0 or epoch > 0x7FFFFFFF:
            raise _invalid("deb", v, "epoch out of range")
        if not rest:
            raise _invalid("deb", v, "nothing after the epoch")
        s = rest
    upstream, hyphen, revision = s.rpartition("-")
    if not hyphen:
        upstream, revision = s, ""
    elif not revision:
        raise _invalid("deb", v, "empty revision")
    if not upstream:
        raise _invalid("deb", v, "empty upstream version")
    return epoch, _dpkg_part(upstream), _dpkg_part(revision)


# --- apk -----------------------------------------------------------------------------------------

# Token kinds in apk-tools' order (later kinds may follow earlier ones).
_A_INITIAL, _A_DIGIT, _A_LETTER, _A_SUFFIX, _A_SUFFIX_NO, _A_HASH, _A_REVISION = range(7)
_APK_SUFFIXES = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "cvs": 5, "svn": 6, "git": 7, "hg": 8, "p": 9}
# Where two versions first differ in token kind, apk-tools orders them: a prerelease suffix first,
# then the end of the version, -rN, ~hash, a suffix number, a post-release suffix, a letter, a
# digit. Each key element starts with that rank, so the kinds order themselves.
_R_PRE, _R_END, _R_REVISION, _R_HASH, _R_SUFFIX_NO, _R_POST, _R_LETTER, _R_DIGIT, _R_INITIAL = range(9)
_ApkKey: TypeAlias = tuple[tuple[int, int, str], ...]


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _apk_key(v: str) -> _ApkKey:
    n = len(v)
    i = _ascii_digits_end(v, 0)
    if i == 0:
        raise _invalid("apk", v, "does not start with a digit")
    out = [(_R_INITIAL, int(v[:i]), "")]
    prev = _A_INITIAL
    while i < n:
        c = v[i]
        if "a" <= c <= "z":
            if prev > _A_DIGIT:
                raise _invalid("apk", v, f"unexpected letter at {i}")
            out.append((_R_LETTER, ord(c), ""))
            prev, i = _A_LETTER, i + 1
        elif c == "." or "0" <= c <= "9":
            if c == ".":
                if prev > _A_DIGIT:
                    raise _invalid("apk", v, f"unexpected '.' at {i}")
                i += 1
            if prev not in (_A_INITIAL, _A_DIGIT, _A_SUFFIX):
                raise _invalid("apk", v, f"unexpected digit at {i}")
            j = _ascii_digits_end(v, i)
            if j == i:
                raise _invalid("apk", v, f"missing number at {i}")
            digits = v[i:j]
            if prev == _A_SUFFIX:
                out.append((_R_SUFFIX_NO, int(digits), ""))
                prev = _A_SUFFIX_NO
            elif digits[0] == "0":
                # A component with a leading zero compares as a string (Gentoo's rule); such
                # strings all sort before the numbers, which never start with 0.
                out.append((_R_DIGIT, -1, digits))
                prev = _A_DIGIT
            else:
                out.append((_R_DIGIT, int(digits), ""))
                prev = _A_DIGIT
            i = j
        elif c == "_":
            if prev > _A_SUFFIX_NO:
                raise _invalid("apk", v, f"unexpected suffix at {i}")
            j = i + 1
            while j < n and "a" <= v[j] <= "z":
                j += 1
            value = _APK_SUFFIXES.get(v[i + 1:j])
            if value is None:
                raise _invalid("apk", v, f"unknown suffix {v[i + 1:j]!r}")
            out.append((_R_PRE if value < 4 else _R_POST, value, ""))
            prev, i = _A_SUFFIX, j
        elif c == "~":
            if prev >= _A_HASH:
                raise _invalid("apk", v, f"unexpected '~' at {i}")
            j = i + 1
            while j < n and ("0" <= v[j] <= "9" or "a" <= v[j] <= "f"):
                j += 1
            if j == i + 1:
                raise _invalid("apk", v, "empty commit hash")
            out.append((_R_HASH, 0, v[i + 1:j]))
            prev, i = _A_HASH, j
        elif c == "-":
            if prev >= _A_REVISION or v[i + 1:i + 2] != "r":
                raise _invalid("apk", v, f"unexpected '-' at {i}")
            j = _ascii_digits_end(v, i + 2)
            if j == i + 2:
                raise _invalid("apk", v, "revision without a number")
            out.append((_R_REVISION, int(v[i + 2:j]), ""))
            prev, i = _A_REVISION, j
        else:
            raise _invalid("apk", v, f"unexpected {c!r} at {i}")
    out.append((_R_END, 0, ""))
    return tuple(out)


# --- rpm -----------------------------------------------------------------------------------------

_RPM_SEGMENT = re.compile(r"~|\^|[0-9]+|[a-zA-Z]+")
# rpmvercmp at the first difference: ~ < end of string < ^ < letters < digits.
_RPM_TILDE, _RPM_END, _RPM_CARET, _RPM_ALPHA, _RPM_NUM = range(5)
_RpmPart: TypeAlias = tuple[tuple[int, int, str], ...]


def _rpm_part(s: str) -> _RpmPart:
    out = []
    for m in _RPM_SEGMENT.finditer(s):
        t = m.group()
        if t == "~":
            out.append((_RPM_TILDE, 0, ""))
        elif t == "^":
            out.append((_RPM_CARET, 0, ""))
        elif "0" <= t[0] <= "9":
            out.append((_RPM_NUM, int(t), ""))
        else:
            out.append((_RPM_ALPHA, 0, t))
    out.append((_RPM_END, 0, ""))
    return tuple(out)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _rpm_key(v: str) -> tuple[int, _RpmPart, tuple[()] | tuple[_RpmPart]]:
    """rpm's ``rpmverCmp`` as a key: (epoch, version, release), split as ``parseEVR`` does; a
    missing epoch is 0 and a missing release sorts before any release (rpm 4.18's order)."""
    if not v:
        raise _invalid("rpm", v, "empty")
    digits = _ascii_digits_end(v, 0)
    epoch = 0
    rest = v
    if digits < len(v) and v[digits] == ":":
        epoch = int(v[:digits] or "0")
        rest = v[digits + 1:]
    version, hyphen, release = rest.rpartition("-")
    if not hyphen:
        return epoch, _rpm_part(rest), ()
    return epoch, _rpm_part(version), (_rpm_part(release),)


# --- PEP 440 -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=_CACHE_SIZE)
def _pypi_key(v: str) -> pep440.Version:
    try:
        return pep440.Version(v)
    except pep440.InvalidVersion:
        raise _invalid("pypi", v, "not a PEP 440 version") from None


# --- SemVer (npm, cargo, Go) ---------------------------------------------------------------------

_Prerelease: TypeAlias = tuple[tuple[int, int, str], ...]
_SemverKey: TypeAlias = tuple[int, int, int, int, _Prerelease]

_SEMVER_STRICT = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?")
# node-semver's LOOSE: leading v/=/blanks, leading zeros, and the hyphen before a prerelease optional.
_SEMVER_LOOSE = re.compile(
    r"[v=\s]*([0-9]+)\.([0-9]+)\.([0-9]+)"
    r"(?:-?((?:[0-9]+|[0-9]*[a-zA-Z-][a-zA-Z0-9-]*)(?:\.(?:[0-9]+|[0-9]*[a-zA-Z-][a-zA-Z0-9-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
# golang.org/x/mod/semver, with the ``v`` optional: ``v1`` and ``v1.2`` are ``v1.0.0`` and ``v1.2.0``.
_GO = re.compile(
    r"v?(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?)?)?")
_NPM_MAX = (1 << 53) - 1  # node-semver rejects numbers over Number.MAX_SAFE_INTEGER
_RELEASE = 1  # a release sorts after every prerelease of the same version


def _semver_key(major: str, minor: str | None, patch: str | None, pre: str | None) -> _SemverKey:
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return int(major), int(minor or 0), int(patch or 0), 0 if pre else _RELEASE, ids


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _npm_key(v: str) -> _SemverKey:
    m = _SEMVER_LOOSE.fullmatch(v.strip())
    if not m or len(v) > 256:
        raise _invalid("npm", v, "not a semver version")
    key = _semver_key(*m.groups())
    if max(key[:3]) > _NPM_MAX:
        raise _invalid("npm", v, "number too large")
    return key


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cargo_key(v: str) -> _SemverKey:
    m = _SEMVER_STRICT.fullmatch(v)
    if not m:
        raise _invalid("cargo", v, "not a SemVer 2.0 version")
    return _semver_key(*m.groups())


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _golang_key(v: str) -> _SemverKey:
    m = _GO.fullmatch(v)
    if not m:
        raise _invalid("golang", v, "not a Go module version")
    return _semver_key(*m.groups())


# --- Maven ---------------------------------------------------------------------------------------

# ComparableVersion's items: int, a qualifier (str, already in its comparable form) or a list
# (tuple) of items started by '-' or by a change between digits and letters.
_MVN_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_MVN_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_MVN_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_MVN_RELEASE = str(_MVN_QUALIFIERS.index(""))


def _mvn_qualifier(value: str, followed_by_digit: bool) -> str:
    if followed_by_digit and len(value) == 1:
        value = _MVN_SHORT.get(value, value)
    value = _MVN_ALIASES.get(value, value)
    try:
        return str(_MVN_QUALIFIERS.index(value))
    except ValueError:
        return f"{len(_MVN_QUALIFIERS)}-{value}"


def _mvn_item(is_digit: bool, buf: str) -> int | str:
    return int(buf) if is_digit else _mvn_qualifier(buf, False)


def _mvn_is_null(item: Any) -> bool:
    if isinstance(item, int):
        return item == 0
    if isinstance(item, str):
        return item == _MVN_RELEASE
    return len(item) == 0


def _mvn_normalize(items: list[Any]) -> None:
    for i in range(len(items) - 1, -1, -1):
        if _mvn_is_null(items[i]):
            del items[i]
        elif not isinstance(items[i], list):
            break


def _mvn_freeze(items: list[Any]) -> tuple[Any, ...]:
    return tuple(_mvn_freeze(i) if isinstance(i, list) else i for i in items)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _maven_key(v: str) -> tuple[Any, ...]:
    """``ComparableVersion.parseVersion`` (Maven 3.8/3.9), step for step."""
    if not v.strip():
        raise _invalid("maven", v, "empty")
    version = v.lower()
    root: list[Any] = []
    current = root
    stack = [root]

    def sublist() -> None:
        nonlocal current
        new: list[Any] = []
        current.append(new)
        current = new
        stack.append(new)

    is_digit = False
    start = 0
    for i, c in enumerate(version):
        if c in ".-":
            current.append(0 if i == start else _mvn_item(is_digit, version[start:i]))
            start = i + 1
            if c == "-":
                sublist()
        elif c.isdecimal():
            if not is_digit and i > start:
                if current:  # 1.0.0.X1 < 1.0.0-X2: ".X" is treated as "-X"
                    sublist()
                current.append(_mvn_qualifier(version[start:i], True))
                start = i
                sublist()
            is_digit = True
        else:
            if is_digit and i > start:
                current.append(_mvn_item(True, version[start:i]))
                start = i
                sublist()
            is_digit = False
    if len(version) > start:
        if not is_digit and current:
            sublist()
        current.append(_mvn_item(is_digit, version[start:]))
    while stack:
        _mvn_normalize(stack.pop())
    return _mvn_freeze(root)


def _mvn_cmp_item(a: Any, b: Any) -> int:
    """``Item.compareTo``; ``b`` None is a missing item."""
    if isinstance(a, int):
        if b is None:
            return 1 if a else 0
        return _cmp(a, b) if isinstance(b, int) else 1
    if isinstance(a, str):
        if b is None:
            return _cmp(a, _MVN_RELEASE)
        if isinstance(b, str):
            return _cmp(a, b)
        return -1
    if b is None:
        for item in a:
            r = _mvn_cmp_item(item, None)
            if r:
                return r
        return 0
    if isinstance(b, int):
        return -1
    if isinstance(b, str):
        return 1
    return _mvn_cmp_list(a, b)


def _mvn_cmp_list(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    for i in range(max(len(a), len(b))):
        left = a[i] if i < len(a) else None
        right = b[i] if i < len(b) else None
        # a missing item on the left: the right one against nothing, the other way round
        r = _mvn_cmp_item(left, right) if left is not None else -_mvn_cmp_item(right, None)
        if r:
            return r
    return 0


# --- RubyGems ------------------------------------------------------------------------------------

_GEM_PATTERN = re.compile(
    r"\s*([0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?\s*", re.ASCII)
_GEM_SEGMENT = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)


def _drop_trailing_zeros(segments: list[int | str]) -> list[int | str]:
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _gem_key(v: str) -> tuple[int | str, ...]:
    """``Gem::Version#canonical_segments``."""
    if not v.strip() or not _GEM_PATTERN.fullmatch(v):
        raise _invalid("gem", v, "malformed version number string")
    segments: list[int | str] = [
        int(s) if s[0].isdigit() else s for s in _GEM_SEGMENT.findall(v.strip().replace("-", ".pre."))]
    first_string = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    return tuple(_drop_trailing_zeros(segments[:first_string]) + _drop_trailing_zeros(segments[first_string:]))


def _gem_cmp(a: tuple[int | str, ...], b: tuple[int | str, ...]) -> int:
    """``Gem::Version#<=>``: missing segments are 0; a string is less than a number."""
    if a == b:
        return 0
    for i in range(max(len(a), len(b))):
        left = a[i] if i < len(a) else 0
        right = b[i] if i < len(b) else 0
        if left == right:
            continue
        if isinstance(left, str) and isinstance(right, int):
            return -1
        if isinstance(left, int) and isinstance(right, str):
            return 1
        return _cmp(left, right)
    return 0


_SCHEMES: dict[str, _Scheme] = {
    "deb": _Scheme(_dpkg_key),
    "apk": _Scheme(_apk_key),
    "rpm": _Scheme(_rpm_key),
    "pypi": _Scheme(_pypi_key),
    "npm": _Scheme(_npm_key),
    "cargo": _Scheme(_cargo_key),
    "golang": _Scheme(_golang_key),
    "maven": _Scheme(_maven_key, _mvn_cmp_list),
    "gem": _Scheme(_gem_key, _gem_cmp),
}
