"""What the two entity components, `concner` and `mcl_ner`, share: a TrainablePipe that
learns a sorted set of entity types from its training corpus, trains with one loss call
per batch, scales the learn rate of its own weights, and saves a checksummed folder; the
way both write their entities with a confidence each; and the IOB2 helpers that turn
aligned gold annotation into entity spans."""
import warnings
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import SimpleFrozenList, resolve_dot_names
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from .checksums import check_intact, write_checksums
from .config_errors import config_error

# what both components write, and how `spacy train` weighs their scores
ASSIGNS = ["doc.ents", "doc.spans", "token.ent_iob", "token.ent_type"]
SCORE_WEIGHTS = {"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None}
# doc.spans[ENT_SCORES_KEY]: the entities of doc.ents with attrs["scores"], the confidence
# of each, as spaCy's SpanCategorizer stores its scores
ENT_SCORES_KEY = "concner_ents"


def default_model(architecture: str) -> Config:
    """A component's default model: `architecture` on a spacy-transformers listener,
    a word's vector its first word piece's."""
    return Config().from_str(
        f"""
[model]
@architectures = "{architecture}"

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "spacy_concner.reduce_first_or_zeros.v1"
"""
    )["model"]


class EntityPipe(TrainablePipe):
    """A trainable entity component. Subclasses say what the model's output columns are
    (`tags`) and implement predict, set_annotations and get_loss. The model has a ref
    "output_layer" whose nO is the number of tags."""

    def __init__(self, vocab: Vocab, model: Model, name: str, lr_scale: float, scorer: Optional[Callable]):
        """vocab: the pipeline's vocab. lr_scale: the learn-rate multiplier of the
        component's own weights. scorer: scores doc.ents (spacy.ner_scorer.v1)."""
        self.vocab = vocab
        self.model = model
        self.name = name
        self.lr_scale = lr_scale
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
        """The labels of the model's output columns."""
        raise NotImplementedError

    def entity_types(self, eg: Example) -> List[str]:
        """The entity types an Example teaches (initialize collects them as labels)."""
        return [ent.label_ for ent in eg.reference.ents]

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
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        if labels is None:
            labels = sorted({label for eg in get_examples() for label in self.entity_types(eg)})
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
        concner or mcl_ner component passes through (spacy train, nlp.to_disk, packages). from_disk
        checks it before unpacking, so `spacy.load` names a damaged file."""
        super().to_disk(path, exclude=exclude)
        write_checksums(Path(path))

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> "EntityPipe":
        """TrainablePipe.from_disk, after checking the files against the manifest that
        to_disk wrote (pipelines saved without one load unchecked)."""
        check_intact(Path(path), f"the '{self.name}' component")
        return super().from_disk(path, exclude=exclude)

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
        validate_examples(examples, f"{type(self).__name__}.update")
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

    def aligned_tags(self, eg: Example) -> Optional[List[Optional[str]]]:
        """The gold IOB2 tag of each predicted token, None where it is unknown or of an
        entity type the component does not know (with a warning); None when the
        reference has no entity annotation at all."""
        if not eg.reference.has_annotation("ENT_IOB"):
            return None
        tags = [biluo_to_iob2(tag) for tag in eg.get_aligned_ner()]
        unknown = sorted({tag[2:] for tag in tags if tag not in (None, "O") and tag[2:] not in self.labels})
        if unknown:
            warnings.warn(
                f"'{self.name}' has no entity type {', '.join(unknown)} (it knows "
                f"{', '.join(self.labels)}): those tokens are left out of the loss. Initialize "
                "the component on data with these types to learn them."
            )
        return [None if tag not in (None, "O") and tag[2:] in unknown else tag for tag in tags]


def set_entities(doc: Doc, found: Sequence[Tuple[int, int, str]], confidences: Sequence[float]) -> None:
    """Write the entities (start, end, label) to doc.ents, every other token outside, and
    with their confidences to doc.spans[ENT_SCORES_KEY]."""
    spans = [Span(doc, start, end, label=label) for start, end, label in found]
    doc.set_ents(spans, default="outside")
    scores = numpy.asarray(confidences, dtype="float32")
    doc.spans[ENT_SCORES_KEY] = SpanGroup(doc, name=ENT_SCORES_KEY, attrs={"scores": scores}, spans=spans)


def entity_confidences(doc: Doc) -> Optional[List[float]]:
    """The confidence of each of doc.ents, as its entity component stored it; None if
    doc.ents are not the entities of doc.spans[ENT_SCORES_KEY] (set by another component,
    or by none that scores them)."""
    group = doc.spans.get(ENT_SCORES_KEY)
    ents = [(ent.start, ent.end, ent.label) for ent in doc.ents]
    if group is None or [(span.start, span.end, span.label) for span in group] != ents:
        return None
    return [float(score) for score in group.attrs["scores"]]


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


def one_entity_per_piece(
    found: Sequence[Tuple[int, int, str]], confidences: Sequence[float], pieces: Optional[Sequence[int]]
) -> Tuple[List[Tuple[int, int, str]], List[float]]:
    """Entities (start, end, label) that keep the tokens of one word piece together, by
    one_tag_per_piece's rule, for a decoder that predicts spans (the word-pair grid); each
    with the lowest confidence of the predicted entities it overlaps."""
    if pieces is None:
        return list(found), list(confidences)
    tags = ["O"] * len(pieces)
    for start, end, label in found:
        tags[start:end] = ["B-" + label] + ["I-" + label] * (end - start - 1)
    kept = iob2_to_spans(one_tag_per_piece(tags, pieces))
    # every kept entity starts at a token that starts a found one: the rule extends an
    # entity over the rest of its last piece (joining an entity there), moves its start
    # past the rest of a piece that begins outside, or drops it
    kept_confidences = [
        min(c for (start, end, _), c in zip(found, confidences) if start < kept_end and kept_start < end)
        for kept_start, kept_end, _ in kept
    ]
    return kept, kept_confidences
