import random

import pytest
import spacy
from spacy.tokens import Doc

from spacy_concner.pairs import (
    PAIR_KEY,
    PairedCorpus,
    configure_pair_batcher,
    create_paired_corpus,
    pair_key,
    partner_rows,
)


def keyed_doc(vocab, key, text="a b"):
    doc = Doc(vocab, words=text.split())
    if key is not None:
        doc.user_data[PAIR_KEY] = key
    return doc


def test_partner_rows():
    assert partner_rows(["a", "b", "a", None, "b", "c"]) == [2, 4, 0, -1, 1, -1]
    # several translations of one source: every row points at the first other row
    assert partner_rows(["a", "a", "a"]) == [1, 0, 0]
    assert partner_rows([]) == []


def test_pair_batcher_keeps_pairs_together_and_shuffles_pairs():
    nlp = spacy.blank("xx")
    docs = [keyed_doc(nlp.vocab, f"k{i}") for i in range(40) for _ in range(2)]
    docs += [keyed_doc(nlp.vocab, None) for _ in range(5)]
    random.Random(0).shuffle(docs)
    random.seed(1)
    batches = list(configure_pair_batcher(size=8)(docs))
    assert sum(len(b) for b in batches) == len(docs)
    seen = [pair_key(d) for b in batches for d in b]
    for batch in batches:
        keys = [pair_key(d) for d in batch if pair_key(d) is not None]
        assert all(keys.count(k) == 2 for k in keys)
        assert len({pair_key(d) or id(d) for d in batch}) <= 8
    # pairs are shuffled: the order of keys differs from first appearance in the input
    first_seen = list(dict.fromkeys(pair_key(d) for d in docs if pair_key(d)))
    assert [k for k in dict.fromkeys(seen) if k] != first_seen


def test_pair_batcher_without_shuffle_keeps_order():
    nlp = spacy.blank("xx")
    docs = [keyed_doc(nlp.vocab, k) for k in ["a", "b", "a", "c", "b"]]
    batches = list(configure_pair_batcher(size=2, shuffle=False)(docs))
    assert [[pair_key(d) for d in b] for b in batches] == [["a", "a", "b", "b"], ["c"]]


def test_pair_batcher_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        configure_pair_batcher(size=0)


def test_paired_corpus_yields_translation_after_source(paired_docbins):
    nlp = spacy.blank("xx")
    corpus = PairedCorpus(paired_docbins["source"], paired_docbins["translation"], True, 0, 0)
    examples = list(corpus(nlp))
    assert len(examples) == 48
    keys = [pair_key(eg) for eg in examples]
    assert keys[0::2] == keys[1::2]
    assert examples[0].reference.text != examples[1].reference.text


def test_paired_corpus_needs_a_source():
    with pytest.raises(ValueError, match="--paths.train"):
        create_paired_corpus(None)


def test_paired_corpus_without_translation(paired_docbins):
    corpus = PairedCorpus(paired_docbins["source"], None, False, 0, 0)
    assert len(list(corpus(spacy.blank("xx")))) == 24
