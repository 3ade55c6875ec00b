"""Dual-Tree API synthesis: a context-tree leaf (core.seeds.catalog) crossed with a constraint-tree path.

Constraint tree (one choice per branch, drawn with ``random.Random``):
  naming       snake_case | camelCase | simple (lowercase, no separator) | dotted (``sub.snake_name``);
               kebab-case is left out on purpose: a hyphen cannot appear in a Python-syntax call;
  param_count  zero (only leaves that make sense without input) | few (1-3) | many (4+), required first;
  type_focus   plain | numeric | enum | complex: which optional parameters are preferred, and whether
               enum-able string slots declare their ``enum``;
  description  concise | detailed | imperative | docstring.

An :class:`ApiSpec` couples the BFCL-shaped doc with what a dialogue needs: intent phrases and, per
parameter, a value generator and a query phrase. :func:`spec_from_doc` builds one for any tool doc
(imported or expanded seeds): catalogue parameters are recognised by name, others are inferred from
their name, type and enum.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from random import Random
from typing import Any, Callable

from core.seeds import values
from core.seeds.catalog import BY_KEY, LEAVES, Leaf, Param

NAMING = ("snake_case", "camelCase", "simple", "dotted")
PARAM_COUNT = ("zero", "few", "many")
TYPE_FOCUS = ("plain", "numeric", "enum", "complex")
DESCRIPTION = ("concise", "detailed", "imperative", "docstring")
CONSTRAINT_TREE = {"naming": NAMING, "param_count": PARAM_COUNT, "type_focus": TYPE_FOCUS,
                   "description": DESCRIPTION}
_FOCUS_TYPES = {"plain": {"string", "boolean"}, "numeric": {"integer", "float"}, "enum": {"string"},
                "complex": {"array", "dict"}}


@dataclass(frozen=True)
class Constraints:
    naming: str
    param_count: str
    type_focus: str
    description: str


def draw_constraints(rng: Random) -> Constraints:
    return Constraints(rng.choice(NAMING), rng.choices(PARAM_COUNT, weights=(1, 6, 4))[0],
                       rng.choice(TYPE_FOCUS), rng.choice(DESCRIPTION))


def words_of(name: str) -> list[str]:
    """'searchFlightOffers' / 'search_flight_offers' / 'x.search-flight' -> lowercase words."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.split(".")[-1])
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", name) if w]


def norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def fmt_name(words: str, naming: str, prefix: str = "") -> str:
    w = words.split()
    if naming == "camelCase":
        return w[0] + "".join(x.capitalize() for x in w[1:])
    if naming == "simple":
        return "".join(w)
    snake = "_".join(w)
    return f"{prefix}.{snake}" if naming == "dotted" and prefix else snake


def all_leaf_names() -> set[str]:
    """Every function name the synthesizer can produce (for collision checks)."""
    out = set()
    for leaf in LEAVES:
        for naming in NAMING:
            out.add(fmt_name(leaf.words, naming, _prefix(leaf)))
    return out


def _prefix(leaf: Leaf) -> str:
    return leaf.path.split("/")[1].split()[0].lower()


@dataclass
class ParamSpec:
    key: str
    words: str
    schema: dict
    required: bool
    gen: Callable[[Random], Any]
    phrase: str | tuple[str, str] | None = None  # None: generic "with <words> <value>"

    def clause(self, value: Any) -> str:
        if isinstance(self.phrase, tuple):
            return self.phrase[0] if value else self.phrase[1]
        if self.phrase is None:
            if isinstance(value, bool):
                return f"{self.words} {'enabled' if value else 'disabled'}"
            return f"{self.words} {values.text(value)}"
        if isinstance(value, dict) and "{}" not in self.phrase:
            try:
                return self.phrase.format(**{k: values.text(v) for k, v in value.items()})
            except (KeyError, IndexError):
                return f"{self.words} {values.text(value)}"
        return self.phrase.format(values.text(value))


@dataclass
class ApiSpec:
    doc: dict
    intents: tuple[str, ...]
    params: list[ParamSpec] = field(default_factory=list)
    leaf: str | None = None

    @property
    def name(self) -> str:
        return self.doc["name"]

    @property
    def required(self) -> list[ParamSpec]:
        return [p for p in self.params if p.required]

    @property
    def optional(self) -> list[ParamSpec]:
        return [p for p in self.params if not p.required]


