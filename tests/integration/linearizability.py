"""A linearizability checker for single-key registers (etcd v2 keys), written for the
cluster fault tests.

Model: one key holds either nothing (None) or a string. Operations, as the v2 API gives
them:

  read    GET ?quorum=true                 out: the value, or None for 404 (key not found)
  write   PUT value=v                      out: True (any 2xx)
  cas     PUT prevValue=p value=v          out: True (2xx) or False (101 compare failed,
                                                 or 100 key not found: the key was absent)
  delete  DELETE                           out: True (2xx) or False (100 key not found)

An operation whose outcome is unknown -- the client timed out, the connection broke, the
member answered 5xx "request timed out" / "Raft Internal Error" -- may or may not have
taken effect. It is recorded with complete=None and out=None and treated as completing
at +infinity: it may be linearized at any point after its invocation, or never. An
ambiguous read has no effect and says nothing, so it is dropped.

The search is Wing & Gong's, with Lowe's memoization (the pair (set of linearized
operations as a bitmask, model state) is explored once): walk the time-ordered list of
call and return events; at a call, try to linearize that operation now (the model must
accept it); at a return, the operation returning must already have been linearized, so
backtrack. A history is linearizable when every operation that completed has been
linearized. Linearizability is local (Herlihy & Wing, section 3.3): checking each key on
its own is as strong as checking them together, so histories are split by key.

The search is bounded: past max_steps it raises CheckerGaveUp, never reporting success.
"""
import math

CALL, RETURN = 0, 1
KINDS = ("read", "write", "cas", "delete")


class CheckerGaveUp(Exception):
    """The search exceeded its step bound: the history is neither passed nor failed."""


class Op:
    """One client operation on one key.

    kind: 'read' | 'write' | 'cas' | 'delete'; value: the value written (write, cas);
    prev: the value compared (cas); out: the observed outcome (see the module docstring),
    None when ambiguous; invoke, complete: time.monotonic() before sending and after the
    answer; complete=None for an ambiguous operation; client: who issued it (reports)."""

    __slots__ = ("key", "kind", "value", "prev", "out", "invoke", "complete", "client",
                 "note")

    def __init__(self, key, kind, invoke, complete, out=None, value=None, prev=None,
                 client=None, note=""):
        if kind not in KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        if kind in ("write", "cas") and value is None:
            raise ValueError(f"{kind} needs a value")
        if kind == "cas" and prev is None:
            raise ValueError("cas needs prev")
        if complete is not None:
            if complete < invoke:
                raise ValueError(f"operation completes ({complete}) before it is invoked "
                                 f"({invoke})")
            if kind == "read" and out is not None and not isinstance(out, str):
                raise ValueError(f"a read's outcome is a string or None, not {out!r}")
            if kind in ("write",) and out is not True:
                raise ValueError("a completed write has out=True (failed writes are "
                                 "ambiguous or not recorded)")
            if kind in ("cas", "delete") and out not in (True, False):
                raise ValueError(f"a completed {kind} has out=True or out=False")
        self.key, self.kind, self.value, self.prev, self.out = key, kind, value, prev, out
        self.invoke, self.complete, self.client, self.note = invoke, complete, client, note

    @property
    def ambiguous(self):
        return self.complete is None

    def __repr__(self):
        if self.kind == "read":
            what = f"read -> {self.out!r}" if not self.ambiguous else "read -> ?"
        elif self.kind == "write":
            what = f"write {self.value!r}"
        elif self.kind == "cas":
            what = f"cas {self.prev!r} -> {self.value!r}"
        else:
            what = "delete"
        if self.kind != "read":
            what += " : ?" if self.ambiguous else f" : {self.out}"
        end = "inf" if self.ambiguous else f"{self.complete:.6f}"
        who = f" c{self.client}" if self.client is not None else ""
        note = f" ({self.note})" if self.note else ""
        return f"[{self.invoke:.6f}, {end}]{who} {what}{note}"


def step(state, op):
    """The register model: (accepted, next state) of applying op in state."""
    k = op.kind
    if k == "read":
        return op.out == state, state
    if k == "write":
        return True, op.value
    if k == "cas":
        matches = state is not None and state == op.prev
        if op.ambiguous:
            return True, (op.value if matches else state)
        if op.out:
            return matches, op.value
        return not matches, state
    # delete
    if op.ambiguous:
        return True, None
    if op.out:
        return state is not None, None
    return state is None, state


