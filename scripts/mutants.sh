#!/bin/sh
# Checking power of the checkers, measured: cargo-mutants mutates the hot-plug paths of
# os-model (the CPU, memory and PCI flows and the engine they share) and, for each mutant,
# runs the scenario library as the test — every scenario must still behave (clean ones clean,
# defect ones caught exactly) and every defect scenario must hold on its seeds. A mutant the
# library does not notice is a bug the checkers let through.
#
#   scripts/mutants.sh                 # everything (hours: ~3 min per mutant on 2 cores)
#   scripts/mutants.sh --shard 0/20    # one twentieth, for a job array
#   scripts/mutants.sh --list          # just list the mutants
#
# Extra arguments go to `cargo mutants`. Results land in mutants.out/ (outcomes.json,
# caught.txt, missed.txt, timeout.txt, unviable.txt). Not part of .ci/run: it takes long.
# CELLSIM_DEFECT_SEEDS (default here 2) sets how many seeds the defect sweep runs per
# scenario under each mutant.
set -eu
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "installing cargo-mutants..." >&2
  cargo install --locked cargo-mutants
fi

export CELLSIM_DEFECT_SEEDS="${CELLSIM_DEFECT_SEEDS:-2}"
# One failing scenario kills a mutant: the tests stop at the first failure they find.
export CELLSIM_FIRST_FAILURE=1
exec cargo mutants \
  --package os-model \
  --file 'os-model/src/hotplug/**' \
  --file 'os-model/src/memhotplug/**' \
  --file 'os-model/src/pcihp/**' \
  --file 'os-model/src/ops/**' \
  --test-package scenarios \
  --profile mutants \
  --cargo-test-arg=--test=integration \
  --baseline skip \
  --timeout "${CELLSIM_MUTANT_TIMEOUT:-300}" \
  --build-timeout 900 \
  "$@" \
  -- -- library::every_scenario_in_the_library_behaves defects::every_defect_scenario_holds_on_every_seed
