"""`python -m appealflow.cli`."""

from appealflow.cli import main

main()
