"""Teacher annotation (`annotate`), then both students trained on it with plain `spacy train`."""
import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import Doc, DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry, resolve_dot_names
from typer.testing import CliRunner

from spacy_concner import annotate
from spacy_concner.cli import app
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.pipeline import SOFT_TARGETS_KEY

from conftest import PERSONS, PLACES, said, synthetic_pairs, tiny_encoder
from test_mcl_ner import cell_confidences
from test_pipeline import CONFIGS, token_confidences

SENTENCES = [" ".join(tr) for _, _, tr, _ in synthetic_pairs(10, seed=3)]
RECORDED_LOSSES = []


@registry.loggers("test_annotate.recording_logger.v1")
def recording_logger(component: str):
    def setup(nlp, stdout, stderr):
        def log_step(info):
            if info is not None:
                RECORDED_LOSSES.append(info["losses"][component])

        return log_step, lambda: None

    return setup


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("unlabelled") / "de.txt"
    path.write_text("\n".join(SENTENCES[:5]) + "\n\n" + "\n".join(SENTENCES[5:]) + "\n", encoding="utf8")
    return path


def run_annotate(*args):
    result = CliRunner().invoke(app, ["annotate", *map(str, args)])
    return result.exit_code, said(result)


@pytest.fixture(scope="module")
def annotated(teacher_dir, text_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("annotated") / "de.spacy"
    code, output_text = run_annotate(teacher_dir, text_file, output, "--chunk-size", 4, "--batch-size", 3)
    assert code == 0, output_text
    return output


def read_output(path, vocab):
    return list(DocBin().from_disk(path).get_docs(vocab))


def sentences(docs):
    return [" ".join(token.text for token in doc) for doc in docs]


def test_annotation_is_the_teachers_prediction(teacher_dir, annotated):
    teacher = spacy.load(teacher_dir)
    concner = teacher.get_pipe("concner")
    docs = read_output(annotated, teacher.vocab)
    assert sentences(docs) == SENTENCES
    assert not annotated.with_name("de.spacy.parts").exists()
    for doc in docs:
        soft = doc.user_data[SOFT_TARGETS_KEY]
        assert list(soft["tags"]) == concner.tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
        assert soft["probs"].dtype == numpy.float32 and soft["probs"].shape == (len(doc), 5)
        numpy.testing.assert_allclose(soft["probs"].sum(axis=1), 1.0, rtol=1e-5)
        predicted = teacher(doc.text)
        expected = concner.predict([teacher.get_pipe("transformer")(teacher.make_doc(doc.text))])[0]
        numpy.testing.assert_allclose(soft["probs"], expected, rtol=1e-4, atol=1e-6)
        assert [(e.start, e.end, e.label_) for e in doc.ents] == [
            (e.start, e.end, e.label_) for e in predicted.ents
        ]
        assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)  # O set, not missing
        assert set(doc.user_data) == {PAIR_KEY, SOFT_TARGETS_KEY}  # no encoder output
        assert not doc.spans  # the confidences are read by the filter, not written
    assert sum(len(doc.ents) for doc in docs) > 0


def interrupt_at_third_chunk(monkeypatch):
    """Make annotate_docs stop the run at its third call; the sizes of the chunks it is
    called with are recorded in the list returned."""
    real_annotate_docs = annotate.annotate_docs
    calls = []

    def annotate_docs_failing_at_third_chunk(nlp, concner, docs, batch_size):
        docs = list(docs)
        calls.append(len(docs))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_annotate_docs(nlp, concner, docs, batch_size)

    monkeypatch.setattr(annotate, "annotate_docs", annotate_docs_failing_at_third_chunk)
    return calls


