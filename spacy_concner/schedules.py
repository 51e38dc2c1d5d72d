"""Learn-rate schedules for the training configs."""
from typing import Iterable

from spacy.util import registry
from thinc.api import warmup_linear


@registry.schedules("spacy_concner.warmup_linear.v1")
def configure_warmup_linear(initial_rate: float, total_steps: int, warmup: float = 0.1) -> Iterable[float]:
    """thinc's warmup_linear.v1 (linear warm-up to initial_rate, then linear decay to 0
    at total_steps) with the warm-up given as a share of total_steps, so that one
    number, the budget, sets both: total_steps = ${training.max_steps} in a config."""
    if not 0 <= warmup < 1 or total_steps < 1:
        raise ValueError(
            f"warmup_linear needs 0 <= warmup < 1 and total_steps >= 1, got {warmup}, {total_steps}"
        )
    return warmup_linear(initial_rate, round(warmup * total_steps), total_steps)
