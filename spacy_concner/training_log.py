"""A training logger that keeps the dev curve: spaCy's console table, plus one JSON line
per evaluation with the wall-clock seconds since training started."""
import json
import time
from pathlib import Path
from typing import IO, Callable, Optional, Tuple

from spacy.util import registry


@registry.loggers("spacy_concner.CurveLogger.v1")
def configure_curve_logger(path: Optional[Path] = None, progress_bar: Optional[str] = None) -> Callable:
    """spacy.ConsoleLogger.v3's table (progress_bar: None, "train" or "eval"), and when
    `path` is set, the curve written to it (replaced at the start of a run):
    {"step", "epoch", "seconds", "score", "scores", "losses"} per evaluation, scores in
    0-100 as in the console table."""
    console = registry.loggers.get("spacy.ConsoleLogger.v3")(progress_bar=progress_bar)

    def setup(nlp, stdout: IO, stderr: IO) -> Tuple[Callable, Callable]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        if path is None:
            return log_console, finalize_console
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "w", encoding="utf8")
        start = time.perf_counter()

        def log_step(info: Optional[dict]) -> None:
            log_console(info)
            if info is None:
                return
            scores = {
                name: round(100 * float(value), 2)
                for name, value in info["other_scores"].items()
                if isinstance(value, (int, float)) and name != "speed"
            }
            record = {
                "step": info["step"],
                "epoch": info["epoch"],
                "seconds": round(time.perf_counter() - start, 1),
                "score": round(100 * float(info["score"]), 2),
                "scores": scores,
                "losses": {name: round(float(v), 4) for name, v in info["losses"].items()},
            }
            stream.write(json.dumps(record) + "\n")
            stream.flush()

        def finalize() -> None:
            finalize_console()
            stream.close()

        return log_step, finalize

    return setup
