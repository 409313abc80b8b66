"""Version order per ecosystem, checked against each ecosystem's own tool on this machine.

dpkg, rpm (its Lua ``rpm.vercmp``), node-semver (installed from npm into ``.cache/scanning/node``),
Maven's ``ComparableVersion`` (the jar's ``main``), RubyGems (``ruby``) and Go's
``golang.org/x/mod/semver`` (the copy vendored in the Go toolchain's sources, built once into
``.cache/scanning/go``) answer the same pairs as ``dtr.scanning.versions``. apk-tools is not on
Debian: its own test vectors are used (``apk_version.data``, source cited there); PEP 440 is
checked with the PEP's documented examples (comparing ``packaging`` with itself would prove nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import itertools
import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from dtr.scanning.versions import InvalidVersion, compare, sort_key
from tests.scanning.match_data import dpkg_compare, need

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "scanning"
HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One test process at a time builds a cached tool (pytest-xdist workers share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(args: Sequence[str], stdin: str = "", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr[-2000:]}"
    return done.stdout


def _all_pairs(versions: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(versions, 2))


def _check(ecosystem: str, pairs: Sequence[tuple[str, str]], answers: Sequence[int]) -> None:
    assert len(answers) == len(pairs)
    wrong = [(a, b, want, compare(ecosystem, a, b)) for (a, b), want in zip(pairs, answers, strict=True)
             if compare(ecosystem, a, b) != want]
    assert not wrong, f"{len(wrong)} of {len(pairs)} {ecosystem} pairs differ (a, b, tool, ours): {wrong[:20]}"
    # antisymmetry, so the reverse order needs no second run of the tool
    assert all(compare(ecosystem, b, a) == -want for (a, b), want in zip(pairs, answers, strict=True))


# --- dpkg ----------------------------------------------------------------------------------------

DPKG_EDGES = [
    "0", "0~", "0~~", "0~a", "0a", "0.0", "00", "1", "1.0", "1.0-0", "1.0-1", "1.0-1+b1", "1.0-1+b2",
    "1.0-1+deb12u1", "1.0-1~bpo12+1", "1.0~rc1-1", "1.0~~rc1-1", "1.0+dfsg-1", "1.0+dfsg1-1", "1.0a", "1.0A",
    "1.0.", "1.0-a", "1.0-1.1", "1.0-1ubuntu1", "1.0-1build1", "1:0.9", "2:1.0", "1:1.0-1", "10:1",
    "1.0+really0.9-1", "1.0-~", "1.0~-1", "2.36-9+deb12u10", "2.36-9+deb12u9", "3.0.11-1~deb12u2",
    "1:2.38.1-5+deb12u3", "+1:1.0",
    # dpkg warns about these but orders them
    "a1.0", "1.0_1", "1.0-1_2",
]


def _installed_deb_versions() -> list[str]:
    need("dpkg-query", "dpkg")
    out = _run(["dpkg-query", "-W", "-f", "${Version}\n${source:Version}\n"])
    return sorted(set(out.split()))


def test_dpkg_edge_cases_match_dpkg() -> None:
    pairs = _all_pairs(DPKG_EDGES)
    _check("deb", pairs, dpkg_compare(pairs))


def test_dpkg_installed_versions_match_dpkg() -> None:
    """Every version installed here, sorted by our key: dpkg agrees on each neighbour (so, dpkg's
    order being transitive, on every pair), and on a sample of other pairs."""
    versions = _installed_deb_versions()
    assert len(versions) > 100
    ordered = sorted(versions, key=lambda v: sort_key("deb", v))
    neighbours = list(itertools.pairwise(ordered))
    sample = random.Random(10).sample(_all_pairs(versions), 150)
    pairs = neighbours + sample
    _check("deb", pairs, dpkg_compare(pairs))
    assert any("+b" in v for v in versions), "binNMU versions (+bN) expected among the installed ones"


@pytest.mark.parametrize("bad", [" ", "1 0", ":1.0", "a:1.0", "1:", "1.0-", "-1", "1:-1", "-1:1.0", "99999999999:1"])
def test_dpkg_rejects_what_dpkg_rejects(bad: str) -> None:
    done = subprocess.run([need("dpkg", "dpkg"), "--compare-versions", bad, "lt", "1"], capture_output=True)
    assert done.returncode == 2, "dpkg accepts it"
    with pytest.raises(InvalidVersion, match="deb version"):
        compare("deb", bad, "1")


# --- rpm -----------------------------------------------------------------------------------------

RPM_EDGES = [
    "1.0", "1.0-1", "1.0-2", "1.0-1.el8", "1.0-1.el8_9", "1.0-1.fc39", "1.0-", "1.0.0", "1.0.1", "1.01", "1.1",
    "1.0~rc1", "1.0~rc1-1", "1.0~rc1~git123", "1.0~rc2", "1.0^", "1.0^git1", "1.0^git2", "1.0^20160101",
    "1.0^20160101^git1", "1.0^20160102", "1.0.1^", "1.0a", "1.0b", "1.0A", "1_0", "1..0", "1.0.", "0:1.0",
    "1:1.0", "1:0.9-5", "2:0.1", ":1.0", "10xyz", "10.1xyz", "xyz10", "xyz10.1", "5.5p1", "5.5p10",
    "2.0.1a", "4.999.9", "5.0", "1.002", "1.2", "a+b", "a", "-1", "1:", "a:1.0", "3.0.7-27.el9", "3.0.7-24.el9",
    "7.76.1-29.el9_4", "7.76.1-29.el9_4.1", "2.28-225.el8", "2.28-225.el8_8.6",
]


def _rpm_answers(pairs: Sequence[tuple[str, str]], tmp_path: Path) -> list[int]:
    rpm = need("rpm", "rpm")
    data = tmp_path / "pairs.txt"
    data.write_text("".join(f"{a}\t{b}\n" for a, b in pairs))
    assert "%" not in str(data)
    lua = (f'for line in io.lines("{data}") do local a, b = line:match("^(.-)\\t(.*)$"); '
           'local ok, r = pcall(rpm.vercmp, a, b); io.write((ok and tostring(r) or "E") .. "\\n") end')
    out = _run([rpm, "--eval", f"%{{lua: {lua}}}"])
    return [int(x) for x in out.split()]


def test_rpm_edge_cases_match_rpm(tmp_path: Path) -> None:
    pairs = _all_pairs(RPM_EDGES)
    _check("rpm", pairs, _rpm_answers(pairs, tmp_path))


def test_rpm_installed_deb_versions_match_rpm(tmp_path: Path) -> None:
    """Real version strings (this machine's Debian ones: epochs, ~, +, letters) ordered as rpm does."""
    versions = _installed_deb_versions()
    pairs = random.Random(11).sample(_all_pairs(versions), 4000)
    _check("rpm", pairs, _rpm_answers(pairs, tmp_path))


def test_rpm_rejects_empty(tmp_path: Path) -> None:
    rpm = need("rpm", "rpm")
    out = _run([rpm, "--eval", '%{lua: local ok = pcall(rpm.vercmp, "", "1"); io.write(tostring(ok))}'])
    assert out.strip() == "false"
    with pytest.raises(InvalidVersion, match="rpm version"):
        compare("rpm", "", "1")


# --- apk -----------------------------------------------------------------------------------------

def _apk_vectors() -> tuple[list[tuple[str, str, str, bool]], list[tuple[str, bool]]]:
    """apk-tools' vectors: (a, op, b, negated) comparisons and (version, valid) checks."""
    comparisons, validity = [], []
    for raw in (HERE / "apk_version.data").read_text().splitlines():
        if raw.startswith("#"):
            continue
        parts = raw.split("#", 1)[0].split()
        if len(parts) == 3:
            a, op, b = parts
            comparisons.append((a, op.removeprefix("!"), b, op.startswith("!")))
        elif len(parts) == 1:
            validity.append((parts[0].removeprefix("!"), not parts[0].startswith("!")))
    return comparisons, validity


def _apk_valid(v: str) -> bool:
    try:
        compare("apk", v, v)
    except InvalidVersion:
        return False
    return True


def test_apk_tools_vectors() -> None:
    comparisons, validity = _apk_vectors()
    assert len(comparisons) > 700 and len(validity) > 30
    refused = []
    for a, op, b, negated in comparisons:
        if not (_apk_valid(a) and _apk_valid(b)):
            refused.append((a, b))
            continue
        result = {"<": -1, "=": 0, ">": 1}[op] == compare("apk", a, b)
        assert result != negated, f"apk {a} {'!' if negated else ''}{op} {b}"
    # apk-tools orders two pairs holding versions its own validity check rejects
    # ("1.0 < 1.0bc # invalid. do string sort"); those raise here
    assert refused == [("23_foo", "4_beta"), ("1.0", "1.0bc")]
    wrong = [(v, ok) for v, ok in validity if _apk_valid(v) != ok]
    assert not wrong, f"validity differs from apk-tools: {wrong}"


def test_apk_order() -> None:
    ordered = ["1.0_alpha", "1.0_alpha2", "1.0_beta", "1.0_pre1", "1.0_rc1", "1.0", "1.0-r1", "1.0_cvs",
               "1.0_svn", "1.0_git20240101", "1.0_hg", "1.0_p1", "1.0_p1-r1", "1.0a", "1.0b", "1.0.1", "1.05", "1.1"]
    for a, b in itertools.pairwise(ordered):
        assert compare("apk", a, b) == -1, (a, b)
    assert compare("apk", "1.05", "1.5") == -1  # a leading zero: string comparison
    assert compare("apk", "3.0.15-r0", "3.0.8-r0") == 1


# --- PEP 440 -------------------------------------------------------------------------------------

# PEP 440, "Summary of permitted suffixes and relative ordering", in order.
PEP440_ORDER = ["1.dev0", "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456",
                "1.0b2", "1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5",
                "1.0+abc.7", "1.0+5", "1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1"]


def test_pep440_documented_order() -> None:
    for a, b in itertools.pairwise(PEP440_ORDER):
        assert compare("pypi", a, b) == -1, (a, b)
    assert sorted(reversed(PEP440_ORDER), key=lambda v: sort_key("pypi", v)) == PEP440_ORDER


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0.0"), ("1.0a1", "1.0alpha1"), ("1.0c1", "1.0rc1"),
                                      ("1.0pre1", "1.0rc1"), ("v1.0", "1.0"), ("1.0.post", "1.0.post0"),
                                      ("1.0-1", "1.0.post1"), ("1.0.DEV1", "1.0.dev1"), ("0!1.0", "1.0")])
