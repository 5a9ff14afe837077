"""One stage of the comparison: its declaration, its fingerprint, and its life from plan to record.

A `Stage` declares its command (argv + its own environment variables), the paths it reads
(`inputs`), the paths it writes (`outputs`) and the code it runs (`code`). Its fingerprint hashes:
  - the command line and each of its variables (placement variables such as MASTER_PORT and
    GPUS_PER_NODE excepted: they decide where a stage runs, not what it computes);
  - the CONTENT of every input, file or folder (configs, prompt templates, tokenizers, models,
    data, upstream outputs), through a cache keyed by each file's size, mtime and inode so that
    unchanged files are not read again;
  - the code it runs: each launcher script with the shared `scripts/lib/*.sh` and the recipes it
    evaluates, each Python entrypoint with every repository module it imports (found by parsing
    the imports, transitively), comments and docstrings left out, so a comment or README edit
    reruns nothing;
  - its thread count (floating-point sums can depend on it).

Life of a stage (`prepare` → run → `complete`):
  - skipped when its record holds the current fingerprint and every output exists;
  - otherwise it runs into BUILDING folders, one per output, siblings of the outputs named
    `.<name>.building-<fingerprint>`; its previous outputs and record stay untouched meanwhile;
  - interrupted (a crash, a kill, a failure), its building folders persist: a rerun with the same
    fingerprint resumes in them (training passes --resume), one with another fingerprint starts
    afresh and deletes them;
  - on success (and once its post-condition holds) the building folders replace the outputs by
    renames, journalled in `{name}.running.json` so a crash mid-swap is completed by the next run,
    and only then the record `{name}.json` is written.
So no abort ever costs a finished stage, and an output on disk always belongs to its record.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minillm.fileio import atomic_write_json

# Variables that decide where a stage runs, not what it computes.
PLACEMENT_VARIABLES = ("MASTER_PORT", "GPUS_PER_NODE", "NNODES", "HOSTFILE", "MASTER_ADDR", "CUDA_VISIBLE_DEVICES")
REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_CONTENT = ("run.lock",)  # a training run's lock: who ran it, not what it computed


@dataclass
class Stage:
    name: str
    command: list[str]  # run from the repository root
    outputs: list[Path]
    inputs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the stage's own variables
    code: list[Path] = field(default_factory=list)  # scripts and Python programs it runs (repo-relative)
    resumable: bool = False  # keep its building folders across interruptions (training resumes in them)
    threads: int = 1
    gpus: int = 0  # 0: a CPU stage
    # A post-condition on the finished outputs (called with a path → its building path map):
    # returns a problem, which fails the stage before its outputs replace the previous ones.
    check: Callable[[Callable[[Path], Path]], str | None] | None = None
    method: str | None = None  # the arm a training or evaluation stage belongs to
    run: str | None = None  # "seed<k>", "init", ...
    kind: str = "data"  # data | train | eval

    def building(self, fingerprint: str) -> dict[Path, Path]:
        return {path: path.parent / f".{path.name}.building-{fingerprint[:12]}" for path in self.outputs}


class StageError(Exception):
    pass


# --- content ------------------------------------------------------------------------------------------------

def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class ContentHashes:
    """sha256 of files and folders, cached by (size, mtime, inode) in a JSON file so that an
    unchanged multi-GB model is read once, not at every driver start."""

    def __init__(self, cache_file: Path | None):
        self.cache_file = cache_file
        self.cache: dict[str, list] = {}
        if cache_file and cache_file.is_file():
            try:
                self.cache = json.loads(cache_file.read_text())
            except (OSError, json.JSONDecodeError):
                self.cache = {}  # a damaged cache only costs re-reading
        self.dirty = False

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        cached = self.cache.get(str(path))
        if cached and cached[:3] == key:
            return cached[3]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        self.cache[str(path)] = key + [digest.hexdigest()]
        self.dirty = True
        return digest.hexdigest()

    def path(self, path: Path) -> str:
        """A file's content hash; a folder's over every file's relative name and content (hidden
        building folders of stages, and a run folder's lock file, excluded); "missing" for nothing
        there."""
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            return "missing"
        files = sorted(p for p in path.rglob("*") if p.is_file() and ".building-" not in p.as_posix()
                       and p.name not in NOT_CONTENT)
        return _sha256([[f.relative_to(path).as_posix(), self.file(f)] for f in files])

    def save(self) -> None:
        if self.cache_file and self.dirty:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.cache_file, self.cache)
            self.dirty = False


# --- code ---------------------------------------------------------------------------------------------------

def _module_file(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


@functools.lru_cache(maxsize=4096)
def _direct_imports(path: Path, stamp: tuple, root: Path) -> tuple[Path, ...]:
    """The repository files one file imports (every package on the way included), parsed once per
    version of the file: a plan asks for the same modules at every stage."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importing module's package
                package = path.parent
                for _ in range(node.level - 1):
                    package = package.parent
                prefix = ".".join(package.relative_to(root).parts)
                base = f"{prefix}.{node.module}" if node.module else prefix
            else:
                base = node.module or ""
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    found: dict[Path, None] = {}
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            module = _module_file(".".join(parts[:depth]), root)
            if module is not None:
                found[module] = None
    return tuple(found)


