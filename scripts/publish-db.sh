#!/usr/bin/env bash
# Copy a results database that a driver may still be writing to into docs/results/ for committing:
# a consistent snapshot through SQLite's backup API, taken out of WAL mode, with no -shm/-wal
# files beside it. Usage: scripts/publish-db.sh SOURCE.db docs/results/NAME.db
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SOURCE.db DEST.db" >&2; exit 2; }
[ -f "$1" ] || { echo "$0: no such database $1" >&2; exit 2; }
python3 - "$1" "$2" <<'PY'
import os, sqlite3, sys
source, dest = sys.argv[1:]
aside = dest + ".publishing"
with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader, sqlite3.connect(aside) as copy:
    reader.backup(copy)
    copy.execute("PRAGMA journal_mode=DELETE")
    running = copy.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
os.replace(aside, dest)
print(f"{dest}: copied from {source}" + (f"; {running} Optuna trials RUNNING (in flight when copied)" if running else ""))
PY
