"""Frozen lower layers of a transformer, computed once per input window and cached.

With `frozen_layers = K` the embeddings and the bottom K layers of a BERT-style encoder
(BERT, XLM-R, RoBERTa, ELECTRA, multilingual-e5: `embeddings` + `encoder.layer`) get no
gradient. Their output for a window of word pieces then depends only on its piece ids:
it is computed once, without dropout, and kept in memory, so that from the second
epoch on a training step runs only the upper layers, forward and backward.

The cache is switched on by the first training update of a pipeline (encoder_forward.py)
and then also serves that pipeline's evaluations (the dev set during `spacy train`): the
cached value is exactly what the frozen layers compute in evaluation mode. A pipeline
loaded from disk for prediction never builds one. It holds at most `max_bytes` of hidden states; once
full, further windows are computed at every step instead of evicting others (with
epochs over a corpus larger than the cache, eviction would only thrash).
"""
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import nn

DEFAULT_CACHE_MB = 2048


class LowerLayerCache:
    """The embeddings + bottom `n_layers` of `transformer`, frozen, with their output
    per input window cached (at most `max_bytes`)."""

    def __init__(self, transformer: nn.Module, n_layers: int, max_bytes: int):
        check_layers(transformer, n_layers)
        self.transformer = transformer
        self.n_layers = n_layers
        self.max_bytes = max_bytes
        self.n_bytes = 0
        self.hits = 0
        self.misses = 0
        self._states: Dict[bytes, torch.Tensor] = {}
        self._warned_full = False

    @property
    def frozen_modules(self) -> Tuple[nn.Module, ...]:
        return (self.transformer.embeddings, *self.transformer.encoder.layer[: self.n_layers])

    @property
    def upper_layers(self) -> nn.ModuleList:
        return self.transformer.encoder.layer[self.n_layers :]

    def freeze(self) -> None:
        """No gradient for the frozen modules: torch allocates none, so thinc's
        PyTorchShim gives their parameters no optimizer step and no optimizer state."""
        for module in self.frozen_modules:
            module.requires_grad_(False)

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """The frozen layers' output for a right-padded batch, (batch, length, width);
        zeros at padded positions (the upper layers' attention masks them)."""
        lengths = right_padded_lengths(attention_mask)
        keys = [window_key(input_ids[i, :n], token_type_ids, i, n) for i, n in enumerate(lengths)]
        missing = [i for i, key in enumerate(keys) if key not in self._states]
        computed = dict(zip(missing, self._compute(input_ids, token_type_ids, missing, lengths)))
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        width = self.transformer.config.hidden_size
        states = input_ids.new_zeros((*input_ids.shape, width), dtype=torch.float32)
        for i, (key, n) in enumerate(zip(keys, lengths)):
            row = computed[i] if i in computed else self._states[key]
            states[i, :n] = row
            if i in computed:
                self._store(key, row)
        return states

    def _compute(self, input_ids, token_type_ids, rows, lengths):
        """The frozen layers' output for the given rows, one (length, width) tensor each."""
        if not rows:
            return []
        longest = max(lengths[i] for i in rows)
        ids = input_ids[rows, :longest]
        mask = (torch.arange(longest, device=ids.device)[None, :]
                < torch.tensor([lengths[i] for i in rows], device=ids.device)[:, None])
        types_ = token_type_ids[rows, :longest] if token_type_ids is not None else None
        with torch.no_grad(), evaluation_mode(self.frozen_modules):
            hidden = self.transformer.embeddings(input_ids=ids, token_type_ids=types_)
            extended = self.transformer.get_extended_attention_mask(mask.long(), ids.shape)
            for layer in self.transformer.encoder.layer[: self.n_layers]:
                hidden = layer(hidden, attention_mask=extended)[0]
        return [hidden[j, : lengths[i]].clone() for j, i in enumerate(rows)]

    def _store(self, key: bytes, row: torch.Tensor) -> None:
        size = row.numel() * row.element_size()
        if self.n_bytes + size > self.max_bytes:
            if not self._warned_full:
                warnings.warn(
                    f"The frozen-layer cache is full ({self.max_bytes / 2**20:.0f} MB, "
                    f"{len(self._states)} windows): further windows are computed at every "
                    "step. Raise cache_mb in the transformer's model config to cache them."
                )
                self._warned_full = True
            return
        self._states[key] = row
        self.n_bytes += size


def right_padded_lengths(attention_mask: torch.Tensor) -> list:
    """The number of real pieces per row; ValueError unless padding is on the right
    (the cache keys a window by its pieces, which must start at position 0)."""
    lengths = attention_mask.sum(dim=1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not bool(((positions[None, :] < lengths[:, None]) == attention_mask.bool()).all()):
        raise ValueError("frozen_layers needs a tokenizer that pads on the right")
    return [int(n) for n in lengths.tolist()]


def window_key(ids: torch.Tensor, token_type_ids: Optional[torch.Tensor], row: int, n: int) -> bytes:
    key = ids.cpu().numpy().tobytes()
    if token_type_ids is not None:
        key += b"|" + token_type_ids[row, :n].cpu().numpy().tobytes()
    return key


class evaluation_mode:
    """Run modules in evaluation mode (no dropout) inside the block, then restore."""

    def __init__(self, modules):
        self.modules = modules

    def __enter__(self):
        self.modes = [module.training for module in self.modules]
        for module in self.modules:
            module.eval()

    def __exit__(self, *exc_info):
        for module, mode in zip(self.modules, self.modes):
            module.train(mode)


def check_layers(transformer: nn.Module, n_layers: int) -> None:
    """ValueError unless `transformer` is BERT-style and has more than n_layers layers."""
    layers = getattr(getattr(transformer, "encoder", None), "layer", None)
    if not hasattr(transformer, "embeddings") or layers is None:
        raise ValueError(
            f"frozen_layers needs a BERT-style encoder (embeddings + encoder.layer, as in "
            f"BERT, XLM-R, multilingual-e5); {type(transformer).__name__} is not one: set "
            "frozen_layers = 0 and use spacy_concner.TransformerModel.v1"
        )
    if not 0 <= n_layers < len(layers):
        raise ValueError(
            f"frozen_layers must be in [0, {len(layers) - 1}] for this {len(layers)}-layer "
            f"encoder (at least one layer must train), got {n_layers}"
        )
