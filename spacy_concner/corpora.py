"""NER corpora in the CoNLL-2002, CoNLL-2003 and WikiANN (XTREME PAN-X) formats -> spaCy Docs,
and unlabelled text for annotation (those formats, plain text or DocBins) -> Docs of words.

One token per line, a blank line between sentences, plain text or gzip:
- conll2002: `word POS IOB2` (space separated)
- conll2003: `word POS chunk NER` (space separated, IOB1 tags)
- wikiann:   `word<TAB>IOB2` (the XTREME copies here carry no `lang:` prefix on words,
             and a word such as `at:1994` is real text, so nothing is stripped)
`-DOCSTART-` lines are dropped. Tags are normalised to IOB2 the way seqeval's default
mode and conlleval count entities: an `I-X` that does not continue an X entity starts one.

Every Doc carries `doc.user_data[PAIR_KEY] = "{corpus_id}:{sentence_index}"`, the index
being the sentence's 0-based position in the file, so that samples and translations of a
sentence keep its key.
"""
import gzip
import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import typer
from spacy.tokens import Doc
from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab
from wasabi import msg

from .files import OutputPathError, check_output_file, read_docbin, write_docbin
from .pairs import PAIR_KEY

FORMATS = ("conll2002", "conll2003", "wikiann")
_COLUMNS = {"conll2002": 3, "conll2003": 4, "wikiann": 2}
_SPACE_SEPARATED = {3: "conll2002", 4: "conll2003"}
_TAG = re.compile(r"O|[BI]-\S+")
_DOCSTART = "-DOCSTART-"
INPUT_FORMATS = ("auto", "docbin", "text") + FORMATS  # of unlabelled text
# The teacher reads long Docs through strided windows, so length is no limit for the
# model; a "sentence" this long is a file that is not one sentence per line (a whole
# document or a dump on one line), and would make one huge training example.
MAX_TOKENS = 1000
N_SNIFFED_LINES = 20  # token lines that must all look like CoNLL rows for auto-detection


class CorpusError(ValueError):
    """A corpus file that cannot be read or does not follow its format."""


@dataclass(frozen=True)
class Sentence:
    index: int
    words: Tuple[str, ...]
    tags: Tuple[str, ...]  # IOB2
    line: int  # of its first word in the file, counted from 1


def read_sentences(path: Path, corpus_format: str = "auto") -> List[Sentence]:
    """All non-empty sentences of a corpus file, with IOB2 tags."""
    path = Path(path)
    lines = list(numbered_lines(path))
    if corpus_format == "auto":
        corpus_format = detect_format(path, lines)
    elif corpus_format not in FORMATS:
        choices = ", ".join(FORMATS)
        raise CorpusError(f"unknown format {corpus_format!r}: use auto or one of {choices}")
    sentences = []
    for block in _blocks(lines):
        rows = [_split_row(path, number, line, corpus_format) for number, line in block]
        words = tuple(row[0] for row in rows)
        tags = normalise_iob([row[-1] for row in rows])
        sentences.append(Sentence(len(sentences), words, tuple(tags), block[0][0]))
    if not sentences:
        raise CorpusError(f"{path}: no sentences (the file is empty or blank)")
    return sentences


def detect_format(path: Path, lines: Sequence[Tuple[int, str]]) -> str:
    """The format of the first token line: 2 tab-separated or 3 or 4 space-separated columns."""
    for number, line in lines:
        if line.strip() and not line.startswith(_DOCSTART):
            corpus_format = row_format(line)
            if corpus_format is None:
                raise CorpusError(
                    f"{path}:{number}: cannot detect the format from {len(_columns(line))} columns "
                    f"(expected 2 tab-separated, 3 or 4 space-separated); pass the format explicitly"
                )
            return corpus_format
    raise CorpusError(f"{path}: no token lines, cannot detect the format")


def row_format(line: str) -> Optional[str]:
    """The format whose columns a token line has (2 tab-separated: wikiann, 3 or 4
    space-separated: conll2002, conll2003), or None."""
    columns = _columns(line)
    if "\t" in line:
        return "wikiann" if len(columns) == _COLUMNS["wikiann"] else None
    return _SPACE_SEPARATED.get(len(columns))


def _columns(line: str) -> List[str]:
    return line.split("\t") if "\t" in line else line.split(" ")


def normalise_iob(tags: Sequence[str]) -> List[str]:
    """IOB1 (or IOB2 with stray I- tags) -> IOB2: an I-X not following ?-X becomes B-X."""
    iob2 = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B" + tag[1:]
        iob2.append(tag)
        previous = tag
    return iob2


