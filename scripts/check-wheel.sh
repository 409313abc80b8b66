#!/usr/bin/env bash
# A package install starts: build dtr's wheel from a clean copy of the checkout, install it into a
# fresh venv outside the checkout, run `dtr serve` from there (embedded Postgres, temp data_dir)
# until GET /v2/ answers, then stop it. Fails loudly, with dtr's log, on any problem.
# PYTHON: the interpreter that builds the wheel and makes the venv (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PIP=(--disable-pip-version-check -q)
quiet() { "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }  # pip's notes on absent local indexes

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtr-wheel.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "check-wheel: $*" >&2
    if [ -f "$tmp/dtr.log" ]; then echo "--- dtr's log:" >&2; tail -n 60 "$tmp/dtr.log" >&2; fi
    exit 1
}

# A clean copy (tracked and new files, not ignored ones): a stale build/ or egg-info never leaks in.
mkdir "$tmp/src"
git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$tmp/src"
quiet "$PY" -m pip wheel "${PIP[@]}" --no-deps -w "$tmp/dist" "$tmp/src" || fail "building the wheel failed"
wheel=$(echo "$tmp"/dist/dtr-*.whl)
[ -f "$wheel" ] || fail "no wheel in $tmp/dist"

# No --system-site-packages; dependencies come from pip's cache when it has them.
"$PY" -m venv "$tmp/venv"
quiet "$tmp/venv/bin/pip" install "${PIP[@]}" "$wheel" || fail "installing $wheel failed"

# Run from outside the checkout, with nothing pointing back into it.
cd "$tmp"
unset PYTHONPATH PYTHONHOME $(compgen -e | grep '^DTR_' || true)
where=$("$tmp/venv/bin/python" -c 'import dtr; print(dtr.__file__)')
[[ $where == "$tmp/venv/"* ]] || fail "dtr imported from $where, not from the fresh venv"

port=$("$tmp/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/config.yaml" <<EOF
data_dir: $tmp/data
http: {addr: "127.0.0.1:$port", drain_timeout: 5}
log: {format: text}
EOF
"$tmp/venv/bin/dtr" serve --config "$tmp/config.yaml" >"$tmp/dtr.log" 2>&1 &
pid=$!

status=000
for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" && rc=0 || rc=$?; pid=; fail "dtr serve exited with $rc before answering"; }
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/" || true)
    [ "$status" != 000 ] && break
    sleep 0.2
done
case $status in
    200 | 401) ;;
    000) fail "GET /v2/ did not answer within 60 s" ;;
    *) fail "GET /v2/ answered $status (expected 200, or 401 with auth on)" ;;
esac

# The web UI's templates and static files came with the wheel: the login page and its stylesheet.
page=$(curl -s --max-time 10 "http://127.0.0.1:$port/ui/login" || true)
[[ $page == *'name="username"'* ]] || fail "GET /ui/login did not answer the login page (templates missing?)"
css=$(grep -o '/ui/static/[0-9a-f]*/dtr.css' <<<"$page" | head -n1)
[ -n "$css" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port$css")" = 200 ] \
    || fail "the UI's stylesheet ${css:-(no link)} is not served (static files missing?)"

kill -TERM "$pid"
wait "$pid" && rc=0 || rc=$?
pid=
[ "$rc" = 0 ] || fail "dtr serve exited with $rc after SIGTERM"
echo "check-wheel: $(basename "$wheel") installs and serves (GET /v2/: $status; the UI's login page and stylesheet)"
