"""RatArray (exact weight algebra) against plain Fraction arithmetic, including int64-overflow fallbacks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lsrl.ir.coeffs import Coeffs, obj_array
from lsrl.ir.rational import RatArray, int_dtype

# small rationals, huge ones (beyond int64 once scaled), and floats (exact dyadic rationals)
scalars = st.one_of(
    st.fractions(min_value=-50, max_value=50, max_denominator=12),
    st.integers(-(2**70), 2**70).map(Fraction),
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True),
)


def matrices(rows, cols):
    return st.lists(scalars, min_size=rows * cols, max_size=rows * cols).map(
        lambda v: obj_array(v).reshape(rows, cols) if v else np.empty((rows, cols), dtype=object))


def exact(a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(v) for v in a.reshape(-1)]
    return out


def same(r: RatArray, oracle: np.ndarray) -> None:
    oracle = exact(np.asarray(oracle, dtype=object).reshape(r.shape))
    assert r.to_fractions().tolist() == oracle.tolist()
    assert r.to_float().reshape(-1).tolist() == [float(v) for v in oracle.reshape(-1)]


dims = st.integers(0, 4)


@settings(max_examples=200, deadline=None)
@given(st.tuples(dims, dims, dims).flatmap(lambda s: st.tuples(matrices(s[0], s[1]), matrices(s[1], s[2]))))
def test_matmul_is_the_exact_product(ab):
    a, b = ab
    product = exact(a) @ exact(b) if a.shape[1] else np.full((a.shape[0], b.shape[1]), Fraction(0), dtype=object)
    same(RatArray.of(a) @ RatArray.of(b), product)


@settings(max_examples=200, deadline=None)
@given(st.tuples(dims, dims).flatmap(lambda s: st.tuples(matrices(*s), matrices(*s))))
def test_add_neg_concat_transpose(ab):
    a, b = ab
    ra, rb = RatArray.of(a), RatArray.of(b)
    same(ra + rb, exact(a) + exact(b))
    same(-ra, -exact(a))
    same(ra.T, exact(a).T)
    same(RatArray.concat([ra, rb], axis=0), np.concatenate([exact(a), exact(b)], axis=0))
    same(RatArray.concat([ra, rb], axis=1), np.concatenate([exact(a), exact(b)], axis=1))


def test_float_conversion_rounds_once():
    third = RatArray.of(obj_array([Fraction(1, 3), Fraction(-2, 3), Fraction(10**30 + 1, 3)]))
    assert third.to_float().tolist() == [1 / 3, -2 / 3, float(Fraction(10**30 + 1, 3))]
    # the sum 1/3 + 1/3 + 1/3 is exactly 1 here, where float arithmetic would round at each step
    ones = RatArray.of(np.ones((1, 3), dtype=np.int64))
    assert (ones @ RatArray.of(obj_array([[Fraction(1, 3)]] * 3))).to_float().tolist() == [[1.0]]


def test_results_are_reduced_and_stay_int64_when_small():
    r = RatArray.of(obj_array([Fraction(1, 2), Fraction(3, 2)])) + RatArray.of(obj_array([Fraction(1, 2)] * 2))
    assert r.den == 1 and r.num.dtype == np.int64 and r.num.tolist() == [1, 2]
    big = RatArray.of(obj_array([2**40])) @ RatArray.of(obj_array([[2**40]]).reshape(1, 1))
    assert big.num.dtype == object and big.to_fractions().tolist() == [Fraction(2**80)]


def test_coeffs_matmul_keeps_floats_inexact_and_rationals_exact():
    exact_m = Coeffs([[Fraction(1, 3)] * 4] * 4)
    assert (exact_m @ exact_m).exact and (exact_m @ exact_m).data[0, 0] == Fraction(4, 9)
    with_float = Coeffs([[0.5] + [Fraction(1, 3)] * 3] * 4)
    assert not (with_float @ exact_m).exact


exact_scalars = st.one_of(st.fractions(min_value=-50, max_value=50, max_denominator=12),
                          st.integers(-(2**70), 2**70).map(Fraction))


def exact_matrices(rows, cols):
    return st.lists(exact_scalars, min_size=rows * cols, max_size=rows * cols).map(
        lambda v: obj_array(v).reshape(rows, cols) if v else np.empty((rows, cols), dtype=object))


@settings(max_examples=200, deadline=None)
@given(st.tuples(dims, dims, dims).flatmap(lambda s: st.tuples(exact_matrices(s[0], s[1]),
                                                               exact_matrices(s[1], s[2]))),
       st.booleans(), st.booleans())
def test_coeffs_matmul_is_the_exact_product_on_every_path(ab, vec_a, vec_b):
    """Identity shortcuts, the few-products path, integer and RatArray paths all give numpy's product."""
    a, b = ab
    if vec_a and a.shape[0]:
        a = a[0]
    if vec_b and b.shape[1] and not (a.ndim == 1):
        b = b[:, 0]
    product = np.asarray(a @ b, dtype=object) if a.shape[-1] else np.zeros((a @ b).shape, dtype=object)
    got = Coeffs(a) @ Coeffs(b)
    assert got.shape == product.shape
    assert [Fraction(v) for v in got.data.reshape(-1)] == [Fraction(v) for v in product.reshape(-1)]


