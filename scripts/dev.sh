#!/usr/bin/env bash
# One entry point for a fresh Debian machine (or CI): sets up .venv and runs a job.
#   scripts/dev.sh demo [STACK]   render and validate a reference stack (default: eks-t4)
#   scripts/dev.sh test           run the whole test suite
#   scripts/dev.sh bench          print the benchmark figures
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REFERENCE="$ROOT/../shared/reference"

apt_install() {  # install Debian packages when root and missing; tests that need them skip otherwise
    [ "$(id -u)" = 0 ] || return 0
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} = 0 ] && return 0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Debian packages the tests use (real validators and servers); one a line.
APT_PACKAGES=(
    python3-venv
    etcd-server  # real etcd for the snapshot/restore test
    etcd-client
    e2fsprogs   # chattr: makes a directory unwritable for root in the output-directory tests
    debootstrap  # builds the Debian 12 test hosts the Ansible roles converge (tests/test_converge.py)
    systemd-container  # systemd-nspawn boots them so containerd really starts
    prometheus               # promtool (rule checks and unit tests) and the server for the alert test
    prometheus-alertmanager  # amtool check-config
)

setup() {
    apt_install "${APT_PACKAGES[@]}"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    [ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q --disable-pip-version-check uv==0.13.8
    .venv/bin/uv pip install -q --python .venv/bin/python -e '.[test]'
}

reference_flags() {
    [ -d "$REFERENCE" ] && echo "--crds $REFERENCE/crds --chart-values $REFERENCE/charts"
}

case "${1:-}" in
    demo)
        setup
        stack=${2:-eks-t4}
        .venv/bin/gpucluster render --stack "$stack"
        # shellcheck disable=SC2046
        .venv/bin/gpucluster validate --stack "$stack" $(reference_flags)
        ;;
    test)
        setup
        .venv/bin/python -m pytest -q
        ;;
    bench)
        setup
        .venv/bin/python benchmarks/run.py
        ;;
    *)
        echo "usage: scripts/dev.sh demo [STACK] | test | bench" >&2
        exit 2
        ;;
esac
