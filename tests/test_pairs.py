import random

import pytest
import spacy
from confection import ConfigValidationError
from spacy.tokens import Doc, DocBin

from spacy_concner.pairs import (
    PAIR_KEY,
    PairedCorpus,
    configure_pair_batcher,
    configure_pair_batcher_v2,
    create_paired_corpus,
    group_ids,
    group_pairs,
    pair_key,
    partner_rows,
)
from spacy.util import registry

from spacy_concner.read_once import ReadOnceCorpus


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


def test_group_ids():
    assert group_ids(["a", "b", "a", None, "b", "c", "a"]) == [0, 1, 0, -1, 1, 2, 0]
    assert group_ids([]) == []


@pytest.mark.parametrize("sort_window", [1, 8])
def test_pair_batcher_keeps_groups_of_more_views_together(sort_window):
    """A source, its code-switched view and its translation: the group is one unit."""
    nlp = spacy.blank("xx")
    docs = [keyed_doc(nlp.vocab, f"k{i}", "a " * (i % 9 + 1)) for i in range(30) for _ in range(3)]
    docs += [keyed_doc(nlp.vocab, f"p{i}") for i in range(10) for _ in range(2)]
    random.Random(0).shuffle(docs)
    random.seed(2)
    batches = list(configure_pair_batcher_v2(size=4, sort_window=sort_window)(docs))
    assert sorted(id(d) for b in batches for d in b) == sorted(id(d) for d in docs)
    for batch in batches:
        keys = [pair_key(d) for d in batch]
        assert all(keys.count(k) == (3 if k.startswith("k") else 2) for k in keys)
        assert len(set(keys)) <= 4


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


def padded_share(batches):
    """1 - real characters / (items x longest item) over all batches."""
    real = sum(len(d.text) for b in batches for d in b)
    return 1 - real / sum(len(b) * max(len(d.text) for d in b) for b in batches)


def test_pair_batcher_v2_groups_pairs_of_similar_length():
    nlp = spacy.blank("xx")
    rng = random.Random(0)
    docs = []
    for i in range(200):
        n = rng.randint(1, 60)
        docs += [keyed_doc(nlp.vocab, f"k{i}", " ".join(["w"] * n)),
                 keyed_doc(nlp.vocab, f"k{i}", " ".join(["v"] * (n + rng.randint(0, 5))))]
    rng.shuffle(docs)
    random.seed(1)
    sorted_batches = list(configure_pair_batcher_v2(size=8, sort_window=8)(docs))
    random.seed(1)
    plain_batches = list(configure_pair_batcher_v2(size=8, sort_window=1)(docs))
    for batches in (sorted_batches, plain_batches):
        assert sorted(id(d) for b in batches for d in b) == sorted(id(d) for d in docs)
        for batch in batches:
            keys = [pair_key(d) for d in batch]
            assert all(keys.count(k) == 2 for k in keys) and len(set(keys)) <= 8
    assert padded_share(sorted_batches) < padded_share(plain_batches) / 2
    # the sorted windows' batches are shuffled: lengths do not rise batch by batch
    longest = [max(len(d.text) for d in b) for b in sorted_batches]
    assert longest != sorted(longest)


def test_pair_batcher_v1_batches_as_before():
    """v1 (v2 with sort_window = 1): the shuffled pairs cut into batches in order, the
    same random stream as before v2 existed, so a seed gives the same batches."""
    nlp = spacy.blank("xx")
    docs = [keyed_doc(nlp.vocab, f"k{i % 30}", "a " * (i % 7 + 1)) for i in range(60)]
    random.seed(3)
    groups = group_pairs(docs)
    random.shuffle(groups)
    expected = [[id(d) for g in groups[i : i + 4] for d in g] for i in range(0, len(groups), 4)]
    random.seed(3)
    assert [[id(d) for d in b] for b in configure_pair_batcher(size=4)(docs)] == expected


def test_pair_batcher_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        configure_pair_batcher(size=0)
    with pytest.raises(ValueError, match="sort_window"):
        configure_pair_batcher_v2(sort_window=0)


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


def test_paired_corpus_reads_its_files_once_per_vocab(tmp_path):
    """Each epoch read every DocBin again, most of it in srsly's decoder lookup per Doc;
    the Docs are now kept, and an nlp with another vocab (another run) reads afresh."""
    source = keyed_docbin(tmp_path / "train.spacy", [f"train:{i}" for i in range(3)], "Anna lives here")
    views = [keyed_docbin(tmp_path / f"view{i}.spacy", [f"train:{i}" for i in range(3)], f"Anna wohnt {i}")
             for i in range(2)]
    pseudo = keyed_docbin(tmp_path / "distill.spacy", ["du:0", "du:1"], "Berta wohnt dort")
    corpus = PairedCorpus(source, views, False, 0, 0, pseudo)
    nlp = spacy.blank("xx")
    first = [(eg.reference.text, pair_key(eg)) for eg in corpus(nlp)]
    for path in [source, pseudo, *views]:
        path.unlink()
    second = list(corpus(nlp))
    assert [(eg.reference.text, pair_key(eg)) for eg in second] == first
    assert len(first) == 3 * 3 + 2
    assert all(eg.reference.vocab is nlp.vocab for eg in second)
    keyed_docbin(source, ["other:0"], "Carl reist")
    again = ReadOnceCorpus(source)
    assert [eg.reference.text.strip() for eg in again(nlp)] == ["Carl reist"]
    with pytest.raises(FileNotFoundError):
        list(corpus(spacy.blank("xx")))


