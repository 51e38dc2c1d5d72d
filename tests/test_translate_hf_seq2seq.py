"""Seq2seq backend with a tiny randomly initialised Marian model built here (no download):
it translates garbage, so what is checked is the marker handling and the failure report."""
import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import get_translator

SENTENCES = [
    ("Peter Blackburn visited Lima .", [(0, 2, "PER"), (3, 4, "LOC")]),
    ("the EU rejects the call .", [(1, 2, "ORG")]),
    ("nothing happened here .", []),
    ("Anna met Boris in Oslo .", [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC")]),
]


@pytest.fixture(scope="module")
def tiny_marian_dir(tmp_path_factory):
    pytest.importorskip("torch")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-marian")
    words = sorted({w for text, _ in SENTENCES for w in text.split()} | {"de", "la", "el"})
    markers = [f"<{slash}{label}>" for label in ("PER", "LOC", "ORG") for slash in ("", "/")]
    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>"] + markers + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(out)
    config = MarianConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    MarianMTModel(config).save_pretrained(out)
    return out


def make_docs():
    docs = []
    for i, (text, ents) in enumerate(SENTENCES):
        doc = Doc(Vocab(), words=text.split())
        doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
        doc.user_data[PAIR_KEY] = f"test:{i}"
        docs.append(doc)
    return docs


def test_generated_output_is_kept_only_with_its_markers(tiny_marian_dir, monkeypatch):
    """The whole call path with known model outputs (the random model's are garbage):
    an output whose markers decode is kept with its entities and pair key; one that lost
    a marker is reported as a failure of its own source."""
    translator = get_translator("hf_seq2seq", model=str(tiny_marian_dir), lang="es", batch_size=2)
    outputs = {
        "<PER> Peter Blackburn </PER> visited <LOC> Lima </LOC> .": None,
        "<ORG> EU </ORG> la the call .": None,
        "nothing happened here .": None,
        "<PER> Anna </PER> met Boris in <LOC> Oslo </LOC> .": "markers lost",
    }
    ids = translator.tokenizer(list(outputs), padding=True, return_tensors="pt")["input_ids"]
    calls = []

    def generate(input_ids, **options):
        calls.append(len(input_ids))
        start = sum(calls) - len(input_ids)
        return ids[start : start + len(input_ids)]

    monkeypatch.setattr(translator.model, "generate", generate)
    docs = make_docs()
    results = list(translator(docs))
    assert calls == [2, 2]
    assert [r.source for r in results] == docs
    assert [r.error for r in results] == list(outputs.values())
    kept = results[0].doc
    assert [(e.text, e.label_) for e in kept.ents] == [("Peter Blackburn", "PER"), ("Lima", "LOC")]
    assert kept.user_data[PAIR_KEY] == "test:0"
    assert [(e.text, e.label_) for e in results[1].doc.ents] == [("EU", "ORG")]
    assert results[3].doc is None


def test_marker_projection_and_lost_markers(tiny_marian_dir):
    translator = get_translator("hf_seq2seq", model=str(tiny_marian_dir), lang="es")
    source = make_docs()[0]
    kept = translator.project(source, "<LOC> Lima </LOC> fue visitada por <PER> Peter Blackburn </PER> .")
    assert [(e.text, e.label_) for e in kept.doc.ents] == [("Lima", "LOC"), ("Peter Blackburn", "PER")]
    assert kept.doc.user_data[PAIR_KEY] == "test:0"
    assert translator.project(source, "Lima fue visitada por <PER> Peter Blackburn </PER> .").error == "markers lost"
    assert translator.project(source, "Lima </LOC> fue visitada por <PER> Peter </PER>").error == "unbalanced markers"


def test_encoded_input_reaches_the_model_with_markers(tiny_marian_dir):
    translator = get_translator("hf_seq2seq", model=str(tiny_marian_dir), lang="es")
    text = translator.codec.encode(["Peter", "Blackburn", "visited", "Lima", "."], [True, True, True, False, False], [(0, 2, "PER"), (3, 4, "LOC")])
    assert text == "<PER> Peter Blackburn </PER> visited <LOC> Lima </LOC>."
    assert translator.tokenizer.unk_token_id not in translator.tokenizer(text.replace(".", " ."))["input_ids"]


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder"):
        get_translator("hf_seq2seq", model=str(tmp_path), lang="es")


@pytest.fixture(scope="module")
def tiny_nllb_like_dir(tiny_marian_dir, tmp_path_factory):
    """The tiny model with NLLB-style target-language tokens in its tokenizer."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-nllb-like")
    for path in tiny_marian_dir.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_marian_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": ["deu_Latn", "spa_Latn"]})
    tokenizer.save_pretrained(out)
    return out


def test_a_known_target_language_token_is_forced_first(tiny_nllb_like_dir):
    translator = get_translator("hf_seq2seq", model=str(tiny_nllb_like_dir), lang="es", tgt_lang="spa_Latn")
    assert translator.generate_options["forced_bos_token_id"] == translator.tokenizer.convert_tokens_to_ids("spa_Latn")
    assert translator.generate_options["forced_bos_token_id"] != translator.tokenizer.unk_token_id


def test_an_unknown_target_language_names_valid_ones(tiny_nllb_like_dir):
    with pytest.raises(ValueError, match="'es_Latn' is not a language token.*valid ones include deu_Latn, spa_Latn"):
        get_translator("hf_seq2seq", model=str(tiny_nllb_like_dir), lang="es", tgt_lang="es_Latn")


def test_a_target_language_for_a_model_without_language_tokens_is_refused(tiny_marian_dir):
    with pytest.raises(ValueError, match="'spa_Latn'.*no language tokens"):
        get_translator("hf_seq2seq", model=str(tiny_marian_dir), lang="es", tgt_lang="spa_Latn")
