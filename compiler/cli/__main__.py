"""`python -m compiler.cli`: the netc command line without the console script."""

from compiler.cli import main

main()