@settings(max_examples=100, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
    lambda s: st.tuples(st.just(s), st.dictionaries(st.tuples(st.integers(0, s[0] - 1), st.integers(0, s[1] - 1)),
                                                    scalars, max_size=6))))
def test_coeffs_from_entries_is_the_dense_array(case):
    shape, entries = case
    dense = np.zeros(shape, dtype=object)
    for k, v in entries.items():
        dense[k] = v
    c, ref = Coeffs.from_entries(shape, entries), Coeffs(dense)
    assert c.shape == ref.shape and c.exact == ref.exact and c.is_zero == ref.is_zero
    assert c.f64.tolist() == ref.f64.tolist()
    assert [Fraction(v) for v in c.data.reshape(-1)] == [Fraction(v) for v in ref.data.reshape(-1)]
    same(c.rat, dense)


@settings(max_examples=50, deadline=None)
@given(st.tuples(dims, dims).flatmap(lambda s: matrices(*s)))
def test_products_with_eye_are_the_other_factor(a):
    ra = RatArray.of(a)
    same(RatArray.eye(a.shape[0]) @ ra, exact(a))
    same(ra @ RatArray.eye(a.shape[1]), exact(a))
    same(RatArray.eye(3) @ RatArray.of(np.arange(3)), np.arange(3))


@given(st.integers(0, 3).flatmap(lambda n: st.tuples(matrices(n, 2), st.integers(1, 7))))
def test_equals_compares_values_across_denominators(case):
    a, k = case
    r = RatArray.of(a)
    scaled = RatArray(r.num.astype(object) * k, r.den * k)  # the same values over a k-times larger denominator
    assert r.equals(scaled) and scaled.equals(r)
    if r.num.size:
        bumped = exact(a)
        bumped.reshape(-1)[0] += Fraction(1, 3)
        assert not r.equals(RatArray.of(bumped))
    assert not r.equals(RatArray.zeros(r.shape[0] + 1, 2))


def test_int_dtype_never_lets_numpy_pick_a_lossy_type():
    assert int_dtype([]) is np.int64 and int_dtype([3, -(2**61)]) is np.int64
    for big in ([2**63, -1], [-(2**63) - 1, 1], [2**62]):  # np.array would make the first float64 (lossy)
        assert int_dtype(big) is object
        assert np.array(big, dtype=int_dtype(big)).tolist() == big


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([3, 26, 40, 61]), density=st.sampled_from([0.005, 0.02]))
def test_products_of_mostly_zero_matrices_are_exact(seed, bits, density):
    """Large mostly-zero integer products go over the pairs of nonzeros that meet (float, int64 or Python-int
    accumulation by the size of their partial sums); the result is the exact product on every path."""
    rng = np.random.default_rng(seed)
    a, b = (np.where(rng.random(s) < density, rng.integers(-(2**bits), 2**bits, s), 0) for s in [(70, 80), (80, 90)])
    want = a.astype(object) @ b.astype(object)
    got = RatArray(a) @ RatArray(b)
    assert got.den == 1 and (got.num.astype(object) == want).all()
    assert Coeffs.from_rat(RatArray(a, 3)) @ Coeffs.from_rat(RatArray(b, 5)) == Coeffs(obj_array(
        [[Fraction(int(v), 15) for v in row] for row in want]))


def test_floats_convert_to_their_exact_rationals():
    vals = [0.1, -2.5, 2.0**-1074, 2.0**1000, -3.0, 1e-300, 7.0, Fraction(1, 3), 5]
    r = RatArray.of(np.array(vals, dtype=object))
    assert [Fraction(int(n), r.den) for n in r.num.tolist()] == [Fraction(v) for v in vals]


