"""The `concner` component: an IOB2 token classifier trained with
alpha * CE + beta * (LCL + TCL) (ConCNER eq. 8), or with the distillation loss (eq. 9)
on Docs whose reference carries a teacher's label distributions."""
import warnings
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import SimpleFrozenList, resolve_dot_names
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d, Ints1d

from .checksums import check_intact, write_checksums
from .config_errors import config_error
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

DEFAULT_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy_concner.TokenClassifier.v2"

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_first.v1"
"""
)["model"]


@Language.factory(
    "concner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_MODEL,
        "alpha": 0.5,
        "beta": 0.25,
        "lr_scale": 1.0,
        "label_loss": {"@losses": "spacy_concner.LabelContrastiveLoss.v1", "temperature": 0.1},
        "translation_loss": {
            "@losses": "spacy_concner.TranslationContrastiveLoss.v1",
            "temperature": 0.1,
        },
        "distillation_loss": {"@losses": "spacy_concner.DistillationLoss.v1"},
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_concner(
    nlp: Language,
    name: str,
    model: Model,
    alpha: float,
    beta: float,
    lr_scale: float,
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
    softmax layer learns slowly at a fine-tuning learn rate such as 5e-5."""
    return ConcNER(
        nlp.vocab,
        model,
        name,
        alpha=alpha,
        beta=beta,
        lr_scale=lr_scale,
        label_loss=label_loss,
        translation_loss=translation_loss,
        distillation_loss=distillation_loss,
        scorer=scorer,
    )


