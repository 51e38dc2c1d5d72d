"""The registered architectures: the encoder that loads a local Hugging Face folder
(spacy_concner.TransformerModel) and the ConCNER token classifier on top of it
(encoder -> token vectors h -> softmax(W h + b)).

The classifier returns both the vectors the contrastive losses act on (the token vectors
h, or with v3's projection head their projections z = g(h)) and the label probabilities
(for cross-entropy, distillation and prediction), one array per Doc.
"""
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Gelu, Linear, Model, Softmax_v2, chain, glorot_uniform_init, with_array
from thinc.types import Floats2d

from .cjk import joined_spans
from .config_errors import config_error
from .e5 import GET_ENCODER_HINT
from .encoder_forward import DEFAULT_ROWS, attach, attached_cache, is_attached
from .frozen_layers import DEFAULT_CACHE_MB, LowerLayerCache, check_layers
from .int8 import quantize_linears

if TYPE_CHECKING:
    from spacy_transformers.data_classes import FullTransformerBatch

# (vectors for the contrastive losses, label probabilities); the vectors are None in
# prediction when a projection head would have to compute them (v3)
VectorsAndProbs = Tuple[Optional[List[Floats2d]], List[Floats2d]]


@registry.architectures("spacy_concner.TokenClassifier.v3")
def build_token_classifier_v3(
    tok2vec: Model[List[Doc], List[Floats2d]], projection_width: int = 0, nO: Optional[int] = None
) -> Model[List[Doc], VectorsAndProbs]:
    """v2 with an optional projection head for the contrastive losses (SimCLR, SupCon).

    projection_width = 0: no head, v2 itself (same layers, same weights from the same
    seed, same outputs). projection_width > 0: LCL and TCL act on
    z = W2 GELU(W1 h + b1) + b2, of width projection_width, while the softmax layer still
    classifies h; the head's gradient and the softmax layer's are added into the gradient
    w.r.t. h. The hidden layer is as wide as h, as in SimCLR; its activation is GELU, the
    encoder's own and that of mcl_ner's relation projection, rather than SimCLR's ReLU,
    which passes no gradient through a unit whose input is negative. Prediction does not
    run the head: the vectors are None. SimCLR's projections are 128 wide; the
    component's default model stays v2. tok2vec, nO: as v2's."""
    return _token_classifier(tok2vec, Softmax_v2(nO=nO, init_W=glorot_uniform_init), projection_width)


@registry.architectures("spacy_concner.TokenClassifier.v2")
def build_token_classifier_v2(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], VectorsAndProbs]:
    """tok2vec: any layer giving one vector per spaCy token, e.g. a
    spacy-transformers TransformerListener pooling each token's word pieces.
    nO: the number of IOB2 labels, set by the component at initialize time.
    The softmax layer starts from random (Glorot) weights: from zero weights (v1) the
    encoder gets no gradient until the layer has grown, and a transformer encoder learns
    several times slower (docs/training.md)."""
    return _token_classifier(tok2vec, Softmax_v2(nO=nO, init_W=glorot_uniform_init))


@registry.architectures("spacy_concner.TokenClassifier.v1")
def build_token_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], VectorsAndProbs]:
    """v2 with the softmax layer's weights starting at zero (thinc's default)."""
    return _token_classifier(tok2vec, Softmax_v2(nO=nO))


