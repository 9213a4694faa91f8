"""`python -m chaos [OPTIONS]`: the chaos run without the main `aw` CLI."""

import typer

from chaos.cli import chaos_command

if __name__ == "__main__":
    typer.run(chaos_command)