def sentence_to_doc(vocab: Vocab, sentence: Sentence, corpus_id: str, labelled: bool = True) -> Doc:
    """A Doc of the sentence's words, entities set from its tags or left missing (unlabelled)."""
    doc = Doc(vocab, words=list(sentence.words), spaces=[True] * len(sentence.words))
    if labelled:
        doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(sentence.tags))
    doc.user_data[PAIR_KEY] = f"{corpus_id}:{sentence.index}"
    return doc


def sample_sentences(
    sentences: Sequence[Sentence], n_sents: Optional[int], seed: int
) -> List[Sentence]:
    """A seeded sample of n_sents sentences in file order (all if n_sents is None or too big)."""
    if n_sents is None or n_sents >= len(sentences):
        return list(sentences)
    chosen = random.Random(seed).sample(range(len(sentences)), n_sents)
    return [sentences[i] for i in sorted(chosen)]


def read_docs(
    path: Path,
    vocab: Vocab,
    corpus_format: str = "auto",
    n_sents: Optional[int] = None,
    seed: int = 1,
    max_sents: Optional[int] = None,
    labelled: bool = True,
    corpus_id: Optional[str] = None,
) -> List[Doc]:
    """The corpus as Docs: of the first max_sents sentences, a seeded sample of n_sents."""
    path = Path(path)
    sentences = read_sentences(path, corpus_format)[:max_sents]
    corpus_id = corpus_id or corpus_name(path)
    sample = sample_sentences(sentences, n_sents, seed)
    return [sentence_to_doc(vocab, sentence, corpus_id, labelled) for sentence in sample]


def corpus_name(path: Path) -> str:
    """The default corpus id: the file name without .gz (esp.train, train-de.tsv)."""
    name = Path(path).name
    return name[: -len(".gz")] if name.endswith(".gz") else name


def count_entities(docs: Iterable[Doc]) -> Counter:
    """Entities per label."""
    return Counter(ent.label_ for doc in docs for ent in doc.ents)


def convert_cli(
    input: Path = typer.Argument(..., help="Corpus file, plain or .gz"),
    output: Path = typer.Argument(..., help="Output .spacy file (DocBin)"),
    corpus_format: str = typer.Option(
        "auto", "--format", help="auto, conll2002, conll2003 or wikiann"
    ),
    lang: str = typer.Option("xx", help="Language code of the vocab"),
    n_sents: Optional[int] = typer.Option(
        None, min=1, help="Seeded random sample of this many sentences"
    ),
    seed: int = typer.Option(1, help="Seed of the sample"),
    max_sents: Optional[int] = typer.Option(
        None, min=1, help="Read only the first this many sentences"
    ),
    no_labels: bool = typer.Option(
        False, "--no-labels", help="Leave entities missing (unlabelled text)"
    ),
    corpus_id: Optional[str] = typer.Option(
        None, help="Prefix of the pair keys [default: file name without .gz]"
    ),
) -> None:
    """Convert a CoNLL-2002/2003 or WikiANN file to a DocBin, optionally sampled and unlabelled."""
    import spacy

    try:
        check_output_file(output)
        docs = read_docs(
            input, spacy.blank(lang).vocab, corpus_format, n_sents=n_sents, seed=seed,
            max_sents=max_sents, labelled=not no_labels, corpus_id=corpus_id,
        )
    except (CorpusError, OutputPathError) as error:
        msg.fail(str(error), exits=1)
    if n_sents is not None and len(docs) < n_sents:
        msg.warn(f"--n-sents {n_sents} is more than the {len(docs)} sentences read from {input}: all are kept")
    write_docbin(docs, output)
    msg.good(f"{output}: {len(docs)} sentences, {_describe_counts(count_entities(docs))}")


def _describe_counts(counts: Counter) -> str:
    per_label = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    return f"{sum(counts.values())} entities" + (f" ({per_label})" if per_label else "")


