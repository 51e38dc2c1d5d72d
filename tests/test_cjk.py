"""The encoder reads CJK text without the spaces of one-token-per-character Docs
(spacy_concner.TransformerModel.v2, join_cjk = true; spacy_concner/cjk.py): the pieces of
such a Doc are those of its written text, every character token aligns to its pieces,
other text is unchanged, and training and prediction both use it."""
from inspect import signature
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import registry
from spacy_transformers.align import get_alignment_via_offset_mapping
from spacy_transformers.layers.transformer_model import huggingface_tokenize
from spacy_transformers.span_getters import configure_strided_spans, get_doc_spans
from transformers import AutoTokenizer

from spacy_concner.cjk import both_cjk, both_cjk_or_shared, either_cjk, encoder_doc, joined_spaces, joined_spans
from spacy_concner.entity_pipe import entity_confidences
from spacy_concner.translate.text import split_characters, target_doc

from conftest import tagger_on_transformer

E5_SMALL = Path(__file__).parents[1] / "assets" / "encoders" / "e5-small"
ZH = "北京是中国的首都"
MIXED = ["我", "在", "New", "York", "工", "作"]
NON_CJK = [["Anna", "lives", "in", "Paris", "."], ["이전에", "이", "과에", "포함시켰던"], ["«", "Привет", "»", "—", "1998"]]
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
# single characters and longer pieces, "▁北京" a piece of two characters after the space
# the tokenizer puts first (as in XLM-R's vocabulary)
PIECES = ["▁", *"北京是中国的首都我在工作", "北京", "▁北京", "中国", "首都", "我在", "工作",
          "▁New", "▁York", "▁Anna", "▁lives", "▁in", "▁Paris", "▁.", "▁이", "이전에", "과에"]


@pytest.fixture(scope="module")
def tiny_xlmr_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with an XLM-R-style SentencePiece (Unigram) tokenizer
    of a few dozen pieces, saved as an ordinary Hugging Face folder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-xlmr")
    # longer pieces score higher, so the Unigram model prefers them
    vocab = [(p, 0.0) for p in SPECIAL] + [(p, -1.0 / len(p.lstrip("▁") or p)) for p in PIECES]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=SPECIAL.index("<unk>"), byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        sep_token="</s>", cls_token="<s>", pad_token="<pad>", model_max_length=512,
    ).save_pretrained(out)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=1)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=["tiny", "e5-small"])
def tokenizer(request, tiny_xlmr_dir):
    """The tiny tokenizer, and multilingual-e5-small's (XLM-R's vocabulary) when the
    encoder folder is there."""
    if request.param == "tiny":
        return AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    if not (E5_SMALL / "tokenizer.json").is_file():
        pytest.skip(f"{E5_SMALL} not found (python -m spacy_concner encoder e5 assets/encoders/e5-small)")
    return AutoTokenizer.from_pretrained(E5_SMALL)


def char_doc(text: str) -> Doc:
    """One token per character, each followed by a space: a WikiANN zh sentence."""
    return Doc(spacy.blank("xx").vocab, words=list(text))


def encode(tokenizer, docs, join: bool = True, get_spans=get_doc_spans):
    """What spacy-transformers gives the encoder for `docs`, and its alignment."""
    spans = [span for doc_spans in (joined_spans(get_spans) if join else get_spans)(docs) for span in doc_spans]
    encoding = huggingface_tokenize(tokenizer, [span.text for span in spans])
    return spans, encoding, get_alignment_via_offset_mapping(spans, encoding["offset_mapping"])


def test_a_doc_of_spaced_characters_gets_the_pieces_of_its_written_text(tokenizer):
    doc = char_doc(ZH)
    assert doc.text == " ".join(ZH) + " "  # as corpora.py reads WikiANN
    spans, encoding, _ = encode(tokenizer, [doc])
    assert spans[0].text == ZH
    assert encoding["input_ids"][0].tolist() == tokenizer(ZH)["input_ids"]
    _, spaced, _ = encode(tokenizer, [doc], join=False)
    assert len(spaced["input_ids"][0]) > len(encoding["input_ids"][0])  # "▁" between characters


def test_every_character_aligns_to_its_pieces(tokenizer):
    doc = char_doc(ZH)
    _, encoding, align = encode(tokenizer, [doc])
    assert len(align.lengths) == len(doc) and align.lengths.min() >= 1
    pieces = encoding["input_texts"][0]
    for token, start, length in zip(doc, numpy.cumsum(align.lengths) - align.lengths, align.lengths):
        covered = "".join(pieces[j] for j in align.data[start : start + length].ravel()).replace("▁", "")
        assert token.text in covered
    # a piece of two characters aligns to both of them
    two = [j for j, piece in enumerate(pieces) if piece.lstrip("▁") == "北京"]
    assert two and all(two[0] in align[i].data.ravel() for i in (0, 1))


