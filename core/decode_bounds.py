"""The size bounds every decoder of model text runs before its parser, and the error decoders raise.

One set of limits for all of them: the project's codec (core.toolcalls: hermes, JSON, Python), the
leaderboard decodings (evals.bfcl_prompt, evals.acebench.decode), and bfcl-eval's tree-sitter decoders
for Java and JavaScript (evals.bfcl_java_js). A reply over a bound is ``DecodeError``, which every
scorer records as an invalid reply with an error type; it never reaches a parser.

* ``MAX_TEXT_CHARS``: text longer than this is refused unparsed.
* ``MAX_DEPTH``: brackets nested deeper than this, counted on the raw text outside string literals
  and comments (:func:`check_depth`), are refused before a parser sees them; value walkers stop at
  the same depth.
* ``MAX_TREE_DEPTH``: the parser's own tree (Python's ``ast``, tree-sitter's) deeper than this is
  refused right after parsing, before any recursive walker (``ast.unparse``, tree-sitter's C
  ``sexp()``, bfcl's walkers) runs on it: operator chains (``-----1``, ``1+1+...``, ``!!!!x``) nest
  without brackets. A tree spends one or two levels per bracket, so twice ``MAX_DEPTH``.
* ``MAX_INT_BITS``: an integer a decoder returns is at most this long (about 1,233 decimal digits,
  well under Python's 4,300-digit int-to-str limit, so every decoded value can be written and
  compared): written in the reply (``0xfff...``), it is checked on the parse tree; a JSON number, in
  core.toolcalls.ToolCall; computed by the leaderboards' arithmetic, before it is computed
  (evals.leaderboard_ast).
* ``TREE_SITTER_TIMEOUT_S``: tree-sitter's error recovery is super-linear in time and memory on some
  texts (2,000 characters of JavaScript ``->->->`` take 1.4 s, 8,000 take 20 s; 40,000 of Java
  ``a<a<a<`` take 13 s and 3.2 GB), so its parse runs under this wall-clock limit, which bounds its
  memory too (some 0.4 GB a second on that Java text). Replies of ordinary shape parse at about
  0.6 µs a character, so only pathological texts, or ordinary ones near ``MAX_TEXT_CHARS`` on a busy
  machine, reach it.
"""
from __future__ import annotations

import ast
import re
import warnings

MAX_TEXT_CHARS = 1_000_000 * 2
MAX_DEPTH = 100
MAX_TREE_DEPTH = 2 * MAX_DEPTH
MAX_INT_BITS = 4096
TREE_SITTER_TIMEOUT_S = 1.0


class DecodeError(ValueError):
    """Model text that is not a well-formed tool call. ``kind`` is a short machine tag."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# Tokens for the depth pre-check, per syntax: a whole string literal or a comment (skipped), or a
# bracket. Each pattern is linear: an unterminated literal either stops at the line end or fails once.
_TOKENS = {
    "python": re.compile(
        r"'''[^\\]*?(?:\\.[^\\]*?)*?'''|\"\"\"[^\\]*?(?:\\.[^\\]*?)*?\"\"\""
        r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'|\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"|#[^\n]*|[\[\](){}]",
        re.DOTALL),
    "json": re.compile(r"\"[^\"\\]*(?:\\.[^\"\\]*)*\"|[\[\]{}]", re.DOTALL),
    # Java and JavaScript: '...' and "..." literals, JavaScript `...` templates, // and /* */ comments
    # (an unclosed /* runs to the end, as it does for the parser)
    "c_like": re.compile(
        r"'[^'\\\n]*(?:\\.[^'\\\n]*)*'|\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"|`[^`\\]*(?:\\.[^`\\]*)*`"
        r"|//[^\n]*|/\*.*?(?:\*/|\Z)|[\[\](){}]",
        re.DOTALL),
}
SYNTAXES = {"python": "python", "json": "json", "java": "c_like", "javascript": "c_like"}


def check_length(text: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise DecodeError("too_long", f"text is {len(text)} characters, over the limit of {MAX_TEXT_CHARS}")


def check_depth(text: str, syntax: str) -> None:
    """Brackets nested deeper than MAX_DEPTH outside string literals and comments of `syntax`
    (python | json | java | javascript): DecodeError("too_deep")."""
    depth = 0
    for m in _TOKENS[SYNTAXES[syntax]].finditer(text):
        tok = m.group()
        if len(tok) != 1 or tok in "'\"#`":
            continue
        if tok in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError("too_deep", f"brackets nested deeper than {MAX_DEPTH}")
        else:
            depth -= 1


def check_bounds(text: str, syntax: str) -> None:
    """What every decoder runs before its parser sees `text`: the length, then the bracket depth."""
    check_length(text)
    check_depth(text, syntax)


def check_int(value) -> None:
    """An int (not a bool) longer than MAX_INT_BITS: DecodeError("too_large")."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise DecodeError("too_large", f"an integer of {value.bit_length()} bits, over the limit of "
                                       f"{MAX_INT_BITS}")


def check_tree(root, children, check_node=None) -> None:
    """The tree under `root` (``children(node)`` lists a node's children) deeper than MAX_TREE_DEPTH:
    DecodeError("too_deep"); ``check_node(node)`` runs on every node. Iterative, so it is safe on any
    tree the parser built."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise DecodeError("too_deep", f"expression nested deeper than {MAX_TREE_DEPTH} levels")
        if check_node is not None:
            check_node(node)
        stack.extend((child, depth + 1) for child in children(node))


def _check_literal(node) -> None:
    if isinstance(node, ast.Constant):
        check_int(node.value)


def parse_python(text: str) -> ast.expr:
    """``ast.parse(text, mode="eval").body`` for every Python-call decoder: the bounds first, the
    parser's own errors as DecodeError("syntax" / "too_deep"), then the tree's depth and every integer
    literal in it (``0xfff...``), before any walker (or ``ast.unparse``) sees the tree."""
    check_bounds(text, "python")
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" and the like: model text, not ours
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(text, mode="eval")
    except (RecursionError, MemoryError):
        raise DecodeError("too_deep", "expression nested too deeply") from None
    except (SyntaxError, ValueError) as e:  # ValueError: NUL bytes, lone surrogates
        raise DecodeError("syntax", f"not a Python call list: {e}") from None
    check_tree(tree.body, ast.iter_child_nodes, _check_literal)
    return tree.body
