"""``python -m pipelines`` runs the ``segments`` command."""

from pipelines.cli import main

main()
