"""The register linearizability checker (linearizability.py) on hand-made histories:
linearizable ones pass, the classic violations fail, ambiguous operations may take effect
late or never, and the search gives up with an error (never a pass) past its bound.
Against a brute-force checker on random small histories it agrees every time."""
import itertools
import os
import random

import pytest

from linearizability import CheckerGaveUp, Op, check_history, check_register, step


def R(t0, t1, out, c=None):
    return Op("k", "read", t0, t1, out=out, client=c)


def W(t0, t1, v, c=None):
    return Op("k", "write", t0, t1, out=None if t1 is None else True, value=v, client=c)


def CAS(t0, t1, prev, v, out=None, c=None):
    return Op("k", "cas", t0, t1, out=out, value=v, prev=prev, client=c)


def D(t0, t1, out, c=None):
    return Op("k", "delete", t0, t1, out=out, client=c)


def ok(ops, initial=None):
    return check_register(ops, initial).ok


# --- linearizable histories pass


def test_empty_and_sequential_histories_are_linearizable():
    assert ok([])
    assert ok([R(0, 1, None), W(2, 3, "a"), R(4, 5, "a"), CAS(6, 7, "a", "b", True),
               CAS(8, 9, "a", "c", False), R(10, 11, "b"), D(12, 13, True), D(14, 15, False),
               R(16, 17, None)])


def test_read_concurrent_with_a_write_may_see_either_value():
    assert ok([W(0, 1, "a"), W(2, 6, "b"), R(3, 4, "a"), R(3, 5, "b")])
    # ...but once a read saw the new value, a later read may not go back
    assert not ok([W(0, 1, "a"), W(2, 10, "b"), R(3, 4, "b"), R(5, 6, "a")])


def test_overlapping_writes_may_take_effect_in_either_order():
    assert ok([W(0, 5, "a"), W(1, 4, "b"), R(6, 7, "a")])
    assert ok([W(0, 5, "a"), W(1, 4, "b"), R(6, 7, "b")])


def test_operations_touching_at_one_instant_count_as_concurrent():
    assert ok([W(0, 2, "a"), R(2, 3, None)])


def test_cas_on_an_absent_key_fails():
    assert ok([CAS(0, 1, "x", "y", False), R(2, 3, None)])
    assert not ok([CAS(0, 1, "x", "y", True)])


def test_initial_state_is_respected():
    assert ok([R(0, 1, "init")], initial="init")
    assert not ok([R(0, 1, None)], initial="init")


# --- the classic violations fail


def test_stale_read_after_a_completed_write_fails():
    r = check_register([W(0, 1, "a"), W(2, 3, "b"), R(4, 5, "a")])
    assert not r.ok
    text = r.explain()
    assert "NOT linearizable" in text and "read -> 'a'" in text


def test_read_of_a_value_never_written_fails():
    assert not ok([W(0, 1, "a"), R(2, 3, "zzz")])
    assert not ok([R(0, 1, "zzz")])


def test_read_of_a_value_before_its_write_was_invoked_fails():
    assert not ok([R(0, 1, "a"), W(2, 3, "a")])


def test_cas_succeeding_on_a_wrong_value_fails():
    assert not ok([W(0, 1, "a"), CAS(2, 3, "b", "c", True)])


def test_cas_failing_although_the_value_matched_fails():
    assert not ok([W(0, 1, "a"), CAS(2, 3, "a", "c", False)])


def test_two_concurrent_cas_from_one_value_cannot_both_succeed():
    assert not ok([W(0, 1, "a"), CAS(2, 5, "a", "b", True), CAS(3, 6, "a", "c", True)])
    # one succeeding and one failing is fine
    assert ok([W(0, 1, "a"), CAS(2, 5, "a", "b", True), CAS(3, 6, "a", "c", False),
               R(7, 8, "b")])


def test_lost_write_fails():
    # an acknowledged write that no later read reflects: the write "disappeared"
    assert not ok([W(0, 1, "a"), W(2, 3, "b"), R(4, 5, "b"), R(6, 7, "a")])


def test_delete_effects_are_checked():
    assert not ok([W(0, 1, "a"), D(2, 3, True), R(4, 5, "a")])
    assert not ok([D(0, 1, True)])  # nothing to delete
    assert not ok([W(0, 1, "a"), D(2, 3, False)])  # the key existed


# --- ambiguous operations: complete at +infinity, or never


def test_ambiguous_write_may_take_effect_late():
    # the timed-out write is seen long after the client gave up on it
    assert ok([W(0, None, "a"), R(5, 6, None), R(7, 8, "a"), R(9, 10, "a")])


def test_ambiguous_write_may_never_take_effect():
    assert ok([W(0, None, "a"), R(5, 6, None), R(7, 8, None)])


def test_ambiguous_write_cannot_take_effect_before_it_was_invoked():
    assert not ok([R(0, 1, "a"), W(2, None, "a")])