class Result:
    """ok, plus for a failure a readable explanation (explain())."""

    def __init__(self, ok, ops, steps, best=None, stuck=None):
        self.ok, self.ops, self.steps = ok, ops, steps
        self.best = best or []  # the longest linearized prefix found (ops in order)
        self.stuck = stuck  # an op whose return came before it could be linearized

    def __bool__(self):
        return self.ok

    def explain(self):
        if self.ok:
            return f"linearizable ({len(self.ops)} operations, {self.steps} search steps)"
        lines = [f"NOT linearizable ({len(self.ops)} operations, {self.steps} search steps)",
                 f"longest linearizable prefix ({len(self.best)} operations):"]
        lines += [f"  {o!r}" for o in self.best[-20:]]
        if self.stuck is not None:
            lines.append(f"then no order could place: {self.stuck!r}")
        lines.append("history (by invocation time):")
        lines += [f"  {o!r}" for o in sorted(self.ops, key=lambda o: o.invoke)]
        return "\n".join(lines)


def check_register(ops, initial=None, max_steps=2_000_000):
    """Checks the operations of ONE key against the register model starting at initial.
    Returns a Result; raises CheckerGaveUp past max_steps."""
    ops = [o for o in ops if not (o.kind == "read" and o.ambiguous)]
    keys = {o.key for o in ops}
    if len(keys) > 1:
        raise ValueError(f"check_register takes one key's operations, got {sorted(keys)}")
    n = len(ops)
    if n == 0:
        return Result(True, ops, 0)
    events = []
    for i, o in enumerate(ops):
        events.append((o.invoke, CALL, i))
        events.append((math.inf if o.ambiguous else o.complete, RETURN, i))
    # at equal times calls come first: operations that touch are taken as concurrent
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    m = len(events)
    head = m  # sentinel
    nxt = list(range(1, m + 1)) + [0]
    prv = [m] + list(range(0, m - 1)) + [m - 1]
    call_pos, ret_pos = [0] * n, [0] * n
    for pos, (_, kind, i) in enumerate(events):
        if kind == CALL:
            call_pos[i] = pos
        else:
            ret_pos[i] = pos

    def unlink(p):
        nxt[prv[p]] = nxt[p]
        prv[nxt[p]] = prv[p]

    def relink(p):
        nxt[prv[p]] = p
        prv[nxt[p]] = p

    remaining = sum(1 for o in ops if not o.ambiguous)
    state = initial
    linearized = 0
    cache = set()
    stack = []  # (op index, state before it)
    best, stuck = [], None
    entry = nxt[head]
    steps = 0
    while remaining > 0:
        steps += 1
        if steps > max_steps:
            raise CheckerGaveUp(f"gave up after {max_steps} search steps on {n} operations "
                                f"of key {ops[0].key!r} (deepest prefix: {len(best)})")
        if entry == head:  # cannot happen: a completed op's return is still listed
            raise AssertionError("checker walked off the event list")
        _, kind, i = events[entry]
        if kind == CALL:
            ok, new_state = step(state, ops[i])
            if ok:
                bit = 1 << i
                memo = (linearized | bit, new_state)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((i, state))
                    state, linearized = new_state, linearized | bit
                    unlink(call_pos[i])
                    unlink(ret_pos[i])
                    if not ops[i].ambiguous:
                        remaining -= 1
                    if len(stack) > len(best):
                        best = [ops[j] for j, _ in stack]
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            if not stack:
                return Result(False, ops, steps, best, stuck or ops[i])
            if len(stack) == len(best):
                stuck = ops[i]
            j, state = stack.pop()
            linearized &= ~(1 << j)
            relink(ret_pos[j])
            relink(call_pos[j])
            if not ops[j].ambiguous:
                remaining += 1
            entry = nxt[call_pos[j]]
    return Result(True, ops, steps)


def check_history(ops, initial=None, max_steps=2_000_000):
    """Splits a multi-key history by key and checks each. Returns {key: Result}."""
    by_key = {}
    for o in ops:
        by_key.setdefault(o.key, []).append(o)
    return {k: check_register(v, initial, max_steps) for k, v in sorted(by_key.items())}
