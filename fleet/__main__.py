"""``python -m fleet bridge`` / ``python -m fleet worker``: settings and logging are set up by each command."""

from fleet.cli import cli

if __name__ == "__main__":
    cli(prog_name="python -m fleet")