def numbered_lines(path: Path) -> Iterator[Tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as file:
            # decoded line by line so that an encoding error names its line
            for number, raw in enumerate(file, start=1):
                yield number, _decode(path, number, raw).rstrip("\r\n")
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:  # zlib: damaged data behind a gzip header
        where = f" after line {number}" if number else ""
        raise CorpusError(
            f"{path}: cannot read{where}, the file is damaged or cut short ({error}): copy or download it again"
        ) from error
    except OSError as error:
        raise CorpusError(f"{path}: cannot read: {error}") from error


def _decode(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}:{number}: not UTF-8 ({error.reason})") from error


def _blocks(lines: Iterable[Tuple[int, str]]) -> Iterator[List[Tuple[int, str]]]:
    """Groups of token lines between blank lines, -DOCSTART- lines dropped."""
    block: List[Tuple[int, str]] = []
    for number, line in lines:
        if line.startswith(_DOCSTART):
            continue
        if line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _split_row(path: Path, number: int, line: str, corpus_format: str) -> List[str]:
    row = line.split("\t") if corpus_format == "wikiann" else line.split(" ")
    if len(row) != _COLUMNS[corpus_format]:
        raise CorpusError(
            f"{path}:{number}: {len(row)} columns, expected {_COLUMNS[corpus_format]} "
            f"for {corpus_format}: {line!r}"
        )
    if not _TAG.fullmatch(row[-1]):
        raise CorpusError(
            f"{path}:{number}: invalid tag {row[-1]!r} (expected O, B-TYPE or I-TYPE)"
        )
    return row


def read_unlabelled(
    path: Path, vocab: Vocab, input_format: str = "auto", max_tokens: int = MAX_TOKENS
) -> List[Doc]:
    """Unlabelled text as Docs of words only (entities missing), each with its pair key:
    from a DocBin, a text file (one sentence per line, tokens separated by whitespace)
    or a CoNLL/WikiANN file whose labels are ignored."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    if input_format not in INPUT_FORMATS:
        raise CorpusError(f"unknown format {input_format!r}: use one of {', '.join(INPUT_FORMATS)}")
    if input_format == "auto":
        input_format = sniff_format(path)
    if input_format == "docbin":
        docs = [_with_pair_key(words_only(doc), doc) for doc in read_docbin(path, vocab)]
        places = [f"{path} (Doc {i + 1})" for i in range(len(docs))]
    else:
        sentences = read_text(path) if input_format == "text" else read_sentences(path, input_format)
        docs = [sentence_to_doc(vocab, s, corpus_name(path), labelled=False) for s in sentences]
        places = [f"{path}:{sentence.line}" for sentence in sentences]
    if not any(len(doc) for doc in docs):
        raise CorpusError(f"{path}: no sentences to annotate (an empty file?)")
    warn_long_sentences(docs, places, max_tokens)
    return docs


def sniff_format(path: Path) -> str:
    """docbin for a .spacy file; a CoNLL/WikiANN format when the first token lines
    all look like CoNLL rows (2 tab-separated or 3-4 space-separated columns ending
    in an IOB tag); text otherwise."""
    if path.suffix == ".spacy":
        return "docbin"
    token_lines = (
        (number, line)
        for number, line in numbered_lines(path)
        if line.strip() and not line.startswith(_DOCSTART)
    )
    sniffed = list(islice(token_lines, N_SNIFFED_LINES))
    if sniffed and all(looks_like_conll_row(line) for _, line in sniffed):
        return detect_format(path, sniffed)
    return "text"


def looks_like_conll_row(line: str) -> bool:
    return row_format(line) is not None and bool(_TAG.fullmatch(_columns(line)[-1]))


def read_text(path: Path) -> List[Sentence]:
    """One sentence per non-blank line, tokens split on whitespace; index = line number - 1."""
    return [
        Sentence(number - 1, tuple(line.split()), (), number)
        for number, line in numbered_lines(path)
        if line.strip()
    ]


def words_only(doc: Doc, vocab: Optional[Vocab] = None) -> Doc:
    """A new Doc with the words and spaces of `doc` and nothing else (no entities,
    sentence boundaries or user data), in `vocab` (default: the Doc's): the input to
    predict on. Sentence boundaries would also make spacy.Corpus split a Doc and lose
    its user data."""
    words = [token.text for token in doc]
    spaces = [bool(token.whitespace_) for token in doc]
    return Doc(doc.vocab if vocab is None else vocab, words=words, spaces=spaces)


def _with_pair_key(copy: Doc, doc: Doc) -> Doc:
    if PAIR_KEY in doc.user_data:
        copy.user_data[PAIR_KEY] = doc.user_data[PAIR_KEY]
    return copy


def warn_long_sentences(docs: Sequence[Doc], places: Sequence[str], max_tokens: int) -> None:
    """Warn once about sentences of more than max_tokens tokens, naming the first by its
    place (path:line, counted from 1, or path (Doc N)). They are kept: the encoder reads
    any length through its windows, and corpora have such "sentences" (a stock table of
    1,238 tokens in CoNLL-2002 Spanish); in a text file, a line that long is more likely
    a paragraph than a sentence."""
    too_long = [i for i, doc in enumerate(docs) if len(doc) > max_tokens]
    if too_long:
        first = too_long[0]
        msg.warn(
            f"{places[first]}: a sentence of {len(docs[first])} tokens, more than {max_tokens} "
            f"tokens ({len(too_long)} such in the file): labelled as it is; if the file is not "
            "one sentence per line, split the text into sentences"
        )
