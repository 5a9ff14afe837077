"""The package's layers (README "Architecture"), one folder each: a module imports only from its own
layer or the layers below, nothing imports in a cycle, and a module outside the folders is one of
the ground floor's few, so a new one is placed deliberately. Static: reads the imports, runs nothing."""
from __future__ import annotations

import ast

from world import REPO

GROUND_FLOOR = {"fileio", "locks", "log", "statistics", "losses", "arithmetic", "metrics", "modeling", "distributed",
                "recipes", "tokenizer_files", "random_init"}
LAYERS = [  # lowest first: (what it holds, the folder or top-level module that is the layer)
    ("ground floor: pure functions, I/O, ranks", None),
    ("data: formats, datasets, templates, rationale sources, the teacher cache", "data"),
    ("evaluation: the sampler, eval sets, sharded generation", "eval"),
    ("training: engine, checkpoints, the loop, the token-level step and its parts", "train"),
    ("on-policy: rollouts, PPO losses, the on-policy step", "ppo"),
    ("command line → configs", "args"),
    ("experiment machinery: stages, report, plots", "experiments"),
]
RANK = {place: rank for rank, (_, place) in enumerate(LAYERS)}


def layer_of(module: str) -> int:
    place = module.split(".")[0]
    if "." not in module and module in GROUND_FLOOR:
        return RANK[None]
    assert place in RANK, f"minillm/{module.replace('.', '/')}.py is in no layer: put it in a layer's folder " \
                          f"or add it to GROUND_FLOOR deliberately"
    return RANK[place]


def package_imports() -> dict[str, set[str]]:
    """minillm module (dotted, without "minillm.") → the minillm modules it imports."""
    package = REPO / "minillm"
    modules = {".".join(path.relative_to(package).with_suffix("").parts): path
               for path in package.rglob("*.py") if path.name != "__init__.py"}
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:  # relative: resolved against the module's package
                package_parts = name.split(".")[:-1][:len(name.split(".")) - node.level]
                node.module = ".".join(["minillm", *package_parts, *([node.module] if node.module else [])])
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
    for module in package_imports():
        layer_of(module)


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {dependency} ({LAYERS[layer_of(dependency)][0]})"
              for module, dependencies in package_imports().items() for dependency in dependencies
              if layer_of(dependency) > layer_of(module)]
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


def test_the_experiment_machinery_never_imports_the_library_above_the_ground_floor():
    """The report and the stages read files; they must not drag in the training or sampling code."""
    reached = {dependency for module, dependencies in package_imports().items() if module.startswith("experiments.")
               for dependency in dependencies}
    assert not {module for module in reached if module.split(".")[0] in ("train", "ppo", "eval", "args")}, reached
