"""``python -m rlaux`` is ``python -m rlaux.train``."""

from rlaux.train import main

main()
