"""Model files → frozen declarations, with every check that needs no tensor (never imports torch).

The flow: ``load.parse_model`` reads YAML (``yamlpos``) and checks the top-level schema;
``values`` turns YAML scalars and ``${...}`` expressions into values; ``blocks`` records block
definitions and finds cycles; ``nodes`` expands each NODE into an ``ir`` declaration (with
``recover`` explaining calls that YAML split at commas); ``rules`` parses ``init:`` and ``tie:``.
"""

from .ir import Decl, Graph, InputSpec, Leaf, ModelSpec, Node, Ref, Rule, Seq, TensorEntry, Tie, count_modules, walk
from .load import PartialSpecError, config_doc, grants, parse_model, parse_rules_file, read_model_text
from .nodes import MAX_DEPTH, MAX_REPEAT
from .recover import CONTAINERS
from .rules import parse_rule
from .values import DTYPES, INPUT_DTYPES

__all__ = [
    "CONTAINERS",
    "DTYPES",
    "INPUT_DTYPES",
    "MAX_DEPTH",
    "MAX_REPEAT",
    "Decl",
    "Graph",
    "InputSpec",
    "Leaf",
    "ModelSpec",
    "Node",
    "PartialSpecError",
    "Ref",
    "Rule",
    "Seq",
    "TensorEntry",
    "Tie",
    "config_doc",
    "count_modules",
    "grants",
    "parse_model",
    "parse_rule",
    "parse_rules_file",
    "read_model_text",
    "walk",
]
