"""What the benchmarks read from a trained pipeline's config."""
from pathlib import Path


def encoder_precision(training: Path) -> str:
    """bf16 if the model in a `spacy train` output folder ran its encoder under bfloat16
    (spacy_concner.TransformerModel.v3 with bfloat16 = true), else fp32."""
    from spacy.util import load_config

    config = load_config(Path(training) / "model-best" / "config.cfg", interpolate=False)
    encoder = config["components"].get("transformer", {}).get("model", {})
    return "bf16" if encoder.get("bfloat16") else "fp32"