def test_ambiguous_write_takes_effect_once():
    # seen, then overwritten, then seen again: it cannot come back
    assert not ok([W(0, None, "a"), R(1, 2, "a"), W(3, 4, "b"), R(5, 6, "a")])


def test_ambiguous_cas_applies_only_when_it_matches():
    assert ok([W(0, 1, "a"), CAS(2, None, "a", "b"), R(3, 4, "b")])
    assert not ok([W(0, 1, "x"), CAS(2, None, "a", "b"), R(3, 4, "b")])


def test_ambiguous_read_is_ignored():
    assert ok([W(0, 1, "a"), Op("k", "read", 2, None), R(3, 4, "a")])


def test_many_ambiguous_writes_stay_tractable():
    ops = [W(0, 1, "v0")]
    t = 2
    for i in range(1, 40):
        ops.append(W(t, None, f"x{i}"))  # never seen
        ops.append(W(t + 1, t + 2, f"v{i}"))
        ops.append(R(t + 3, t + 4, f"v{i}"))
        t += 5
    r = check_register(ops)
    assert r.ok, r.explain()


# --- inputs and bounds


def test_the_search_gives_up_with_an_error_past_its_bound():
    ops = [W(0, 1, "a")] + [CAS(2 + i * 0.001, None, "a", f"b{i}") for i in range(14)] + \
          [R(100, 101, "nope")]
    with pytest.raises(CheckerGaveUp):
        check_register(ops, max_steps=500)


def test_bad_operations_are_refused():
    with pytest.raises(ValueError):
        Op("k", "increment", 0, 1)
    with pytest.raises(ValueError):
        Op("k", "write", 0, 1, out=True)  # no value
    with pytest.raises(ValueError):
        Op("k", "read", 2, 1, out="a")  # completes before invoked
    with pytest.raises(ValueError):
        Op("k", "cas", 0, 1, out="yes", value="b", prev="a")
    with pytest.raises(ValueError):
        check_register([Op("a", "read", 0, 1), Op("b", "read", 0, 1)])


def test_keys_are_checked_independently():
    a = [Op("a", "write", 0, 1, out=True, value="1"), Op("a", "read", 2, 3, out="1")]
    b = [Op("b", "write", 0, 1, out=True, value="1"), Op("b", "read", 2, 3, out="2")]
    res = check_history(a + b)
    assert res["a"].ok and not res["b"].ok


# --- agreement with brute force on random small histories


def brute_force(ops, initial=None):
    """Tries every subset of the ambiguous operations and every order of the chosen ones
    that respects real time (a before b when a completed before b was invoked)."""
    ops = [o for o in ops if not (o.kind == "read" and o.ambiguous)]
    done = [o for o in ops if not o.ambiguous]
    amb = [o for o in ops if o.ambiguous]
    for r in range(len(amb) + 1):
        for chosen in itertools.combinations(amb, r):
            sel = done + list(chosen)
            for perm in itertools.permutations(sel):
                good = True
                for x in range(len(perm)):
                    for y in range(x + 1, len(perm)):
                        b, a = perm[x], perm[y]  # a placed after b
                        if a.complete is not None and a.complete < b.invoke:
                            good = False
                            break
                    if not good:
                        break
                if not good:
                    continue
                state = initial
                for o in perm:
                    accepted, state = step(state, o)
                    if not accepted:
                        break
                else:
                    return True
    return False


def random_history(rng, n):
    values = ["a", "b", "c"]
    ops = []
    for c in range(n):
        t0 = rng.uniform(0, 10)
        t1 = None if rng.random() < 0.2 else t0 + rng.uniform(0.1, 4)
        kind = rng.choice(["read", "write", "cas", "cas", "delete"])
        if kind == "read":
            ops.append(Op("k", "read", t0, t1, out=rng.choice(values + [None]), client=c))
        elif kind == "write":
            ops.append(Op("k", "write", t0, t1, out=None if t1 is None else True,
                          value=rng.choice(values), client=c))
        elif kind == "cas":
            ops.append(Op("k", "cas", t0, t1, out=None if t1 is None else rng.random() < 0.5,
                          value=rng.choice(values), prev=rng.choice(values), client=c))
        else:
            ops.append(Op("k", "delete", t0, t1,
                          out=None if t1 is None else rng.random() < 0.5, client=c))
    return ops


def test_agrees_with_brute_force_on_random_histories():
    seed = int(os.environ.get("KETCH_SEED", "20261122"))
    print(f"seed {seed} (replay with KETCH_SEED={seed})")
    rng = random.Random(seed)
    verdicts = {True: 0, False: 0}
    for case in range(400):
        ops = random_history(rng, rng.randint(1, 6))
        want = brute_force(ops)
        got = check_register(ops).ok
        assert got == want, f"seed {seed} case {case}: checker {got}, brute force {want}\n" + \
            "\n".join(repr(o) for o in ops)
        verdicts[want] += 1
    # the random histories exercise both verdicts
    assert verdicts[True] > 40 and verdicts[False] > 40, verdicts
