"""Incremental stages for the comparison driver: a stage whose outputs exist and whose inputs
have not changed is skipped (and says so); --force reruns it.

  python -m minillm.experiments.stages --state-dir RESULTS/stages --name sft-teacher \\
      --inputs DATA INIT --outputs RUN [--force] -- env LR=2e-3 bash scripts/sft/sft_xlarge.sh .

A stage's fingerprint hashes its command line (variable assignments included: the driver writes
them as `env NAME=value ...`), the values of the environment variables named in $STAGE_ENV that
are set (the preset's shared knobs, and the stage scripts' knobs a user may export), the content
of every command argument that is a .sh or .py file (the stage scripts and any script or tool
named there; not data files named on the command line, which may be outputs), of the scripts
those source (scripts/lib/*.sh) or run (`bash scripts/...`), followed recursively, and the values
of the PAPER_* recipes they read (minillm/recipes.py; a recipe a script does not read changes
nothing), and, for each input path, the size and
modification time of every file under it (outputs are written atomically, so a rerun stage
changes its outputs' times and its dependents rerun). The package's code, and the entrypoints and tools
the scripts launch, are NOT part of it: after changing them, use --force.

After success the stage's record ({state-dir}/{name}.json) holds the fingerprint and timing.
An interrupted stage leaves {name}.running.json: rerun with the same fingerprint, its outputs
are kept so that training resumes (the driver passes --resume); with another fingerprint, or
with --force, the old outputs are deleted first so that nothing stale survives.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from minillm.fileio import atomic_write_json
from minillm.recipes import shell_values

SCRIPT_SUFFIXES = (".sh", ".py")  # command arguments whose content is part of the fingerprint
SOURCED_SCRIPT = re.compile(r'^\s*(?:source|\.)\s+.*?((?:scripts/)?lib/[\w.-]+\.sh)', re.M)
RUN_SCRIPT = re.compile(r'\bbash\s+"?(?:\$BASE_PATH/)?(scripts/[\w/.-]+\.sh)')
RECIPE_VALUE = re.compile(r'\bPAPER_\w+')  # the recipes scripts/lib/common.sh reads (minillm/recipes.py)


def script_dependencies(script: Path) -> tuple[list[Path], list[str]]:
    """What a stage script's outcome depends on besides itself and its command line: the scripts
    it sources (scripts/lib/*.sh) or runs (bash scripts/...), recursively, as paths relative to the
    repository root where the driver runs its stages; and the PAPER_* recipe values they read."""
    found: list[Path] = []
    recipes: set[str] = set()
    pending = [script]
    while pending:
        current = pending.pop()
        code = "\n".join(line for line in current.read_text().splitlines() if not line.lstrip().startswith("#"))
        recipes.update(RECIPE_VALUE.findall(code))
        named = [match if match.startswith("scripts/") else f"scripts/{match}"
                 for match in SOURCED_SCRIPT.findall(code) + RUN_SCRIPT.findall(code)]
        for path in map(Path, named):
            if not path.is_file():
                print(f"warning: {current} sources or runs {path}, which is not there from {Path.cwd()}: "
                      f"changes to it will not rerun the stage", file=sys.stderr)
            elif path != script and path not in found:
                found.append(path)
                pending.append(path)
    return found, sorted(recipes)


def _input_signature(path: Path) -> list:
    if not path.exists():
        return [str(path), "missing"]
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path)] + [[str(f.relative_to(path)) if f != path else "", f.stat().st_size, f.stat().st_mtime_ns]
                          for f in files]


def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def fingerprint_parts(command: list[str], inputs: list[Path], env_names: list[str]) -> dict[str, str]:
    """A hash per thing that decides a stage's outputs (see the module docstring), so that a
    rerun can say which one changed."""
    parts = {"command": _sha256(command)}
    # An unset name adds nothing, so that tracking one more knob leaves every stage that never
    # saw it with the fingerprint it had.
    parts.update({f"${name}": _sha256(os.environ[name]) for name in env_names if name in os.environ})
    scripts = [Path(arg) for arg in command if Path(arg).suffix in SCRIPT_SUFFIXES and Path(arg).is_file()]
    recipes: set[str] = set()
    for script in [script for script in scripts if script.suffix == ".sh"]:
        dependencies, names = script_dependencies(script)
        scripts += [dependency for dependency in dependencies if dependency not in scripts]
        recipes.update(names)
    parts.update({f"script {path}": hashlib.sha256(path.read_bytes()).hexdigest() for path in scripts})
    if recipes:
        values = shell_values()
        parts.update({f"recipe {name}": _sha256(values.get(name)) for name in sorted(recipes)})
    parts.update({f"input {path}": _sha256(_input_signature(path)) for path in inputs})
    return parts


def fingerprint(parts: dict[str, str]) -> str:
    return _sha256(parts)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def run_stage(name: str, command: list[str], inputs: list[Path], outputs: list[Path], state_dir: Path,
              force: bool = False, env_names: list[str] = ()) -> int:
    """Run (or skip) one stage; returns the command's exit status (0 when skipped)."""
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        print(f"[stage {name}] error: missing inputs {', '.join(missing)} (did an earlier stage fail?)",
              file=sys.stderr)
        return 1
    record_path, running_path = state_dir / f"{name}.json", state_dir / f"{name}.running.json"
    parts = fingerprint_parts(command, inputs, list(env_names))
    current = fingerprint(parts)
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    if not force and record is not None and record["fingerprint"] == current and all(p.exists() for p in outputs):
        print(f"[stage {name}] skipped: outputs exist and inputs are unchanged (took {record['seconds']:.0f} s "
              f"on {record['finished_at']}; FORCE=1 reruns)", flush=True)
        return 0
    interrupted = json.loads(running_path.read_text()) if running_path.is_file() else None
    resuming = not force and interrupted is not None and interrupted["fingerprint"] == current
    if resuming:
        print(f"[stage {name}] resuming an interrupted run with the same inputs", flush=True)
    else:
        if force:
            reason = "forced"
        elif record is None:
            reason = "no previous run"
        elif record["fingerprint"] != current:
            previous = record.get("parts", {})
            changed = sorted(k for k in parts.keys() | previous.keys() if parts.get(k) != previous.get(k))
            reason = "changed: " + ", ".join(changed)
        else:
            reason = "outputs missing"
        print(f"[stage {name}] running ({reason})", flush=True)
        for path in outputs:
            _remove(path)
    if record_path.exists():
        record_path.unlink()
    atomic_write_json(running_path, {"name": name, "fingerprint": current, "command": command,
                                     "started_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    started = time.time()
    status = subprocess.run(command).returncode
    if status != 0:
        print(f"[stage {name}] failed with exit status {status}: its error is above. A crash of the machine "
              f"needs only a rerun of the driver (this stage resumes); anything else needs its cause fixed first",
              file=sys.stderr)
        return status
    atomic_write_json(record_path, {"name": name, "fingerprint": current, "parts": parts, "command": command,
                                    "inputs": [str(p) for p in inputs], "outputs": [str(p) for p in outputs],
                                    "seconds": round(time.time() - started, 1),
                                    "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    running_path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("error: give the stage's command after --", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--inputs", nargs="*", default=[], type=Path)
    parser.add_argument("--outputs", nargs="+", required=True, type=Path)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error("the command after -- is empty")
    return run_stage(args.name, command, args.inputs, args.outputs, args.state_dir, args.force,
                     os.environ.get("STAGE_ENV", "").split())


if __name__ == "__main__":
    sys.exit(main())
