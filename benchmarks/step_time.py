"""Seconds per training step of the ConCNER teacher: frozen layers K, torch threads,
length-grouped batches and the encoder's precision.

    python benchmarks/step_time.py --steps 8 --settings 0:1:8,6:1:8,6:2:8,6:1:1,4:1:8:bf16

Each setting K:THREADS:SORT_WINDOW[:PRECISION] runs in its own process: configs/concner.cfg
with --components.transformer.model.frozen_layers K, the batcher's sort_window and,
for PRECISION bf16, --components.transformer.model.bfloat16 true (fp32 by default), on the
N = 1000 CoNLL English sample and its Spanish translation (`spacy project run sample`
and `translate` with the benchmark's es vars make them). The same first --steps batches
of a shuffled epoch are trained twice: the first pass fills the frozen-layer cache
(cold), the second reads it (warm, the cost of every later epoch). Also reported: the
share of padded word pieces in those batches. Run it on an otherwise idle machine.
Writes benchmarks/results/step_time.{json,md}, replacing the records of the settings run.
"""
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import typer

from records import read_records, replaced, write_records

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def measure(setting: str, steps: int, paths: Dict[str, str]) -> Dict:
    """Train `steps` batches twice under one setting; runs in a child process."""
    frozen, threads, sort_window, precision = parse_setting(setting)
    import torch
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config, registry, resolve_dot_names

    torch.set_num_threads(threads)
    overrides = {f"paths.{k}": v for k, v in paths.items()}
    overrides["components.transformer.model.frozen_layers"] = frozen
    overrides["training.batcher.sort_window"] = sort_window
    overrides["components.transformer.model.bfloat16"] = precision == "bf16"
    config = load_config(ROOT / "configs" / "concner.cfg", overrides=overrides, interpolate=False)
    nlp = init_nlp(config)
    training = registry.resolve(config.interpolate()["training"])
    (corpus,) = resolve_dot_names(config.interpolate(), [training["train_corpus"]])
    examples = list(corpus(nlp))
    random.seed(1)
    random.shuffle(examples)
    batches = list(training["batcher"](examples))[:steps]
    optimizer = training["optimizer"]
    passes = []
    for _ in range(2):
        seconds = []
        for batch in batches:
            start = time.perf_counter()
            nlp.update(batch, sgd=optimizer, drop=training["dropout"])
            seconds.append(time.perf_counter() - start)
        passes.append(seconds)
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    return {
        "frozen_layers": frozen,
        "threads": threads,
        "sort_window": sort_window,
        "precision": precision,
        "steps": len(batches),
        "docs_per_step": round(statistics.mean(len(b) for b in batches), 1),
        "cold_s_per_step": round(statistics.mean(passes[0]), 3),
        "warm_s_per_step": round(statistics.mean(passes[1]), 3),
        "padded_share": round(padded_share(tokenizer, batches), 3),
    }


KEY = ("frozen_layers", "threads", "sort_window", "precision")


def parse_setting(setting: str):
    """K:THREADS:SORT_WINDOW[:PRECISION] -> (K, THREADS, SORT_WINDOW, fp32 or bf16)"""
    frozen, threads, sort_window, *precision = setting.split(":")
    precision = precision[0] if precision else "fp32"
    if precision not in ("fp32", "bf16"):
        raise typer.BadParameter(f"{setting}: the precision is fp32 or bf16")
    return int(frozen), int(threads), int(sort_window), precision


def padded_share(tokenizer, batches: List) -> float:
    """Share of the batches' word-piece slots that are padding."""
    real = total = 0
    for batch in batches:
        lengths = [len(ids) for ids in tokenizer([eg.predicted.text for eg in batch])["input_ids"]]
        real += sum(lengths)
        total += len(lengths) * max(lengths)
    return 1 - real / total


def markdown(records: List[Dict]) -> str:
    columns = list(records[0])
    lines = [
        "# Seconds per teacher training step",
        "",
        "configs/concner.cfg (e5-small, 12 layers; 32 pairs per step) on the N = 1000 CoNLL "
        "English sample and its Spanish translation; cold = the first pass over the batches "
        "(frozen-layer cache filling), warm = the second (every later epoch). "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores.",
        "",
        "    python benchmarks/step_time.py --steps 8 --settings "
        + ",".join(":".join(str(r[k]) for k in KEY) for r in records),
        "",
        "| " + " | ".join(columns) + " |",
        "|" + " ---: |" * len(columns),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in records]
    base = next((r for r in records if r["frozen_layers"] == 0 and r["threads"] == 1), None)
    if base:
        lines += ["", "Warm step time relative to K = 0 (1 thread, same sort window):", ""]
        for r in records:
            same = next((b for b in records if b["frozen_layers"] == 0 and b["threads"] == r["threads"]
                         and b["sort_window"] == r["sort_window"] and b["precision"] == r["precision"]), None)
            if same and r is not same:
                lines.append(f"- K = {r['frozen_layers']}, {r['threads']} thread(s), sort_window "
                             f"{r['sort_window']}, {r['precision']}: {r['warm_s_per_step'] / same['warm_s_per_step']:.2f}")
    pairs = [(r, f) for r in records if r["precision"] == "bf16" for f in records
             if f["precision"] == "fp32" and all(f[k] == r[k] for k in KEY[:3])]
    if pairs:
        lines += ["", "bf16 relative to fp32 (same K, threads and sort window), cold and warm:", ""]
        lines += [f"- K = {r['frozen_layers']}, {r['threads']} thread(s), sort_window {r['sort_window']}: "
                  f"{r['cold_s_per_step'] / f['cold_s_per_step']:.2f}, {r['warm_s_per_step'] / f['warm_s_per_step']:.2f}"
                  for r, f in pairs]
    return "\n".join(lines) + "\n"


def main(
    settings: str = typer.Option("0:1:8,6:1:8", help="K:THREADS:SORT_WINDOW[:fp32|bf16], comma separated"),
    steps: int = typer.Option(8, min=1, help="Batches per pass"),
    train: str = typer.Option("corpus/conll2003-en/train-n1000-s1.spacy"),
    translation: str = typer.Option("corpus/es/trans-n1000-s1.spacy"),
    dev: str = typer.Option("corpus/conll2003-en/dev-1000.spacy"),
    encoder: str = typer.Option("assets/encoders/e5-small"),
    child: str = typer.Option("", hidden=True),
) -> None:
    paths = {"train": train, "translation": translation, "dev": dev, "encoder": encoder}
    if child:
        print(json.dumps(measure(child, steps, paths)))
        return
    json_path = RESULTS / "step_time.json"
    records = read_records(json_path, KEY)
    for setting in settings.split(","):
        threads = str(parse_setting(setting)[1])
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        argv = [sys.executable, __file__, "--child", setting, "--steps", str(steps), "--train", train,
                "--translation", translation, "--dev", dev, "--encoder", encoder]
        output = subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        result = json.loads(output.stdout.strip().splitlines()[-1])
        print(result, flush=True)
        records = replaced(records, result, KEY)
        write_records(json_path, records, markdown(records))


if __name__ == "__main__":
    typer.run(main)
