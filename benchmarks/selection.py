"""Recipe selection on the English dev set only (zero-shot: no target-language data is
looked at): frozen layers K, learn rate and epochs of configs/concner.cfg.

    python benchmarks/selection.py --runs en:6:1e-4:30,en:0:1e-4:30 --jobs 2

A run SYSTEM:K:LR:EPOCHS[:VARIANT] trains `spacy train configs/concner.cfg` on the N = 1000
sample of the source (--source conll2003-en or wikiann-en, seed --seed) with
frozen_layers K, the encoder's peak learn rate LR (warm-up over 10% of the steps,
linear decay to 0), the VARIANT's overrides (VARIANTS: the configs'
recipe by default) and EPOCHS epochs of 32 steps (1,000 sentences or pairs in batches
of 32), evaluated on English dev every epoch. SYSTEM en is CE on English only (beta = 0);
teacher is ConCNER (CE + LCL + TCL) with the translation into --lang. The corpora are
those of `spacy project run` (sample, translate, convert-dev) with the benchmark's vars.
Resumable: a run whose record exists is skipped. Runs go --jobs at a time, one torch
thread each. Writes benchmarks/results/selection.{json,md} and every run's dev curve to
benchmarks/results/curves/selection/NAME.jsonl.
"""
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import typer

from spacy_concner.tables import markdown_table
from records import read_records, replaced, write_records
from trained_pipeline import encoder_precision

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEPS_PER_EPOCH = 32  # ceil(1000 / 32) batches of 32 sentences or pairs
LOCK = threading.Lock()
RECORD_KEY = ("name",)
# recipes compared with the configs' own (config overrides)
VARIANTS = {
    "default": {},
    "zero-softmax": {"components.concner.model.@architectures": "spacy_concner.TokenClassifier.v1"},
    "mean-pooling": {"components.concner.model.tok2vec.pooling.@layers": "reduce_mean.v1"},
    "zero-softmax-mean-pooling": {
        "components.concner.model.@architectures": "spacy_concner.TokenClassifier.v1",
        "components.concner.model.tok2vec.pooling.@layers": "reduce_mean.v1",
    },
    # levers of the contrastive losses (teacher runs)
    "projection-128": {
        "components.concner.model.@architectures": "spacy_concner.TokenClassifier.v3",
        "components.concner.model.projection_width": "128",
    },
    "ce-1": {"components.concner.alpha": "1.0"},
    "temperature-0.5": {
        "components.concner.label_loss.temperature": "0.5",
        "components.concner.translation_loss.temperature": "0.5",
    },
    # the encoder's precision on a CPU: bfloat16 autocast (the configs' default since it
    # was measured here) or float32 (the default before)
    "bfloat16": {"components.transformer.model.bfloat16": "true"},
    "float32": {"components.transformer.model.bfloat16": "false"},
    # a lever measured again in bf16, against the bfloat16 rows
    "bfloat16-temperature-0.5": {
        "components.transformer.model.bfloat16": "true",
        "components.concner.label_loss.temperature": "0.5",
        "components.concner.translation_loss.temperature": "0.5",
    },
}


def parse(spec: str):
    """SYSTEM:K:LR:EPOCHS[:VARIANT]"""
    system, k, lr, epochs, *variant = spec.split(":")
    variant = variant[0] if variant else "default"
    if variant not in VARIANTS:
        raise typer.BadParameter(f"unknown variant {variant!r} in {spec!r}: one of {', '.join(VARIANTS)}")
    return system, k, lr, epochs, variant


def run_name(spec: str, source: str, lang: str, seed: int) -> str:
    system, k, lr, epochs, variant = parse(spec)
    data = source if system == "en" else f"{source}-{lang}"
    suffix = "" if variant == "default" else f"-{variant}"
    return f"{system}-{data}-s{seed}-k{k}-lr{lr}-e{epochs}{suffix}"


def train_command(spec: str, name: str, source: str, lang: str, seed: int) -> List[str]:
    system, k, lr, epochs, variant = parse(spec)
    command = [
        sys.executable, "-m", "spacy", "train", "configs/concner.cfg",
        "--output", f"training/selection/{name}",
        "--paths.train", f"corpus/{source}/train-n1000-s{seed}.spacy",
        "--paths.dev", f"corpus/{source}/dev-1000.spacy",
        "--paths.curve", f"benchmarks/results/curves/selection/{name}.jsonl",
        "--components.transformer.model.frozen_layers", k,
        "--training.optimizer.learn_rate.initial_rate", lr,
        "--training.max_steps", str(int(epochs) * STEPS_PER_EPOCH),
        "--training.eval_frequency", str(STEPS_PER_EPOCH),
        "--system.seed", str(seed),
    ]
    for key, value in VARIANTS[variant].items():
        command += [f"--{key}", value]
    if system == "en":
        command += ["--components.concner.beta", "0"]
    elif system == "teacher":
        command += ["--paths.translation", f"corpus/{lang}/trans-n1000-s{seed}.spacy"]
    else:
        raise typer.BadParameter(f"unknown system {system!r} in {spec!r}: en or teacher")
    return command


