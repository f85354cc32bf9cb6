"""``python -m catbrain ...``: the ``catbrain`` command."""

from catbrain.commands.cli import main

main()
