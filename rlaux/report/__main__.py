"""``python -m rlaux.report runs=DIR [key=value ...]``."""

from rlaux.report.cli import main

main()
