"""Shared fixtures: a tiny randomly initialised BERT built on the spot, synthetic
paired NER data, and an entity-ruler stand-in for a trained NER pipeline."""
import os
import random
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the model hub

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PERSONS = ["Anna", "Boris", "Carla", "Dmitri", "Elena", "Farid"]
PLACES = ["Paris", "Lagos", "Quito", "Oslo", "Hanoi", "Lima"]
# (English template, "translation" template); {p} a person, {l} a place
TEMPLATES = [
    ("{p} lives in {l} .", "{p} wohnt in {l} ."),
    ("yesterday {p} flew to {l} .", "gestern flog {p} nach {l} ."),
    ("the mayor of {l} met {p} .", "der Bürgermeister von {l} traf {p} ."),
    ("{p} said nothing .", "{p} sagte nichts ."),
]


def needs_apertium_mode(pair: str):
    """A mark that skips a test unless Apertium and its mode `pair` are installed."""
    import shutil

    from spacy_concner.translate.apertium import MODES_DIR

    installed = shutil.which("apertium-wblank-mode") is not None and Path(MODES_DIR, f"{pair}.mode").exists()
    return pytest.mark.skipif(not installed, reason="apt-get install apertium apertium-eng-spa")


def benchmark_module(name: str):
    """benchmarks/NAME.py as a module (the folder on sys.path for its sibling modules)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def said(result) -> str:
    """A CLI run's output with whitespace runs as one space: wasabi wraps long messages."""
    return " ".join(result.output.split())


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The benchmark data folder: $SPACY_CONCNER_DATA, default ../shared/data next to the repo."""
    path = Path(os.environ.get("SPACY_CONCNER_DATA", Path(__file__).parents[2] / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"benchmark data folder {path} not found: set SPACY_CONCNER_DATA to use the real corpora")
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a word-piece vocabulary covering the synthetic
    data, saved as an ordinary Hugging Face folder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-bert")
    words = {w.lower() for e, t in TEMPLATES for w in (e + " " + t).split() if "{" not in w}
    words |= {w.lower() for w in PERSONS + PLACES}
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789.,"))
    vocab = list(dict.fromkeys(SPECIAL_TOKENS + sorted(words) + chars + ["##" + c for c in chars]))
    tokenizer = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    ).save_pretrained(out)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    return out


TAGGER_ON_TRANSFORMER = """
[nlp]
lang = "en"
pipeline = ["transformer", "tagger"]

[components]

[components.transformer]
factory = "transformer"

[components.transformer.model]

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96

[components.tagger]
factory = "tagger"

[components.tagger.model]
@architectures = "spacy.Tagger.v2"