def keyed_docbin(path, keys, text="Anna lebt"):
    vocab = spacy.blank("xx").vocab
    DocBin(docs=[keyed_doc(vocab, key, text) for key in keys], store_user_data=True).to_disk(path)
    return path


def test_a_translation_file_of_other_sentences_is_refused(tmp_path):
    """Regression: a test set passed as paths.translation trained without a word, its
    sentences as labelled examples of their own and TCL off."""
    source = keyed_docbin(tmp_path / "train.spacy", [f"train:{i}" for i in range(10)])
    wrong = keyed_docbin(tmp_path / "test.spacy", [f"test:{i}" for i in range(8)] + ["train:1", "train:2"])
    with pytest.raises(ConfigValidationError) as error:
        list(PairedCorpus(source, wrong, False, 0, 0)(spacy.blank("xx")))
    message = str(error.value)
    assert f"{wrong}: 2 of 10 translations match a sentence of {source}" in message
    assert "paths.translation" in message


def test_unmatched_translations_are_counted_and_warned_about(tmp_path, capsys):
    source = keyed_docbin(tmp_path / "train.spacy", [f"train:{i}" for i in range(10)])
    translation = keyed_docbin(tmp_path / "trans.spacy", [f"train:{i}" for i in range(9)] + ["other:0"])
    corpus = PairedCorpus(source, translation, False, 0, 0)
    with pytest.warns(UserWarning, match=r"trans\.spacy: 1 of 10 translations match no sentence"):
        assert len(list(corpus(spacy.blank("xx")))) == 20
    assert "9 of 10 translations in" in " ".join(capsys.readouterr().out.split())
    list(corpus(spacy.blank("xx")))  # said once, not at every epoch
    assert "translations in" not in capsys.readouterr().out


def test_paired_corpus_with_a_list_of_views_yields_each_group_together(tmp_path):
    """A translation and a code-switched view of the source: each source is followed by
    its views in the order of the files; a view file's extra sentence comes last."""
    source = keyed_docbin(tmp_path / "train.spacy", [f"train:{i}" for i in range(6)], "Anna lives here")
    translation = keyed_docbin(tmp_path / "trans.spacy", [f"train:{i}" for i in (5, 3, 1, 0, 2, 4)], "Anna wohnt hier")
    switched = keyed_docbin(tmp_path / "cs.spacy", [f"train:{i}" for i in range(6)] + ["other:0"], "Anna lives hier")
    config = {"corpus": {"@readers": "spacy_concner.PairedCorpus.v1", "source": str(source),
                         "translation": [str(translation), str(switched)]}}
    corpus = registry.resolve(config)["corpus"]
    with pytest.warns(UserWarning, match=r"cs\.spacy: 1 of 7 translations match no sentence"):
        examples = list(corpus(spacy.blank("xx")))
    keys = [pair_key(eg) for eg in examples]
    assert keys == [f"train:{i}" for i in range(6) for _ in range(3)] + ["other:0"]
    assert [eg.reference.text.strip() for eg in examples[:3]] == ["Anna lives here", "Anna wohnt hier", "Anna lives hier"]


def test_paired_corpus_refuses_a_view_file_of_other_sentences_by_name(tmp_path):
    source = keyed_docbin(tmp_path / "train.spacy", [f"train:{i}" for i in range(4)])
    translation = keyed_docbin(tmp_path / "trans.spacy", [f"train:{i}" for i in range(4)])
    wrong = keyed_docbin(tmp_path / "test.spacy", [f"test:{i}" for i in range(4)])
    with pytest.raises(ConfigValidationError, match=r"test\.spacy: 0 of 4 translations match"):
        list(PairedCorpus(source, [translation, wrong], False, 0, 0)(spacy.blank("xx")))


def test_paired_corpus_v2_adds_unpaired_docs_after_the_groups(tmp_path):
    """mCL-NER's student: the sample and its views as the teacher has them, then the
    pseudo-labelled target sentences, which are not views of the sample (no match check)."""
    source = keyed_docbin(tmp_path / "train.spacy", [f"train:{i}" for i in range(3)], "Anna lives here")
    translation = keyed_docbin(tmp_path / "trans.spacy", [f"train:{i}" for i in range(3)], "Anna wohnt hier")
    pseudo = keyed_docbin(tmp_path / "distill.spacy", [f"du:{i}" for i in range(4)], "Berta wohnt dort")
    config = {"corpus": {"@readers": "spacy_concner.PairedCorpus.v2", "source": str(source),
                         "translation": str(translation), "unpaired": [str(pseudo)]}}
    examples = list(registry.resolve(config)["corpus"](spacy.blank("xx")))
    keys = [pair_key(eg) for eg in examples]
    assert keys == [f"train:{i}" for i in range(3) for _ in range(2)] + [f"du:{i}" for i in range(4)]
    assert examples[-1].reference.text.strip() == "Berta wohnt dort"
    v1 = {"corpus": {**config["corpus"], "@readers": "spacy_concner.PairedCorpus.v1"}}
    del v1["corpus"]["unpaired"]
    assert [pair_key(eg) for eg in registry.resolve(v1)["corpus"](spacy.blank("xx"))] == keys[:6]
