"""What the benchmarks read from a trained pipeline's config."""
from pathlib import Path

from spacy_concner.package import runs_bfloat16


def encoder_precision(training: Path) -> str:
    """bf16 if the model in a `spacy train` output folder ran its encoder under bfloat16
    (spacy_concner.TransformerModel.v3 with bfloat16 = true), else fp32."""
    return "bf16" if runs_bfloat16((Path(training) / "model-best" / "config.cfg").read_text(encoding="utf8")) else "fp32"
