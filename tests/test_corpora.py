import gzip
from collections import Counter

import pytest
from seqeval.metrics.sequence_labeling import get_entities
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.corpora import (
    CorpusError,
    count_entities,
    normalise_iob,
    read_docs,
    read_sentences,
    read_unlabelled,
    sample_sentences,
    sniff_format,
    words_only,
)
from spacy_concner.pairs import PAIR_KEY

from conftest import said

CONLL2003 = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Smith NNP I-NP B-PER


-DOCSTART- -X- O O

BRUSSELS NNP I-NP I-LOC
"""
CONLL2002 = """\
-DOCSTART- -DOCSTART- O
De Art O
Raad N B-ORG
van Prep I-ORG
State N I-ORG
zwijgt V O

Jan N B-PER
"""
WIKIANN = "R.H.\tB-ORG\nSaunders\tI-ORG\nat:1994\tO\n\nBerlin\tB-LOC\n"
SENTENCES = [f"Anna{i} wohnt in Lima{i} ." for i in range(10)]


def write(path, text, compress=False):
    data = text.encode("utf8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def ents(doc):
    return [(ent.text, ent.label_) for ent in doc.ents]


def sentences(docs):
    return [" ".join(token.text for token in doc) for doc in docs]


@pytest.mark.parametrize(
    "tags,expected",
    [
        (["I-PER", "I-PER", "O", "I-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),
        (["I-PER", "B-PER", "I-PER"], ["B-PER", "B-PER", "I-PER"]),
        (["I-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"]),
        (["B-ORG", "I-ORG", "O", "B-MISC"], ["B-ORG", "I-ORG", "O", "B-MISC"]),
        (["O", "I-MISC", "O"], ["O", "B-MISC", "O"]),
    ],
)
def test_normalise_iob_gives_iob2(tags, expected):
    assert normalise_iob(tags) == expected
    assert normalise_iob(expected) == expected


@pytest.mark.parametrize("compress", [False, True])
def test_conll2003_iob1_to_docs(tmp_path, compress):
    path = write(tmp_path / ("eng.tiny.gz" if compress else "eng.tiny"), CONLL2003, compress)
    docs = read_docs(path, Vocab())
    assert [doc.text for doc in docs] == [
        "EU rejects German call . ",
        "Peter Blackburn Smith ",
        "BRUSSELS ",
    ]
    assert [ents(doc) for doc in docs] == [
        [("EU", "ORG"), ("German", "MISC")],
        [("Peter Blackburn", "PER"), ("Smith", "PER")],
        [("BRUSSELS", "LOC")],
    ]
    assert [doc.user_data[PAIR_KEY] for doc in docs] == ["eng.tiny:0", "eng.tiny:1", "eng.tiny:2"]


def test_conll2002_docstart_inside_sentence_is_dropped(tmp_path):
    sentences = read_sentences(write(tmp_path / "ned.tiny", CONLL2002))
    assert [s.words for s in sentences] == [("De", "Raad", "van", "State", "zwijgt"), ("Jan",)]
    assert sentences[0].tags == ("O", "B-ORG", "I-ORG", "I-ORG", "O")


def test_wikiann_words_are_kept_verbatim(tmp_path):
    docs = read_docs(write(tmp_path / "train-xx.tsv", WIKIANN), Vocab(), corpus_id="wiki")
    assert [tok.text for tok in docs[0]] == ["R.H.", "Saunders", "at:1994"]
    assert [ents(doc) for doc in docs] == [[("R.H. Saunders", "ORG")], [("Berlin", "LOC")]]
    assert docs[1].user_data[PAIR_KEY] == "wiki:1"


@pytest.mark.parametrize(
    "text,corpus_format", [(CONLL2002, "conll2002"), (CONLL2003, "conll2003"), (WIKIANN, "wikiann")]
)
def test_format_is_detected(tmp_path, text, corpus_format):
    path = write(tmp_path / "corpus", text)
    assert read_sentences(path) == read_sentences(path, corpus_format)


def many_sentences(tmp_path, n=50):
    text = "".join(f"w{i} NN O\nCity{i} NP B-LOC\n\n" for i in range(n))
    return write(tmp_path / "many.txt", text)


def test_sampling_is_seeded_in_file_order_and_keeps_indices(tmp_path):
    path = many_sentences(tmp_path)
    keys = lambda docs: [doc.user_data[PAIR_KEY] for doc in docs]  # noqa: E731
    first = keys(read_docs(path, Vocab(), n_sents=10, seed=3))
    assert first == keys(read_docs(path, Vocab(), n_sents=10, seed=3))
    assert first != keys(read_docs(path, Vocab(), n_sents=10, seed=4))
    indices = [int(key.split(":")[1]) for key in first]
    assert indices == sorted(set(indices)) and len(indices) == 10
    docs = read_docs(path, Vocab(), n_sents=10, seed=3)
    assert [doc[0].text for doc in docs] == [f"w{i}" for i in indices]


def test_sampling_more_than_available_keeps_all(tmp_path):
    sentences = read_sentences(many_sentences(tmp_path, n=5))
    assert sample_sentences(sentences, 9, seed=1) == sentences
    assert sample_sentences(sentences, None, seed=1) == sentences


def test_max_sents_reads_the_first_sentences(tmp_path):
    docs = read_docs(many_sentences(tmp_path), Vocab(), max_sents=4, n_sents=2, seed=1)
    assert all(int(doc.user_data[PAIR_KEY].split(":")[1]) < 4 for doc in docs)


def test_unlabelled_docs_have_missing_entities_after_round_trip(tmp_path):
    docs = read_docs(many_sentences(tmp_path, n=3), Vocab(), labelled=False)
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "du.spacy")
    loaded = list(DocBin().from_disk(tmp_path / "du.spacy").get_docs(Vocab()))
    assert [doc.user_data[PAIR_KEY] for doc in loaded] == ["many.txt:0", "many.txt:1", "many.txt:2"]
    assert not any(doc.has_annotation("ENT_IOB") for doc in loaded)
    assert all(tok.ent_iob_ == "" for doc in loaded for tok in doc)


@pytest.mark.parametrize(
    "content,corpus_format,message",
    [
        (b"a NN O\nb NN\n", "auto", r"bad\.txt:2: 2 columns, expected 3 for conll2002"),
        (b"a NN I-NP O\n", "conll2002", r"bad\.txt:1: 4 columns, expected 3"),
        (b"a NN O\n\nb NN X-PER\n", "auto", r"bad\.txt:3: invalid tag 'X-PER'"),
        (b"a O\n", "auto", r"bad\.txt:1: cannot detect the format from 2 columns"),
        (b"a NN O\nb NN \xff\n", "auto", r"bad\.txt:2: not UTF-8"),
        (b"\n-DOCSTART- -X- O O\n\n", "auto", r"bad\.txt: no token lines"),
        (b"a NN O\n", "iob", r"unknown format 'iob'"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, content, corpus_format, message):
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        read_sentences(tmp_path / "bad.txt", corpus_format)


@pytest.mark.parametrize("name,content", [("missing.txt", None), ("broken.gz", b"not gzip")])
def test_unreadable_file(tmp_path, name, content):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(CorpusError, match=rf"{name}: cannot read"):
        read_sentences(tmp_path / name)


def test_convert_cli_writes_docbin_and_counts(tmp_path):
    source = write(tmp_path / "eng.tiny.gz", CONLL2003, compress=True)
    output = tmp_path / "out" / "eng.spacy"
    result = CliRunner().invoke(app, ["convert", str(source), str(output), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "3 sentences, 5 entities (LOC 1, MISC 1, ORG 1, PER 2)" in said(result)
    docs = list(DocBin().from_disk(output).get_docs(Vocab()))
    assert [ents(doc) for doc in docs] == [ents(doc) for doc in read_docs(source, Vocab())]
    assert docs[2].user_data[PAIR_KEY] == "eng.tiny:2"
    assert [p.name for p in output.parent.iterdir()] == ["eng.spacy"]


def test_convert_cli_sample_without_labels(tmp_path):
    output = tmp_path / "du.spacy"
    args = ["convert", str(many_sentences(tmp_path)), str(output), "--n-sents", "7", "--no-labels"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "7 sentences, 0 entities" in said(result)
    docs = list(DocBin().from_disk(output).get_docs(Vocab()))
    assert len(docs) == 7 and not any(doc.has_annotation("ENT_IOB") for doc in docs)


def test_convert_cli_reports_bad_input(tmp_path):
    (tmp_path / "bad.txt").write_text("a NN O\nb NN\n")
    args = ["convert", str(tmp_path / "bad.txt"), str(tmp_path / "x.spacy")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "bad.txt:2: 2 columns" in said(result)
    assert not (tmp_path / "x.spacy").exists()


def test_reads_unlabelled_text_conll_and_docbin(tmp_path):
    vocab = Vocab()
    text_file = tmp_path / "de.txt"
    text_file.write_text("\n".join(SENTENCES[:5]) + "\n\n" + "\n".join(SENTENCES[5:]) + "\n", encoding="utf8")
    from_text = read_unlabelled(text_file, vocab)
    assert sentences(from_text) == SENTENCES
    assert from_text[5].user_data[PAIR_KEY] == "de.txt:6"  # line 7, after a blank line
    conll = tmp_path / "test-de.tsv.gz"
    with gzip.open(conll, "wt", encoding="utf8") as file:
        file.write("".join(f"{w}\tO\n" for w in SENTENCES[0].split()) + "\nAnna\tB-PER\n")
    from_conll = read_unlabelled(conll, vocab)
    assert sentences(from_conll) == [SENTENCES[0], "Anna"]
    assert not any(doc.has_annotation("ENT_IOB") for doc in from_conll)  # labels ignored
    docbin = tmp_path / "de.spacy"
    labelled = Doc(vocab, words=["Anna", "wohnt", "hier"], sent_starts=[True, False, True])
    labelled.ents = [labelled.char_span(0, 4, "PER")]
    labelled.user_data[PAIR_KEY] = "x:1"
    DocBin(docs=[labelled], store_user_data=True).to_disk(docbin)
    (doc,) = read_unlabelled(docbin, vocab)
    assert doc.text == labelled.text and doc.user_data[PAIR_KEY] == "x:1"
    assert not doc.has_annotation("ENT_IOB") and not doc.has_annotation("SENT_START")


def test_words_only_keeps_words_and_spaces_and_nothing_else():
    doc = Doc(Vocab(), words=["Anna", "wohnt", "hier", "."], spaces=[True, True, False, False],
              sent_starts=[True, False, False, False])
    doc.ents = [doc.char_span(0, 4, "PER")]
    doc.user_data[PAIR_KEY] = "x:1"
    other_vocab = Vocab()
    copy = words_only(doc, other_vocab)
    assert copy.text == "Anna wohnt hier." and copy.vocab is other_vocab
    assert not copy.has_annotation("ENT_IOB") and not copy.has_annotation("SENT_START")
    assert not copy.user_data and words_only(doc).vocab is doc.vocab


@pytest.mark.parametrize(
    "lines,expected",
    [
        (["Anna\tB-PER", "wohnt\tO"], "wikiann"),
        (["Anna NNP B-PER", "lives VBZ O"], "conll2002"),
        (["Anna lives in Paris .", "he said O"], "text"),  # one CoNLL-looking line is not enough
        (["der Mann O"], "conll2002"),
    ],
)
def test_sniff_format(tmp_path, lines, expected):
    path = tmp_path / "input.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    assert sniff_format(path) == expected


# Published sentence / entity counts (CoNLL-2002 and -2003 shared task papers).
PUBLISHED = [
    ("conll2002/es/esp.train.gz", 8323, 18798),
    ("conll2002/es/esp.testb.gz", 1517, 3558),
    ("conll2002/nl/ned.train.gz", 15806, 13344),
    ("conll2002/nl/ned.testb.gz", 5195, 3941),
    ("conll2003/en/eng.train.gz", 14041, 23499),
    ("conll2003/en/eng.testb.gz", 3453, 5648),
]
# The published esp.testb count is that of B- tags; seqeval (and conlleval) also count
# the sentence-initial I-MISC on line 9291, where a title runs across a sentence break.
STRAY_I_TAGS = {"conll2002/es/esp.testb.gz": 1}


@pytest.mark.parametrize("name,n_sentences,n_entities", PUBLISHED)
def test_real_corpus_matches_published_counts(shared_data_dir, name, n_sentences, n_entities):
    docs = read_docs(shared_data_dir / name, Vocab())
    assert len(docs) == n_sentences
    assert sum(count_entities(docs).values()) == n_entities + STRAY_I_TAGS.get(name, 0)
    assert set(count_entities(docs)) == {"LOC", "MISC", "ORG", "PER"}


def raw_tag_sequences(path):
    """The last column of every sentence, read as plainly as possible (independent check)."""
    sequences = [[]]
    for line in gzip.open(path, "rt", encoding="utf8"):
        if line.startswith("-DOCSTART-"):
            continue
        if line.strip():
            sequences[-1].append(line.split()[-1])
        elif sequences[-1]:
            sequences.append([])
    return [tags for tags in sequences if tags]


@pytest.mark.parametrize(
    "name", ["conll2002/es/esp.testb.gz", "conll2003/en/eng.testb.gz", "wikiann/de/test-de.tsv.gz"]
)
def test_entities_are_those_seqeval_finds_in_the_raw_tags(shared_data_dir, name):
    docs = read_docs(shared_data_dir / name, Vocab())
    seqeval_entities = get_entities(raw_tag_sequences(shared_data_dir / name))
    expected = Counter(label for label, _, _ in seqeval_entities)
    assert count_entities(docs) == expected


@pytest.mark.parametrize("lang", ["en", "de"])
def test_real_wikiann_train(shared_data_dir, lang):
    docs = read_docs(shared_data_dir / "wikiann" / lang / f"train-{lang}.tsv.gz", Vocab())
    assert len(docs) == 20000
    # WikiANN sentences are chosen around entities: every one has at least one
    assert all(doc.ents for doc in docs)
    counts = count_entities(docs)
    assert set(counts) == {"LOC", "ORG", "PER"}
    assert all(n > 0.25 * sum(counts.values()) for n in counts.values())
    # the XTREME files here carry no `lang:` word prefix
    assert not any(doc[0].text.startswith(f"{lang}:") for doc in docs)


def damaged_gzip(path):
    """A valid gzip header followed by damaged deflate data."""
    data = bytearray(gzip.compress("".join(f"w{i} NN O\n" for i in range(2000)).encode()))
    data[40:48] = bytes(b ^ 0xFF for b in data[40:48])
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", ["damaged gzip", "output is a folder"])
def test_convert_refuses_in_one_message_and_writes_nothing(tmp_path, case):
    """Regression: a zlib.error and an IsADirectoryError traceback."""
    if case == "damaged gzip":
        source, output = damaged_gzip(tmp_path / "eng.train.gz"), tmp_path / "out.spacy"
        expected = f"{source}: cannot read"
    else:
        source, output = write(tmp_path / "eng.tiny", CONLL2003), tmp_path / "corpus"
        output.mkdir()
        expected = f"{output} is a folder, not a file"
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["convert", str(source), str(output)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert expected in said(result) and sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("content", [b"", b"\n \n\n"], ids=["empty", "blank"])
def test_convert_with_a_format_refuses_an_empty_file(tmp_path, content):
    """Regression: with --format, an empty or blank file gave an empty DocBin."""
    (tmp_path / "empty.txt").write_bytes(content)
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "empty.txt"), str(tmp_path / "x.spacy"), "--format", "conll2003"])
    assert result.exit_code == 1 and f"{tmp_path / 'empty.txt'}: no sentences (the file is empty or blank)" in said(result)
    assert not (tmp_path / "x.spacy").exists()


def test_convert_says_when_the_sample_is_larger_than_the_corpus(tmp_path):
    """Regression: --n-sents 9 of a 5-sentence file gave 5 sentences without a word."""
    source = many_sentences(tmp_path, n=5)
    result = CliRunner().invoke(app, ["convert", str(source), str(tmp_path / "x.spacy"), "--n-sents", "9"])
    assert result.exit_code == 0
    assert f"--n-sents 9 is more than the 5 sentences read from {source}: all are kept" in said(result)
