"""The `mcl_ner` component: mCL-NER's token-pair relation view of NER (after W2NER, Li
et al., AAAI 2022). Each pair of a sentence's words is classified (grid.py); training
minimises relation classification + lambda_rc * relation contrast + lambda_sem * the
multi-view semantic contrast over the views of a sentence (GridLoss)."""
from typing import Callable, Iterable, List, Optional

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d

from .entity_pipe import (
    ASSIGNS, SCORE_WEIGHTS, EntityPipe, default_model, first_pieces, iob2_to_spans, one_entity_per_piece, set_entities,
)
from .grid import MISSING, cell_labels, decode, grid_labels, windows
from .losses import GridLoss, GridTargets, KeyedContrastiveLoss, RelationContrastiveLoss, RelationLoss
from .pair_grid import GridScores
from .pairs import pair_key

DEFAULT_MODEL = default_model("spacy_concner.PairGridClassifier.v1")


@Language.factory(
    "mcl_ner",
    assigns=ASSIGNS,
    default_config={
        "model": DEFAULT_MODEL,
        "lambda_rc": 0.25,
        "lambda_sem": 0.25,
        "lr_scale": 1.0,
        "relation_loss": {"@losses": "spacy_concner.RelationLoss.v1", "none_weight": 0.2},
        "relation_contrastive_loss": {
            "@losses": "spacy_concner.RelationContrastiveLoss.v1",
            "temperature": 0.1,
        },
        "semantic_loss": {"@losses": "spacy_concner.MultiViewContrastiveLoss.v1", "temperature": 0.1},
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_mcl_ner(
    nlp: Language,
    name: str,
    model: Model,
    lambda_rc: float,
    lambda_sem: float,
    lr_scale: float,
    relation_loss: RelationLoss,
    relation_contrastive_loss: Optional[RelationContrastiveLoss],
    semantic_loss: Optional[KeyedContrastiveLoss],
    scorer: Optional[Callable],
) -> "MclNER":
    """lambda_rc weighs the relation contrast and lambda_sem the semantic contrast against
    relation classification (weight 1); a weight of 0 or a loss set to null leaves that
    term out. lr_scale multiplies the optimizer's learn rate for the component's own
    weights (with a transformer listener: the grid head, not the shared encoder)."""
    loss = GridLoss(relation_loss, relation_contrastive_loss, semantic_loss, lambda_rc, lambda_sem)
    return MclNER(nlp.vocab, model, name, loss=loss, lr_scale=lr_scale, scorer=scorer)


class MclNER(EntityPipe):
    """Named entities from a word-pair grid, trained with mCL-NER's losses.

    The model (spacy_concner.PairGridClassifier.v1) gives every word a vector and every
    pair of words of a grid (a sentence; windows of a long one: grid.windows) a
    distribution over the cell labels: None, NNW and THW-<type> for each of the
    component's entity types. Prediction decodes the grids into flat entities
    (grid.decode) and writes them to `doc.ents`, and with a confidence each to
    `doc.spans["concner_ents"]` (entity_pipe.ENT_SCORES_KEY). Training (`update`)
    minimises GridLoss over Docs with gold entities; sentences and their views
    (translations, code-switched versions) share a batch and a pair key.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "mcl_ner",
        *,
        loss: GridLoss,
        lr_scale: float = 1.0,
        scorer: Optional[Callable] = None,
    ):
        """model: a PairGridClassifier. loss: its terms and weights; the other
        arguments as EntityPipe's."""
        super().__init__(vocab, model, name, lr_scale, scorer)
        self.loss = loss

    @property
    def tags(self) -> List[str]:
        """The cell labels, one per output column: None, NNW, THW-<type> per entity type."""
        return grid_labels(self.labels)

    def predict(self, docs: Iterable[Doc]) -> List[List[Floats2d]]:
        """Per Doc, the (m * m, labels) cell distributions of each of its grids."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [[] for _ in docs]
        scores: GridScores = self.model.predict(docs)
        grids = iter(scores.probs)
        return [[next(grids) for _ in windows(len(doc))] for doc in docs]

    def set_annotations(self, docs: Iterable[Doc], probs: List[List[Floats2d]]) -> None:
        """doc.ents decoded from the grids, each entity with its confidence
        (entity_pipe.set_entities): the lowest probability of the predicted labels of
        the cells it was decoded from (grid.Candidate). Tokens of one word piece
        (characters of a Chinese or Japanese piece) have one vector: they stay in one
        entity or outside (entity_pipe.one_entity_per_piece)."""
        to_numpy = self.model.ops.to_numpy
        for doc, doc_probs in zip(docs, probs):
            grids = [to_numpy(p).reshape(end - start, end - start, -1)
                     for (start, end), p in zip(windows(len(doc)), doc_probs)]
            found = decode(grids, len(doc), self.labels)
            spans, confidences = one_entity_per_piece(
                [c.span for c in found], [c.confidence for c in found], first_pieces(doc)
            )
            set_entities(doc, spans, confidences)

    def get_loss(self, examples: Iterable[Example], scores: GridScores):
        """GridLoss of the model's output against the Examples' gold entities; the
        gradient w.r.t. the word vectors, the cell scores and the projections."""
        examples = list(examples)
        cells = [grid for eg in examples for grid in self._gold_cells(eg)]
        targets = GridTargets(cells, [pair_key(eg) for eg in examples])
        d_scores, loss = self.loss(scores, targets)
        if numpy.isnan(loss):
            raise ValueError(f"NaN in the loss of '{self.name}'.")
        return loss, d_scores

    def _gold_cells(self, eg: Example) -> List[numpy.ndarray]:
        """The gold label id of each cell of each of the Example's grids (flat, row i * m
        + j for cell (i, j)), MISSING in the rows and columns of words whose gold is
        unknown, and everywhere in a Doc without entity annotation."""
        n_words = len(eg.predicted)
        tags = self.aligned_tags(eg) or [None] * n_words
        grid = cell_labels(n_words, iob2_to_spans([tag or "O" for tag in tags]), self.labels)
        unknown = numpy.array([tag is None for tag in tags], dtype=bool)
        grid[unknown, :] = MISSING
        grid[:, unknown] = MISSING
        return [grid[start:end, start:end].ravel() for start, end in windows(n_words)]
