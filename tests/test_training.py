"""Plain `spacy train` with configs/concner.cfg on synthetic pairs and a tiny BERT; the
learn-rate schedule and the dev-curve logger of the configs."""
import json
from itertools import islice

import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import Doc, DocBin, Span
from spacy.training.initialize import init_nlp
from spacy.util import registry
from spacy.vocab import Vocab

from spacy_concner.pairs import PAIR_KEY, configure_pair_batcher, pair_key

from test_pipeline import CONFIGS, concner_config, tiny_overrides

RECORDED = {"losses": [], "batches": []}


@registry.loggers("test_concner.recording_logger.v1")
def recording_logger():
    def setup(nlp, stdout, stderr):
        def log_step(info):
            if info is not None:
                RECORDED["losses"].append(info["losses"]["concner"])

        return log_step, lambda: None

    return setup


@registry.batchers("test_concner.recording_pair_batcher.v1")
def recording_pair_batcher(size: int):
    batch_pairs = configure_pair_batcher(size=size)

    def record(items):
        for batch in batch_pairs(items):
            RECORDED["batches"].append([pair_key(eg) for eg in batch])
            yield batch

    return record


def test_spacy_train_30_steps_on_pairs(tiny_bert_dir, paired_docbins, tmp_path):
    overrides = {
        **tiny_overrides(tiny_bert_dir, paired_docbins),
        "training.max_steps": 30,
        "training.eval_frequency": 1,
        "training.logger": {"@loggers": "test_concner.recording_logger.v1"},
        "training.batcher": {"@batchers": "test_concner.recording_pair_batcher.v1", "size": 8},
    }
    train(CONFIGS / "concner.cfg", tmp_path, overrides=overrides)

    losses = RECORDED["losses"]
    assert len(losses) == 31  # the step-0 evaluation, then one per step
    # LCL has a floor above 0 (log of the number of positives): a clear drop is all
    assert numpy.mean(losses[-5:]) < 0.9 * numpy.mean(losses[1:6])
    for keys in RECORDED["batches"]:
        assert len(keys) == 16 and all(keys.count(k) == 2 for k in keys)

    nlp = spacy.load(tmp_path / "model-last")
    assert nlp.pipe_names == ["transformer", "concner"]
    assert nlp.get_pipe("concner").labels == ("LOC", "PER")
    assert len(nlp("yesterday Elena flew to Quito .")) == 6


def test_spacy_train_writes_the_dev_curve(tiny_bert_dir, paired_docbins, tmp_path):
    curve_path = tmp_path / "curve" / "dev.jsonl"
    curve_path.parent.mkdir()
    curve_path.write_text("an older run's curve\n")  # replaced, not appended to
    overrides = {
        **tiny_overrides(tiny_bert_dir, paired_docbins),
        "paths.curve": str(curve_path),
        "training.max_steps": 6,
        "training.eval_frequency": 2,
    }
    train(CONFIGS / "concner.cfg", tmp_path / "model", overrides=overrides)
    curve = [json.loads(line) for line in curve_path.read_text().splitlines()]
    assert [point["step"] for point in curve] == [0, 2, 4, 6]
    seconds = [point["seconds"] for point in curve]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    for point in curve:
        assert 0 <= point["score"] <= 100 and point["score"] == point["scores"]["ents_f"]
        assert set(point["losses"]) == {"transformer", "concner"}


def test_warmup_linear_schedule():
    schedule = registry.schedules.get("spacy_concner.warmup_linear.v1")(1e-4, total_steps=100)
    rates = list(islice(schedule, 101))
    assert rates[0] == 0 and rates[10] == pytest.approx(1e-4)  # 10% warm-up
    assert rates[55] == pytest.approx(0.5e-4) and rates[100] == 0
    assert all(a <= b for a, b in zip(rates[:10], rates[1:11]))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    with pytest.raises(ValueError, match="warmup"):
        registry.schedules.get("spacy_concner.warmup_linear.v1")(1e-4, total_steps=100, warmup=1.0)


def test_spacy_train_refuses_a_translation_file_that_is_not_the_sources(tiny_bert_dir, paired_docbins, tmp_path, capsys):
    """Regression: the dev set given as paths.translation trained without a word."""
    overrides = {**tiny_overrides(tiny_bert_dir, paired_docbins), "paths.translation": str(paired_docbins["dev"])}
    with pytest.raises(SystemExit) as exit_:
        train(CONFIGS / "concner.cfg", tmp_path, overrides=overrides)
    said = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 1 and "Traceback" not in said
    assert f"{paired_docbins['dev']}: 0 of 8 translations match a sentence of {paired_docbins['source']}" in said


def test_types_the_dev_set_lacks_are_named_at_initialisation(tiny_bert_dir, paired_docbins, tmp_path):
    """Regression: with LOC in train and none in dev, training said nothing (and chose
    model-best on PER alone)."""
    vocab = Vocab()
    dev = tmp_path / "dev-per-only.spacy"
    doc = Doc(vocab, words=["Anna", "said", "nothing", "."])
    doc.ents = [Span(doc, 0, 1, label="PER")]
    DocBin(docs=[doc]).to_disk(dev)
    with pytest.warns(UserWarning, match=rf"learns LOC from the training data, but the dev corpus {dev} has no such"):
        init_nlp(concner_config(tiny_bert_dir, paired_docbins, **{"paths.dev": str(dev)}))


def test_spacy_train_names_a_missing_encoder_in_one_message(tiny_bert_dir, paired_docbins, tmp_path, capsys):
    """Regression: a 102-line chained traceback whose last line was the hint."""
    missing = tmp_path / "encoders" / "e5-smal"
    overrides = {**tiny_overrides(tiny_bert_dir, paired_docbins), "paths.encoder": str(missing)}
    with pytest.raises(SystemExit) as exit_:
        train(CONFIGS / "concner.cfg", tmp_path / "out", overrides=overrides)
    output = capsys.readouterr().out
    assert exit_.value.code == 1 and "Traceback" not in output
    assert f"Cannot load the encoder '{missing}': no such folder" in " ".join(output.split())
    assert "python -m spacy_concner encoder e5" in output


def test_spacy_train_refuses_a_training_set_of_empty_docs(tiny_bert_dir, paired_docbins, tmp_path, capsys):
    """Regression: `ValueError: need at least one array to concatenate` in initialize."""
    empty = tmp_path / "empty.spacy"
    doc = Doc(Vocab(), words=[])
    doc.user_data[PAIR_KEY] = "empty:0"
    DocBin(docs=[doc, doc], store_user_data=True).to_disk(empty)
    overrides = {**tiny_overrides(tiny_bert_dir, paired_docbins), "paths.train": str(empty), "paths.translation": None}
    with pytest.raises(SystemExit) as exit_:
        train(CONFIGS / "concner.cfg", tmp_path / "out", overrides=overrides)
    output = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 1 and "Traceback" not in output
    assert f"{empty} has no words: all its Docs are empty" in output


def test_empty_docs_first_in_the_training_set_are_skipped_at_initialisation(tiny_bert_dir, paired_docbins, tmp_path):
    vocab = Vocab()
    docs = [Doc(vocab, words=[]) for _ in range(11)]
    docs += list(DocBin().from_disk(paired_docbins["source"]).get_docs(vocab))
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs, store_user_data=True).to_disk(train_path)
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **{"paths.train": str(train_path)}))
    assert nlp.get_pipe("concner").labels == ("LOC", "PER")
