"""Step time of CE-only vs CE + LCL + TCL training on the same batch.

One batch of 64 Docs (32 CoNLL-2003 English sentences and 32 partner Docs, paired by
key), the teacher config (configs/concner.cfg) with the given encoder, torch on one
thread. The two settings take turns, step by step, so that a change in machine load
hits both; the result is the median over --repeats `nlp.update` calls after a warm-up. Target: the contrastive losses add at most 10%.

    python benchmarks/loss_overhead.py --encoder assets/encoders/e5-small
"""
import json
import statistics
import time
from pathlib import Path

import spacy
import torch
import typer
from spacy.training import Example
from spacy.util import fix_random_seed, load_config, load_model_from_config

from data_dir import DATA_DIR, corpus_file
from spacy_concner.corpora import read_docs
from spacy_concner.pairs import PAIR_KEY

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = corpus_file(DATA_DIR, "conll2003/en/eng.train")


def batch_of_pairs(nlp, data: Path, n_docs: int, seed: int):
    """n_docs sampled English sentences, consecutive ones given the same pair key
    (the losses' cost depends on the shapes, not on the language)."""
    docs = read_docs(data, nlp.vocab, n_sents=n_docs, seed=seed)
    for i, doc in enumerate(docs):
        doc.user_data[PAIR_KEY] = f"bench:{i // 2}"
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


def trainer(config_name: str, overrides: dict, examples):
    """A fresh pipeline from configs/<config_name> with the overrides, initialised on the
    examples, and a function doing one training step on them (its last component's
    get_loss timed too)."""
    # interpolated: create_optimizer reads the schedule's ${training.max_steps}
    config = load_config(ROOT / "configs" / config_name, overrides=overrides, interpolate=True)
    fix_random_seed(0)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    nlp.initialize(lambda: examples)
    optimizer = nlp.create_optimizer()
    component = nlp.get_pipe(nlp.pipe_names[-1])
    get_loss = component.get_loss
    loss_seconds = []

    def timed_get_loss(*args):
        start = time.perf_counter()
        result = get_loss(*args)
        loss_seconds.append(time.perf_counter() - start)
        return result

    component.get_loss = timed_get_loss

    def step():
        """Seconds of one update, and of its get_loss call."""
        start = time.perf_counter()
        nlp.update(examples, sgd=optimizer)
        return time.perf_counter() - start, loss_seconds[-1]

    step()  # warm-up
    return step


def take_turns(steps: dict, repeats: int):
    """Seconds of each named step function's steps and get_loss calls, {name: [...]}
    each: the steps take turns, so that a change in machine load hits all of them."""
    runs = {name: [] for name in steps}
    loss_runs = {name: [] for name in steps}
    for repeat in range(repeats):
        for name, step in steps.items():
            step_seconds, loss_seconds = step()
            runs[name].append(step_seconds)
            loss_runs[name].append(loss_seconds)
        print(f"step {repeat + 1}/{repeats}: " + ", ".join(f"{n} {s[-1]:.2f} s" for n, s in runs.items()), flush=True)
    return runs, loss_runs


def main(
    encoder: Path = typer.Option(ROOT / "assets" / "encoders" / "e5-small", help="HF folder"),
    data: Path = typer.Option(DEFAULT_DATA, help="CoNLL-2003 English train file"),
    n_docs: int = typer.Option(64, help="Docs per batch (pairs x 2)"),
    repeats: int = typer.Option(7),
    seed: int = typer.Option(1),
    output: Path = typer.Option(ROOT / "benchmarks" / "results" / "loss_overhead"),
):
    torch.set_num_threads(1)
    examples = batch_of_pairs(spacy.blank("xx"), data, n_docs, seed)
    steps = {
        name: trainer("concner.cfg", {"paths.encoder": str(encoder), "components.concner.beta": beta}, examples)
        for name, beta in [("ce_only", 0.0), ("ce_lcl_tcl", 0.25)]
    }
    runs, loss_runs = take_turns(steps, repeats)
    medians = {name: statistics.median(s) for name, s in runs.items()}
    loss_medians = {name: statistics.median(s) for name, s in loss_runs.items()}
    overhead = medians["ce_lcl_tcl"] / medians["ce_only"] - 1
    result = {
        "encoder": str(encoder),
        "n_docs": n_docs,
        "n_tokens": sum(len(eg.reference) for eg in examples),
        "torch_threads": torch.get_num_threads(),
        "step_seconds": runs,
        "median_step_seconds": medians,
        "get_loss_seconds": loss_runs,
        "median_get_loss_seconds": loss_medians,
        "overhead": round(overhead, 4),
        "target_overhead": 0.10,
        "meets_target": overhead <= 0.10,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    output.with_suffix(".md").write_text(
        "# Loss overhead: CE only vs CE + LCL + TCL\n\n"
        f"Command: `python benchmarks/loss_overhead.py --encoder {encoder}`\n\n"
        f"One `nlp.update` on {n_docs} Docs ({result['n_tokens']} tokens), torch 1 thread, "
        f"median of {repeats} steps after a warm-up.\n\n"
        "| loss | median step (s) | of which get_loss (s) |\n|---|---|---|\n"
        f"| CE only (beta = 0) | {medians['ce_only']:.3f} | {loss_medians['ce_only']:.3f} |\n"
        f"| CE + LCL + TCL (beta = 0.25) | {medians['ce_lcl_tcl']:.3f} "
        f"| {loss_medians['ce_lcl_tcl']:.3f} |\n\n"
        f"Overhead: {overhead:+.1%} (target: at most +10%).\n"
    )
    print(json.dumps({"median_step_seconds": medians, "overhead": overhead}))


if __name__ == "__main__":
    typer.run(main)