def test_interrupted_run_resumes_from_its_chunks(teacher_dir, text_file, tmp_path, monkeypatch):
    output = tmp_path / "out.spacy"
    calls = interrupt_at_third_chunk(monkeypatch)
    code, _ = run_annotate(teacher_dir, text_file, output, "--chunk-size", 3)
    assert code != 0 and not output.exists()
    parts = tmp_path / "out.spacy.parts"
    assert sorted(p.name for p in parts.glob("*.spacy")) == ["00000.spacy", "00001.spacy"]

    calls.clear()
    code, text = run_annotate(teacher_dir, text_file, output, "--chunk-size", 3)
    assert code == 0, text
    assert calls == [3, 1] and "Resuming: 2 finished chunks" in text
    assert sentences(read_output(output, spacy.blank("xx").vocab)) == SENTENCES
    assert not parts.exists()


def test_chunks_of_another_run_are_discarded(teacher_dir, text_file, tmp_path):
    output = tmp_path / "out.spacy"
    stale = tmp_path / "out.spacy.parts"
    stale.mkdir()
    DocBin(docs=[Doc(spacy.blank("xx").vocab, words=["stale"])]).to_disk(stale / "00000.spacy")
    code, text = run_annotate(teacher_dir, text_file, output)
    assert code == 0 and "discarded" in text
    assert sentences(read_output(output, spacy.blank("xx").vocab)) == SENTENCES


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "no sentences"),
        (b"\n  \n", "no sentences"),
        ("Anna wohnt in Köln .\n".encode("latin-1"), "not UTF-8"),
    ],
    ids=["empty", "blank-lines", "latin-1"],
)
def test_bad_input_writes_nothing(teacher_dir, tmp_path, content, message):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    output = tmp_path / "out.spacy"
    code, text = run_annotate(teacher_dir, path, output)
    assert code == 1 and message in text
    assert list(tmp_path.iterdir()) == [path]


def test_a_spacy_file_that_is_not_a_docbin_is_refused(teacher_dir, tmp_path):
    path = tmp_path / "input.spacy"
    path.write_text("Anna wohnt in Köln .\n", encoding="utf8")
    code, text = run_annotate(teacher_dir, path, tmp_path / "out.spacy")
    assert code == 1 and "cannot be read as a DocBin" in text
    assert list(tmp_path.iterdir()) == [path]