def record(spec: str, name: str, curve_path: Path, training: Path) -> Dict:
    system, k, lr, epochs, variant = parse(spec)
    curve = [json.loads(line) for line in curve_path.read_text().splitlines()]
    best = max(curve, key=lambda point: point["score"])
    return {
        "name": name,
        "system": system,
        "variant": variant,
        "frozen_layers": int(k),
        "learn_rate": float(lr),
        "epochs": int(epochs),
        "best_dev_f1": best["score"],
        "best_epoch": round(best["step"] / STEPS_PER_EPOCH, 1),
        "last_dev_f1": curve[-1]["score"],
        "minutes": round(curve[-1]["seconds"] / 60, 1),
        "dev_f1_by_epoch": [point["score"] for point in curve],
        "encoder_precision": encoder_precision(training),
    }


def run(spec: str, source: str, lang: str, seed: int, json_path: Path) -> None:
    name = run_name(spec, source, lang, seed)
    if any(r["name"] == name for r in read_records(json_path, RECORD_KEY)):
        print(f"{name}: recorded before, skipped", flush=True)
        return
    log = ROOT / "training" / "selection" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print(f"{name}: training, output in {log}", flush=True)
    with open(log, "w") as output:
        subprocess.run(train_command(spec, name, source, lang, seed), cwd=ROOT, env=env,
                       stdout=output, stderr=subprocess.STDOUT, check=True)
    result = record(spec, name, RESULTS / "curves" / "selection" / f"{name}.jsonl", ROOT / "training" / "selection" / name)
    with LOCK:
        records = replaced(read_records(json_path, RECORD_KEY), result, RECORD_KEY)
        write_records(json_path, records, markdown(records))
    print(f"{name}: best English dev F1 {result['best_dev_f1']} at epoch {result['best_epoch']}, "
          f"{result['minutes']} min", flush=True)


def markdown(records: List[Dict]) -> str:
    columns = ["name", "variant", "encoder_precision", "frozen_layers", "learn_rate", "epochs",
               "best_dev_f1", "best_epoch", "last_dev_f1", "minutes"]
    # records from before the bfloat16 option name no precision: fp32 but for that variant
    records = [{"encoder_precision": "bf16" if r["variant"] == "bfloat16" else "fp32", **r} for r in records]
    order = sorted(records, key=lambda r: (r["variant"] != "default", r["epochs"], r["frozen_layers"], r["learn_rate"]))
    intro = (
        "# Recipe selection on English dev (F1, 0-100)\n\n"
        "Written by benchmarks/selection.py: configs/concner.cfg on the N = 1000 English "
        "sample; learn rate = the encoder's peak (softmax layer 10x), 10% warm-up then "
        "linear decay to 0; 32 steps an epoch, dev F1 after every epoch; minutes of "
        "training and evaluation on one CPU thread, two runs at a time on 2 cores. "
        "Variants: default = the configs (TokenClassifier.v2: random softmax weights, "
        "first-piece token vectors); zero-softmax = TokenClassifier.v1; mean-pooling = "
        "mean of a token's pieces; projection-128 = TokenClassifier.v3, LCL and TCL on a "
        "128-wide projection head; ce-1 = the cross-entropy weight alpha 1.0 instead of 0.5; "
        "temperature-0.5 = LCL's and TCL's temperature 0.5 instead of 0.1; bfloat16 and "
        "float32 = the encoder's precision on the CPU (encoder_precision: the configs' "
        "default was fp32 until the bfloat16 rows were measured, bf16 since); "
        "bfloat16-temperature-0.5 = both. Names: "
        "SYSTEM-DATA-sSEED-kK-lrLR-eEPOCHS-VARIANT, where DATA of a teacher run ends in its "
        "translation's language. Dev curves: curves/selection/.\n\n"
    )
    return intro + markdown_table(columns, ([r[c] for c in columns] for r in order), align="ll" + "r" * 8)


def main(
    runs: str = typer.Option(..., help="SYSTEM:K:LR:EPOCHS, comma separated"),
    source: str = typer.Option("conll2003-en", help="conll2003-en or wikiann-en"),
    lang: str = typer.Option("es", help="Translation language of the teacher runs"),
    seed: int = typer.Option(1, help="Sample seed (and training seed)"),
    jobs: int = typer.Option(2, min=1, help="Runs at a time"),
) -> None:
    json_path = RESULTS / "selection.json"
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run, spec, source, lang, seed, json_path) for spec in runs.split(",")]
        for future in futures:
            future.result()


if __name__ == "__main__":
    typer.run(main)
