"""Dynamic int8 quantisation of an encoder's Linear layers, for prediction on a CPU
(spacy_concner.TransformerModel.v2 with quantize = true).

torch's dynamic quantisation (torch.ao.quantization.quantize_dynamic) keeps a Linear
layer's weight in int8 and quantises its input batch by batch. Run in place on the
Hugging Face module, it would replace the Linear modules, and with them the state dict
that spaCy saves: a pipeline saved after a prediction would hold packed int8 weights that
no loader reads. Here each Linear keeps its fp32 parameters (state dict, to_bytes and
from_bytes unchanged) and its forward runs the int8 copy that quantize_dynamic makes of it.
"""
import warnings
from typing import List

import torch
from torch import nn

from .config_errors import config_error

QUANTIZED_FLAG = "_concner_int8"
# torch marks torch.ao.quantization as deprecated (its successor is the torchao package);
# an application that loads a quantised package can do nothing about these warnings
TORCH_DEPRECATIONS = r"torch\.ao\.quantization is deprecated|torch\.quantize_per_tensor"


def quantize_linears(module: nn.Module) -> None:
    """Route the forward of every nn.Linear in `module` through an int8 copy of it, once
    per module object (a pipeline loaded again holds a new one). On a GPU it is left in
    fp32, with a warning: torch's dynamic quantisation runs on CPUs only."""
    if getattr(module, QUANTIZED_FLAG, False):
        return
    setattr(module, QUANTIZED_FLAG, True)
    device = next(module.parameters()).device
    if device.type != "cpu":
        warnings.warn(f"quantize = true is for CPUs: the encoder runs in fp32 on {device}")
        return
    linears = [m for m in module.modules() if type(m) is nn.Linear]
    # quantize_dynamic swaps the modules of the container it is given: this list's, not
    # the encoder's
    copies = nn.ModuleList(linears)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCH_DEPRECATIONS)
        _quantize_dynamic()(copies, {nn.Linear}, dtype=torch.qint8, inplace=True)
    for linear, int8 in zip(linears, copies):
        del linear.qconfig  # set by quantize_dynamic on the originals too
        linear.forward = int8.forward


def int8_copies(module: nn.Module) -> List[nn.Module]:
    """The int8 modules that the Linear layers of `module` run, in order (empty if none)."""
    return [
        m.forward.__self__ for m in module.modules()
        if type(m) is nn.Linear and "forward" in vars(m)
    ]


def _quantize_dynamic():
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise config_error(
            f"quantize = true needs torch.ao.quantization, which torch {torch.__version__} "
            "lacks: install a torch version that has it (e.g. 2.13) or set "
            "components.transformer.model.quantize = false in the pipeline's config.cfg"
        ) from None
    return quantize_dynamic
