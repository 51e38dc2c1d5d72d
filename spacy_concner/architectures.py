"""The ConCNER token classifier: encoder -> token vectors h -> softmax(W h + b).

The model returns both the token vectors (for the contrastive losses) and the label
probabilities (for cross-entropy, distillation and prediction), one array per Doc.
"""
from typing import List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, Softmax_v2, chain, with_array
from thinc.types import Floats2d

VectorsAndProbs = Tuple[List[Floats2d], List[Floats2d]]


@registry.architectures("spacy_concner.TokenClassifier.v1")
def build_token_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], VectorsAndProbs]:
    """tok2vec: any layer giving one vector per spaCy token, e.g. a
    spacy-transformers TransformerListener with mean pooling over word pieces.
    nO: the number of IOB2 labels, set by the component at initialize time.
    """
    output_layer = Softmax_v2(nO=nO)
    heads: Model[List[Floats2d], VectorsAndProbs] = Model(
        "concner_heads",
        heads_forward,
        init=heads_init,
        layers=[with_array(output_layer)],
    )
    model = chain(tok2vec, heads)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    return model


def heads_forward(model: Model, vectors: List[Floats2d], is_train: bool):
    classifier = model.layers[0]
    # spacy-transformers gives an empty Doc a 0 x 0 array: give it the real width
    width = classifier.get_dim("nI")
    vectors = [v if v.shape[1] == width else model.ops.alloc2f(0, width) for v in vectors]
    probs, backprop_classifier = classifier(vectors, is_train)

    def backprop(d_outputs: VectorsAndProbs) -> List[Floats2d]:
        """d_outputs: gradients w.r.t. the vectors and w.r.t. the pre-softmax
        logits (thinc's Softmax convention)."""
        d_vectors, d_logits = d_outputs
        d_from_classifier = backprop_classifier(d_logits)
        return [dv + dc for dv, dc in zip(d_vectors, d_from_classifier)]

    return (vectors, probs), backprop


def heads_init(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> None:
    model.layers[0].initialize(X=X)