@settings(max_examples=50, deadline=None)
@given(nums=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=20), k=st.integers(54, 1100))
def test_float_conversion_over_a_power_of_two_rounds_once(nums, k):
    """Over a power-of-two denominator (the tanh scales) the entries convert by one rounding, as Python's
    int / int does, subnormal results included."""
    r = RatArray(np.array(nums, dtype=np.int64), 2**k)
    assert r.to_float().tolist() == [n / 2**k for n in nums]
    wide = RatArray(np.array([n * 2**70 + 1 for n in nums], dtype=object), 2**(k + 70))  # Python-int numerators
    assert wide.to_float().tolist() == [(n * 2**70 + 1) / 2**(k + 70) for n in nums]


def test_float_conversion_past_float64s_range_is_infinite():
    r = RatArray(np.array([10**400, -(10**400), 1], dtype=object), 3)
    assert r.to_float().tolist() == [float("inf"), float("-inf"), 1 / 3]


def _typed(c: Coeffs) -> list:
    """Entries with their kind: a float entry (inexact constant) is not the same as an equal exact one."""
    return [(type(v) is float, Fraction(v)) for v in c.data.reshape(-1)]


def _oracle(a: np.ndarray, b: np.ndarray) -> list:
    """a @ b per the Coeffs rule: an entry with a float in its row of a or column of b is its exact sum rounded
    once to float64, any other entry the exact sum."""
    out = []
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            terms = [(a[i, t], b[t, j]) for t in range(a.shape[1])]
            total = sum((Fraction(x) * Fraction(y) for x, y in terms), Fraction(0))
            inexact = a.shape[1] > 0 and (any(type(v) is float for v in a[i]) or any(type(v) is float for v in b[:, j]))
            out.append((inexact, Fraction(float(total)) if inexact else total))
    return out


@settings(max_examples=150, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(0, 4), st.integers(1, 4)).flatmap(
    lambda s: st.tuples(matrices(s[0], s[1]), matrices(s[1], s[2]))))
def test_inexact_coeffs_algebra_rounds_once_and_keeps_floats_marked(ab):
    """Coeffs with float entries hold their exact values and a mask of the floats: products (past the few-products
    path, which is plain Python arithmetic) round each inexact entry once from its exact sum; sums likewise;
    rearrangements move values and marks together; from data and from (values, mask) are one value."""
    from lsrl.passes import matrices as mx

    a, b = ab
    A, B = Coeffs(a), Coeffs(b)
    if a.shape[0] * a.shape[1] * b.shape[1] > 8:
        assert _typed(A @ B) == _oracle(a, b)
    doubled = Coeffs(a) + Coeffs(a)
    assert _typed(doubled) == [(type(v) is float, Fraction(float(2 * Fraction(v))) if type(v) is float
                                else 2 * v) for v in a.reshape(-1)]
    again = Coeffs.from_rat(A.rat, A.floats)
    assert again == A and hash(again) == hash(A) and _typed(again) == _typed(A)
    assert _typed(-A) == [(t, -v) for t, v in _typed(A)]
    assert _typed(A.T) == _typed(Coeffs(a.T.copy()))
    assert _typed(mx.hstack([A, A], a.shape[0])) == _typed(Coeffs(np.concatenate([a, a], axis=1)))
    assert _typed(mx.rows(A, [a.shape[0] - 1, 0])) == _typed(Coeffs(a[[a.shape[0] - 1, 0]]))
    assert _typed(mx.pad_rows(A, 1, a.shape[0] + 2)) == _typed(Coeffs(np.concatenate(
        [obj_array([[0] * a.shape[1]]), a, obj_array([[0] * a.shape[1]])]).reshape(a.shape[0] + 2, a.shape[1])))
    if a.shape[1]:
        assert _typed(Coeffs.diag(a[0])) == _typed(Coeffs(np.diag(a[0])))
        # columns: column j lands in column idx[j], repeats add up (a float among them: one rounding)
        idx = [(3 * j) % (a.shape[1] + 1) for j in range(a.shape[1])] + [0]
        wide = np.concatenate([a, a[:, :1]], axis=1)
        want = []
        for i in range(a.shape[0]):
            for k in range(a.shape[1] + 1):
                parts = [wide[i, j] for j in range(len(idx)) if idx[j] == k]
                total = sum((Fraction(v) for v in parts), Fraction(0))
                inexact = any(type(v) is float for v in parts)
                want.append((inexact, Fraction(float(total)) if inexact else total))
        assert _typed(mx.columns(Coeffs(wide), idx, a.shape[1] + 1)) == want
