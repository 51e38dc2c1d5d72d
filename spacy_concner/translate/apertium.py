"""Apertium backend: rule-based MT with word-bound blanks carrying the entities.

One Apertium pipeline runs in null-flush mode (a NUL after each input, the output flushed
and terminated by a NUL) for all the Docs of a call, i.e. of one resumable chunk of
`translate`: ~150x faster than a process per sentence. Each call starts a fresh one,
because Apertium carries state from sentence to sentence (after an unbalanced `''`,
"high-speed rail corridor" comes out differently): a chunk's translation then depends on
its Docs only, and a resumed run is byte-identical to an uninterrupted one. A pipeline
that dies or hangs is restarted and its batch retried sentence by sentence, so a failing
sentence is reported alone. The mode is first tried on one word, so that a broken
installation is reported at once, with Apertium's error.
"""
import os
from collections import Counter
import select
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

import spacy
from spacy.tokens import Doc
from spacy.util import minibatch

from ..pairs import PAIR_KEY
from . import BackendMissing, Translation, translators
from .markers import WordBlankCodec, merge_pieces
from .text import ISO639_1, source_parts, target_doc, target_lang

MODES_DIR = "/usr/share/apertium/modes"
_END_OF_SENTENCE = "[][\n]"  # what apertium-destxt puts at a line end: flushes the lookahead
# seconds for the start-up check: it starts every program of the pipeline and loads its
# automata, which takes seconds on a busy machine, whatever the timeout of a batch
PROBE_TIMEOUT = 60.0


class ApertiumFailure(RuntimeError):
    """The pipeline died or did not answer in time."""


class ApertiumProcess:
    def __init__(self, mode_file: Path, timeout: float, marks: bool = False, analyser_only: bool = False):
        self.script = null_flush_script(mode_file)
        if analyser_only:  # a mode's pipeline starts with its morphological analyser
            self.script = self.script.split(" | ", 1)[0]
        self.timeout = timeout
        self.marks = marks
        self.process = None

    def translate(self, texts: List[str]) -> List[str]:
        """Apertium's output stream for each input, in order; ApertiumFailure if it dies or hangs."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        payload = "".join(text.replace("\0", " ") + _END_OF_SENTENCE + "\0" for text in texts)
        try:
            self.process.stdin.write(payload.encode("utf8"))
            self.process.stdin.flush()
        except OSError as error:
            self.stop()
            raise ApertiumFailure("apertium died") from error
        return self._read(len(texts)).decode("utf8", errors="replace").split("\0")[: len(texts)]

    def translate_each(self, texts: List[str]) -> List[Union[str, ApertiumFailure]]:
        """translate(), with a failing batch retried text by text, so that a text that
        kills or hangs the pipeline fails alone."""
        try:
            return self.translate(texts)
        except ApertiumFailure as failure:
            if len(texts) == 1:
                return [failure]
        return [self._translate_one(text) for text in texts]

    def _translate_one(self, text: str) -> Union[str, ApertiumFailure]:
        try:
            return self.translate([text])[0]
        except ApertiumFailure as failure:
            return failure

    def _read(self, n_outputs: int) -> bytes:
        out = bytearray()
        fd = self.process.stdout.fileno()
        while out.count(0) < n_outputs:
            ready, _, _ = select.select([fd], [], [], self.timeout)
            chunk = os.read(fd, 1 << 16) if ready else None
            if not chunk:
                self.stop()
                raise ApertiumFailure("apertium timed out" if chunk is None else "apertium died")
            out += chunk
        return bytes(out)

    def _start(self) -> None:
        self.process = subprocess.Popen(
            pipeline_command(self.script, self.marks), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def pipeline_command(script: str, marks: bool = False) -> List[str]:
    """The shell command of a mode's script; with marks, unknown words come out as *word
    and words that cannot be generated as #word (-g), else unmarked (-n)."""
    # $1: generator flag, $2: tagger flag
    return ["bash", "-c", script, "apertium", "-g" if marks else "-n", ""]


def null_flush_script(mode_file: Path) -> str:
    """The mode's pipeline in null-flush mode, checked on one word."""
    try:
        script = subprocess.run(
            ["apertium-wblank-mode", "-z", str(mode_file)], capture_output=True, text=True, check=True
        ).stdout
        probe = subprocess.run(
            pipeline_command(script), input="house" + _END_OF_SENTENCE + "\0",
            capture_output=True, text=True, timeout=PROBE_TIMEOUT,
        )
    except subprocess.CalledProcessError as error:
        raise broken_mode(mode_file, error.stderr or str(error)) from error
    except (subprocess.TimeoutExpired, OSError) as error:
        raise broken_mode(mode_file, str(error)) from error
    if "\0" not in probe.stdout:
        raise broken_mode(mode_file, probe.stderr or "no output")
    return script


