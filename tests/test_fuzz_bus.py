"""Property tests of the bus command parser (core/busproto.py): whatever arrives on cmd/<verb> --
arbitrary bytes or text, invalid UTF-8, lone surrogates, deep nesting, huge numbers -- parse_command
gives a valid Command or raises BadPayload with a short printable reason, and command_envelope never
raises. Examples are bounded (max_examples, no deadline) so the file stays fast; inputs Hypothesis
once found are kept as @example regression cases."""
from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core import busproto as bp

REPLY_TO = bp.topic("c1", "ack", "con1")
FAST = settings(max_examples=200, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)

# command-shaped documents: the known keys with any values, sometimes an unknown key
commands = st.fixed_dictionaries(
    {"reply_to": st.one_of(st.just(REPLY_TO), st.text(max_size=300))},
    optional={"id": st.one_of(st.text(max_size=200), json_values), "sender": st.one_of(st.text(max_size=200), json_values),
              "args": st.one_of(st.dictionaries(st.sampled_from(["benchmark", "subset", "per_category", "iteration",
                                                                  "table", "run_id", "limit", "x"]), json_values,
                                                max_size=4), json_values),
              "schema": st.one_of(st.just(1), json_values), "ts": json_values, "extra": json_values})


def check(verb: str, raw) -> None:
    """The property: a valid Command within the bounds, or BadPayload with a bounded reason."""
    try:
        cmd, args = bp.parse_command(verb, raw, f"looptool/v1/c1/cmd/{verb}")
    except bp.BadPayload as e:
        reason = str(e)
        assert reason and len(reason) <= bp.MAX_REASON_CHARS and reason.isprintable(), reason
    else:
        assert verb in bp.VERBS
        assert bp.text_problem(cmd.id, bp.MAX_ID_CHARS) is None
        assert cmd.sender is None or bp.text_problem(cmd.sender, bp.MAX_SENDER_CHARS) is None
        assert bp.text_problem(cmd.reply_to, bp.MAX_TOPIC_CHARS) is None
        assert (args is None) == (verb in ("pause", "resume", "stop"))
        cmd.dump().decode("utf-8")  # what the core stores and acks can be written back out
    env = bp.command_envelope(raw)
    assert env.id is None or bp.text_problem(env.id, bp.MAX_ID_CHARS) is None
    assert env.reply_to is None or env.reply_to.startswith(bp.PREFIX + "/")


@FAST
@given(st.sampled_from(bp.VERBS), st.binary(max_size=2000))
@example("pause", b"\xff\xfe\x00")  # invalid UTF-8
@example("pause", b'{"id": "\xed\xa0\x80", "reply_to": "x"}')  # a UTF-8-encoded surrogate
@example("eval", b"[" * 5000)  # deeper than the JSON scanner's recursion limit
@example("stop", b"1" * 5000)  # an integer over Python's int-to-str digit limit
@example("history", b"\xef\xbb\xbf{}")  # a BOM
def test_arbitrary_bytes(verb, raw):
    check(verb, raw)


@FAST
@given(st.sampled_from(bp.VERBS), st.text(max_size=2000))
@example("pause", "\ud800")  # a lone surrogate as text, not even JSON
@example("pause", '"\\udfff"')
def test_arbitrary_text(verb, raw):
    check(verb, raw)


@FAST
@given(st.sampled_from(bp.VERBS + ("selfdestruct", "\ud800", "p" * 500)), commands)
@example("stop", {"id": "\ud800", "reply_to": REPLY_TO})  # must be rejected, never reach the audit table
@example("pause", {"id": "a", "reply_to": REPLY_TO, "schema": True})  # True == 1 in Python
@example("pause", {"id": "a", "reply_to": REPLY_TO, "ts": 1e400})  # Infinity
@example("eval", {"id": "a", "reply_to": REPLY_TO, "args": {"\ud800" * 50: 1}})  # a key echoed in the reason
@example("eval", {"id": "a", "reply_to": REPLY_TO, "args": {"per_category": 10 ** 4000}})
@example("history", {"id": "a", "reply_to": REPLY_TO, "args": {"run_id": "r\u2028"}})
def test_command_shaped_documents(verb, doc):
    raw = json.dumps(doc)  # ensure_ascii: surrogates travel as \\ud800 escapes, as any client may send them
    check(verb, raw)
    check(verb, raw.encode())


@FAST
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", "{\"a\":", "[{\"id\":"]))
def test_deep_nesting(depth, opener):
    check("eval", (opener * depth).encode())
    check("eval", json.dumps({"id": "a", "reply_to": REPLY_TO, "args": json.loads("[" * min(depth, 400) + "]" * min(depth, 400))}))


def test_an_over_limit_payload_is_refused_before_it_is_read():
    raw = json.dumps({"id": "a", "reply_to": REPLY_TO, "sender": "s" * bp.MAX_COMMAND_BYTES}).encode()
    check("pause", raw)
    assert bp.command_envelope(raw) == (None, None)