def test_pep440_normalised_forms_are_equal(a: str, b: str) -> None:
    assert compare("pypi", a, b) == 0


def test_pep440_epoch_and_invalid() -> None:
    assert compare("pypi", "1!0.1", "2024.1") == 1
    for bad in ("1.0.x", "not-a-version", "", "1.0-beta-2-3-4", "2.0.0-SNAPSHOT"):
        with pytest.raises(InvalidVersion, match="pypi"):
            compare("pypi", bad, "1.0")


# --- npm and cargo (node-semver) -----------------------------------------------------------------

SEMVER_SPEC = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0"]
SEMVER_EXTRA = ["0.0.0", "0.0.1", "0.1.0", "1.0.0+build.1", "1.0.0-alpha+001", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
                "1.0.0-x-y-z.--", "1.0.0-1", "1.0.0-2", "1.0.0-10", "1.0.0-a1", "1.0.0-1a", "1.0.1", "1.1.0",
                "2.0.0", "10.0.0", "1.0.0-rc.1+build.2", "4.17.21", "4.17.4", "2.0.0-rc.0", "9007199254740991.0.0"]
NPM_LOOSE = ["v1.0.0", "=1.0.0", " v1.2.3 ", "v1.0.0-beta.2", "01.02.03", "1.2.3beta", "1.2.3-01"]


