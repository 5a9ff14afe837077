"""The package's layers (README "Architecture"): a module imports only from its own layer or the
layers below, nothing imports in a cycle, and every module has a layer, so a new one is placed
deliberately. Static: reads the imports, runs nothing."""
from __future__ import annotations

import ast

from world import REPO

LAYERS = [  # lowest first
    ("foundations", {"fileio", "statistics", "losses", "arithmetic", "metrics", "modeling", "log", "data.templates",
                     "data.indexed", "data.manifest"}),
    ("data, models, engine", {"data.processing", "data.datasets", "generation", "checkpoint", "run_folder", "guard",
                              "engine", "rationale", "synthetic", "teacher_cache"}),
    ("evaluation", {"evaluation"}),
    ("training parts", {"objectives", "ppo.losses", "ppo.rollouts", "pretraining_term", "response_source",
                        "training_setup", "validation"}),
    ("the loop and its methods", {"loop", "token_step", "ppo.step"}),
    ("command line → configs", {"args"}),
    ("experiment machinery", {"stages", "report", "plots"}),
]
LAYER_OF = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def package_imports() -> dict[str, set[str]]:
    """minillm module (dotted, without "minillm.") → the minillm modules it imports."""
    package = REPO / "minillm"
    modules = {".".join(path.relative_to(package).with_suffix("").parts): path
               for path in package.rglob("*.py") if path.name != "__init__.py"}
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minillm"):
                base = node.module.removeprefix("minillm").lstrip(".")
                for alias in node.names:  # "from minillm.ppo import losses" imports the module ppo.losses
                    candidate = f"{base}.{alias.name}" if base else alias.name
                    found.add(candidate if candidate in modules else base)
            elif isinstance(node, ast.Import):
                found.update(a.name.removeprefix("minillm.") for a in node.names if a.name.startswith("minillm."))
        imports[name] = {module for module in found if module in modules} - {name}
    return imports


def test_every_module_has_a_layer():
    assert set(package_imports()) == set(LAYER_OF), set(package_imports()) ^ set(LAYER_OF)


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {dependency} ({LAYERS[LAYER_OF[dependency]][0]})"
              for module, dependencies in package_imports().items() for dependency in dependencies
              if LAYER_OF[dependency] > LAYER_OF[module]]
    assert not upward, upward


def test_no_import_cycles():
    imports, done = package_imports(), set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " → ".join(path + (module,))
        if module not in done:
            for dependency in imports[module]:
                visit(dependency, path + (module,))
            done.add(module)

    for module in imports:
        visit(module, ())
