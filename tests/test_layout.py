"""The package's dependencies run one way (docs/development.md): entry points -> orchestration -> library modules ->
the network and its leaves -> errors. Every import of a package module is read from the source, lazy imports inside
functions included, so a shortcut back up the layers fails here, naming the importing file."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunetv2_smaformer"

#: Layer of each top-level module or subpackage, lowest first; a module may import from its own layer and below.
LAYERS = {
    "errors": 0, "paths": 0,
    "network": 1, "precision": 1, "pretrained": 1,
    "synapse": 2, "acdc": 2, "parallel": 2, "quiet": 2, "markdown": 2, "machine": 2, "processes": 2, "nnunet_env": 2,
    "nnunet_bridge": 2, "nnunet_commands": 2, "forward_cost": 2, "model_folder": 2,
    "training": 2, "whole_slice": 2, "conversion": 2, "evaluation": 2,
    # Orchestration, in its own order: the demo builds on the comparison, which builds on the speed measurements.
    "speed": 3, "comparison": 4, "demo": 5,
    # Entry points: the command line, and the folder nnU-Net imports trainers from.
    "cli": 6, "nnunet_trainers": 6,
}


def _part(module: str) -> str:
    """``nnunetv2_smaformer.speed.scale`` -> ``speed``."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a package module in ``path``, at any depth of the code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "nnunetv2_smaformer" else [
                f"nnunetv2_smaformer.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("nnunetv2_smaformer.")]


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    parts |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert parts == set(LAYERS), "a new module or subpackage: give it a layer in LAYERS (and docs/development.md)"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_layers(path):
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) == 1 and relative.stem == "__init__":
        return  # the package's own lazy re-export of the network
    own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    upward = [f"line {line}: {name} (layer {LAYERS[_part(name)]})" for line, name in _imports(path)
              if LAYERS[_part(name)] > LAYERS[own]]
    assert not upward, f"{relative} (layer {LAYERS[own]}) imports from above its layer: {'; '.join(upward)}"