def test_spaces_between_latin_words_stay(tokenizer):
    doc = Doc(spacy.blank("xx").vocab, words=MIXED)
    spans, encoding, align = encode(tokenizer, [doc])
    assert spans[0].text == "我在 New York 工作"
    assert encoding["input_ids"][0].tolist() == tokenizer("我在 New York 工作")["input_ids"]
    assert align.lengths.min() >= 1


@pytest.mark.parametrize("words", NON_CJK, ids=["english", "korean", "russian"])
def test_other_docs_are_unchanged(tokenizer, words):
    """Korean too: its spaces separate words."""
    doc = Doc(spacy.blank("xx").vocab, words=words)
    assert encoder_doc(doc) is doc
    spans, encoding, align = encode(tokenizer, [doc])
    _, as_before, align_as_before = encode(tokenizer, [doc], join=False)
    assert [span.doc for span in spans] == [doc]
    assert encoding["input_ids"].tolist() == as_before["input_ids"].tolist()
    assert align.data.tolist() == align_as_before.data.tolist()


# a transliterated name with its middle dot, an English name, English words, and a last
# word followed by a space
NAMED = ["安", "娜", "·", "Anna", "在", "New", "York", "工"]


@pytest.mark.parametrize("joins, spaces", [
    (both_cjk, [False, True, True, True, True, True, True, True]),  # the EAT gloss
    (either_cjk, [False, False, True, False, False, True, False, True]),  # the lexicon's zh and ja
    (both_cjk_or_shared, [False, False, True, True, True, True, True, True]),  # the encoder
])
def test_joined_spaces_drop_the_spaces_their_predicate_joins(joins, spaces):
    assert joined_spaces(NAMED, [True] * len(NAMED), joins) == spaces


def test_the_middle_dot_of_a_transliterated_name_joins_in_cjk_text():
    doc = Doc(spacy.blank("xx").vocab, words=list("安娜·卡列尼娜"))
    assert encoder_doc(doc).text == "安娜·卡列尼娜 "


def test_overlapping_windows_keep_token_positions(tokenizer):
    """Strided windows of one Doc share its copy: each token has one place in the batch."""
    docs = [char_doc(ZH), Doc(spacy.blank("xx").vocab, words=NON_CJK[0])]
    strided = configure_strided_spans(window=4, stride=3)
    spans, _, align = encode(tokenizer, docs, get_spans=strided)
    assert [span.text for span in spans[:3]] == ["北京是中", "中国的首", "首都"]
    assert len(align.lengths) == len(docs[0]) + len(docs[1]) and align.lengths.min() >= 1


def test_translated_zh_docs_need_no_joining(tokenizer):
    """translate --split-chars: a zh target Doc split into characters has no spaces
    between them, so the encoder reads its text as it is."""
    doc = split_characters(target_doc(spacy.blank("zh"), "我在 New York 工作", [(3, 11, "LOC")], "k:1"))
    assert [t.text for t in doc][:3] == ["我", "在", "N"] and doc.text == "我在 New York 工作"
    assert encoder_doc(doc) is doc
    _, encoding, align = encode(tokenizer, [doc])
    assert encoding["input_ids"][0].tolist() == tokenizer(doc.text)["input_ids"]
    assert align.lengths.min() >= 1


def test_v2_keeps_its_arguments_and_adds_join_cjk_last():
    parameters = signature(registry.architectures.get("spacy_concner.TransformerModel.v2")).parameters
    assert list(parameters)[-2:] == ["quantize", "join_cjk"] and parameters["join_cjk"].default is True


def make_nlp(tiny_xlmr_dir, join_cjk: bool = True):
    return tagger_on_transformer(
        "spacy_concner.TransformerModel.v2", name=str(tiny_xlmr_dir), frozen_layers=1, join_cjk=join_cjk
    )


def tagged(nlp, words):
    doc = Doc(nlp.vocab, words=words)
    return Example.from_dict(doc, {"tags": ["C" if word in ZH else "W" for word in words]})


def cache_keys(transformer):
    """The keys of the frozen layers' cache: the piece ids of each window (int64 bytes),
    then "|" and its token type ids."""
    return transformer.transformer._concner_cache._states.keys()


def test_training_and_prediction_read_the_joined_pieces(tiny_xlmr_dir):
    """The frozen layers' cache is keyed by the joined pieces (training); prediction
    gives them too, and one vector per character."""
    nlp = make_nlp(tiny_xlmr_dir)
    examples = [tagged(nlp, list(ZH)), tagged(nlp, MIXED)]
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    transformer = nlp.get_pipe("transformer").model
    joined = [transformer.tokenizer(text)["input_ids"] for text in (ZH, "我在 New York 工作")]
    cached = {tuple(numpy.frombuffer(key.split(b"|")[0], dtype="int64")) for key in cache_keys(transformer)}
    assert cached == {tuple(ids) for ids in joined}
    doc = nlp(char_doc(ZH))
    assert doc._.trf_data.wordpieces.input_ids[0].tolist() == joined[0]
    assert doc._.trf_data.model_output.last_hidden_state.shape == (1, len(joined[0]), 32)
    assert len(doc._.trf_data.align.lengths) == len(doc) and doc._.trf_data.align.lengths.min() >= 1
    assert all(token.tag_ in ("C", "W") for token in doc)


