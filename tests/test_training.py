"""Plain `spacy train` with configs/concner.cfg on synthetic pairs and a tiny BERT."""
import numpy
import spacy
from spacy.cli.train import train
from spacy.util import registry

from spacy_concner.pairs import configure_pair_batcher, pair_key

from test_pipeline import CONFIGS, tiny_overrides

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