def _token_classifier(
    tok2vec: Model, output_layer: Model, projection_width: int = 0
) -> Model[List[Doc], VectorsAndProbs]:
    """tok2vec, then the heads: the output layer on the token vectors h and, with a
    projection_width, the projection head whose output the contrastive losses see."""
    layers = [with_array(output_layer)]
    if projection_width:
        hidden = Gelu()
        layers.append(with_array(chain(hidden, Linear(nO=projection_width))))
    heads: Model[List[Floats2d], VectorsAndProbs] = Model(
        "concner_heads", heads_forward, init=heads_init, layers=layers
    )
    if projection_width:
        heads.set_ref("projection_hidden", hidden)
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
    contrasted, backprop_contrasted = contrasted_vectors(model, vectors, is_train)

    def backprop(d_outputs: VectorsAndProbs) -> List[Floats2d]:
        """d_outputs: gradients w.r.t. the contrasted vectors and w.r.t. the
        pre-softmax logits (thinc's Softmax convention)."""
        d_contrasted, d_logits = d_outputs
        d_from_classifier = backprop_classifier(d_logits)
        return [dv + dc for dv, dc in zip(backprop_contrasted(d_contrasted), d_from_classifier)]

    return (contrasted, probs), backprop


def contrasted_vectors(
    model: Model, vectors: List[Floats2d], is_train: bool
) -> Tuple[Optional[List[Floats2d]], Optional[Callable]]:
    """What the contrastive losses see, and its backprop to the token vectors: the
    vectors themselves, or their projections by the head. Prediction needs only the
    probabilities, so the head is not run outside training."""
    if len(model.layers) == 1:
        return vectors, lambda d_vectors: d_vectors
    if not is_train:
        return None, None
    return model.layers[1](vectors, is_train)


def heads_init(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> None:
    classifier, *projection = model.layers
    classifier.initialize(X=X)
    if projection:
        # the head's hidden layer is as wide as the token vectors (the softmax layer's input)
        model.get_ref("projection_hidden").set_dim("nO", classifier.get_dim("nI"))
        projection[0].initialize(X=X)


@registry.architectures("spacy_concner.TransformerModel.v3")
def create_transformer_model_v3(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    frozen_layers: int = 0,
    cache_mb: int = DEFAULT_CACHE_MB,
    predict_rows: int = DEFAULT_ROWS,
    quantize: bool = False,
    join_cjk: bool = True,
    bfloat16: bool = False,
) -> Model[List[Doc], "FullTransformerBatch"]:
    """spacy-transformers.TransformerModel.v3 loading `name` (a local folder or a hub
    name) at initialize, with an actionable error if it cannot be found, and with the
    embeddings and the bottom `frozen_layers` layers frozen: from the first training
    update on, their output is computed once per input window and cached (at most
    cache_mb MB; frozen_layers.py). frozen_layers = 0 freezes the embeddings only.
    Prediction runs the windows of a batch shortest first, predict_rows at a time
    (encoder_forward.py). quantize = true runs the encoder's Linear layers in int8 from
    the first prediction on (int8.py; CPU only, for prediction: such a model cannot be
    trained). join_cjk = true (the default) gives the encoder Chinese and Japanese text
    without the spaces between CJK characters that a Doc of one token per character has
    (cjk.py), in training and prediction alike; other text is unchanged. bfloat16 = true
    runs the encoder on a CPU under torch's bfloat16 autocast, in training and prediction:
    its matrix products in bfloat16, the weights, layer norms, softmax and the
    optimizer in float32 (encoder_forward.py; on a GPU, mixed_precision is
    spacy-transformers' float16 instead). With quantize = true, int8 replaces it."""
    from spacy_transformers.architectures import create_TransformerModel_v3
    from spacy_transformers.layers.transformer_model import forward as transformer_forward

    if join_cjk:
        get_spans = joined_spans(get_spans)
    model = create_TransformerModel_v3(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )

    def forward(model: Model, docs: List[Doc], is_train: bool):
        transformer = model.transformer  # a new one after from_bytes: attached again
        if quantize:
            if is_train:
                raise quantized_training_error()
            quantize_linears(transformer)  # once per module object
        if is_train and attached_cache(transformer) is None:
            cache = LowerLayerCache(transformer, frozen_layers, cache_mb * 2**20)
            attach(transformer, cache, predict_rows, bfloat16)
        elif not is_attached(transformer):
            attach(transformer, None, predict_rows, bfloat16 and not quantize)
        return transformer_forward(model, docs, is_train)

    load_checked = initialize_checked(name, model.init)

    def initialize(model: Model, X=None, Y=None) -> None:
        # loading the encoder from `name` starts a new model, which is there to be trained
        if quantize and not model.attrs["has_transformer"]:
            raise quantized_training_error()
        load_checked(model, X=X, Y=Y)
        try:
            check_layers(model.transformer, frozen_layers)
        except ValueError as error:  # e.g. a student encoder shallower than frozen_layers
            raise config_error(str(error)) from None

    model.replace_callbacks(forward, init=initialize)
    return model


@registry.architectures("spacy_concner.TransformerModel.v2")
def create_transformer_model_v2(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    frozen_layers: int = 0,
    cache_mb: int = DEFAULT_CACHE_MB,
    predict_rows: int = DEFAULT_ROWS,
    quantize: bool = False,
    join_cjk: bool = True,
) -> Model[List[Doc], "FullTransformerBatch"]:
    """v3 in float32 (no bfloat16 option): the encoder of pipelines trained before v3."""
    return create_transformer_model_v3(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config, frozen_layers, cache_mb, predict_rows, quantize, join_cjk,
    )


def quantized_training_error() -> Exception:
    return config_error(
        "components.transformer.model.quantize = true is for prediction: an int8 encoder "
        "cannot be trained; train with quantize = false and quantise the trained pipeline "
        "(python -m spacy_concner package MODEL OUTPUT_DIR --quantize)"
    )


@registry.architectures("spacy_concner.TransformerModel.v1")
def create_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    freeze_embeddings: bool = False,
) -> Model[List[Doc], "FullTransformerBatch"]:
    """spacy-transformers.TransformerModel.v3, loading `name` (a local folder or a hub
    name) at initialize with an actionable error if it cannot be found, and optionally
    freezing the word embeddings once they are loaded. Superseded by v2."""
    from spacy_transformers.architectures import create_TransformerModel_v3

    model = create_TransformerModel_v3(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )
    load_checked = initialize_checked(name, model.init)

    def initialize(model: Model, X=None, Y=None) -> None:
        load_checked(model, X=X, Y=Y)
        if freeze_embeddings:
            model.transformer.get_input_embeddings().weight.requires_grad_(False)

    model.replace_callbacks(model._func, init=initialize)
    return model


