"""The forward pass of the encoder inside spacy_concner.TransformerModel.v2.

spacy-transformers calls the Hugging Face model on a batch of word-piece windows padded to
the longest. TransformerModel.v2 routes that call through `encoder_forward`, which runs
the windows shortest first, `rows` at a time, each group padded to its own longest: a
batch of mixed lengths pads far less. Each window's output is what the model's own
forward gives it (padding does not change it). This matters in training as much as in
prediction: one long window (a list of hundreds of place names in a WikiANN sample)
padded a whole training batch of 64 windows to its length, and with it the attention
activations kept for the backward pass, until the run was killed for lack of memory.
In training, the frozen
lower layers come from a LowerLayerCache (frozen_layers.py) and only the upper layers run.
The model's weights, state dict and serialisation are unchanged.
"""
import types
from typing import Optional

import torch
from torch import nn

from .frozen_layers import LowerLayerCache, right_padded_lengths

DEFAULT_ROWS = 16


def attach(transformer: nn.Module, cache: Optional[LowerLayerCache], rows: int = DEFAULT_ROWS) -> None:
    """Route `transformer`'s forward through encoder_forward, with the frozen layers'
    cache (which it freezes) or None."""
    if cache is not None:
        cache.freeze()
    transformer.forward = types.MethodType(encoder_forward, transformer)
    transformer._concner_cache = cache
    transformer._concner_rows = rows


def is_attached(transformer: nn.Module) -> bool:
    return hasattr(transformer, "_concner_rows")


def attached_cache(transformer: nn.Module) -> Optional[LowerLayerCache]:
    return getattr(transformer, "_concner_cache", None)


def encoder_forward(
    transformer: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: Optional[torch.Tensor] = None,
    **kwargs,
):
    """The forward of a Hugging Face BERT-style model for the inputs spacy-transformers
    gives (last_hidden_state only; no pooler)."""
    from transformers.modeling_outputs import BaseModelOutput

    lengths = right_padded_lengths(attention_mask)
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    hidden = input_ids.new_zeros((*input_ids.shape, transformer.config.hidden_size), dtype=torch.float32)
    for start in range(0, len(order), transformer._concner_rows):
        rows = order[start : start + transformer._concner_rows]
        longest = max(lengths[i] for i in rows)
        types_ = token_type_ids[rows, :longest] if token_type_ids is not None else None
        hidden[rows, :longest] = _encode(transformer, input_ids[rows, :longest], attention_mask[rows, :longest], types_)
    return BaseModelOutput(last_hidden_state=hidden)


def _encode(transformer: nn.Module, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
    if attached_cache(transformer) is not None:
        return _through_cache(transformer, input_ids, attention_mask, token_type_ids)
    own = type(transformer).forward(transformer, input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids)
    return own.last_hidden_state


def _through_cache(transformer: nn.Module, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
    """The frozen layers' output from the cache, then the upper layers."""
    cache: LowerLayerCache = transformer._concner_cache
    hidden = cache(input_ids, attention_mask, token_type_ids)
    extended = transformer.get_extended_attention_mask(attention_mask, input_ids.shape)
    for layer in cache.upper_layers:
        hidden = layer(hidden, attention_mask=extended)[0]
    return hidden