def _node_semver() -> Path:
    node, npm = need("node", "nodejs"), need("npm", "npm")
    target = CACHE / "node"
    with _locked("node"):
        if not (target / "node_modules" / "semver" / "package.json").exists():
            _run([npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", "--silent", "semver@7"])
    assert node
    return target / "node_modules" / "semver"


def _semver_answers(pairs: Sequence[tuple[str, str]], loose: bool) -> list[int]:
    script = ("const semver = require(process.argv[1]); let input = '';"
              "process.stdin.on('data', d => input += d).on('end', () => {"
              "const out = JSON.parse(input).map(([a, b, loose]) => {"
              "try { return semver.compare(a, b, {loose}) } catch (e) { return 'E' } });"
              "process.stdout.write(JSON.stringify(out)) })")
    out = _run([need("node", "nodejs"), "-e", script, str(_node_semver())],
               json.dumps([[a, b, loose] for a, b in pairs]))
    answers: list[int] = json.loads(out)
    assert "E" not in answers
    return answers


def _npm_package_versions() -> list[str]:
    """Real published versions: the packages bundled with this machine's npm."""
    found = set()
    for path in glob.glob("/usr/lib/node_modules/npm/node_modules/*/package.json")[:60]:
        with open(path) as f:
            found.add(json.load(f)["version"])
    return sorted(found)


def test_npm_matches_node_semver() -> None:
    versions = SEMVER_SPEC + SEMVER_EXTRA + NPM_LOOSE + _npm_package_versions()
    pairs = _all_pairs(versions)
    _check("npm", pairs, _semver_answers(pairs, loose=True))


def test_cargo_matches_strict_semver() -> None:
    """crates.io versions are strict SemVer 2.0 (the ``semver`` crate's rules are the spec's)."""
    versions = SEMVER_SPEC + SEMVER_EXTRA
    pairs = _all_pairs(versions)
    _check("cargo", pairs, _semver_answers(pairs, loose=False))
    for bad in ["v1.0.0", "1.0", "01.0.0", "1.0.0-01", "1.0.0-", "=1.0.0"]:
        with pytest.raises(InvalidVersion, match="cargo"):
            compare("cargo", bad, "1.0.0")


def test_npm_spec_order_and_invalid() -> None:
    for a, b in itertools.pairwise(SEMVER_SPEC):
        assert compare("npm", a, b) == -1
    assert compare("npm", "v1.2.3", "=1.2.3") == 0
    assert compare("npm", "1.0.0+build.1", "1.0.0+build.2") == 0
    for bad in ["1.0", "latest", "1.0.0.0", "9007199254740992.0.0"]:
        with pytest.raises(InvalidVersion, match="npm"):
            compare("npm", bad, "1.0.0")


# --- Go modules (golang.org/x/mod/semver) --------------------------------------------------------

GO_VERSIONS = ["v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20220516162934-403b01795ae8", "v0.1.0",
               "v0.1.1-0.20220101000000-abcdefabcdef", "v0.1.1", "v1", "v1.2", "v1.2.0", "v1.2.3-pre",
               "v1.2.3-pre.1", "v1.2.3", "v1.2.3+meta", "v2.0.0+incompatible", "v2.0.1+incompatible",
               "v2.0.0", "v1.10.0", "v1.9.9", "v0.6.0-dev.0.20220419223038-86c51ed26bb4", "v0.3.8",
               "v0.3.8-0.20220509174342-b4bca84b0361", "v0.1.11-0.20220516163903-1e55371df567"]


def _go_semver_tool() -> Path:
    go = need("go", "golang-go")
    goroot = _run([go, "env", "GOROOT"]).strip()
    source = Path(goroot) / "src/cmd/vendor/golang.org/x/mod/semver/semver.go"
    assert source.exists(), f"{source} missing (the Go sources: apt-get install golang-go)"
    version = _run([go, "env", "GOVERSION"]).strip()
    binary = CACHE / "go" / f"semvercmp-{version}"
    with _locked("go"):
        if not binary.exists():
            build = CACHE / "go" / "src"
            shutil.rmtree(build, ignore_errors=True)
            (build / "semver").mkdir(parents=True)
            shutil.copy(source, build / "semver" / "semver.go")
            (build / "go.mod").write_text("module semvercmp\n\ngo 1.17\n")
            (build / "main.go").write_text(
                'package main\n\nimport (\n\t"bufio"\n\t"fmt"\n\t"os"\n\t"strings"\n\n\t"semvercmp/semver"\n)\n\n'
                "func main() {\n\tin := bufio.NewScanner(os.Stdin)\n\tfor in.Scan() {\n"
                '\t\tp := strings.SplitN(in.Text(), "\\t", 2)\n'
                "\t\tfmt.Println(semver.Compare(p[0], p[1]), semver.IsValid(p[0]) && semver.IsValid(p[1]))\n\t}\n}\n")
            env = dict(os.environ, GOCACHE=str(CACHE / "go" / "cache"), GOPATH=str(CACHE / "go" / "path"),
                       GOPROXY="off", GOFLAGS="-mod=mod", GO111MODULE="on", CGO_ENABLED="0")
            subprocess.run([go, "build", "-o", str(binary), "."], cwd=build, env=env, check=True, timeout=300,
                           capture_output=True)
    return binary


def _modules_txt_versions() -> list[str]:
    """Real module versions: the Go toolchain's vendored modules."""
    goroot = _run([need("go", "golang-go"), "env", "GOROOT"]).strip()
    found = set()
    for path in glob.glob(f"{goroot}/src/**/vendor/modules.txt", recursive=True):
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if line.startswith("# ") and len(parts) >= 3 and parts[2].startswith("v"):
                found.add(parts[2])
    return sorted(found)


def test_golang_matches_x_mod_semver() -> None:
    versions = GO_VERSIONS + _modules_txt_versions()
    pairs = _all_pairs(versions)
    out = _run([str(_go_semver_tool())], "".join(f"{a}\t{b}\n" for a, b in pairs)).splitlines()
    assert all(line.endswith(" true") for line in out), "the test versions are all valid for Go"
    _check("golang", pairs, [int(line.split()[0]) for line in out])


def test_golang_without_v_as_osv_writes_it() -> None:
    assert compare("golang", "0.0.0-20220516162934-403b01795ae8", "v0.0.0-20220516162934-403b01795ae8") == 0
    assert compare("golang", "1.2.3", "v1.2.4") == -1
    assert compare("golang", "v2.0.0+incompatible", "2.0.0") == 0
    for bad in ["(devel)", "v1.02.0", "v1.2-pre", "latest", ""]:
        with pytest.raises(InvalidVersion, match="golang"):
            compare("golang", bad, "v1.0.0")


# --- Maven ---------------------------------------------------------------------------------------

# ComparableVersionTest (Maven 3.8) orders and equalities, and real versions in the wild.
MAVEN_VERSIONS = [
    "1-alpha2snapshot", "1-alpha2", "1-alpha-123", "1-beta-2", "1-beta123", "1-m2", "1-m11", "1-rc", "1-cr2",
    "1-rc123", "1-SNAPSHOT", "1", "1-sp", "1-sp2", "1-sp123", "1-abc", "1-def", "1-pom-1", "1-1-snapshot",
    "1-1", "1-2", "1-123", "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
    "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11", "11", "11.a", "11b",
    "11c", "11m", "1.0", "1.0.0", "1-0", "1a", "1-a", "1.0.0a", "1x", "1.0.0x", "1ga", "1release", "1FINAL",
    "1cr", "1rc", "1a1", "1-alpha-1", "1b2", "1M3", "1-milestone-3", "1.0.0.RELEASE", "5.3.27", "2.0.0.M1",
    "2.0.0-M1", "2.0.0.RC1", "31.1-jre", "31.1-android", "32.0.0-jre", "9.4.51.v20230217", "9.4.9.v20180320",
    "2.12.7.1", "2.12.7", "2.13.4.2", "1.2.3-SNAPSHOT", "1.0-beta-2", "1.0.0-20230101.120000-1", "1.0-1.0",
    "3.0.0-beta2", "10.0.0-M10", "1.7.36", "1.10.19", "0.9.9-RC1", "1.0.0.Final", "1.0.0.CR1", "2.4.0-b180830.0359",
    "1.0.0.0.0.1", "1.0-0.1", "1.0.1-sp1", "1-final-1", "1.0-", "1..0", "123456789012345678901234567890",
    "1.12345678901", "1.1234567890123456789",
]


def _maven_answers(pairs: Sequence[tuple[str, str]]) -> list[int]:
    java = need("java", "default-jre-headless")
    jars = [p for p in ("/usr/share/java/maven3-artifact.jar", "/usr/share/maven/lib/maven-artifact-3.x.jar",
                        *sorted(glob.glob("/usr/share/java/maven-artifact*.jar"))) if os.path.exists(p)]
    if not jars:
        pytest.fail("maven-artifact's jar is missing: apt-get install -y --no-install-recommends libmaven3-core-java")
    args = [v for pair in pairs for v in pair]
    out = _run([java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", jars[0],
                "org.apache.maven.artifact.versioning.ComparableVersion", *args])
    # main() prints "   PREV OP NEXT" for each neighbour: pairs sit at even positions
    ops = [line.split()[1] for line in out.splitlines() if line.startswith("   ")]
    assert len(ops) == len(args) - 1
    return [{"<": -1, "==": 0, ">": 1}[op] for op in ops[::2]]


def test_maven_matches_comparable_version() -> None:
    pairs = _all_pairs(MAVEN_VERSIONS)
    _check("maven", pairs, _maven_answers(pairs))


def test_maven_qualifier_order() -> None:
    ordered = ["1-alpha-1", "1-beta-1", "1-milestone-1", "1-rc-1", "1-SNAPSHOT", "1", "1-sp-1", "1-foo", "1-1", "1.1"]
    for a, b in itertools.pairwise(ordered):
        assert compare("maven", a, b) == -1, (a, b)
    assert compare("maven", "1.0.RELEASE", "1") == compare("maven", "1-ga", "1.0.0") == 0
    assert compare("maven", "1-cr1", "1-rc-1") == 0


# --- RubyGems ------------------------------------------------------------------------------------

GEM_VERSIONS = ["0", "0.0", "1", "1.0", "1.0.0", "1.0.0.0", "1.0.a", "1.0.a.1", "1.0.a1", "1.0.b1", "1.0.rc1",
                "1.0.pre", "1.0-pre", "1.0-1", "1.0.0-beta.1", "1.0.1", "1.1", "1.1.a", "1.a", "1.A", "1.0.0.a.0",
                "1.0.a.0.1", "2.0.0.rc1", "2.0.0", "10.0", "1.9.3.p551", "3.2.22.5", "5.0.0.beta1", "5.0.0.1",
                "1.0.0.pre.rc.1", "1.0.0.pre.rc.2", "0.9.9.9", " 1.0 ", "1.0\n", "1.0.beta", "1.0.Beta"]


def _ruby_answers(pairs: Sequence[tuple[str, str]]) -> list[int]:
    ruby = need("ruby", "ruby")
    script = ('STDIN.each_line { |l| a, b = JSON.parse(l);'
              ' puts((Gem::Version.new(a) <=> Gem::Version.new(b) rescue "E")) }')
    out = _run([ruby, "-rjson", "-e", script], "".join(json.dumps(pair) + "\n" for pair in pairs)).split()
    assert "E" not in out
    return [int(x) for x in out]


def _installed_gem_versions() -> list[str]:
    found = set()
    for path in glob.glob("/usr/lib/ruby/gems/*/specifications/**/*.gemspec", recursive=True) + glob.glob(
            "/usr/share/rubygems-integration/*/specifications/*.gemspec"):
        found.add(Path(path).name.removesuffix(".gemspec").rsplit("-", 1)[-1])
    return sorted(found)


def test_gem_matches_rubygems() -> None:
    versions = GEM_VERSIONS + _installed_gem_versions()
    pairs = _all_pairs(versions)
    _check("gem", pairs, _ruby_answers(pairs))


def test_gem_invalid() -> None:
    for bad in ["", "1.0.", "a1", "1..0", "1.0 beta", "=1.0"]:
        with pytest.raises(InvalidVersion, match="gem"):
            compare("gem", bad, "1.0")


def test_unknown_ecosystem() -> None:
    with pytest.raises(InvalidVersion, match="ecosystem"):
        compare("conda", "1", "2")
    with pytest.raises(InvalidVersion):
        compare("maven", "", "1")
