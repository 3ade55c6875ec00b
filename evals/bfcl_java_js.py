"""Java and JavaScript prompt-mode replies, decoded by bfcl-eval's own tree-sitter decoders, bounded.

bfcl's decoders have no bounds of their own: they call the tree's ``sexp()``, a C recursion that
crashes the process on a tree some 30,000 levels deep (``!!!!...x`` or ``1+1+...`` nest that deep with
no bracket at all), their Python walkers recurse, and tree-sitter's error recovery is super-linear on
some texts (JavaScript ``->->->...``, Java ``a<a<a<...``). So before bfcl's decoder sees a reply:

1. the bounds every decoder runs (core.decode_bounds: length, bracket depth outside literals and
   comments);
2. our own tree-sitter parse of exactly the text bfcl's parser will get, with the same grammar, under
   ``TREE_SITTER_TIMEOUT_S``, which bounds its memory too; a parse that takes longer is a decode
   error, ``too_slow``: the only bound that depends on the machine, and only pathological texts come
   near it;
3. that tree's depth, walked with a cursor (no recursion), against ``MAX_TREE_DEPTH``.

Only then does bfcl's decoder parse the same text again (about as fast: same grammar, same bytes) and
decode it; whatever it raises on malformed input is a decode error.
"""
from __future__ import annotations

from core.bfcl_lib import bfcl
from core.decode_bounds import MAX_TREE_DEPTH, TREE_SITTER_TIMEOUT_S, DecodeError, check_bounds

_parsers: dict[str, object] = {}


def _parser(language: str):
    """A tree-sitter parser of bfcl's own grammar for `language`, with the time limit set."""
    if language not in _parsers:
        bfcl()
        from tree_sitter import Parser

        if language == "java":
            from bfcl_eval.model_handler.parser.java_parser import JAVA_LANGUAGE as grammar
        else:
            from bfcl_eval.model_handler.parser.js_parser import JS_LANGUAGE as grammar
        parser = Parser()
        parser.set_language(grammar)
        parser.set_timeout_micros(int(TREE_SITTER_TIMEOUT_S * 1_000_000))
        _parsers[language] = parser
    return _parsers[language]


def bfcl_source(body: str) -> str:
    """The text bfcl's Java/JavaScript parser is given for a reply: ``default_decode_ast_prompting``
    trims backticks, newlines and spaces and wraps the reply in [...], ``ast_parse`` cuts the first
    and last character again."""
    text = body.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    return text[1:-1]


def check_reply(body: str, language: str) -> None:
    """Steps 1-3 of the module docstring; DecodeError when a bound is crossed."""
    check_bounds(body, language)
    try:
        source = bfcl_source(body).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bfcl's `bytes(text, "utf8")` would raise too
        raise DecodeError("syntax", f"{language} decoder: the reply is not encodable as UTF-8") from None
    parser = _parser(language)
    try:
        tree = parser.parse(source)
    except ValueError:  # tree-sitter's "Parsing failed": the time limit
        parser.reset()  # else the next parse would resume this one
        raise DecodeError("too_slow", f"{language} parse took over {TREE_SITTER_TIMEOUT_S} s") from None
    cursor, depth = tree.walk(), 0
    while True:  # pre-order walk; depth of the cursor's node below the root
        if depth > MAX_TREE_DEPTH:
            raise DecodeError("too_deep", f"expression nested deeper than {MAX_TREE_DEPTH} levels")
        if cursor.goto_first_child():
            depth += 1
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return
            depth -= 1


def decode_java_js(body: str, language: str) -> list[dict]:
    """A think-stripped Java or JavaScript reply in bfcl's shape; DecodeError on malformed or
    over-bound text."""
    check_reply(body, language)
    from bfcl_eval.constants.enums import ReturnFormat
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting

    fmt = ReturnFormat.JAVA if language == "java" else ReturnFormat.JAVASCRIPT
    try:
        return default_decode_ast_prompting(body, fmt)
    except Exception as e:  # tree-sitter decoders raise assorted errors on malformed input
        raise DecodeError("syntax", f"{language} decoder: {e}") from None
