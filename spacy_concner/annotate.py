"""Teacher annotation of unlabelled target-language text for distillation (ConCNER eq. 9).

`python -m spacy_concner annotate TEACHER UNLABELLED OUT.spacy` runs the teacher over
D_U and writes, per Doc, the teacher's label distribution of every token (soft targets,
`doc.user_data[SOFT_TARGETS_KEY]` with the tags of its columns, for the `concner`
student) and its argmax entities (hard targets, `doc.ents`, for spaCy's `ner`).
A teacher without a `concner` component (EAT's translate-test pipeline, spaCy's `ner`)
gives hard targets only: the `concner` student learns them by cross-entropy, which is
self-training on the teacher's entities. `--min-confidence`, `--keep-empty` and `--seed`
choose the sentences written (mCL-NER's self-training filter, self_training.py).
Chunks of Docs are written atomically into OUT.spacy.parts/ and merged at the end, so
that an interrupted run resumes where it stopped and OUT never holds a partial result.
"""
import json
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import typer
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch
from tqdm import tqdm
from wasabi import msg

from .checksums import DamagedFileError
from .corpora import INPUT_FORMATS, MAX_TOKENS, CorpusError, read_unlabelled
from .evaluate import pipe_by_length
from .entity_pipe import ENT_SCORES_KEY
from .files import ChunkedJob, DocBinError, OutputPathError, check_output_file, write_atomic, write_docbin
from .loading import PipelineError, load_pipeline
from .pipeline import SOFT_TARGETS_KEY, ConcNER
from .self_training import SelfTrainingError, SelfTrainingFilter


class AnnotateError(ValueError):
    """Input that cannot be annotated: the message says what to do."""


def find_concner(nlp: Language) -> Optional[str]:
    """The name of the teacher's `concner` component; None for a teacher whose entities
    alone are the targets (it must have a component that sets them)."""
    names = [name for name, pipe in nlp.pipeline if isinstance(pipe, ConcNER)]
    if len(names) > 1:
        raise AnnotateError(
            f"the teacher must have one concner component, it has {len(names)} "
            f"(pipeline: {nlp.pipe_names}): remove all but one"
        )
    if not names and not any("doc.ents" in nlp.get_pipe_meta(n).assigns for n in nlp.pipe_names):
        raise AnnotateError(
            f"the teacher sets no entities (pipeline: {nlp.pipe_names}): give a pipeline "
            "with a concner, eat or ner component"
        )
    return names[0] if names else None


def annotate_docs(nlp: Language, concner: Optional[str], docs: List[Doc], batch_size: int) -> List[Doc]:
    """The Docs with the teacher's soft targets (a teacher whose `concner` component is
    named `concner`) and entities, with the confidences of a concner or mcl_ner component
    (doc.spans[ENT_SCORES_KEY]). The teacher works on copies, shortest first
    (pipe_by_length), so the annotated Docs carry no encoder output."""
    if concner is None:
        labelled = pipe_by_length(nlp, [doc.copy() for doc in docs], batch_size, "annotate")
        for doc, copy in zip(docs, labelled):
            doc.set_ents([Span(doc, e.start, e.end, e.label_) for e in copy.ents], default="outside")
            if ENT_SCORES_KEY in copy.spans:
                doc.spans[ENT_SCORES_KEY] = copy.spans[ENT_SCORES_KEY].copy(doc)
        return docs
    pipe = nlp.get_pipe(concner)
    upstream = nlp.pipe_names[: nlp.pipe_names.index(concner)]
    with nlp.select_pipes(enable=upstream):
        encoded = pipe_by_length(nlp, [doc.copy() for doc in docs], batch_size, "encode")
    for batch, encoded_batch in zip(minibatch(docs, batch_size), minibatch(encoded, batch_size)):
        probs = pipe.predict(encoded_batch)
        pipe.set_annotations(batch, probs)
        for doc, doc_probs in zip(batch, probs):
            doc.user_data[SOFT_TARGETS_KEY] = {
                "tags": pipe.tags,
                "probs": pipe.model.ops.to_numpy(doc_probs).astype("float32"),
            }
    return docs


def annotate(
    nlp: Language,
    concner: Optional[str],
    docs: List[Doc],
    output: Path,
    fingerprint: Dict,
    selection: SelfTrainingFilter = SelfTrainingFilter(),
    batch_size: int = 64,
    chunk_size: int = 1000,
) -> None:
    """Annotate the Docs in chunks, keep those the selection keeps, write them to
    OUT.parts/ (reused by a rerun with the same fingerprint), then merge them into OUT
    atomically."""
    job = ChunkedJob(output, fingerprint)
    job.start()
    chunks = list(minibatch(docs, chunk_size))
    counts: Counter = Counter()
    progress = tqdm(total=len(docs), unit="sent", desc="annotate", leave=False)
    for index, chunk in enumerate(chunks):
        if not job.is_done(index):
            start = time.perf_counter()
            chunk_counts = write_chunk(annotate_docs(nlp, concner, chunk, batch_size), selection, job, index)
            seconds = time.perf_counter() - start
            progress.write(f"{chunk_log(index, len(chunks), chunk, seconds)}; {selection.describe(chunk_counts)}")
        counts.update(json.loads(job.path(index, ".json").read_text(encoding="utf8")))
        progress.update(len(chunk))
    progress.close()
    merged = job.merge(len(chunks), nlp.vocab)
    n_ents = sum(len(doc.ents) for doc in merged)
    msg.good(f"{output}: {len(merged)} sentences, {n_ents} teacher entities; "
             f"of {len(docs)}: {selection.describe(counts)}")