def test_join_cjk_false_is_the_old_text(tiny_xlmr_dir):
    nlp = make_nlp(tiny_xlmr_dir, join_cjk=False)
    nlp.initialize(lambda: [tagged(nlp, list(ZH))])
    doc = nlp(char_doc(ZH))
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    assert doc._.trf_data.wordpieces.input_ids[0].tolist() == tokenizer(" ".join(ZH))["input_ids"]


def test_non_cjk_output_is_the_same_with_and_without_join_cjk(tiny_xlmr_dir, tmp_path):
    nlp = make_nlp(tiny_xlmr_dir, join_cjk=False)
    nlp.initialize(lambda: [tagged(nlp, NON_CJK[0])])
    nlp.to_disk(tmp_path / "pipeline")
    joining = spacy.load(tmp_path / "pipeline", config={"components": {"transformer": {"model": {"join_cjk": True}}}})
    for words in NON_CJK:
        old, new = nlp(Doc(nlp.vocab, words=words)), joining(Doc(joining.vocab, words=words))
        assert new._.trf_data.wordpieces.input_ids.tolist() == old._.trf_data.wordpieces.input_ids.tolist()
        assert numpy.array_equal(new._.trf_data.model_output.last_hidden_state,
                                 old._.trf_data.model_output.last_hidden_state)


def test_concner_tags_a_zh_doc_end_to_end(tiny_xlmr_dir, paired_docbins):
    from test_pipeline import concner_config

    nlp = init_nlp(concner_config(tiny_xlmr_dir, paired_docbins))
    docs = list(nlp.pipe([char_doc(ZH), Doc(nlp.vocab, words=MIXED), char_doc("")]))
    for doc in docs:
        assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
        assert all(ent.label_ in ("LOC", "PER") for ent in doc.ents)
    assert len(nlp.get_pipe("concner").predict([docs[0]])[0]) == len(ZH)
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    pieces = docs[0]._.trf_data.wordpieces
    assert pieces.input_ids[0][pieces.attention_mask[0].astype(bool)].tolist() == tokenizer(ZH)["input_ids"]


def test_characters_of_one_piece_make_one_entity(tiny_xlmr_dir, paired_docbins):
    """Regression: 北 and 京 share the piece 北京, so they get the same vector and the
    same tag; B-LOC B-LOC made two one-character entities where there is one."""
    from test_pipeline import concner_config

    nlp = init_nlp(concner_config(tiny_xlmr_dir, paired_docbins))
    concner = nlp.get_pipe("concner")
    doc = nlp.get_pipe("transformer")(char_doc(ZH))
    probs = numpy.zeros((len(doc), len(concner.tags)), dtype="float32")
    probs[:, concner.tags.index("B-LOC")] = 1.0  # every token tagged B-LOC
    concner.set_annotations([doc], [probs])
    # pieces of 北京是中国的首都: ▁北京 是 中国 的 首都 -> five entities, not eight
    assert [ent.text for ent in doc.ents] == ["北 京", "是", "中 国", "的", "首 都"]


def test_characters_of_one_piece_make_one_grid_entity(tiny_xlmr_dir, paired_docbins):
    """Regression: the word-pair grid decoded each character on its own, so a grid
    that makes every character an entity gave eight where the pieces make five."""
    from test_mcl_ner import mcl_config

    nlp = init_nlp(mcl_config(tiny_xlmr_dir, paired_docbins))
    pipe = nlp.get_pipe("mcl_ner")
    doc = nlp.get_pipe("transformer")(char_doc(ZH))
    probs = numpy.zeros((len(doc), len(doc), len(pipe.tags)), dtype="float32")
    probs[..., pipe.tags.index("None")] = 1.0
    for i in range(len(doc)):  # every character a one-character LOC, at 0.9
        probs[i, i] = 0.0
        probs[i, i, pipe.tags.index("THW-LOC")] = 0.9
        probs[i, i, pipe.tags.index("None")] = 0.1
    pipe.set_annotations([doc], [[probs.reshape(len(doc) * len(doc), -1)]])
    # pieces of 北京是中国的首都: ▁北京 是 中国 的 首都
    assert [ent.text for ent in doc.ents] == ["北 京", "是", "中 国", "的", "首 都"]
    assert entity_confidences(doc) == [pytest.approx(0.9)] * 5
