"""Paired training data: an English Doc and its translations (or other views, such as a
code-switched version), kept in the same batch.

The pair key travels in `doc.user_data[PAIR_KEY]` (DocBins store user data): a source
sentence and its views carry the same value. It also names a sentence for the seeded
draws that must not depend on chunks or order (sentence_random).
"""
import hashlib
import random
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Hashable, Iterable, Iterator, List, Optional, Set, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import minibatch, registry
from wasabi import msg

from .config_errors import config_error
from .read_once import ReadOnceCorpus

PAIR_KEY = "concner_pair"
# A translation file of which fewer translations than this share match a source sentence
# is not the source's translation (another sample's, or a test set passed by mistake).
MIN_MATCHED_SHARE = 0.5
Item = Union[Example, Doc]


def pair_key(item: Item) -> Optional[Hashable]:
    """The pair key of a Doc, or of an Example's reference Doc (None if unpaired)."""
    doc = item.reference if isinstance(item, Example) else item
    return doc.user_data.get(PAIR_KEY)


def sentence_random(seed: int, doc: Doc) -> random.Random:
    """A generator seeded by the seed and the Doc's pair key (its text if it has none),
    stable across processes (Python's hash() of a str is not): a sentence draws the same
    whatever chunk or order it is processed in."""
    key = doc.user_data.get(PAIR_KEY)
    name = f"{seed}\0{doc.text if key is None else key}".encode("utf8")
    return random.Random(int.from_bytes(hashlib.sha256(name).digest()[:8], "big"))