def write_chunk(docs: List[Doc], selection: SelfTrainingFilter, job: ChunkedJob, index: int) -> Dict[str, int]:
    """Write the kept Docs of an annotated chunk and the counts of the selection's
    verdicts; the DocBin last, as it marks the chunk finished. The confidences are the
    selection's input, not part of the output: they are removed, so that the output of
    an unfiltered run is what it was before the filter existed."""
    kept, counts = selection.apply(docs)
    for doc in kept:
        doc.spans.pop(ENT_SCORES_KEY, None)
    write_atomic(job.path(index, ".json"), json.dumps(counts))
    write_docbin(kept, job.path(index))
    return counts


def chunk_log(index: int, n_chunks: int, chunk: List[Doc], seconds: float) -> str:
    n_words = sum(len(doc) for doc in chunk)
    return (
        f"chunk {index + 1}/{n_chunks}: {len(chunk)} sentences, {n_words} words in "
        f"{seconds:.1f} s ({len(chunk) / seconds:.1f} sents/s, {n_words / seconds:.0f} words/s)"
    )


def run_fingerprint(teacher: str, nlp: Language, concner: Optional[str], unlabelled: Path, options: Dict) -> Dict:
    """What a chunk's content depends on: teacher (its files' times, or an installed
    package's version), input file and options."""
    stat = Path(unlabelled).stat()
    teacher_path = Path(teacher)
    teacher_mtime = None
    if teacher_path.is_dir():
        teacher_mtime = max((f.stat().st_mtime_ns for f in teacher_path.rglob("*")), default=0)
    return {
        "teacher": str(teacher_path.resolve()) if teacher_path.exists() else teacher,
        "teacher_version": nlp.meta.get("version"),
        "teacher_mtime_ns": teacher_mtime,
        "pipeline": nlp.pipe_names,
        "tags": nlp.get_pipe(concner).tags if concner else None,
        "input": str(Path(unlabelled).resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        **options,
    }


def annotate_cli(
    teacher: str = typer.Argument(..., help="Teacher pipeline: folder or installed package"),
    unlabelled: Path = typer.Argument(..., help="DocBin, text (one sentence per line) or CoNLL/WikiANN file"),
    output: Path = typer.Argument(..., help="Output .spacy file (DocBin with soft and hard targets)"),
    batch_size: int = typer.Option(64, min=1, help="Docs per teacher forward pass"),
    gpu_id: int = typer.Option(-1, help="GPU id, -1 for the CPU"),
    input_format: str = typer.Option("auto", "--format", help=f"One of {', '.join(INPUT_FORMATS)}"),
    chunk_size: int = typer.Option(1000, min=1, help="Docs per resumable chunk"),
    max_tokens: int = typer.Option(MAX_TOKENS, min=1, help="Warn about sentences with more tokens (they are labelled all the same)"),
    min_confidence: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Drop the sentences with an entity of lower teacher confidence "
        "(a concner or mcl_ner teacher; mCL-NER: 0.9; 0: no filter)"
    ),
    keep_empty: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Share of the sentences without entities kept (mCL-NER: 0.2)"
    ),
    seed: int = typer.Option(0, help="Seed of the --keep-empty draws, combined with each sentence's pair key"),
) -> None:
    """Label unlabelled target-language text with the teacher's distributions (soft
    targets for the concner student; a concner teacher only) and entities (hard targets,
    for spaCy's ner or the concner student's self-training); optionally keep only the
    sentences whose entities the teacher is confident of, and a share of those without."""
    selection = SelfTrainingFilter(min_confidence, keep_empty, seed)
    try:
        check_output_file(output)
        nlp = load_pipeline(teacher, gpu_id)
        concner = find_concner(nlp)
        selection.check_teacher(nlp)
        docs = read_unlabelled(unlabelled, nlp.vocab, input_format, max_tokens)
        options = {"format": input_format, "chunk_size": chunk_size, "max_tokens": max_tokens,
                   "min_confidence": min_confidence, "keep_empty": keep_empty, "seed": seed}
        fingerprint = run_fingerprint(teacher, nlp, concner, unlabelled, options)
        n_words = sum(len(doc) for doc in docs)
        targets = f"teacher tags {fingerprint['tags']}" if fingerprint["tags"] else "entities only"
        msg.info(f"{unlabelled}: {len(docs)} sentences, {n_words} words; {targets}")
        start = time.perf_counter()
        annotate(nlp, concner, docs, output, fingerprint, selection, batch_size, chunk_size)
    except (AnnotateError, CorpusError, DocBinError, PipelineError, DamagedFileError, OutputPathError) as error:
        msg.fail(str(error), exits=1)
    except SelfTrainingError as error:
        msg.fail(f"{teacher}: {error}", exits=1)
    seconds = time.perf_counter() - start
    msg.text(f"{seconds:.1f} s in all ({n_words / seconds:.0f} words/s, resumed chunks included)")