def imported_files(program: Path, root: Path = REPO_ROOT) -> list[Path]:
    """The repository's Python files a program runs: itself and every module it imports, found by
    parsing import statements transitively (a module outside the repository, e.g. torch, ends the
    walk; a package's __init__.py counts with each of its modules)."""
    seen: dict[Path, None] = {}
    pending = [program if program.is_absolute() else root / program]
    while pending:
        current = pending.pop()
        if current in seen or not current.is_file():
            continue
        seen[current] = None
        pending += _direct_imports(current, _stamp(current), root)
    return sorted(seen)


@functools.lru_cache(maxsize=4096)
def _code_hash(path: Path, stamp: tuple) -> str:
    return hashlib.sha256(_normalised_code(path).encode()).hexdigest()


def _normalised_code(path: Path) -> str:
    """What a file computes, without what it says: Python without comments and docstrings, shell
    without comment lines."""
    text = path.read_text()
    if path.suffix == ".py":
        tree = ast.parse(text)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                body[0] = ast.Pass()
        return ast.dump(tree)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def code_files(stage: Stage, root: Path = REPO_ROOT) -> list[Path]:
    """Every file of code a stage runs (repository-relative)."""
    files: dict[Path, None] = {}
    for path in stage.code:
        absolute = path if path.is_absolute() else root / path
        if absolute.suffix == ".sh":
            files[absolute] = None
            files.update(dict.fromkeys(sorted((root / "scripts/lib").glob("*.sh"))))
            files.update(dict.fromkeys(imported_files(root / "minillm/recipes.py", root)))  # common.sh reads it
        else:
            files.update(dict.fromkeys(imported_files(absolute, root)))
    return [path.relative_to(root) for path in files]


# --- fingerprint, records, building folders, swap -----------------------------------------------------------

def fingerprint_parts(stage: Stage, hashes: ContentHashes, root: Path = REPO_ROOT) -> dict[str, str]:
    """A hash per thing that decides a stage's outputs, so that a rerun can say which one changed."""
    parts = {"command": _sha256(stage.command), "threads": str(stage.threads)}
    parts.update({f"${name}": _sha256(value) for name, value in sorted(stage.env.items())
                  if name not in PLACEMENT_VARIABLES})
    parts.update({f"input {path}": hashes.path(path) for path in stage.inputs})
    parts.update({f"code {path}": _code_hash(root / path, _stamp(root / path)) for path in code_files(stage, root)})
    return parts


def fingerprint(parts: dict[str, str]) -> str:
    return _sha256(parts)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


@dataclass
class Decision:
    stage: Stage
    fingerprint: str
    parts: dict[str, str]
    skip: bool
    reason: str  # why it runs (or "unchanged")
    resume: bool = False

    @property
    def building(self) -> dict[Path, Path]:
        return self.stage.building(self.fingerprint)


