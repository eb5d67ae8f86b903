#!/usr/bin/env bash
# Plain-crontab route for the weekly cleanup: finds the project from this file's location, uses
# its virtualenv and runs the CRONJOBS job through the runner (history, no overlap, exit code;
# the count goes to customer_cleanup_log.txt). `--dry-run` only shows what it would do.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(cd "$here/../.." && pwd)"
python="$project/.venv/bin/python"
if [ ! -x "$python" ]; then
  echo "clean_inactive_customers.sh: no virtualenv at $project/.venv (run 'make run' or 'make test' there first)" >&2
  exit 2
fi
cd "$project"
if [ "${1:-}" = "--dry-run" ]; then
  exec "$python" manage.py clean_inactive_customers --dry-run
fi
exec "$python" manage.py crontab run clean_inactive_customers
