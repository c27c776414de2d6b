#!/usr/bin/env bash
# The README's test command. Installs what the tests need beyond cargo — Debian's acpica-tools
# (iasl, acpiexec), which check that the exported ACPI tables are real — then runs every test
# of the workspace in release mode. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v iasl >/dev/null 2>&1 || ! command -v acpiexec >/dev/null 2>&1; then
  echo "installing acpica-tools (iasl, acpiexec)..." >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq acpica-tools >/dev/null
fi

cargo test --workspace --release "$@"