def test_max_tokens_option_sets_when_a_long_line_is_warned_about(teacher_dir, tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("Anna " * 1200 + "\n", encoding="utf8")
    code, text = run_annotate(teacher_dir, path, tmp_path / "out.spacy", "--max-tokens", 2000)
    assert code == 0 and "more than" not in text, text
    (doc,) = read_output(tmp_path / "out.spacy", spacy.blank("xx").vocab)
    assert doc.user_data[SOFT_TARGETS_KEY]["probs"].shape == (1200, 5)


def test_a_teacher_without_entities_is_refused(tmp_path, text_file):
    spacy.blank("xx").to_disk(tmp_path / "blank")
    code, text = run_annotate(tmp_path / "blank", text_file, tmp_path / "out.spacy")
    assert code == 1 and "the teacher sets no entities" in text and "concner, eat or ner" in text
    code, text = run_annotate(tmp_path / "missing", text_file, tmp_path / "out.spacy")
    assert code == 1 and "cannot load the pipeline" in text


@pytest.fixture(scope="module")
def entities_only(tmp_path_factory, text_file):
    """D_U annotated by a teacher without a concner component (an entity ruler standing
    in for EAT's translate-test pipeline): hard targets only."""
    folder = tmp_path_factory.mktemp("ruler")
    ruler = spacy.blank("xx")
    ruler.add_pipe("entity_ruler").add_patterns(
        [{"label": "PER", "pattern": name} for name in PERSONS]
        + [{"label": "LOC", "pattern": place} for place in PLACES]
    )
    ruler.to_disk(folder / "teacher")
    code, text = run_annotate(folder / "teacher", text_file, folder / "de.spacy", "--chunk-size", 4)
    assert code == 0 and "entities only" in text, text
    return folder / "de.spacy"


def test_a_teacher_without_concner_gives_its_entities_only(entities_only):
    docs = read_output(entities_only, spacy.blank("xx").vocab)
    assert sentences(docs) == SENTENCES
    assert all(SOFT_TARGETS_KEY not in doc.user_data and not doc.spans for doc in docs)
    expected = [[(w, "PER" if w in PERSONS else "LOC") for w in s.split() if w in PERSONS + PLACES]
                for s in SENTENCES]
    assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == expected


def test_concner_student_self_trains_on_entities_only(tiny_bert_dir, paired_docbins, entities_only, tmp_path):
    """Hard targets reach the concner student's cross-entropy (no soft targets to distil)."""
    RECORDED_LOSSES.clear()
    logger = {"@loggers": "test_annotate.recording_logger.v1", "component": "concner"}
    train(CONFIGS / "student.cfg", tmp_path, overrides=student_overrides(
        entities_only, paired_docbins, **tiny_encoder(tiny_bert_dir), **{
            "training.max_steps": 40, "training.logger": logger, "training.batcher.size": 4,
            "training.optimizer.learn_rate": 0.001,
        }
    ))
    assert numpy.mean(RECORDED_LOSSES[-5:]) < 0.5 * numpy.mean(RECORDED_LOSSES[1:6])
    student = spacy.load(tmp_path / "model-last")
    assert set(student.get_pipe("concner").labels) == {"LOC", "PER"}


def student_overrides(annotated, paired_docbins, **extra):
    return {
        "paths.train": str(annotated),
        "paths.dev": str(paired_docbins["dev"]),
        "training.eval_frequency": 1,  # the logger sees the losses at each evaluation
        **extra,
    }


def mean_squared_difference(nlp, docs):
    """Eq. 9 between a student's distributions and the soft targets of the Docs."""
    concner = nlp.get_pipe("concner")
    student = [concner.predict([nlp.get_pipe("transformer")(nlp.make_doc(d.text))])[0] for d in docs]
    teacher = [d.user_data[SOFT_TARGETS_KEY]["probs"] for d in docs]
    return concner.loss.distillation_loss(student, teacher)[1]


def test_student_trains_on_the_distillation_loss(tiny_bert_dir, paired_docbins, annotated, tmp_path):
    overrides = student_overrides(
        annotated, paired_docbins, **tiny_encoder(tiny_bert_dir),
        **{"training.optimizer.learn_rate": 0.001}
    )
    config = load_config(CONFIGS / "student.cfg", overrides=overrides, interpolate=False)
    initial = init_nlp(config)
    (corpus,) = resolve_dot_names(initial.config.interpolate(), ["corpora.train"])
    examples = list(corpus(initial))
    docs = [eg.reference for eg in examples]
    concner = initial.get_pipe("concner")
    assert concner.tags == list(docs[0].user_data[SOFT_TARGETS_KEY]["tags"])
    predicted = [eg.predicted for eg in examples]
    initial.get_pipe("transformer").set_annotations(predicted, initial.get_pipe("transformer").predict(predicted))
    scores = concner.model.predict(predicted)
    loss, _ = concner.get_loss(examples, scores)
    assert loss == pytest.approx(mean_squared_difference(initial, docs), rel=1e-4)

    RECORDED_LOSSES.clear()
    logger = {"@loggers": "test_annotate.recording_logger.v1", "component": "concner"}
    train(CONFIGS / "student.cfg", tmp_path, overrides={
        **overrides, "training.max_steps": 40, "training.logger": logger,
        "training.batcher.size": 4,
    })
    assert numpy.mean(RECORDED_LOSSES[-5:]) < 0.8 * numpy.mean(RECORDED_LOSSES[1:6])
    student = spacy.load(tmp_path / "model-last")
    assert mean_squared_difference(student, docs) < 0.5 * mean_squared_difference(initial, docs)


def test_student_with_other_labels_than_the_teacher_fails(tiny_bert_dir, paired_docbins, annotated, tmp_path):
    overrides = student_overrides(annotated, paired_docbins, **{
        **tiny_encoder(tiny_bert_dir), "training.max_steps": 1,
        "initialize.components": {"concner": {"labels": ["LOC", "ORG", "PER"]}},
    })
    with pytest.raises(ValueError, match="student and teacher label sets must match"):
        train(CONFIGS / "student.cfg", tmp_path, overrides=overrides)


def test_cnn_student_trains_on_the_hard_labels(paired_docbins, annotated, tmp_path):
    RECORDED_LOSSES.clear()
    logger = {"@loggers": "test_annotate.recording_logger.v1", "component": "ner"}
    train(CONFIGS / "student_sm.cfg", tmp_path, overrides=student_overrides(
        annotated, paired_docbins, **{"training.max_steps": 30, "training.logger": logger}
    ))
    assert numpy.mean(RECORDED_LOSSES[-5:]) < 0.5 * numpy.mean(RECORDED_LOSSES[1:6])
    student = spacy.load(tmp_path / "model-last")
    assert student.pipe_names == ["ner"]
    hard_labels = {e.label_ for d in read_output(annotated, student.vocab) for e in d.ents}
    assert set(student.get_pipe("ner").labels) == hard_labels


@pytest.mark.parametrize("name,content,place", [
    ("input.txt", "kurz .\n" + "Anna " * 1001 + "\n", "input.txt:2"),
    ("input.tsv", "kurz\tO\n\n" + "Anna\tB-PER\n" * 1001, "input.tsv:3"),
], ids=["text", "wikiann"])
def test_an_over_long_sentence_is_labelled_and_named_by_the_line_a_person_counts(teacher_dir, tmp_path, name, content, place):
    """Regression: the over-long line 2 was reported as `input.txt:1` (its 0-based key).
    Regression: a random sample of CoNLL-2002 Spanish (a stock table of 1,238 tokens as
    one sentence) stopped the workflow; such a sentence is labelled, with a warning."""
    path = tmp_path / name
    path.write_text(content, encoding="utf8")
    code, text = run_annotate(teacher_dir, path, tmp_path / "out.spacy")
    assert code == 0, text
    assert f"{tmp_path / place}: a sentence of 1001 tokens, more than 1000 tokens (1 such in the file)" in " ".join(text.split())
    short, long = read_output(tmp_path / "out.spacy", spacy.blank("xx").vocab)
    assert short[0].text == "kurz" and long.user_data[SOFT_TARGETS_KEY]["probs"].shape == (1001, 5)


# sentences unlike the teacher's training data, of which it is less certain
NOVEL = ["Farid und Elena besuchten Hanoi .", "ich kenne Lima nicht .", "Oslo ist schön .",
         "gestern sagte Quito nichts .", "Paris traf Anna in Lagos .", "Dmitri wohnt nicht in Lima ."]


@pytest.fixture(scope="module")
def novel_text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("novel") / "de.txt"
    path.write_text("\n".join(SENTENCES + NOVEL) + "\n", encoding="utf8")
    return path


def sentence_confidences(nlp, confidences):
    """Per sentence of SENTENCES + NOVEL, the lowest confidence of the teacher's entities
    there (None without entities), from confidences(component, doc)."""
    pipe = nlp.get_pipe(nlp.pipe_names[-1])
    return [min(confidences(pipe, doc), default=None) for doc in nlp.pipe(SENTENCES + NOVEL)]


def threshold_between(lowest):
    """A threshold that keeps about half of the sentences with entities: halfway between
    two of their lowest confidences."""
    values = sorted({value for value in lowest if value is not None})
    assert len(values) >= 2, lowest
    return float(values[len(values) // 2 - 1] + values[len(values) // 2]) / 2


@pytest.mark.parametrize("teacher,confidences", [
    ("teacher_dir", token_confidences), ("mcl_teacher_dir", cell_confidences),
], ids=["concner", "mcl_ner"])
def test_min_confidence_drops_exactly_the_sentences_with_a_less_certain_entity(
    request, novel_text_file, tmp_path, teacher, confidences
):
    teacher = request.getfixturevalue(teacher)
    nlp = spacy.load(teacher)
    lowest = sentence_confidences(nlp, confidences)
    threshold = threshold_between(lowest)
    code, all_text = run_annotate(teacher, novel_text_file, tmp_path / "all.spacy", "--chunk-size", 4)
    assert code == 0, all_text
    code, text = run_annotate(teacher, novel_text_file, tmp_path / "kept.spacy", "--chunk-size", 4,
                              "--min-confidence", threshold)
    assert code == 0, text
    expected = [i for i, value in enumerate(lowest) if value is None or value >= threshold]
    n_low = len(lowest) - len(expected)
    assert 0 < n_low < len(lowest)
    assert f"of {len(lowest)}: {len(expected)} kept, {n_low} dropped for an entity under {threshold:g}" in text
    everything = read_output(tmp_path / "all.spacy", nlp.vocab)
    kept = read_output(tmp_path / "kept.spacy", nlp.vocab)
    assert [doc.to_bytes() for doc in kept] == [everything[i].to_bytes() for i in expected]  # Doc for Doc


@pytest.fixture(scope="module")
def mixed_text_file(tmp_path_factory):
    """SENTENCES among 40 sentences without entities."""
    path = tmp_path_factory.mktemp("mixed") / "de.txt"
    empty = [f"der Bürgermeister sagte {n} Mal nichts ." for n in range(40)]
    path.write_text("\n".join(SENTENCES + empty) + "\n", encoding="utf8")
    return path


def keep_empty_run(teacher, path, output, seed, *options):
    code, text = run_annotate(teacher, path, output, "--keep-empty", 0.5, "--seed", seed, *options)
    assert code == 0, text
    return sentences(read_output(output, spacy.blank("xx").vocab)), text


def test_the_entity_free_share_is_seeded_and_stable_across_chunkings_and_resumes(
    entities_only, mixed_text_file, tmp_path, monkeypatch
):
    teacher = entities_only.parent / "teacher"
    kept, text = keep_empty_run(teacher, mixed_text_file, tmp_path / "a.spacy", 4, "--chunk-size", 1000)
    n_empty = 40 - (len(kept) - len(SENTENCES))
    assert kept[: len(SENTENCES)] == SENTENCES and 8 <= len(kept) - len(SENTENCES) <= 32
    assert f"of 50: {len(kept)} kept, {n_empty} entity-free dropped" in text
    assert keep_empty_run(teacher, mixed_text_file, tmp_path / "b.spacy", 4, "--chunk-size", 7)[0] == kept
    assert keep_empty_run(teacher, mixed_text_file, tmp_path / "c.spacy", 5)[0] != kept

    output = tmp_path / "resumed.spacy"
    calls = interrupt_at_third_chunk(monkeypatch)
    code, _ = run_annotate(teacher, mixed_text_file, output, "--keep-empty", 0.5, "--seed", 4, "--chunk-size", 7)
    assert code != 0 and calls == [7, 7, 7]
    resumed, text = keep_empty_run(teacher, mixed_text_file, output, 4, "--chunk-size", 7)
    assert resumed == kept and calls[3:] == [7] * 5 + [1]  # the 3rd to the 8th chunk of 50 sentences
    assert "Resuming: 2 finished chunks" in text and f"{len(kept)} kept, {n_empty} entity-free dropped" in text


def test_the_filter_options_are_part_of_the_run_fingerprint(entities_only, mixed_text_file, tmp_path, monkeypatch):
    teacher, output = entities_only.parent / "teacher", tmp_path / "out.spacy"
    interrupt_at_third_chunk(monkeypatch)
    code, _ = run_annotate(teacher, mixed_text_file, output, "--keep-empty", 0.5, "--chunk-size", 7)
    assert code != 0
    _, text = keep_empty_run(teacher, mixed_text_file, output, 0, "--chunk-size", 7, "--keep-empty", 0.3)
    assert "holds chunks of another run" in text and "Resuming" not in text


def test_min_confidence_needs_a_teacher_that_scores_its_entities(entities_only, text_file, tmp_path):
    teacher = entities_only.parent / "teacher"
    code, text = run_annotate(teacher, text_file, tmp_path / "out.spacy", "--min-confidence", 0.9)
    assert code == 1 and "'entity_ruler' component sets them without" in text and "leave --min-confidence out" in text
    assert list(tmp_path.iterdir()) == []
