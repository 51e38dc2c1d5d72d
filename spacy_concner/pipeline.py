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

from . import losses
from .checksums import check_intact, write_checksums
from .config_errors import config_error
from .pairs import pair_key, partner_rows

# A teacher's label distributions, stored in a reference Doc's user_data:
# {"tags": [IOB2 tag per column], "probs": Floats2d of tokens x tags}
SOFT_TARGETS_KEY = "concner_soft_targets"
MISSING = -1

DEFAULT_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy_concner.TokenClassifier.v1"

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
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
    label_loss: Optional[losses.LabelContrastiveLoss],
    translation_loss: Optional[losses.TranslationContrastiveLoss],
    distillation_loss: losses.DistillationLoss,
    scorer: Optional[Callable],
) -> "ConcNER":
    """alpha weighs cross-entropy and beta the two contrastive losses (eq. 8).
    beta = 0 trains with CE only; a contrastive loss set to null is left out
    (the paper's ablations: alpha = beta = 0.5 with LCL or TCL null).
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
    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "concner",
        *,
        alpha: float = 0.5,
        beta: float = 0.25,
        lr_scale: float = 1.0,
        label_loss: Optional[losses.LabelContrastiveLoss] = None,
        translation_loss: Optional[losses.TranslationContrastiveLoss] = None,
        distillation_loss: Optional[losses.DistillationLoss] = None,
        scorer: Optional[Callable] = None,
    ):
        self.vocab = vocab
        self.model = model
        self.name = name
        self.alpha = alpha
        self.beta = beta
        self.lr_scale = lr_scale
        self.label_loss = label_loss
        self.translation_loss = translation_loss
        self.distillation_loss = distillation_loss or losses.DistillationLoss()
        self.cross_entropy = losses.SentenceCrossEntropy()
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
            spans = [
                Span(doc, start, end, label=label)
                for start, end, label in iob2_to_spans([tags[i] for i in tag_ids])
            ]
            doc.set_ents(spans, default="outside")

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
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
        """Model.finish_update, with the learn rate scaled by lr_scale."""
        for node in self.model.walk():
            for shim in node.shims:
                shim.finish_update(sgd)
            for name in node.param_names:
                if node.has_grad(name):
                    param, grad = sgd(
                        (node.id, name),
                        node.get_param(name),
                        node.get_grad(name),
                        lr_scale=self.lr_scale,
                    )
                    node.set_param(name, param)

    def get_loss(
        self, examples: Iterable[Example], scores: Tuple[List[Floats2d], List[Floats2d]]
    ) -> Tuple[float, Tuple[List[Floats2d], List[Floats2d]]]:
        """alpha * CE + beta * (LCL + TCL) over the Docs with gold entities, plus the
        distillation loss over the Docs that carry soft targets. The gradient is
        returned w.r.t. the token vectors and the pre-softmax logits."""
        examples = list(examples)
        vectors, probs = scores
        ops = self.model.ops
        soft = [self._soft_targets(eg) for eg in examples]
        gold = [self._gold_tag_ids(eg) if s is None else None for eg, s in zip(examples, soft)]
        d_vectors = [ops.alloc2f(*v.shape) for v in vectors]
        d_logits = [ops.alloc2f(*p.shape) for p in probs]
        loss = 0.0
        if any(g is not None for g in gold):
            loss += self._supervised_loss(examples, vectors, probs, gold, d_vectors, d_logits)
        if any(s is not None for s in soft):
            loss += self._distillation_loss(probs, soft, d_logits)
        if numpy.isnan(loss):
            raise ValueError(f"NaN in the loss of '{self.name}'.")
        return loss, (d_vectors, d_logits)

    def _supervised_loss(self, examples, vectors, probs, gold, d_vectors, d_logits) -> float:
        """alpha * CE + beta * (LCL + TCL); accumulates into d_vectors and d_logits."""
        rows = [i for i, g in enumerate(gold) if g is not None]
        d_ce, ce = self.cross_entropy([probs[i] for i in rows], [gold[i] for i in rows])
        for i, d in zip(rows, d_ce):
            d_logits[i] += self.alpha * d
        loss = self.alpha * ce
        if self.beta != 0 and self.label_loss is not None:
            loss += self.beta * self._label_contrastive(vectors, gold, rows, d_vectors)
        if self.beta != 0 and self.translation_loss is not None:
            loss += self.beta * self._translation_contrastive(examples, vectors, rows, d_vectors)
        return loss

    def _label_contrastive(self, vectors, gold, rows, d_vectors) -> float:
        """LCL over all labelled tokens of the batch."""
        xp = self.model.ops.xp
        labelled = [gold[i] != MISSING for i in rows]
        token_vectors = xp.concatenate([vectors[i][m] for i, m in zip(rows, labelled)])
        labels = xp.concatenate([gold[i][m] for i, m in zip(rows, labelled)])
        d_tokens, value = self.label_loss(token_vectors, labels)
        start = 0
        for i, mask in zip(rows, labelled):
            n = int(mask.sum())
            d_vectors[i][mask] += self.beta * d_tokens[start : start + n]
            start += n
        return value

    def _translation_contrastive(self, examples, vectors, rows, d_vectors) -> float:
        """TCL over the labelled non-empty Docs; sentence vector = mean token vector."""
        ops = self.model.ops
        rows = [i for i in rows if len(vectors[i])]
        if len(rows) < 2:
            return 0.0
        lengths = ops.asarray1i([len(vectors[i]) for i in rows])
        sentence_vectors = ops.reduce_mean(ops.xp.concatenate([vectors[i] for i in rows]), lengths)
        partners = ops.asarray1i(partner_rows([pair_key(examples[i]) for i in rows]))
        d_sentences, value = self.translation_loss(sentence_vectors, partners)
        d_tokens = ops.backprop_reduce_mean(d_sentences, lengths)
        start = 0
        for i, n in zip(rows, lengths.tolist()):
            d_vectors[i] += self.beta * d_tokens[start : start + n]
            start += n
        return value

    def _distillation_loss(self, probs, soft, d_logits) -> float:
        rows = [i for i, s in enumerate(soft) if s is not None]
        value, d_probs = self.get_teacher_student_loss(
            [soft[i] for i in rows], [probs[i] for i in rows]
        )
        for i, d in zip(rows, d_probs):
            d_logits[i] += softmax_backprop(probs[i], d)
        return value

    def get_teacher_student_loss(
        self, teacher_scores: List[Floats2d], student_scores: List[Floats2d]
    ) -> Tuple[float, List[Floats2d]]:
        """Eq. 9, with the signature of spaCy v4's TrainablePipe method: the loss, and
        its gradient w.r.t. the student's probabilities."""
        d_student, value = self.distillation_loss(student_scores, teacher_scores)
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


def softmax_backprop(probs: Floats2d, d_probs: Floats2d) -> Floats2d:
    """Gradient w.r.t. the logits of a row-wise softmax, given it w.r.t. its output."""
    return probs * (d_probs - (d_probs * probs).sum(axis=1, keepdims=True))


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
