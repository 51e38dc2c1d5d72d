"""Prediction speed on a CPU with F1 beside it: words per second of each pipeline and of
its bare encoder, on 1 and 2 threads, on the same sentences.

    python benchmarks/speed.py --test corpus/de/test.spacy --sentences 1000 --threads 1,2 \
        --pipelines teacher=training/de/concner_teacher-n1000-s1/model-best,student=training/de/concner-n1000-s1/model-best,student_int8=training/de/concner-n1000-s1/model-best:int8

Each pipeline (NAME=MODEL: a pipeline folder or an installed package) is measured on each
thread count in a process of its own (OMP_NUM_THREADS, MKL_NUM_THREADS and
torch.set_num_threads), on the first --sentences Docs of the test DocBin. NAME=MODEL:int8
loads a transformer student with its encoder's Linear layers in int8, as a user does with
spacy.load(MODEL, config={"components.transformer.model.quantize": True}),
NAME=MODEL:bf16 with its encoder under bfloat16 autocast (TransformerModel.v3 with
bfloat16 = true) and NAME=MODEL:fp32 without; NAME=MODEL:greedy and :viterbi set the
concner component's decoding (after a precision suffix: MODEL:int8:greedy). The rows of
one trained pipeline need no copy of its folder; each record says its decoding.

- pipeline: nlp.pipe over the Docs rebuilt from their words (the test set's tokens, so
  that F1 is on them: spaCy's tokenizer is not timed), in the file's order, not sorted by
  length (what an application sees), batches of the pipeline's nlp.batch_size Docs (or
  --batch-size); one batch first as a
  warm-up, then the best of --repeats passes. F1, P and R: seqeval entity-level micro
  scores of those predictions (spacy_concner.evaluate). What the tokenizer would add is
  reported beside it: its words per second on the Docs' texts.
- encoder, for transformer pipelines: the pipeline's own Hugging Face module called
  directly on the same batches: its Hugging Face tokenizer on the windows the pipeline
  cuts from the Docs (one a sentence on WikiANN), then the module as the pipeline calls
  it (with TransformerModel.v2: rows shortest first, predict_rows at a time, each group
  padded to its longest; in int8 or bfloat16 when the pipeline is), in evaluation mode without
  gradients; best of --repeats passes. The pipeline adds spaCy's side to it: aligning
  word pieces to tokens, pooling them, the softmax, setting the entities.

Writes --results/speed.json and speed.md; a rerun replaces the rows of the pipelines and
thread counts (and batch sizes) it measures. Targets: the default package >= 2,000 words/s on
one thread at >= 95% of its teacher's F1; pipeline time <= 1.2 x its encoder's; the CNN
student >= 20,000 words/s at >= 90% of the teacher's F1. Name the teacher's pipeline
--teacher (default: teacher) for the share of its F1.
"""
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import typer

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEY = ("pipeline", "threads", "batch_size")
# MODEL suffixes: the encoder settings they load a pipeline with
PRECISIONS = {
    ":int8": {"components.transformer.model.quantize": True},
    ":bf16": {"components.transformer.model.@architectures": "spacy_concner.TransformerModel.v3",
              "components.transformer.model.bfloat16": True},
    ":fp32": {"components.transformer.model.@architectures": "spacy_concner.TransformerModel.v3",
              "components.transformer.model.bfloat16": False},
}


