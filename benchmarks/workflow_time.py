"""Minutes of each step of `spacy project run all` on a fresh clone: what `make all` costs
after the install.

    python benchmarks/workflow_time.py --data-dir DIR [--clone DIR] [--vars NAME=VALUE,...]

Clones this repository (its committed files only: no encoder, corpora or trainings) into
--clone (a new temporary folder by default), then runs the commands of the workflow one
by one, as `spacy project run all` does, with the data vars of `make all DATA_DIR=DIR`
(gzip-compressed corpora) or, for a folder of plain files, without .gz; each command's
wall time is recorded. Torch uses every core, as in `make all`. The install (`make
install`) is not included. The last command pip-installs the package into this Python
environment, as `make all` does. Run it on an otherwise idle machine.
Writes benchmarks/results/workflow_time.{json,md}.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import typer

from data_dir import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def data_vars(data_dir: Path) -> List[str]:
    """The vars `make all DATA_DIR=...` passes: .gz files in a local mirror, else plain."""
    gzipped = (data_dir / "wikiann" / "en" / "train-en.tsv.gz").is_file()
    return ["--vars.data_dir", str(data_dir.resolve()), "--vars.data_ext", ".gz" if gzipped else ""]


def workflow(folder: Path, name: str) -> List[str]:
    from weasel.util import load_project_config

    return load_project_config(folder)["workflows"][name]


def run_step(folder: Path, command: str, options: List[str], log: Path) -> float:
    """Seconds `spacy project run COMMAND` takes; its output goes to the log."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    with open(log, "a") as output:
        result = subprocess.run([sys.executable, "-m", "spacy", "project", "run", command, str(folder), *options],
                                cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"`spacy project run {command}` failed (exit code {result.returncode}): see {log}")
    return time.perf_counter() - start


def evaluation(folder: Path, name: str) -> Dict:
    """Entity-level P/R/F1 written by the workflow's last evaluate command (its metrics
    JSON), with the file's path; {} if it has none."""
    from weasel.util import load_project_config

    config = load_project_config(folder)
    commands = {command["name"]: command for command in config["commands"]}
    evaluated = [commands[c] for c in config["workflows"][name] if c.startswith("evaluate")]
    if not evaluated:
        return {}
    path = evaluated[-1]["outputs"][0]
    (scores,) = json.loads((folder / path).read_text())
    return {"metrics": path, **{k: round(scores[k], 2) for k in ("precision", "recall", "f1")}}


def markdown(record: Dict) -> str:
    lines = [
        f"# Minutes of `spacy project run {record['workflow']}` on a fresh clone",
        "",
        f"Each command of the workflow in turn, on a clone with no encoder, corpora or "
        f"trainings; torch on all {record['cores']} cores; the install not included. "
        f"{record['machine']}.",
        "",
        f"    {record['command']}",
        "",
        "| step | minutes |",
        "| --- | ---: |",
        *(f"| {step['command']} | {step['minutes']:.1f} |" for step in record["steps"]),
        f"| **total** | **{record['total_minutes']:.1f}** |",
    ]
    if record.get("f1") is not None:
        lines += ["", f"The model it evaluates ({record['metrics']}): F1 {record['f1']:.2f} "
                      f"(P {record['precision']:.2f}, R {record['recall']:.2f}) on the target test set."]
    return "\n".join(lines) + "\n"


def main(
    data_dir: Path = typer.Option(DATA_DIR, help="Corpus folder (env SPACY_CONCNER_DATA)"),
    clone: Path = typer.Option(None, help="Folder for the clone [default: a new temporary folder]"),
    name: str = typer.Option("all", "--workflow", help="The project.yml workflow"),
    extra_vars: str = typer.Option("", "--vars", help="More vars, NAME=VALUE,... (e.g. for a smaller encoder)"),
) -> None:
    folder = clone or Path(tempfile.mkdtemp(prefix="concner-clone-")) / "spacy-concner"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    options = data_vars(data_dir)
    for item in filter(None, extra_vars.split(",")):
        key, value = item.split("=", 1)
        options += [f"--vars.{key}", value]
    log = folder / "workflow_time.log"
    steps = []
    for command in workflow(folder, name):
        seconds = run_step(folder, command, options, log)
        steps.append({"command": command, "minutes": round(seconds / 60, 2)})
        print(f"{command}: {seconds / 60:.1f} min", flush=True)
    shown = " ".join(o if o != str(data_dir.resolve()) else "DIR" for o in options)
    record = {
        "workflow": name,
        "command": f"python benchmarks/workflow_time.py --data-dir DIR --workflow {name}"
                   + (f" --vars {extra_vars}" if extra_vars else "") + f"  # spacy project run {name} . {shown}",
        "cores": os.cpu_count(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "steps": steps,
        "total_minutes": round(sum(step["minutes"] for step in steps), 1),
        **evaluation(folder, name),
    }
    (RESULTS / "workflow_time.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / "workflow_time.md").write_text(markdown(record))
    print(f"total: {record['total_minutes']} min", flush=True)


if __name__ == "__main__":
    typer.run(main)
