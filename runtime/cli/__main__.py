"""`python -m runtime.cli`: the netc command line without the console script."""

from runtime.cli import main

main()
