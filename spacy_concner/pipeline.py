"""The `concner` component: an IOB2 token classifier trained with
alpha * CE + beta * (LCL + TCL) (ConCNER eq. 8), or with the distillation loss (eq. 9)
on Docs whose reference carries a teacher's label distributions."""
from typing import Callable, Iterable, List, Optional, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d, Ints1d

from .decoding import check_decoding, decode_tags
from .entity_pipe import (
    ASSIGNS, SCORE_WEIGHTS, EntityPipe, default_model, first_pieces, iob2_to_spans, one_tag_per_piece, set_entities,
)
from .losses import (
    ConcnerLoss,
    DistillationLoss,
    KeyedContrastiveLoss,
    LabelContrastiveLoss,
    Targets,
)
from .pairs import pair_key

# A teacher's label distributions, stored in a reference Doc's user_data:
# {"tags": [IOB2 tag per column], "probs": Floats2d of tokens x tags}
SOFT_TARGETS_KEY = "concner_soft_targets"
MISSING = -1

DEFAULT_MODEL = default_model("spacy_concner.TokenClassifier.v2")


@Language.factory(
    "concner",
    assigns=ASSIGNS,
    default_config={
        "model": DEFAULT_MODEL,
        "alpha": 0.5,
        "beta": 0.25,
        "lr_scale": 1.0,
        "decoding": "viterbi",
        "label_loss": {"@losses": "spacy_concner.LabelContrastiveLoss.v1", "temperature": 0.1},
        "translation_loss": {
            "@losses": "spacy_concner.TranslationContrastiveLoss.v1",
            "temperature": 0.1,
        },
        "distillation_loss": {"@losses": "spacy_concner.DistillationLoss.v1"},
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_concner(
    nlp: Language,
    name: str,
    model: Model,
    alpha: float,
    beta: float,
    lr_scale: float,
    decoding: str,
    label_loss: Optional[LabelContrastiveLoss],
    translation_loss: Optional[KeyedContrastiveLoss],
    distillation_loss: DistillationLoss,
    scorer: Optional[Callable],
) -> "ConcNER":
    """alpha weighs cross-entropy and beta the two contrastive losses (eq. 8).
    beta = 0 trains with CE only; a contrastive loss set to null is left out
    (the paper's ablations: alpha = beta = 0.5 with LCL or TCL null). translation_loss
    is TCL, or mCL-NER's multi-view contrast (all views with one pair key attract).
    lr_scale multiplies the optimizer's learn rate for the component's own weights
    (with a transformer listener: the softmax layer, not the shared encoder). A fresh
    softmax layer learns slowly at a fine-tuning learn rate such as 5e-5. decoding turns
    the tag distributions into entities (spacy_concner.decoding): "viterbi", the most
    likely valid IOB2 sequence, or "greedy", each token's most likely tag."""
    return ConcNER(
        nlp.vocab,
        model,
        name,
        alpha=alpha,
        beta=beta,
        lr_scale=lr_scale,
        decoding=decoding,
        label_loss=label_loss,
        translation_loss=translation_loss,
        distillation_loss=distillation_loss,
        scorer=scorer,
    )


class ConcNER(EntityPipe):
    """An IOB2 token classifier for named entities, trained with ConCNER's losses.

    The model (spacy_concner.TokenClassifier.v2, or v3 with a projection head) gives
    every token a vector for the contrastive losses and a distribution over the IOB2
    tags of the component's entity types; prediction decodes the tags (by default the
    most likely valid IOB2 sequence) and writes the entities to `doc.ents`, and with a
    confidence each to `doc.spans["concner_ents"]` (entity_pipe.ENT_SCORES_KEY). Training
    (`update`) minimises ConcnerLoss: cross-entropy and the label and translation
    contrastive losses over Docs with gold entities (pairs of a sentence and its
    translation share a batch and a pair key), and the distillation loss over Docs
    whose reference carries a teacher's distributions (a student's training data, made
    by `python -m spacy_concner annotate`).
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "concner",
        *,
        alpha: float = 0.5,
        beta: float = 0.25,
        lr_scale: float = 1.0,
        decoding: str = "viterbi",
        label_loss: Optional[LabelContrastiveLoss] = None,
        translation_loss: Optional[KeyedContrastiveLoss] = None,
        distillation_loss: Optional[DistillationLoss] = None,
        scorer: Optional[Callable] = None,
    ):
        """model: a TokenClassifier. alpha, beta, the losses: the terms of ConcnerLoss;
        the other arguments as EntityPipe's."""
        super().__init__(vocab, model, name, lr_scale, scorer)
        self.decoding = check_decoding(decoding, name)
        self.loss = ConcnerLoss(
            alpha, beta, label_loss, translation_loss, distillation_loss or DistillationLoss()
        )

    @property
    def tags(self) -> List[str]:
        """The IOB2 tags, one per output column."""
        return ["O"] + [f"{prefix}-{label}" for label in self.labels for prefix in "BI"]

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """The label distribution of every token, one array per Doc."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [self.model.ops.alloc2f(len(doc), len(self.tags)) for doc in docs]
        _, probs = self.model.predict(docs)
        return probs

    def set_annotations(self, docs: Iterable[Doc], probs: List[Floats2d]) -> None:
        """doc.ents from the decoded tags (self.decoding), each entity with its
        confidence (entity_pipe.set_entities): the lowest probability of its tokens'
        decoded tags. A token that continues its word piece's previous token takes that
        token's decision (one_tag_per_piece), so it counts with the probability of its
        own decoded tag, not of the tag the rule gives it."""
        for doc, doc_probs in zip(docs, probs):
            decoded, scores = decode_tags(self.model.ops.to_numpy(doc_probs), self.tags, self.decoding)
            found = iob2_to_spans(one_tag_per_piece(decoded, first_pieces(doc)))
            set_entities(doc, found, [min(scores[start:end]) for start, end, _ in found])

    def get_loss(
        self, examples: Iterable[Example], scores: Tuple[List[Floats2d], List[Floats2d]]
    ) -> Tuple[float, Tuple[List[Floats2d], List[Floats2d]]]:
        """ConcnerLoss of the model's (vectors, probabilities) against the Examples'
        gold entities or soft targets; the gradient w.r.t. the vectors and the logits."""
        examples = list(examples)
        soft = [self._soft_targets(eg) for eg in examples]
        gold = [self.gold_tag_ids(eg) if s is None else None for eg, s in zip(examples, soft)]
        targets = Targets(gold, soft, [pair_key(eg) for eg in examples])
        d_scores, loss = self.loss(*scores, targets)
        if numpy.isnan(loss):
            raise ValueError(f"NaN in the loss of '{self.name}'.")
        return loss, d_scores

    def get_teacher_student_loss(
        self, teacher_scores: List[Floats2d], student_scores: List[Floats2d]
    ) -> Tuple[float, List[Floats2d]]:
        """The distillation loss, with the signature of spaCy v4's TrainablePipe method:
        the loss, and its gradient w.r.t. the student's logits."""
        d_student, value = self.loss.distillation_loss(student_scores, teacher_scores)
        return value, d_student

    def gold_tag_ids(self, eg: Example) -> Optional[Ints1d]:
        """IOB2 tag index per predicted token, MISSING where the gold is unknown;
        None when the reference has no entity annotation at all."""
        tags = self.aligned_tags(eg)
        if tags is None:
            return None
        index = {tag: i for i, tag in enumerate(self.tags)}
        return self.model.ops.asarray1i([index.get(tag, MISSING) for tag in tags])

    def entity_types(self, eg: Example) -> List[str]:
        """Those of the gold entities, or of the teacher's tags for soft targets."""
        stored = eg.reference.user_data.get(SOFT_TARGETS_KEY)
        if stored is not None:
            return [tag[2:] for tag in stored["tags"] if tag.startswith("B-")]
        return super().entity_types(eg)

    def _soft_targets(self, eg: Example) -> Optional[Floats2d]:
        """The teacher's distributions aligned to the predicted tokens, or None."""
        stored = eg.reference.user_data.get(SOFT_TARGETS_KEY)
        if stored is None:
            return None
        if list(stored["tags"]) != self.tags:
            raise ValueError(
                f"'{self.name}' has the tags {self.tags} but the teacher's soft targets "
                f"have {list(stored['tags'])}: student and teacher label sets must match."
            )
        if len(eg.predicted) != len(eg.reference):
            raise ValueError(
                "Soft targets need the student to see the teacher's tokens: set "
                "gold_preproc = true in the training corpus."
            )
        return self.model.ops.asarray2f(stored["probs"])