def measure(name: str, model: str, threads: int, test: Path, sentences: int,
            batch_size: Optional[int], repeats: int) -> Dict:
    """The record of one pipeline on one thread count; runs in a child process."""
    import torch

    from spacy_concner.decoding import pipeline_decoding
    from spacy_concner.evaluate import evaluate_docs, read_gold_docs

    torch.set_num_threads(threads)
    nlp = load(model)
    batch_size = batch_size or nlp.batch_size
    gold = read_gold_docs(test, nlp)[:sentences]
    evaluate_docs(nlp, gold[:batch_size], batch_size, name, by_length=False)  # warm-up
    runs = [evaluate_docs(nlp, gold, batch_size, name, by_length=False) for _ in range(repeats)]
    best = max(runs, key=lambda run: run["words_per_second"])
    transformer = transformer_model(nlp)
    encoder_wps = None
    if transformer is not None:
        encoder_wps = max(best["n_words"] / encoder_seconds(transformer, gold, batch_size) for _ in range(repeats))
    return {
        "pipeline": name,
        "model": model,
        "threads": torch.get_num_threads(),
        "pipes": nlp.pipe_names,
        # how the entities are read from the tag distributions (concner, or eat's English pipeline)
        "decoding": pipeline_decoding(nlp),
        **encoder_description(transformer),
        "n_sents": len(gold),
        "n_words": best["n_words"],
        "batch_size": batch_size,
        "words_per_second": round(best["words_per_second"], 1),
        "tokenizer_words_per_second": round(tokenizer_words_per_second(nlp, gold), 1),
        "runs_words_per_second": [round(run["words_per_second"], 1) for run in runs],
        "encoder_words_per_second": None if encoder_wps is None else round(encoder_wps, 1),
        # pipeline time / encoder time on the same sentences
        "pipeline_to_encoder": None if encoder_wps is None else round(encoder_wps / best["words_per_second"], 3),
        **{key: round(best[key], 2) for key in ("f1", "precision", "recall")},
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def split_decoding(model: str) -> Tuple[str, Optional[str]]:
    """MODEL without its :greedy or :viterbi suffix, and that decoding (None without)."""
    from spacy_concner.decoding import DECODINGS

    name = model.rsplit(":", 1)[-1]
    return (model[: -len(name) - 1], name) if ":" in model and name in DECODINGS else (model, None)


def split_precision(model: str) -> Tuple[str, Dict]:
    """MODEL without its suffixes, and the config overrides of its :int8, :bf16 or :fp32."""
    model = split_decoding(model)[0]
    for suffix, overrides in PRECISIONS.items():
        if model.endswith(suffix):
            return model[: -len(suffix)], overrides
    return model, {}


def load(model: str):
    """The pipeline of MODEL, with the encoder settings (PRECISIONS) and the decoding of
    its suffixes."""
    from spacy_concner.decoding import pipeline_decoding
    from spacy_concner.loading import load_pipeline

    folder, overrides = split_precision(model)
    nlp = load_pipeline(folder, config=overrides)
    pipeline_decoding(nlp, split_decoding(model)[1])
    return nlp


def check_precision(model: str) -> None:
    """BadParameter for a MODEL:int8, :bf16 or :fp32 whose transformer is not
    spacy_concner.TransformerModel.v2 or v3 (or that has none): spaCy would refuse the
    override at load time, in the middle of the run."""
    from spacy.util import load_config

    from spacy_concner.loading import pipeline_folder
    from spacy_concner.package import CONCNER_ENCODERS, encoder_section

    folder = pipeline_folder(split_precision(model)[0])
    if folder is None:  # not a pipeline: loading it says so
        return
    encoder = encoder_section(load_config(folder / "config.cfg", interpolate=False))
    if encoder.get("@architectures") not in CONCNER_ENCODERS:
        raise typer.BadParameter(f"{model}: {split_decoding(model)[0].rsplit(':', 1)[1]} needs a transformer student "
                                 f"({' or '.join(CONCNER_ENCODERS)}), this pipeline's encoder is "
                                 f"{encoder.get('@architectures') or 'none'}")


def transformer_model(nlp):
    """The model of the pipeline's spacy-transformers component; None without one."""
    if "transformer" not in nlp.pipe_names:
        return None
    model = nlp.get_pipe("transformer").model
    return model if hasattr(model, "transformer") else None


def encoder_description(transformer) -> Dict:
    """The encoder's depth and whether it ran in int8 or bfloat16."""
    from spacy_concner.encoder_forward import runs_bfloat16
    from spacy_concner.int8 import int8_copies

    if transformer is None:
        return {"encoder_layers": None, "int8": None, "bfloat16": None}
    module = transformer.transformer
    return {"encoder_layers": module.config.num_hidden_layers, "int8": bool(int8_copies(module)),
            "bfloat16": runs_bfloat16(module)}


def tokenizer_words_per_second(nlp, docs: List) -> float:
    texts = [doc.text for doc in docs]
    start = time.perf_counter()
    n_words = sum(len(doc) for doc in nlp.tokenizer.pipe(texts))
    return n_words / max(time.perf_counter() - start, 1e-9)


def encoder_seconds(transformer, docs: List, batch_size: int) -> float:
    """Seconds the transformer's Hugging Face tokenizer and module take on the Docs'
    windows, batch by batch, without spaCy."""
    import torch
    from spacy.util import minibatch

    module, tokenizer = transformer.transformer, transformer.tokenizer
    get_spans = transformer.attrs["get_spans"]
    module.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for batch in minibatch(docs, batch_size):
            texts = [span.text for spans in get_spans(batch) for span in spans]
            module(**tokenizer(texts, padding="longest", return_tensors="pt"))
    return time.perf_counter() - start


def run_child(name: str, model: str, threads: int, options: List[str]) -> Dict:
    """measure() in a fresh process with `threads` threads everywhere."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    argv = [sys.executable, __file__, *options, "--child", f"{name}={model}", "--child-threads", str(threads)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {name} on {threads} thread(s) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse_pipelines(value: str) -> List[Tuple[str, str]]:
    """The (NAME, MODEL) pairs of NAME=MODEL,...; MODEL may end in :int8, :bf16 or :fp32."""
    pairs = [item.split("=", 1) for item in value.split(",") if item]
    if not pairs or any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise typer.BadParameter("write NAME=MODEL,NAME=MODEL, e.g. student=training/de/concner-n1000-s1/model-best")
    for _, model in pairs:
        if split_precision(model)[1]:
            check_precision(model)
    return [(name, model) for name, model in pairs]


def markdown(records: List[Dict]) -> str:
    # each record's teacher is the one named in its run (records without: "teacher")
    f1 = {(r["pipeline"], r["threads"]): r["f1"] for r in records}
    commands = list(dict.fromkeys(r["command"] for r in records))
    lines = [
        "# Prediction speed on a CPU",
        "",
        "Words per second of `nlp.pipe` over Docs of the test set's words in the file's order "
        "(`batch` Docs a batch; spaCy's tokenizer not timed: its own words/s beside "
        "it), and of the pipeline's "
        "bare encoder on the same batches (its Hugging Face tokenizer and module, called as "
        "the pipeline calls it); `pipeline / encoder` is the ratio of their times. F1, P, R: "
        "seqeval entity-level micro scores of the pipeline on those sentences; `% of teacher`: "
        "its F1 as a share of the F1 of its run's teacher (`teacher`, the pipeline its run "
        "named with --teacher). Best of the repeated passes. "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores. See "
        "benchmarks/speed.py for what is timed.",
        "",
        "Targets: the default package >= 2,000 words/s on one thread at >= 95% of its "
        "teacher's F1; pipeline time <= 1.2 x its encoder's; the CNN student >= 20,000 "
        "words/s at >= 90% of the teacher's F1.",
        "",
        *(f"    {command}" for command in commands),
        "",
        "| pipeline | threads | batch | encoder | decoding | words/s | encoder words/s | pipeline / encoder | F1 "
        "| teacher | % of teacher | P | R | tokenizer words/s | sentences | words | load avg |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(records, key=lambda r: (r["threads"], r["pipeline"], r["batch_size"])):
        encoder = "none" if r["encoder_layers"] is None else f"{r['encoder_layers']} layers, {precision(r)}"
        teacher = r.get("teacher", "teacher")
        teacher_f1 = f1.get((teacher, r["threads"]))
        share = f"{100 * r['f1'] / teacher_f1:.1f}" if teacher_f1 else "–"
        lines.append(" | ".join([
            f"| {r['pipeline']}", str(r["threads"]), str(r["batch_size"]), encoder, decoding_of(r),
            f"{r['words_per_second']:,.0f}",
            _optional(r["encoder_words_per_second"], "{:,.0f}"), _optional(r["pipeline_to_encoder"], "{:.2f}"),
            f"{r['f1']:.2f}", teacher, share, f"{r['precision']:.2f}", f"{r['recall']:.2f}",
            f"{r['tokenizer_words_per_second']:,.0f}", str(r["n_sents"]), str(r["n_words"]), f"{r['load_avg_1min']} |",
        ]))
    return "\n".join(lines) + "\n"


def decoding_of(record: Dict) -> str:
    """The record's decoding; records made before the components had a choice decoded
    greedily."""
    if "decoding" not in record:
        return "greedy" if {"concner", "eat"} & set(record.get("pipes", [])) else "–"
    return record["decoding"] or "–"


def precision(record: Dict) -> str:
    return "int8" if record["int8"] else "bf16" if record.get("bfloat16") else "fp32"  # no key: before bf16


def _optional(value: Optional[float], fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def main(
    pipelines: str = typer.Option("", help="NAME=MODEL,...: pipeline folders or installed packages; "
                                  "MODEL:int8, :bf16 or :fp32 runs a transformer student's encoder in int8, bfloat16 or float32; "
                                  "a last :greedy or :viterbi sets its decoding"),
    test: Path = typer.Option(Path("corpus/de/test.spacy"), help="DocBin with gold entities"),
    sentences: int = typer.Option(1000, min=1, help="The first N Docs of --test"),
    threads: str = typer.Option("1,2", help="Thread counts, comma separated"),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Docs per nlp.pipe batch [default: the pipeline's nlp.batch_size]"),
    repeats: int = typer.Option(2, min=1, help="Timed passes; the best is kept"),
    teacher: str = typer.Option("teacher", help="The pipeline whose F1 the others are compared to"),
    results: Path = typer.Option(ROOT / "benchmarks" / "results", help="Folder of speed.json and speed.md"),
    child: str = typer.Option("", hidden=True),
    child_threads: int = typer.Option(1, hidden=True),
) -> None:
    """Words per second of pipelines and their encoders on 1 and 2 threads, with F1."""
    if child:
        name, model = child.split("=", 1)
        print(json.dumps(measure(name, model, child_threads, test, sentences, batch_size, repeats)))
        return
    from records import read_records, replaced, write_records

    measured = parse_pipelines(pipelines)
    counts = [int(t) for t in threads.split(",")]
    options = ["--test", str(test), "--sentences", str(sentences), "--repeats", str(repeats)]
    options += ["--batch-size", str(batch_size)] if batch_size else []
    command = "python benchmarks/speed.py " + shlex.join(sys.argv[1:])
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    json_path = results / "speed.json"
    records = read_records(json_path, RECORD_KEY)
    for count in counts:
        for name, model in measured:
            try:
                record = {**run_child(name, model, count, options), "teacher": teacher, "command": command,
                          "date": date}
            except RuntimeError as error:
                typer.echo(str(error), err=True)
                raise typer.Exit(1)
            typer.echo(f"{name}, {count} thread(s): {record['words_per_second']:,.0f} words/s, "
                       f"encoder {_optional(record['encoder_words_per_second'], '{:,.0f}')}, F1 {record['f1']:.2f}")
            records = replaced(records, record, RECORD_KEY)
            write_records(json_path, records, markdown(records))


if __name__ == "__main__":
    typer.run(main)
