"""The `python -m spacy_concner` command line: one sub-command per workflow step.

Each command lives beside the concept it drives; this module only gathers them.
"""
import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
