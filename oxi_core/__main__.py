"""`python -m oxi_core` is the `oxi` command."""

from oxi_core.cli import main

main()