# ------------------------------------------------------------------------------- synthesis

def _schema_for(p: Param, slot: values.Slot, focus: str, optional: bool) -> dict:
    desc = p.desc or f"The {p.words}{slot.hint}."
    if optional:
        desc += " Optional."
    schema: dict = {"type": slot.type, "description": desc}
    if slot.enum and (slot.always_enum or focus == "enum"):
        schema["enum"] = list(slot.enum)
    if slot.type == "array":
        schema["items"] = {"type": slot.items or "string"}
    if slot.type == "dict":
        schema["properties"] = {f: {"type": t, "description": f"The {f.replace('_', ' ')}."}
                                for f, t in slot.fields.items()}
        schema["required"] = list(slot.fields)
    if optional and slot.type == "boolean":
        schema["default"] = False
    return schema


def _describe(leaf: Leaf, style: str, keys: list[str], required: list[str]) -> str:
    if style == "detailed":
        need = f" Required inputs: {', '.join(required)}." if required else ""
        return f"{leaf.desc}{need} Optional inputs narrow the result; omitted ones use service defaults."
    if style == "imperative":
        return "Use this to " + leaf.desc[0].lower() + leaf.desc[1:]
    if style == "docstring":
        args = "; ".join(keys) if keys else "none"
        return f"{leaf.desc}\n\nArgs: {args}."
    return leaf.desc


def make_api(rng: Random, leaf: Leaf | None = None, constraints: Constraints | None = None) -> ApiSpec:
    """One synthesized API: a context-tree leaf under a constraint-tree path."""
    leaf = leaf or rng.choice(LEAVES)
    c = constraints or draw_constraints(rng)
    req = [p for p in leaf.params if p.req]
    opt = [p for p in leaf.params if not p.req]
    rng.shuffle(opt)
    opt.sort(key=lambda p: values.SLOTS[p.slot].type not in _FOCUS_TYPES[c.type_focus])
    count = c.param_count if (c.param_count != "zero" or leaf.zero_ok) else "few"
    if count == "zero":
        chosen: list[Param] = []
    elif count == "few" and len(req) <= 3:
        chosen = req + opt[:max(0, rng.randint(max(1, len(req)), 3) - len(req))]
    else:
        chosen = req + opt[:max(0, rng.randint(4, 6) - len(req))]
    chosen.sort(key=leaf.params.index)
    pnaming = "camelCase" if c.naming == "camelCase" else "snake_case"
    specs, props, required = [], {}, []
    for p in chosen:
        slot = values.SLOTS[p.slot]
        key = fmt_name(p.words, pnaming)
        schema = _schema_for(p, slot, c.type_focus, not p.req)
        props[key] = schema
        if p.req:
            required.append(key)
        specs.append(ParamSpec(key, p.words, schema, p.req, slot.gen, p.phrase))
    doc = {"name": fmt_name(leaf.words, c.naming, _prefix(leaf)),
           "description": _describe(leaf, c.description, list(props), required),
           "parameters": {"type": "dict", "properties": props, "required": required}}
    return ApiSpec(doc, leaf.intents, specs, leaf.key)


# ------------------------------------------------------------------------ specs for any doc

def match_leaf(name: str) -> Leaf | None:
    key = norm("".join(words_of(name)))
    for leaf in LEAVES:
        if norm(leaf.words) == key:
            return leaf
    return None


_STRING_HINTS = [
    (("city", "location", "destination", "origin", "place", "town"), values.pick(values.CITIES)),
    (("country", "nation"), values.pick(values.COUNTRIES)),
    (("date", "day", "birthday"), values.date), (("time", "hour"), values.clock), (("email", "mail"), values.email),
    (("phone", "mobile"), values.phone), (("currency",), values.pick(values.CURRENCIES)),
    (("language", "lang", "locale"), values.pick(values.LANGUAGES)),
    (("name", "user", "author", "person", "owner", "contact"), values.person),
    (("id", "code", "number", "key", "token", "sku"), values.code("ID")),
    (("symbol", "ticker"), values.pick(values.TICKERS)), (("genre",), values.pick(values.GENRES)),
    (("cuisine",), values.pick(values.CUISINES)),
    (("title", "song", "movie", "book", "album"), values.pick(values.TITLES)),
    (("message", "text", "content", "body", "note", "comment"), values.pick(values.NOTES)),
]


