#!/usr/bin/env bash
# What `make demo` and `make test` need, checked before they build anything: each missing
# program is named with the Debian package that provides it, and the check exits 1, so a run
# without them fails at once instead of half way (the demo used to print 26 `jq: command not
# found` lines and exit 0). .ci/run installs the same packages.
#
# usage: tests/prereqs.sh demo|test
set -uo pipefail
what=${1:?usage: tests/prereqs.sh demo|test}
missing=() packages=()

# need PACKAGE WHAT TEST...: WHAT is missing unless the command TEST... succeeds.
need() {
  local package=$1 what=$2
  shift 2
  if ! "$@" >/dev/null 2>&1; then
    missing+=("$what (Debian package: $package)")
    [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
  fi
}
has() { command -v "$1"; }

# git 2.38 or later: wt-create's checkout and wt-merge's merge-tree --stdin need it.
git_recent() {
  local v
  v=$(git --version 2>/dev/null | awk '{print $3}') || return 1
  [ "$(printf '%s\n2.38\n' "$v" | sort -V | head -n 1)" = 2.38 ]
}

need git "git 2.38 or later" git_recent
need python3 python3 has python3
need bsdutils "script" has script
need make make has make
if ! command -v cargo >/dev/null 2>&1; then
  missing+=("cargo (a Rust toolchain, 1.87 or later: rustup)")
fi
case $what in
  demo)
    need jq jq has jq
    ;;
  test)
    need tmux tmux has tmux
    need python3-venv "python3's venv and ensurepip" python3 -c 'import ensurepip, venv'
    need postgresql "the PostgreSQL server (initdb)" bash -c 'ls /usr/lib/postgresql/*/bin/initdb'
    need postgresql-client psql has psql
    need nodejs node has node
    need npm npm has npm
    need openssh-server "sshd" test -x /usr/sbin/sshd
    need openssh-client "ssh" has ssh
    need openssh-client "ssh-keygen" has ssh-keygen
    need procps "ps" has ps
    need procps "pgrep" has pgrep
    need procps "kill (the program, not the shell's)" bash -c '[ -x /usr/bin/kill ] || [ -x /bin/kill ]'
    need util-linux runuser has runuser
    ;;
  *)
    echo "usage: tests/prereqs.sh demo|test" >&2
    exit 2
    ;;
esac

if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "make $what: missing: $m" >&2; done
  if [ ${#packages[@]} -gt 0 ]; then
    echo "make $what: install them first: sudo apt-get install ${packages[*]}" >&2
  fi
  exit 1
fi