[components.tagger.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0

[components.tagger.model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""


def tagger_on_transformer(architecture: str, **settings):
    """A transformer + tagger pipeline (not initialised) whose transformer model is the
    registered `architecture` with these settings (name = the encoder, ...)."""
    import spacy
    from thinc.api import Config

    config = Config().from_str(TAGGER_ON_TRANSFORMER)
    config["components"]["transformer"]["model"].update({"@architectures": architecture, **settings})
    return spacy.util.load_model_from_config(config, auto_fill=True)


def tagged_examples(nlp, texts):
    """Examples for the tagger_on_transformer pipeline: punctuation X, other tokens W."""
    from spacy.training import Example

    examples = []
    for text in texts:
        doc = nlp.make_doc(text)
        tags = ["X" if token.is_punct else "W" for token in doc]
        examples.append(Example.from_dict(doc, {"tags": tags}))
    return examples


def tiny_encoder(tiny_bert_dir) -> dict:
    """Config overrides that put the tiny BERT into configs/*.cfg (1 of its 2 layers frozen)."""
    return {"paths.encoder": str(tiny_bert_dir), "components.transformer.model.frozen_layers": 1}


def synthetic_pairs(n_pairs: int, seed: int = 0):
    """(English words, tags, translated words, tags) for n_pairs sentence pairs."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n_pairs):
        en, tr = rng.choice(TEMPLATES)
        fill = {"p": rng.choice(PERSONS), "l": rng.choice(PLACES)}
        pairs.append((*tagged(en, fill), *tagged(tr, fill)))
    return pairs


def tagged(template: str, fill):
    words, tags = [], []
    for slot in template.split():
        if slot in ("{p}", "{l}"):
            words.append(fill[slot[1]])
            tags.append("B-PER" if slot == "{p}" else "B-LOC")
        else:
            words.append(slot)
            tags.append("O")
    return words, tags


@pytest.fixture(scope="session")
def paired_docbins(tmp_path_factory):
    """Paths of source and translation DocBins (24 pairs) and a dev DocBin."""
    from spacy.tokens import Doc, DocBin
    from spacy.training import iob_to_biluo, biluo_tags_to_spans
    from spacy.vocab import Vocab

    from spacy_concner.pairs import PAIR_KEY

    def make_doc(vocab, words, tags, key):
        doc = Doc(vocab, words=words)
        doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(tags))
        if key is not None:
            doc.user_data[PAIR_KEY] = key
        return doc

    out = tmp_path_factory.mktemp("pairs")
    vocab = Vocab()
    source, translation, dev = (DocBin(store_user_data=True) for _ in range(3))
    for i, (en, en_tags, tr, tr_tags) in enumerate(synthetic_pairs(24)):
        source.add(make_doc(vocab, en, en_tags, f"synthetic:{i}"))
        translation.add(make_doc(vocab, tr, tr_tags, f"synthetic:{i}"))
    for en, en_tags, _, _ in synthetic_pairs(8, seed=1):
        dev.add(make_doc(vocab, en, en_tags, None))
    paths = {"source": out / "source.spacy", "translation": out / "translation.spacy",
             "dev": out / "dev.spacy"}
    source.to_disk(paths["source"])
    translation.to_disk(paths["translation"])
    dev.to_disk(paths["dev"])
    return paths


@pytest.fixture(scope="session")
def teacher_dir(tiny_bert_dir, paired_docbins, tmp_path_factory):
    """A tiny concner teacher trained for 70 steps on the synthetic pairs (it then
    finds entities in their sentences)."""
    from test_pipeline import concner_config

    return trained_pipeline(concner_config(tiny_bert_dir, paired_docbins), 70, tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="session")
def mcl_teacher_dir(tiny_bert_dir, paired_docbins, tmp_path_factory):
    """A tiny mcl_ner teacher trained for 60 steps on the synthetic pairs (it then finds
    entities in their sentences)."""
    from test_mcl_ner import mcl_config

    return trained_pipeline(mcl_config(tiny_bert_dir, paired_docbins), 60, tmp_path_factory.mktemp("mcl_teacher"))


def trained_pipeline(config, steps: int, folder: Path) -> Path:
    """The pipeline of `config` trained on its corpus for `steps` batches of 8 with Adam
    (learn rate 0.003), saved in folder/model."""
    from spacy.training.initialize import init_nlp
    from thinc.api import Adam

    from test_pipeline import training_examples

    nlp = init_nlp(config)
    examples = training_examples(nlp)
    optimizer = Adam(0.003)
    for step in range(steps):
        start = (step * 8) % len(examples)
        nlp.update(examples[start : start + 8], sgd=optimizer)
    nlp.to_disk(folder / "model")
    return folder / "model"


def write_freedict(folder: Path, name: str, entries: dict) -> Path:
    """A FreeDict dictionary in miniature in `folder`: the dictd index and the dictzip'd
    data (gzip-compatible) of entries {headword: entry text}; a headword is indexed
    stripped, so "house " files a second entry under "house"."""
    import gzip

    data, index, offset = b"", [], 0
    for headword, entry in entries.items():
        raw = entry.encode("utf8")
        index.append(f"{headword.strip()}\t{_base64(offset)}\t{_base64(len(raw))}")
        data += raw
        offset += len(raw)
    (folder / f"{name}.index").write_text("\n".join(index) + "\n", encoding="utf8")
    (folder / f"{name}.dict.dz").write_bytes(gzip.compress(data))
    return folder


def _base64(n: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = digits[n % 64] + out
        n //= 64
        if not n:
            return out


def write_ruler_pipeline(path: Path, lang: str, patterns: list) -> Path:
    """A stand-in for a trained NER pipeline, saved at `path`: a blank `lang` pipeline
    with an entity ruler of `patterns`, so that its entities are known in advance."""
    import spacy

    nlp = spacy.blank(lang)
    nlp.add_pipe("entity_ruler").add_patterns(patterns)
    nlp.to_disk(path)
    return path


def write_keyed_docbin(path: Path, sentences) -> Path:
    """A DocBin of sentences [(words, [(start, end, label), ...]), ...], sentence i with
    the pair key "s:i", as `convert` writes them."""
    from spacy.tokens import Doc, DocBin, Span
    from spacy.vocab import Vocab

    from spacy_concner.pairs import PAIR_KEY

    vocab, docbin = Vocab(), DocBin(store_user_data=True)
    for i, (words, ents) in enumerate(sentences):
        doc = Doc(vocab, words=words)
        doc.ents = [Span(doc, start, end, label=label) for start, end, label in ents]
        doc.user_data[PAIR_KEY] = f"s:{i}"
        docbin.add(doc)
    docbin.to_disk(path)
    return path
