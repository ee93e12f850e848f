#!/usr/bin/env bash
# Re-run the studies behind docs/results.md: each spec in docs/results/specs/ into the
# SQLite file of its workload under docs/results/ (a finished study is skipped in
# seconds, so this resumes where it stopped). Usage: scripts/run-results.sh [study ...]
set -u
cd "$(dirname "$0")/.."
source scripts/results-db.sh
GNS=${GNS:-.venv/bin/gns}
ORDER=(mm-alpha mm-fig4-uniform mm-fig4-log digits-raw-alpha digits-raw-fig4 digits-std-alpha digits-std-fig4
       toy2-fig4-paper toy2-fig4-scaled toy2-methods-log mm-methods
       mm-random-methods mm-random-stuck digits-std-search mm-search mm-search-12
       digits-v3-alpha digits-v3-fig4-uniform digits-v3-fig4-log mm-v3-alpha mm-v3-fig4-uniform
       mm-v3-fig4-log mm-v3-methods mm-v3-search digits-v3-methods toy2-v3-fig2 toy10-v3-fig2 digits-v3-search)
studies=("${@:-${ORDER[@]}}")
for study in "${studies[@]}"; do
  db=$(results_db "$study")
  echo "== $study ($(date -u +%H:%M:%S))"
  $GNS launch "docs/results/specs/$study.yaml" --storage "sqlite:///docs/results/$db.db" || echo "!! $study: exit $?"
done