class ConcNER(TrainablePipe):
    """An IOB2 token classifier for named entities, trained with ConCNER's losses.

    The model (spacy_concner.TokenClassifier.v2) gives every token a vector and a
    distribution over the IOB2 tags of the component's entity types; prediction takes
    the most likely tag of each token and writes the entities to `doc.ents`. Training
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
        label_loss: Optional[LabelContrastiveLoss] = None,
        translation_loss: Optional[KeyedContrastiveLoss] = None,
        distillation_loss: Optional[DistillationLoss] = None,
        scorer: Optional[Callable] = None,
    ):
        """vocab: the pipeline's vocab. model: a TokenClassifier. alpha, beta, the
        losses: the terms of ConcnerLoss. lr_scale: the learn-rate multiplier of the
        component's own weights. scorer: scores doc.ents (spacy.ner_scorer.v1)."""
        self.vocab = vocab
        self.model = model
        self.name = name
        self.lr_scale = lr_scale
        self.loss = ConcnerLoss(
            alpha, beta, label_loss, translation_loss, distillation_loss or DistillationLoss()
        )
        self.scorer = scorer
        self.cfg: Dict = {"labels": []}

    @property
    def labels(self) -> Tuple[str, ...]:
        """The entity types, e.g. ("LOC", "MISC", "ORG", "PER")."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tags(self) -> List[str]:
        """The IOB2 tags, one per output column."""
        return ["O"] + [f"{prefix}-{label}" for label in self.labels for prefix in "BI"]

    def add_label(self, label: str) -> int:
        if label in self.labels:
            return 0
        if self.model.get_ref("output_layer").has_dim("nO"):
            raise ValueError(f"Cannot add a label to '{self.name}' after it was initialized.")
        self.cfg["labels"] = sorted(self.labels + (label,))
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        validate_get_examples(get_examples, "ConcNER.initialize")
        if labels is None:
            labels = sorted({label for eg in get_examples() for label in entity_types(eg)})
        self.cfg["labels"] = sorted(labels)
        if nlp is not None:
            self._warn_types_missing_from_dev(nlp)
        self.model.get_ref("output_layer").set_dim("nO", len(self.tags))
        # empty Docs give the encoder nothing to show the model its input width
        doc_sample = list(islice((eg.predicted for eg in get_examples() if len(eg.predicted)), 10))
        if not doc_sample:
            train = nlp.config.get("paths", {}).get("train") if nlp is not None else None
            raise config_error(
                f"{train or 'The training corpus'} has no words: all its Docs are empty",
                "Check paths.train: a DocBin of sentences, e.g. made by `python -m spacy_concner convert`.",
            )
        self.model.initialize(X=doc_sample)

    def _warn_types_missing_from_dev(self, nlp: Language) -> None:
        """Warn about the entity types learnt that the dev corpus of the training config
        lacks: the dev score, which chooses model-best, cannot see them."""
        found = dev_corpus_types(nlp)
        if found is None:
            return
        path, dev_types = found
        missing = [label for label in self.labels if label not in dev_types]
        if missing:
            warnings.warn(
                f"'{self.name}' learns {', '.join(missing)} from the training data, but the dev "
                f"corpus {path} has no such entities: the dev score, which chooses model-best, "
                "ignores them. Use a dev set with the same entity types."
            )

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """TrainablePipe.to_disk, then a checksum manifest of the component's files.

        The component writes the manifest, not a `[training] before_to_disk` callback:
        that callback runs before spaCy writes (model-last; model-best is a copy of it),
        and the component's own folder is the one place every save of a pipeline with a
        concner component passes through (spacy train, nlp.to_disk, packages). from_disk
        checks it before unpacking, so `spacy.load` names a damaged file."""
        super().to_disk(path, exclude=exclude)
        write_checksums(Path(path))

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> "ConcNER":
        """TrainablePipe.from_disk, after checking the files against the manifest that
        to_disk wrote (pipelines saved without one load unchecked)."""
        check_intact(Path(path), f"the '{self.name}' component")
        return super().from_disk(path, exclude=exclude)

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """The label distribution of every token, one array per Doc."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [self.model.ops.alloc2f(len(doc), len(self.tags)) for doc in docs]
        _, probs = self.model.predict(docs)
        return probs

    def set_annotations(self, docs: Iterable[Doc], probs: List[Floats2d]) -> None:
        tags = self.tags
        for doc, doc_probs in zip(docs, probs):
            tag_ids = self.model.ops.to_numpy(doc_probs).argmax(axis=1)
            doc_tags = one_tag_per_piece([tags[i] for i in tag_ids], first_pieces(doc))
            spans = [Span(doc, start, end, label=label) for start, end, label in iob2_to_spans(doc_tags)]
            doc.set_ents(spans, default="outside")

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of Examples: predict, get the loss and its gradient, backprop,
        and with an optimizer, update the weights. Adds the loss to `losses[self.name]`."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "ConcNER.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Model.finish_update with the learn rate of the component's own parameters
        scaled by lr_scale: thinc's Optimizer takes a scale per call, and Model.finish_update
        calls it with none. With a transformer listener these parameters are the softmax
        layer's; a shim (an inline transformer) is updated at the optimizer's rate."""
        for node in self.model.walk():
            for shim in node.shims:
                shim.finish_update(sgd)
            for name in node.param_names:
                if node.has_grad(name):
                    key, param, grad = (node.id, name), node.get_param(name), node.get_grad(name)
                    param, _ = sgd(key, param, grad, lr_scale=self.lr_scale)
                    node.set_param(name, param)

    def get_loss(
        self, examples: Iterable[Example], scores: Tuple[List[Floats2d], List[Floats2d]]
    ) -> Tuple[float, Tuple[List[Floats2d], List[Floats2d]]]:
        """ConcnerLoss of the model's (vectors, probabilities) against the Examples'
        gold entities or soft targets; the gradient w.r.t. the vectors and the logits."""
        examples = list(examples)
        soft = [self._soft_targets(eg) for eg in examples]
        gold = [self._gold_tag_ids(eg) if s is None else None for eg, s in zip(examples, soft)]
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

    def _gold_tag_ids(self, eg: Example) -> Optional[Ints1d]:
        """IOB2 tag index per predicted token, MISSING where the gold is unknown;
        None when the reference has no entity annotation at all."""
        if not eg.reference.has_annotation("ENT_IOB"):
            return None
        index = {tag: i for i, tag in enumerate(self.tags)}
        tags = [biluo_to_iob2(tag) for tag in eg.get_aligned_ner()]
        unknown = sorted({tag[2:] for tag in tags if tag is not None and tag not in index})
        if unknown:
            warnings.warn(
                f"'{self.name}' has no entity type {', '.join(unknown)} (it knows "
                f"{', '.join(self.labels)}): those tokens are left out of the loss. Initialize "
                "the component on data with these types to learn them."
            )
        return self.model.ops.asarray1i([index.get(tag, MISSING) for tag in tags])

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


def dev_corpus_types(nlp: Language) -> Optional[Tuple[str, Set[str]]]:
    """The path and entity types of the dev corpus named by the pipeline's training
    config (training.dev_corpus), read as `spacy train` reads it; None when the config
    has no dev corpus to read (a pipeline initialised outside `spacy train`)."""
    config = nlp.config.interpolate()
    dot_name = config.get("training", {}).get("dev_corpus")
    if not dot_name:
        return None
    try:
        (corpus,) = resolve_dot_names(config, [dot_name])
    except ValueError:  # spaCy's "Corpus path can't be None", a missing section
        return None
    types = {ent.label_ for eg in corpus(nlp) for ent in eg.reference.ents}
    return str(getattr(corpus, "path", dot_name)), types


def entity_types(eg: Example) -> List[str]:
    stored = eg.reference.user_data.get(SOFT_TARGETS_KEY)
    if stored is not None:
        return [tag[2:] for tag in stored["tags"] if tag.startswith("B-")]
    return [ent.label_ for ent in eg.reference.ents]


def biluo_to_iob2(tag: Optional[str]) -> Optional[str]:
    """spaCy's aligned BILUO tag as IOB2; None (unknown) stays None."""
    if tag is None or tag == "O":
        return tag
    prefix, label = tag.split("-", 1)
    return ("B-" if prefix in ("B", "U") else "I-") + label


