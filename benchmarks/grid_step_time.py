"""Training step time of the word-pair grid head (mcl_ner) vs the token classifier
(concner) on the same batch.

One batch of --n-docs CoNLL-2003 English sentences (consecutive ones paired by key, so
that both components' sentence-level contrast runs), configs/concner.cfg and
configs/mcl_ner.cfg with the given encoder and frozen_layers = 4, torch on --threads
threads. Each pipeline does one warm-up step (it also fills the frozen-layer cache), then
the two take turns for --steps steps each: forward, backward and update of
`nlp.update`. Reported: the mean step time of each and their ratio. Target: the grid
step takes at most 1.5 x the token classifier's.

    python benchmarks/grid_step_time.py --encoder assets/encoders/e5-small --steps 5
"""
import json
import statistics
import sys
from pathlib import Path

import spacy
import torch
import typer

from data_dir import DATA_DIR, corpus_file
from loss_overhead import batch_of_pairs, take_turns, trainer

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
DEFAULT_SOURCE = "conll2003/en/eng.train in the data folder ($SPACY_CONCNER_DATA, default assets/data)"
SYSTEMS = {"token classifier (concner)": "concner.cfg", "word-pair grid (mcl_ner)": "mcl_ner.cfg"}


def main(
    encoder: Path = typer.Option(ROOT / "assets" / "encoders" / "e5-small", help="HF folder"),
    data: Path = typer.Option(None, help="CoNLL-2003 English train file [default: conll2003/en/eng.train in the data folder]"),
    n_docs: int = typer.Option(32, help="Sentences per batch"),
    steps: int = typer.Option(5, min=1, help="Timed steps per system, after a warm-up step"),
    threads: int = typer.Option(1, min=1, help="torch threads"),
    frozen_layers: int = typer.Option(4, min=0),
    seed: int = typer.Option(1),
    output: Path = typer.Option(ROOT / "benchmarks" / "results" / "grid_step_time"),
):
    torch.set_num_threads(threads)
    examples = batch_of_pairs(spacy.blank("xx"), data or corpus_file(DATA_DIR, "conll2003/en/eng.train"), n_docs, seed)
    overrides = {"paths.encoder": str(encoder), "components.transformer.model.frozen_layers": frozen_layers}
    step_functions = {name: trainer(config, overrides, examples) for name, config in SYSTEMS.items()}
    runs, loss_runs = take_turns(step_functions, steps)
    means = {name: statistics.mean(seconds) for name, seconds in runs.items()}
    token, grid = (means[name] for name in SYSTEMS)
    ratio = grid / token
    lengths = [len(eg.reference) for eg in examples]
    result = {
        "command": "python benchmarks/grid_step_time.py " + " ".join(sys.argv[1:]),
        "encoder": encoder.name,
        "n_docs": n_docs,
        "n_words": sum(lengths),
        "max_words": max(lengths),
        "frozen_layers": frozen_layers,
        "torch_threads": torch.get_num_threads(),
        "step_seconds": runs,
        "mean_step_seconds": means,
        "get_loss_seconds": loss_runs,
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "".join(
        f"| {name} | {means[name]:.3f} | {statistics.mean(loss_runs[name]):.3f} |\n" for name in SYSTEMS
    )
    output.with_suffix(".md").write_text(
        "# Training step time: word-pair grid vs token classifier\n\n"
        f"Command: `{result['command']}`\n\n"
        f"One `nlp.update` (forward, backward, update) on {n_docs} CoNLL-2003 English sentences "
        f"({result['n_words']} words, the longest {result['max_words']}), encoder {encoder.name}, "
        f"frozen_layers = {frozen_layers}, torch {result['torch_threads']} thread(s); mean of {steps} "
        "steps each after a warm-up step, the two systems taking turns. Sentences: a sample "
        f"(seed {seed}) of {data.name if data else DEFAULT_SOURCE}.\n\n"
        "| system | mean step (s) | of which get_loss (s) |\n|---|---|---|\n"
        f"{rows}\n"
        f"Grid / token classifier: {ratio:.2f} (target: at most {TARGET_RATIO}).\n"
    )
    print(json.dumps({"mean_step_seconds": means, "ratio": ratio}))


if __name__ == "__main__":
    typer.run(main)
