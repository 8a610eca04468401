"""The semantic screen's arithmetic (engine/similarity.py): nearest eval / other-owner cosines, shares, chunking."""
import numpy as np
import pytest

from valuation.engine.similarity import ScreenConfig, config_from_dict, config_to_dict, pair_vectors, screen


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_identical_vectors_are_flagged_and_orthogonal_ones_are_not():
    eval_vectors = np.eye(4)[:2]  # e0, e1
    pool = np.stack([np.eye(4)[0], np.eye(4)[2], np.eye(4)[3], np.eye(4)[3]])
    owners = np.array([7, 7, 8, 9])  # owner 7: one copy of e0 and one orthogonal pair; 8 and 9 hold the same pair
    result = screen(pool, owners, eval_vectors, ScreenConfig(pair_threshold=0.9, share_threshold=0.4))
    by = {o.owner: o for o in result.owners}
    assert list(by) == [7, 8, 9]
    assert by[7].n_eval == 1 and by[7].share_eval == 0.5 and by[7].n_owner == 0 and by[7].flagged
    assert result.eval_nearest[0] == 0 and result.eval_similarity[0] == pytest.approx(1.0)
    assert result.eval_similarity[1] == pytest.approx(0.0)
    assert by[8].n_eval == 0 and by[8].n_owner == 1 and by[8].matched_owners == {9: 1} and by[8].flagged
    assert by[9].matched_owners == {8: 1} and by[9].max_owner == pytest.approx(1.0)


def test_an_owners_own_duplicates_do_not_count_as_another_owner():
    pool = np.stack([np.eye(3)[2]] * 3)
    result = screen(pool, np.array([1, 1, 1]), np.eye(3)[:1], ScreenConfig())
    (only,) = result.owners
    assert only.n_owner == 0 and only.matched_owners == {} and not only.flagged and only.max_owner == -1.0
    assert (result.owner_nearest == -1).all()


def test_the_share_threshold_is_strict():
    pool = np.stack([np.eye(3)[0]] + [np.eye(3)[2]] * 3)
    result = screen(pool, np.zeros(4, dtype=int), np.eye(3)[:1], ScreenConfig(share_threshold=0.25))
    assert result.owners[0].share_eval == 0.25 and not result.owners[0].flagged


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(0)
    eval_vectors = unit(rng.normal(size=(37, 16)))
    pool = unit(np.concatenate([eval_vectors[:10] + 0.05 * rng.normal(size=(10, 16)), rng.normal(size=(90, 16))]))
    owners = rng.integers(0, 5, size=100)
    pool[50] = pool[60]  # an exact tie across owners, maybe across chunks
    whole = screen(pool, owners, eval_vectors, ScreenConfig(chunk=10_000))
    for chunk in (1, 7, 32):
        part = screen(pool, owners, eval_vectors, ScreenConfig(chunk=chunk))
        np.testing.assert_allclose(part.eval_similarity, whole.eval_similarity, rtol=0, atol=1e-12)
        np.testing.assert_allclose(part.owner_similarity, whole.owner_similarity, rtol=0, atol=1e-12)
        assert (part.eval_nearest == whole.eval_nearest).all() and (part.owner_nearest == whole.owner_nearest).all()
        for a, b in zip(part.owners, whole.owners, strict=True):  # BLAS block sizes may move the last bit only
            assert (a.owner, a.n_pairs, a.n_eval, a.n_owner, a.matched_owners, a.flagged) == (
                b.owner, b.n_pairs, b.n_eval, b.n_owner, b.matched_owners, b.flagged)
            assert a.max_eval == pytest.approx(b.max_eval, abs=1e-12)
    assert sum(o.n_eval for o in whole.owners) >= 10  # the ten noisy copies are found


def test_pair_vectors_centre_on_the_eval_set_and_keep_which_response_was_chosen():
    rng = np.random.default_rng(1)
    common = 50 * np.ones(8)  # the shared component of mean-pooled states: uncentred, everything looks alike
    ec, er = common + rng.normal(size=(20, 8)), common + rng.normal(size=(20, 8))
    c, r = common + rng.normal(size=(5, 8)), common + rng.normal(size=(5, 8))
    v = pair_vectors(np.concatenate([c, ec[:1]]), np.concatenate([r, er[:1]]), eval_chosen=ec, eval_rejected=er)
    e = pair_vectors(ec, er, eval_chosen=ec, eval_rejected=er)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    assert v[-1] @ e[0] == pytest.approx(1.0)  # a copy
    assert np.abs(v[:5] @ e.T).max() < 0.9  # unrelated pairs are not near once centred
    swapped = pair_vectors(er[:1], ec[:1], eval_chosen=ec, eval_rejected=er)
    assert swapped[0] @ e[0] < 0.9


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="pair_threshold"):
        ScreenConfig(pair_threshold=1.5)
    with pytest.raises(ValueError, match="share_threshold"):
        ScreenConfig(share_threshold=1.0)
    with pytest.raises(ValueError, match="representation"):
        ScreenConfig(representation="cosine")
    with pytest.raises(ValueError, match="chunk"):
        ScreenConfig(chunk=0)
    with pytest.raises(ValueError, match="eval"):
        screen(np.eye(3), [0, 1, 2], np.zeros((0, 3)))
    with pytest.raises(ValueError, match="owner label"):
        screen(np.eye(3), [0, 1], np.eye(3))
    assert config_from_dict(config_to_dict(ScreenConfig(pair_threshold=0.8))) == ScreenConfig(pair_threshold=0.8)