class StageBook:
    """The records of a results folder's stages: {state_dir}/{name}.json (finished) and
    {name}.running.json (started, not finished: its building folders, or a swap in progress)."""

    def __init__(self, state_dir: Path, hashes: ContentHashes, root: Path = REPO_ROOT):
        self.state_dir, self.hashes, self.root = state_dir, hashes, root

    def record_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def running_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.running.json"

    def record(self, name: str) -> dict | None:
        return read_json(self.record_path(name))

    def decide(self, stage: Stage, force: bool = False) -> Decision:
        """Skip, resume or run: the stage's inputs must exist (their stages ran)."""
        self.finish_interrupted_swap(stage)
        missing = [str(p) for p in stage.inputs if not p.exists()]
        if missing:
            raise StageError(f"[stage {stage.name}] missing inputs {', '.join(missing)} (did an earlier stage fail?)")
        parts = fingerprint_parts(stage, self.hashes, self.root)
        current = fingerprint(parts)
        record = self.record(stage.name)
        if not force and record and record.get("fingerprint") == current and all(p.exists() for p in stage.outputs):
            return Decision(stage, current, parts, True, "unchanged")
        running = read_json(self.running_path(stage.name))
        building = stage.building(current)
        if (not force and stage.resumable and running and running.get("fingerprint") == current
                and any(path.exists() for path in building.values())):
            return Decision(stage, current, parts, False, "resuming an interrupted run with the same inputs", True)
        if force:
            reason = "forced"
        elif record is None:
            reason = "no previous run"
        elif record.get("fingerprint") != current:
            previous = record.get("parts", {})
            reason = "changed: " + ", ".join(sorted(k for k in parts.keys() | previous.keys()
                                                     if parts.get(k) != previous.get(k)))
        else:
            reason = "outputs missing"
        return Decision(stage, current, parts, False, reason)

    def begin(self, decision: Decision) -> None:
        """Make room for a run: stale building folders of earlier attempts go, unless it resumes."""
        stage = decision.stage
        running = read_json(self.running_path(stage.name)) or {}
        stale = [Path(p) for p in running.get("building", {}).values()]
        for path in stale + ([] if decision.resume else list(decision.building.values())):
            if not decision.resume or path not in decision.building.values():
                _remove(path)
        for path in decision.building.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.running_path(stage.name), {
            "name": stage.name, "fingerprint": decision.fingerprint, "parts": decision.parts,
            "building": {str(k): str(v) for k, v in decision.building.items()}, "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S"), "started": time.time()})

    def complete(self, decision: Decision, seconds: float, log: Path | None = None) -> None:
        """The stage succeeded: check its outputs, swap them in, then write its record."""
        stage = decision.stage
        building = decision.building
        missing = [str(final) for final, path in building.items() if not path.exists()]
        if missing:
            raise StageError(f"[stage {stage.name}] finished without writing {', '.join(missing)}")
        if stage.check is not None:
            problem = stage.check(lambda path: building.get(path, path))
            if problem:
                raise StageError(problem)
        running_path = self.running_path(stage.name)
        journal = read_json(running_path) or {}
        journal.update({"swapping": True, "seconds": round(seconds, 1), "log": str(log) if log else None,
                        "command": stage.command, "env": stage.env,
                        "inputs": [str(p) for p in stage.inputs], "outputs": [str(p) for p in stage.outputs]})
        atomic_write_json(running_path, journal)
        self._swap(stage, journal)

    def finish_interrupted_swap(self, stage: Stage) -> None:
        journal = read_json(self.running_path(stage.name))
        if journal and journal.get("swapping"):
            print(f"[stage {stage.name}] completing the swap of its outputs that an interrupted driver began",
                  flush=True)
            self._swap(stage, journal)

    def _swap(self, stage: Stage, journal: dict) -> None:
        """Replace each output by its building folder (renames), drop the replaced ones, record."""
        fp12 = journal["fingerprint"][:12]
        for final_text, building_text in journal["building"].items():
            final, building = Path(final_text), Path(building_text)
            if not building.exists():
                continue  # moved before an interruption
            old = final.parent / f".{final.name}.old-{fp12}"
            if final.exists() or final.is_symlink():
                _remove(old)
                final.rename(old)
            building.rename(final)
        for final_text in journal["building"]:
            _remove(Path(final_text).parent / f".{Path(final_text).name}.old-{fp12}")
        atomic_write_json(self.record_path(stage.name), {
            "name": stage.name, "fingerprint": journal["fingerprint"], "parts": journal["parts"],
            "command": journal.get("command"), "env": journal.get("env"), "inputs": journal.get("inputs"),
            "outputs": journal.get("outputs"), "seconds": journal.get("seconds"), "log": journal.get("log"),
            "threads": stage.threads, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.running_path(stage.name).unlink(missing_ok=True)


def rewrite_outputs(values: list[str], building: dict[Path, Path]) -> list[str]:
    """A command's words with each output path (alone, or as a path prefix, or after NAME=)
    replaced by its building path."""
    def rewrite(word: str) -> str:
        name, equals, value = word.partition("=") if "=" in word and not word.startswith("/") else ("", "", word)
        for final, path in building.items():
            text = str(final)
            if value == text or value.startswith(text + "/"):
                return f"{name}{equals}{path}{value[len(text):]}"
        return word
    return [rewrite(word) for word in values]


def building_env(env: dict[str, str], building: dict[Path, Path]) -> dict[str, str]:
    return {name: rewrite_outputs([value], building)[0] for name, value in env.items()}


def say(stage: Stage, text: str) -> None:
    print(f"[stage {stage.name}] {text}", file=sys.stdout, flush=True)
