#!/usr/bin/env bash
# Write the report of each study behind docs/results.md into docs/results/<study>/:
# every figure's CSV and PNG and summary.json (the HTML page, 4 MB with plotly.js
# inlined, is left in reports/<study>/). Usage: scripts/report-results.sh [study ...]
set -u
cd "$(dirname "$0")/.."
source scripts/results-db.sh
GNS=${GNS:-.venv/bin/gns}
DB_DIR=${DB_DIR:-docs/results}  # where the <workload>.db files are
studies=("$@")
[ ${#studies[@]} -gt 0 ] || studies=($(ls docs/results/specs | sed 's/\.yaml$//'))
for study in "${studies[@]}"; do
  db=$(results_db "$study")
  $GNS report "$study" --storage "sqlite:///$DB_DIR/$db.db" --out "reports/$study" > /dev/null || { echo "!! $study: not reported"; continue; }
  mkdir -p "docs/results/$study"
  cp reports/"$study"/*.csv reports/"$study"/summary.json "docs/results/$study/"
  cp reports/"$study"/*.png "docs/results/$study/" 2>/dev/null || true
  echo "$study -> docs/results/$study/"
done
