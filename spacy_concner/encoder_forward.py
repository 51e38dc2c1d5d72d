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
With bfloat16 (TransformerModel.v3), a CPU runs all of it under torch's bfloat16
autocast: on a CPU with bfloat16 instructions (AVX-512 BF16, AMX) a training step takes
less than half the time (benchmarks/results/step_time.md), while the weights, their
gradients, layer norms and softmax stay float32; the output is cast back to float32.
The model's weights, state dict and serialisation are unchanged.
"""
import contextlib
import functools
import types
import warnings
from typing import Optional

import torch
from torch import nn

from .frozen_layers import LowerLayerCache, right_padded_lengths

DEFAULT_ROWS = 16


def attach(
    transformer: nn.Module, cache: Optional[LowerLayerCache], rows: int = DEFAULT_ROWS, bfloat16: bool = False
) -> None:
    """Route `transformer`'s forward through encoder_forward, with the frozen layers'
    cache (which it freezes) or None, in bfloat16 on a CPU or not."""
    if cache is not None:
        cache.freeze()
    transformer.forward = types.MethodType(encoder_forward, transformer)
    transformer._concner_cache = cache
    transformer._concner_rows = rows
    transformer._concner_bfloat16 = bfloat16


def runs_bfloat16(transformer: nn.Module) -> bool:
    """Whether the attached forward runs under bfloat16 autocast on this CPU."""
    return getattr(transformer, "_concner_bfloat16", False) and bfloat16_supported()


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
    with cpu_bfloat16(transformer._concner_bfloat16 and input_ids.device.type == "cpu"):
        for start in range(0, len(order), transformer._concner_rows):
            rows = order[start : start + transformer._concner_rows]
            longest = max(lengths[i] for i in rows)
            types_ = token_type_ids[rows, :longest] if token_type_ids is not None else None
            # the assignment casts a bfloat16 result to float32 (autograd included)
            hidden[rows, :longest] = _encode(
                transformer, input_ids[rows, :longest], attention_mask[rows, :longest], types_
            )
    return BaseModelOutput(last_hidden_state=hidden)


def cpu_bfloat16(enabled: bool):
    """torch's CPU autocast to bfloat16, or nothing. Where oneDNN has no bfloat16 kernels
    for this CPU, float32 with a warning: emulated bfloat16 would only be slower."""
    if not enabled:
        return contextlib.nullcontext()
    if not bfloat16_supported():
        warnings.warn("bfloat16 = true, but this CPU has no bfloat16 support in oneDNN: the encoder runs in float32")
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


@functools.lru_cache(maxsize=None)  # asked at every forward; the CPU does not change
def bfloat16_supported() -> bool:
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


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