def _string_gen(words: list[str]) -> Callable[[Random], Any]:
    for hints, gen in _STRING_HINTS:
        if any(w in hints for w in words):
            return gen
    return values.pick(values.TOPICS)


def _type_of(schema: dict) -> str:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if isinstance(x, str) and x.lower() not in ("null", "none")), "any")
    return str(t or "any").lower()


def infer_gen(key: str, schema: Any, depth: int = 0) -> Callable[[Random], Any]:
    """A value generator for a parameter known only from its name and schema."""
    schema = schema if isinstance(schema, dict) else {}
    words = words_of(key)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return values.pick(enum)
    t = _type_of(schema)
    if t in ("integer", "int", "long"):
        if "year" in words:
            return values.ints(1995, 2024)
        if "age" in words:
            return values.ints(18, 80)
        small = {"limit", "count", "num", "number", "max", "min", "size", "page", "top", "n", "quantity"}
        return values.ints(2, 20) if small & set(words) else values.ints(2, 100)
    if t in ("float", "number", "double"):
        if {"amount", "price", "cost", "budget", "salary", "balance", "total"} & set(words):
            return values.money
        if {"lat", "latitude"} & set(words):
            return values.decimal(-60, 60, 4)
        if {"lon", "lng", "longitude"} & set(words):
            return values.decimal(-170, 170, 4)
        return values.decimal(1, 100, 2) if not {"rate", "percent", "ratio"} & set(words) else values.decimal(0.5, 12)
    if t in ("boolean", "bool"):
        return lambda rng: rng.random() < 0.5
    if t in ("array", "list", "tuple") and depth < 4:
        item = infer_gen(words[-1] if words else "item", schema.get("items") or {"type": "string"}, depth + 1)

        def gen_list(rng: Random) -> list:
            out = []
            for _ in range(8):
                v = item(rng)
                if v not in out:
                    out.append(v)
                if len(out) == 2:
                    break
            return out
        return gen_list
    if t in ("dict", "object") and depth < 4:
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        req = [k for k in schema.get("required") or [] if k in props] or list(props)[:3]
        gens = {k: infer_gen(k, props[k], depth + 1) for k in req}
        return lambda rng: {k: g(rng) for k, g in gens.items()}
    return _string_gen(words)


def _intents_from(doc: dict) -> tuple[str, ...]:
    desc = str(doc.get("description") or "").strip().split("\n")[0]
    first = re.split(r"(?<=[.!?])\s", desc)[0].rstrip(".!? ")
    words = first.split()
    if words and words[0].isalpha() and words[0][0].isupper() and len(words) > 1:
        verb = words[0].lower()
        if verb.endswith("ies"):
            verb = verb[:-3] + "y"
        elif verb.endswith(("ses", "shes", "ches", "xes")):
            verb = verb[:-2]
        elif verb.endswith("s") and not verb.endswith("ss"):
            verb = verb[:-1]
        return (" ".join([verb, *words[1:]])[:160],)
    return (f"use {doc.get('name', 'the tool')}",)


def spec_from_doc(doc: dict, leaf_key: str | None = None) -> ApiSpec:
    """An ApiSpec for any BFCL-shaped doc (catalogue leaves recognised by name)."""
    leaf = BY_KEY.get(leaf_key or "") or match_leaf(str(doc.get("name", "")))
    params = doc.get("parameters") or {}
    props = params.get("properties") if isinstance(params.get("properties"), dict) else {}
    required = set(params.get("required") or [])
    by_norm = {norm(p.words): p for p in (leaf.params if leaf else ())}
    specs = []
    for key, schema in props.items():
        p = by_norm.get(norm(key))
        words = " ".join(words_of(key)) or key
        if p is not None:
            specs.append(ParamSpec(key, p.words, schema, key in required, values.SLOTS[p.slot].gen, p.phrase))
        else:
            specs.append(ParamSpec(key, words, schema, key in required, infer_gen(key, schema), None))
    return ApiSpec(doc, leaf.intents if leaf else _intents_from(doc), specs, leaf.key if leaf else None)