def first_pieces(doc: Doc) -> Optional[List[int]]:
    """The index of each token's first word piece in the transformer's output (-1 for a
    token without one), or None when the Doc has no transformer output."""
    if not Doc.has_extension("trf_data") or doc._.trf_data is None:
        return None
    align = doc._.trf_data.align
    pieces = align.dataXd.ravel().tolist()
    starts = numpy.cumsum([0] + list(align.lengths[:-1])).tolist()
    return [int(pieces[start]) if length else -1 for start, length in zip(starts, align.lengths.tolist())]


def one_tag_per_piece(tags: List[str], pieces: Optional[Sequence[int]]) -> List[str]:
    """Tokens that start in the same word piece as the token before them (characters
    of one Chinese or Japanese piece, such as 香 and 港 of "香港") have the same vector
    and so the same predicted tag: they continue the previous token's entity (I-) or
    stay outside it, instead of each starting an entity of its own."""
    if pieces is None:
        return tags
    tags = list(tags)
    for i in range(1, len(tags)):
        if pieces[i] >= 0 and pieces[i] == pieces[i - 1]:
            tags[i] = "O" if tags[i - 1] == "O" else "I-" + tags[i - 1].split("-", 1)[1]
    return tags


def iob2_to_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """Entity (start, end, label) from IOB2 tags, repairing invalid sequences as
    conlleval and seqeval read them: an I- tag that does not continue an entity of
    its type starts a new one."""
    spans: List[Tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, label = tag.split("-", 1)
        continues = prefix == "I" and spans and spans[-1][1] == i and spans[-1][2] == label
        if continues:
            spans[-1] = (spans[-1][0], i + 1, label)
        else:
            spans.append((i, i + 1, label))
    return spans
