"""The confidences the entity components store with their entities (entity_pipe.py),
and the self-training filter that reads them (self_training.py), on teacher-labelled
Docs made by hand."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc

from spacy_concner.entity_pipe import ENT_SCORES_KEY, entity_confidences, set_entities
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.self_training import ENTITY_FREE, KEPT, LOW_CONFIDENCE, SelfTrainingError, SelfTrainingFilter

from conftest import synthetic_pairs
from test_mcl_ner import cell_confidences
from test_pipeline import token_confidences

VOCAB = spacy.blank("xx").vocab
WORDS = ["Anna", "met", "Boris", "in", "New", "York", "."]


def labelled(found=(), confidences=(), key=None):
    """A Doc of WORDS with entities (start, end, label) of these confidences, as an
    entity component writes them."""
    doc = Doc(VOCAB, words=WORDS)
    set_entities(doc, found, confidences)
    if key is not None:
        doc.user_data[PAIR_KEY] = key
    return doc


def test_the_confidences_are_a_span_group_of_the_entities_with_scores():
    doc = labelled([(0, 1, "PER"), (4, 6, "LOC")], [0.95, 0.5])
    group = doc.spans[ENT_SCORES_KEY]
    assert list(group) == list(doc.ents)
    assert group.attrs["scores"].tolist() == pytest.approx([0.95, 0.5])
    assert entity_confidences(doc) == pytest.approx([0.95, 0.5])
    doc.ents = doc.ents[:1]  # changed by another component: the scores are not of its entities
    assert entity_confidences(doc) is None


@pytest.mark.parametrize("teacher,confidences", [
    ("teacher_dir", token_confidences), ("mcl_teacher_dir", cell_confidences),
], ids=["concner", "mcl_ner"])
def test_each_entity_carries_its_confidence_from_the_components_probabilities(request, teacher, confidences):
    nlp = spacy.load(request.getfixturevalue(teacher))
    pipe = nlp.get_pipe(nlp.pipe_names[-1])
    texts = [" ".join(words) for _, _, words, _ in synthetic_pairs(10, seed=3)]
    docs = list(nlp.pipe(texts + [""]))
    for doc in docs:
        group = doc.spans[ENT_SCORES_KEY]
        assert list(group) == list(doc.ents)
        numpy.testing.assert_allclose(group.attrs["scores"], confidences(pipe, doc), rtol=1e-6)
        assert all(0 <= score <= 1 for score in entity_confidences(doc))
    assert sum(len(doc.ents) for doc in docs) > 0 and not docs[-1].spans[ENT_SCORES_KEY]


def test_a_sentence_is_kept_only_if_every_entity_reaches_the_threshold():
    two = [(0, 1, "PER"), (2, 3, "PER")]
    docs = [labelled(two, [0.95, 0.9]), labelled(two, [0.99, 0.89]), labelled(two, [0.5, 0.97]), labelled()]
    kept, counts = SelfTrainingFilter(min_confidence=0.9).apply(docs)
    assert kept == [docs[0], docs[3]]  # 0.9 reaches 0.9; entity-free sentences all kept
    assert counts == {KEPT: 2, LOW_CONFIDENCE: 2, ENTITY_FREE: 0}
    assert SelfTrainingFilter().apply(docs) == (docs, {KEPT: 4, LOW_CONFIDENCE: 0, ENTITY_FREE: 0})


def test_entity_free_sentences_are_kept_by_a_seeded_draw_of_their_own():
    docs = [labelled(key=f"de:{i}") for i in range(400)]

    def kept(share, seed):
        return {doc.user_data[PAIR_KEY] for doc in SelfTrainingFilter(keep_empty=share, seed=seed).apply(docs)[0]}

    assert 56 <= len(kept(0.2, 1)) <= 104  # binomial(400, 0.2): 80 +- 3 sd
    assert kept(0.2, 1) == kept(0.2, 1) != kept(0.2, 2)
    assert kept(0.2, 1) < kept(0.5, 1)  # one draw per sentence: a larger share keeps more of the same
    assert kept(1.0, 1) == {f"de:{i}" for i in range(400)} and kept(0.0, 1) == set()
    alone = {doc.user_data[PAIR_KEY] for doc in docs[::-1] if SelfTrainingFilter(0.0, 0.2, 1).verdict(doc) == KEPT}
    assert alone == kept(0.2, 1)  # a sentence's draw depends on neither order nor company


def test_entities_without_confidences_pass_without_a_threshold_only():
    doc = Doc(VOCAB, words=WORDS)
    doc.ents = [doc.char_span(0, 4, label="PER")]  # set without confidences, as spaCy's ner does
    assert SelfTrainingFilter().verdict(doc) == KEPT
    with pytest.raises(SelfTrainingError, match="carry no confidences"):
        SelfTrainingFilter(min_confidence=0.5).verdict(doc)


@pytest.mark.parametrize("pipes,refused", [
    (["entity_ruler"], "'entity_ruler' component sets them without"),
    (["concner", "entity_ruler"], "'entity_ruler' component sets them without"),
    (["entity_ruler", "concner"], None),
    (["mcl_ner"], None),
])
def test_a_threshold_needs_a_teacher_whose_last_entity_component_scores(pipes, refused):
    nlp = spacy.blank("xx")
    for name in pipes:
        nlp.add_pipe(name)
    SelfTrainingFilter().check_teacher(nlp)
    if refused is None:
        SelfTrainingFilter(min_confidence=0.9).check_teacher(nlp)
    else:
        with pytest.raises(SelfTrainingError, match=refused):
            SelfTrainingFilter(min_confidence=0.9).check_teacher(nlp)
