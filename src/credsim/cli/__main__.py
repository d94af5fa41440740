"""``python -m credsim.cli``: the same as the ``credsim`` console script."""

from credsim.cli import main

main()
