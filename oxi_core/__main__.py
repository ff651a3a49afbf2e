"""`python -m oxi_core` is the `oxi` command."""

from oxi_core.console import main

main()
