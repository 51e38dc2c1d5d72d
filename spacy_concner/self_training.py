"""Which teacher-labelled sentences a student self-trains on (mCL-NER's self-training,
`annotate --min-confidence --keep-empty --seed`): a sentence with entities is kept if
the teacher's confidence in every one of them is at least `min_confidence`; a sentence
without entities is kept with probability `keep_empty`, drawn per sentence from `seed`
and its pair key, so that the draw is the same whatever chunk the sentence is in.

The confidences are those the entity component stored with its entities
(entity_pipe.ENT_SCORES_KEY): `concner` and `mcl_ner` give them, EAT and spaCy's `ner`
do not. The defaults keep every sentence.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc

from .entity_pipe import EntityPipe, entity_confidences
from .pairs import sentence_random

KEPT, LOW_CONFIDENCE, ENTITY_FREE = "kept", "dropped_low_confidence", "dropped_entity_free"


class SelfTrainingError(ValueError):
    """A confidence filter on a teacher that gives no confidences: the message says what to do."""


@dataclass(frozen=True)
class SelfTrainingFilter:
    """min_confidence: the lowest entity confidence a kept sentence may have (0: no
    filter; mCL-NER's delta is 0.9). keep_empty: the share of entity-free sentences kept.
    seed: the seed of those draws."""

    min_confidence: float = 0.0
    keep_empty: float = 1.0
    seed: int = 0

    def check_teacher(self, nlp: Language) -> None:
        """Refuse, before any work, a confidence filter on a teacher whose entities are
        set last by a component that gives no confidences."""
        if self.min_confidence <= 0:
            return
        setters = [name for name in nlp.pipe_names if "doc.ents" in nlp.get_pipe_meta(name).assigns]
        if setters and not isinstance(nlp.get_pipe(setters[-1]), EntityPipe):
            raise SelfTrainingError(
                f"--min-confidence needs entities with confidences, but the teacher's '{setters[-1]}' "
                f"component sets them without (pipeline: {nlp.pipe_names}): give a concner or mcl_ner "
                "teacher, or leave --min-confidence out"
            )

    def verdict(self, doc: Doc) -> str:
        """KEPT, LOW_CONFIDENCE or ENTITY_FREE for a teacher-labelled Doc."""
        if not doc.ents:
            return KEPT if sentence_random(self.seed, doc).random() < self.keep_empty else ENTITY_FREE
        # the confidences are float32 probabilities: compared at their precision, a
        # probability of 0.9 reaches a min_confidence of 0.9
        if self.min_confidence > 0 and min(self._confidences(doc)) < numpy.float32(self.min_confidence):
            return LOW_CONFIDENCE
        return KEPT

    def apply(self, docs: List[Doc]) -> Tuple[List[Doc], Dict[str, int]]:
        """The kept Docs, in order, and the count of each verdict."""
        verdicts = [self.verdict(doc) for doc in docs]
        counts = {verdict: verdicts.count(verdict) for verdict in (KEPT, LOW_CONFIDENCE, ENTITY_FREE)}
        return [doc for doc, verdict in zip(docs, verdicts) if verdict == KEPT], counts

    def describe(self, counts: Dict[str, int]) -> str:
        """The kept sentences and, for each filter in use, the ones it dropped, for the log."""
        parts = [f"{counts[KEPT]} kept"]
        if self.min_confidence > 0:
            parts.append(f"{counts[LOW_CONFIDENCE]} dropped for an entity under {self.min_confidence:g}")
        if self.keep_empty < 1:
            parts.append(f"{counts[ENTITY_FREE]} entity-free dropped")
        return ", ".join(parts)

    @staticmethod
    def _confidences(doc: Doc) -> List[float]:
        confidences = entity_confidences(doc)
        if confidences is None:
            raise SelfTrainingError(
                f"the teacher's entities of {doc.text[:60]!r} carry no confidences: a component "
                "after its concner or mcl_ner component changed them; remove it from the teacher, "
                "or leave --min-confidence out"
            )
        return confidences

