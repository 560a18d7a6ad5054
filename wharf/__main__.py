"""`python -m wharf` runs the `wharf` command."""

from wharf.cli import main

main()
