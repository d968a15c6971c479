"""``python -m jobs <stage> ...``: the single entry point (also what spark-submit runs)."""
import sys

from jobs.cli import main

if __name__ == "__main__":
    sys.exit(main())
