#!/usr/bin/env bash
# The README's test command. Installs what the tests need beyond cargo — Debian's acpica-tools
# (iasl, acpiexec), which check that the exported ACPI tables are real, and util-linux's lsmem
# and lscpu, which read the exported sysfs views — then runs every test of the workspace in
# release mode, where a missing tool fails its test instead of skipping it
# (CELLSIM_REQUIRE_TOOLS). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v iasl >/dev/null 2>&1 || ! command -v acpiexec >/dev/null 2>&1; then
  echo "installing acpica-tools (iasl, acpiexec)..." >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq acpica-tools >/dev/null
fi

if ! command -v lsmem >/dev/null 2>&1 || ! command -v lscpu >/dev/null 2>&1; then
  echo "installing util-linux (lsmem, lscpu)..." >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq util-linux >/dev/null
fi

export CELLSIM_REQUIRE_TOOLS=1
cargo test --workspace --release "$@"
