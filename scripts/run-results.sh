#!/usr/bin/env bash
# Re-run the studies behind docs/results.md: each spec in docs/results/specs/ into the
# SQLite file of its workload under docs/results/ (a finished study is skipped in
# seconds, so this resumes where it stopped). Usage: scripts/run-results.sh [study ...]
set -u
cd "$(dirname "$0")/.."
GNS=${GNS:-.venv/bin/gns}
ORDER=(mm-alpha mm-fig4-uniform mm-fig4-log digits-raw-alpha digits-raw-fig4 digits-std-alpha digits-std-fig4
       toy2-fig4-paper toy2-fig4-scaled toy2-methods-log mm-methods
       mm-random-methods mm-random-stuck digits-std-search mm-search mm-search-12
       digits-v3-alpha digits-v3-fig4-uniform digits-v3-fig4-log mm-v3-alpha mm-v3-fig4-uniform
       mm-v3-fig4-log mm-v3-methods mm-v3-search digits-v3-methods toy2-v3-fig2 toy10-v3-fig2 digits-v3-search)
studies=("${@:-${ORDER[@]}}")
for study in "${studies[@]}"; do
  case $study in
    mm-v3-alpha|mm-v3-fig4-uniform) db=multimnist-v3 ;;  # results v3 (best validation step): databases of their own
    mm-v3-*) db=multimnist-v3b ;;  # trained at 7d4764f (per-run convolutions, checkpoints): mm-v3-alpha copied in
    digits-v3-*) db=digits-v3 ;;
    toy*-v3-*) db=toy-v3 ;;
    mm-*) db=multimnist ;;
    digits-*) db=digits ;;
    *) db=toy ;;
  esac
  echo "== $study ($(date -u +%H:%M:%S))"
  $GNS launch "docs/results/specs/$study.yaml" --storage "sqlite:///docs/results/$db.db" || echo "!! $study: exit $?"
done