def initialize_checked(name: str, load_pretrained: Callable) -> Callable:
    """spacy-transformers' initialize, failing with instructions first when the encoder
    `name` is needed (not yet loaded from a pipeline's files) and cannot be found."""

    def initialize(model: Model, X=None, Y=None) -> None:
        if not model.attrs["has_transformer"]:
            check_encoder_available(name)
        load_pretrained(model, X=X, Y=Y)

    return initialize


def check_encoder_available(name: str) -> None:
    """Fail with instructions when `name` is neither a local folder nor on the hub. A
    name that looks like a path is looked for on disk only: the hub is not asked (without
    HF_HUB_OFFLINE, transformers retries it for half a minute)."""
    from transformers import AutoConfig

    if looks_like_path(name) and not Path(name).expanduser().is_dir():
        raise config_error(f"Cannot load the encoder {name!r}: no such folder", GET_ENCODER_HINT)
    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as error:  # ValueError: not a valid hub name
        reason = str(error).strip().splitlines()[0]
        raise config_error(f"Cannot load the encoder {name!r}: {reason}", GET_ENCODER_HINT) from None


def looks_like_path(name: str) -> bool:
    """Whether an encoder name is a path rather than a hub name (`model` or
    `owner/model`): absolute, starting with . or ~, with more than one part, or with a
    first part that is a local folder (assets/encoders/e5-small)."""
    parts = Path(name).parts
    return (
        name.startswith(("/", ".", "~"))
        or len(parts) > 2
        or (len(parts) == 2 and Path(parts[0]).is_dir())
    )