def broken_mode(mode_file: Path, detail: str) -> BackendMissing:
    pair = mode_file.stem
    package = providing_package(mode_file)
    reinstall = (
        f"reinstall apertium and {package} (apt-get install --reinstall apertium {package})"
        if package else f"reinstall apertium and the package that installed {mode_file}"
    )
    return BackendMissing(
        f"The Apertium mode {pair!r} ({mode_file}) does not run: {' '.join(detail.split()).rstrip('.')}. "
        f"Check that `echo house | apertium {pair}` works; if not, {reinstall}"
    )


def missing_mode(pair: str, modes_dir: Path) -> BackendMissing:
    """What to install for a mode that is not installed: a package of the distribution
    that has it (apertium-eng-spa has eng-spa and spa-eng), else the packages that have
    the pair's source language, else how to search for one."""
    installed = sorted(p.stem for p in Path(modes_dir).glob("*.mode"))
    head = f"No Apertium mode {pair!r} in {modes_dir} (installed: {', '.join(installed) or 'none'})"
    known = distribution_packages()
    if known is None:
        return BackendMissing(f"{head}: find a package with `apt-cache search apertium {pair}`")
    languages = [code.split("_")[0] for code in pair.split("-")]
    for package in (f"apertium-{'-'.join(languages)}", f"apertium-{'-'.join(languages[::-1])}"):
        if package in known:
            return BackendMissing(f"{head}: apt-get install {package}")
    codes = {languages[0], ISO639_1.get(languages[0], languages[0])}
    with_source = [name for name in known if codes & set(name.split("-")[1:])]
    if not with_source:
        return BackendMissing(f"{head}; the distribution has no Apertium package with {languages[0]}: use another --translator")
    return BackendMissing(
        f"{head}; the distribution has no package of it, these have {languages[0]}: "
        f"{', '.join(with_source)} (apt-get install one, then pass one of its modes as --pair)"
    )


def distribution_packages() -> Optional[List[str]]:
    """The apertium-* packages the system's package index has (installable or installed),
    or None when it cannot say (no apt-cache, or an index never updated)."""
    if shutil.which("apt-cache") is None:
        return None
    try:
        listing = subprocess.run(
            ["apt-cache", "pkgnames", "apertium-"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sorted(listing.split()) or None


def providing_package(mode_file: Path) -> Optional[str]:
    """The installed package that holds the mode file (dpkg -S), or None."""
    try:
        found = subprocess.run(["dpkg", "-S", str(mode_file)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.split(":", 1)[0] if found.returncode == 0 and found.stdout else None


def installed_mode(pair: str, modes_dir: Path) -> Path:
    """The mode file of an installed pair; BackendMissing says what to install if there is none."""
    if shutil.which("apertium-wblank-mode") is None:
        raise BackendMissing("Apertium is not installed: apt-get install apertium")
    mode_file = Path(modes_dir) / f"{pair}.mode"
    if not mode_file.exists():
        raise missing_mode(pair, Path(modes_dir))
    return mode_file


class Apertium:
    def __init__(self, pair: str, modes_dir: Path, timeout: float, batch_size: int):
        mode_file = installed_mode(pair, modes_dir)
        self.lang = target_lang(pair)
        self.nlp = spacy.blank(self.lang)
        self.codec = WordBlankCodec()
        self.process = ApertiumProcess(mode_file, timeout)
        self.batch_size = batch_size

    def __call__(self, docs: Iterable[Doc]) -> Iterator[Translation]:
        """The Docs' translations, from a fresh pipeline (see the module's docstring)."""
        self.process.stop()
        for batch in minibatch(docs, self.batch_size):
            inputs = [self.codec.encode(*source_parts(doc)) for doc in batch]
            for doc, output in zip(batch, self.process.translate_each(inputs)):
                yield self._project(doc, output)

    def __del__(self):
        if hasattr(self, "process"):  # __init__ may have failed before starting one
            self.process.stop()

    def _project(self, source: Doc, output: Union[str, ApertiumFailure]) -> Translation:
        if isinstance(output, ApertiumFailure):
            return Translation(source, None, str(output))
        text, pieces = self.codec.decode(output)
        spans, n_split = merge_pieces(text, pieces)
        labels = [ent.label_ for ent in source.ents]
        char_spans = [(start, end, labels[k]) for k, (start, end) in spans.items() if k < len(labels)]
        doc = target_doc(self.nlp, text, char_spans, source.user_data.get(PAIR_KEY))
        if not len(doc):
            return Translation(source, None, "empty output")
        return Translation(source, doc, notes=Counter(split_entities=n_split))


@translators.register("apertium.v1")
def make_apertium(
    pair: str, modes_dir: str = MODES_DIR, timeout: float = 10.0, batch_size: int = 32
) -> Apertium:
    """Apertium for a language pair (an installed mode: eng-spa, eng-cat, ...)."""
    return Apertium(pair, Path(modes_dir), timeout, batch_size)
