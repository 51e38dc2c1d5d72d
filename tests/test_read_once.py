"""spacy_concner.ReadOnceCorpus.v1: spacy.Corpus.v1's Examples, its DocBin read once per vocab."""
import pytest
import spacy
from confection import ConfigValidationError
from spacy.util import registry

from conftest import write_keyed_docbin

SENTENCES = [("Anna flew to Oslo".split(), [(0, 1, "PER"), (3, 4, "LOC")]),
             ("Boris stayed".split(), [(0, 1, "PER")])]


def reader(name, path, **options):
    return registry.resolve({"corpus": {"@readers": name, "path": path and str(path), **options}})["corpus"]


def examples(corpus, nlp):
    return [(eg.reference.text, [(e.text, e.label_) for e in eg.reference.ents], [t.text for t in eg.predicted])
            for eg in corpus(nlp)]


@pytest.mark.parametrize("gold_preproc", [False, True])
def test_the_same_examples_as_spacy_corpus_without_reading_the_file_again(tmp_path, gold_preproc):
    path = write_keyed_docbin(tmp_path / "dev.spacy", SENTENCES)
    nlp = spacy.blank("en")
    expected = examples(reader("spacy.Corpus.v1", path, gold_preproc=gold_preproc), nlp)
    corpus = reader("spacy_concner.ReadOnceCorpus.v1", path, gold_preproc=gold_preproc)
    assert examples(corpus, nlp) == expected
    path.unlink()
    assert examples(corpus, nlp) == expected  # every epoch, every evaluation
    with pytest.raises(FileNotFoundError):
        examples(corpus, spacy.blank("en"))  # another vocab reads afresh


def test_a_corpus_without_a_path_names_the_setting():
    with pytest.raises(ConfigValidationError, match="--paths.dev"):
        reader("spacy_concner.ReadOnceCorpus.v1", None)
