"""The `python -m spacy_concner` command line: one sub-command per workflow step.

Each command lives beside the concept it drives; this module only gathers them.
"""
import typer

from .corpora import convert_cli
from .annotate import annotate_cli
from .e5 import encoder_app
from .eat.cli import eat_pipeline_cli
from .evaluate import evaluate_cli, plot_cli
from .package import package_cli
from .translate.cli import translate_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("convert")(convert_cli)
app.command("annotate")(annotate_cli)
app.add_typer(encoder_app, name="encoder")
app.command("evaluate")(evaluate_cli)
app.command("plot")(plot_cli)
app.command("package")(package_cli)
app.command("translate")(translate_cli)
app.command("eat-pipeline")(eat_pipeline_cli)