def partner_rows(keys: List[Optional[Hashable]]) -> List[int]:
    """For each row, the first other row with the same key, or -1 if there is none."""
    rows_by_key: Dict[Hashable, List[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        if key is not None:
            rows_by_key[key].append(row)
    partners = []
    for row, key in enumerate(keys):
        others = [r for r in rows_by_key.get(key, []) if r != row] if key is not None else []
        partners.append(others[0] if others else -1)
    return partners


def group_ids(keys: List[Optional[Hashable]]) -> List[int]:
    """For each row, an id shared by the rows with its key (ids in order of first
    appearance), or -1 if it has no key."""
    ids: Dict[Hashable, int] = {}
    return [-1 if key is None else ids.setdefault(key, len(ids)) for key in keys]


@registry.readers("spacy_concner.PairedCorpus.v1")
def create_paired_corpus(
    source: Optional[Path],
    translation: Optional[Union[Path, List[Path]]] = None,
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
) -> Callable[[Language], Iterable[Example]]:
    """Examples from a source DocBin and, optionally, its translation DocBin or a list
    of such files (other views of the source: translations, code-switched versions),
    each source's views yielded right after it, in the order of the files. Arguments
    as in spacy.Corpus.v1, applied to each file. Says per file how many of its Docs
    match a source sentence by pair key; warns when some do not (they train as
    unpaired examples, without TCL) and fails when fewer than half do
    (MIN_MATCHED_SHARE): the file is then not a view of the source."""
    return create_paired_corpus_v2(source, translation, None, gold_preproc, max_length, limit)


@registry.readers("spacy_concner.PairedCorpus.v2")
def create_paired_corpus_v2(
    source: Optional[Path],
    translation: Optional[Union[Path, List[Path]]] = None,
    unpaired: Optional[Union[Path, List[Path]]] = None,
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
) -> Callable[[Language], Iterable[Example]]:
    """v1, and then the Examples of `unpaired`: a DocBin or a list of them whose Docs are
    not views of the source (mCL-NER's student: the teacher's pseudo-labelled target
    sentences beside the source and its views). They train as unpaired examples: with the
    losses of gold entities, not those of views."""
    if source is None:
        raise config_error(
            "The paired corpus has no source path: set it in the config or on the command "
            "line, e.g. --paths.train corpus/en/train.spacy"
        )
    return PairedCorpus(source, translation, gold_preproc, max_length, limit, unpaired)


def as_list(paths: Optional[Union[Path, List[Path]]]) -> List[Path]:
    """A config's path, list of paths or null as a list."""
    return paths if isinstance(paths, list) else [paths] if paths else []


class PairedCorpus:
    def __init__(
        self,
        source: Path,
        translation: Optional[Union[Path, List[Path]]],
        gold_preproc: bool,
        max_length: int,
        limit: int,
        unpaired: Optional[Union[Path, List[Path]]] = None,
    ):
        options = dict(gold_preproc=gold_preproc, max_length=max_length, limit=limit)
        self.source_path = source
        self.source = ReadOnceCorpus(source, **options)
        self.view_paths = as_list(translation)
        self.views = [ReadOnceCorpus(path, **options) for path in self.view_paths]
        self.unpaired = [ReadOnceCorpus(path, **options) for path in as_list(unpaired)]
        self.reported: Set[Path] = set()

    def __call__(self, nlp: Language) -> Iterator[Example]:
        sources = list(self.source(nlp))
        source_keys = {pair_key(eg) for eg in sources} - {None}
        views: Dict[Optional[Hashable], List[Example]] = defaultdict(list)
        for path, corpus in zip(self.view_paths, self.views):
            file_views: Dict[Optional[Hashable], List[Example]] = defaultdict(list)
            for eg in corpus(nlp):
                file_views[pair_key(eg)].append(eg)
            self.check_matches(path, source_keys, file_views)
            for key, egs in file_views.items():
                views[key].extend(egs)
        for eg in sources:
            yield eg
            key = pair_key(eg)
            if key is not None:
                yield from views.pop(key, [])
        for unmatched in views.values():
            yield from unmatched
        for corpus in self.unpaired:
            yield from corpus(nlp)

    def check_matches(self, translation: Path, source_keys: set, translations: Dict[Optional[Hashable], List[Example]]) -> None:
        """Say, the first time, how many of a file's translations match a source
        sentence; warn when some do not, fail when most do not."""
        source = self.source_path
        n_translations = sum(len(egs) for egs in translations.values())
        n_matched = sum(len(egs) for key, egs in translations.items() if key in source_keys)
        if n_matched < MIN_MATCHED_SHARE * n_translations or not n_translations:
            raise config_error(
                f"{translation}: {n_matched} of {n_translations} translations match a sentence "
                f"of {source} by pair key ({PAIR_KEY}), so it is not that file's translation",
                "Set paths.translation to the output of `python -m spacy_concner translate` "
                "run on paths.train (not a test set or another sample's translation).",
            )
        if translation in self.reported:
            return
        self.reported.add(translation)
        msg.info(f"Paired corpus: {n_matched} of {n_translations} translations in {translation} match "
                 f"one of the {len(source_keys)} keyed sentences of {source}")
        if n_matched < n_translations:
            warnings.warn(
                f"{translation}: {n_translations - n_matched} of {n_translations} translations "
                f"match no sentence of {source} by pair key: they train as unpaired examples "
                "(no translation contrastive loss)"
            )


@registry.batchers("spacy_concner.pair_batcher.v2")
def configure_pair_batcher_v2(
    size: int = 32, shuffle: bool = True, buffer: int = 100_000, sort_window: int = 8
) -> Callable[[Iterable[Item]], Iterator[List[Item]]]:
    """Batches of `size` pairs (a source and all its views with its pair key:
    translations, code-switched versions; an unpaired item is a group of its own),
    pairs of similar length together: the shuffled pairs are taken
    `sort_window` batches at a time and sorted by length (characters of the longest
    item) before they are cut into batches; the batches are then shuffled. Less
    padding, and batches still differ from epoch to epoch. sort_window = 1 is v1.
    Pairs are formed within windows of `buffer` items of the (shuffled) example list
    spaCy's training loop passes in."""
    if size < 1 or buffer < 1 or sort_window < 1:
        raise ValueError(
            f"pair_batcher needs size, buffer and sort_window >= 1, got {size}, {buffer}, {sort_window}"
        )

    def batch_pairs(items: Iterable[Item]) -> Iterator[List[Item]]:
        for window in minibatch(items, buffer):
            groups = group_pairs(window)
            if shuffle:
                random.shuffle(groups)
            batches = []
            for sorted_window in minibatch(groups, size * sort_window):
                if sort_window > 1:
                    sorted_window.sort(key=group_length)
                batches.extend(minibatch(sorted_window, size))
            if shuffle and sort_window > 1:  # the sorted windows' batches: mix lengths
                random.shuffle(batches)
            for groups_batch in batches:
                yield [item for group in groups_batch for item in group]

    return batch_pairs


@registry.batchers("spacy_concner.pair_batcher.v1")
def configure_pair_batcher(
    size: int = 32, shuffle: bool = True, buffer: int = 100_000
) -> Callable[[Iterable[Item]], Iterator[List[Item]]]:
    """Batches of `size` pairs, in the shuffled order of the pairs: v2 without sorting
    by length (sort_window = 1)."""
    return configure_pair_batcher_v2(size, shuffle, buffer, sort_window=1)


def group_length(group: List[Item]) -> int:
    """Characters of the group's longest item (a proxy for its word pieces)."""
    return max(len((item.predicted if isinstance(item, Example) else item).text) for item in group)


def group_pairs(items: List[Item]) -> List[List[Item]]:
    """Items with the same pair key together, in order of first appearance."""
    groups: Dict[Hashable, List[Item]] = {}
    for i, item in enumerate(items):
        key = pair_key(item)
        groups.setdefault(("pair", key) if key is not None else ("single", i), []).append(item)
    return list(groups.values())
