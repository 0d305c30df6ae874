import os
import warnings

import pytest
import torch

from lstmknn.engine.cache import CacheWarning, FoldCache, decode_entry, encode_entry

KEY = "ab" + "0" * 62
OTHER = "cd" + "1" * 62


def entry(value: float = 1.0) -> dict:
    return {"states": {5: {"w": torch.full((2, 3), value), "y_stats": torch.tensor([0.0, 1.0],
                                                                            dtype=torch.float64)}}}


def stored(cache: FoldCache, key: str = KEY):
    return cache.root / key[:2] / f"{key}.fold"


def assert_miss_with_warning(cache: FoldCache, match: str, key: str = KEY, **kw) -> None:
    misses = cache.misses
    with pytest.warns(CacheWarning, match=match):
        assert cache.get(key, **kw) is None
    assert cache.misses == misses + 1


def assert_rebuilt(cache: FoldCache, key: str = KEY) -> None:
    """After a miss, a put overwrites the bad entry and the next get is a silent hit."""
    assert cache.put(key, entry(2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cache.get(key)
    assert torch.equal(got["states"][5]["w"], torch.full((2, 3), 2.0))


def test_an_entry_round_trips_exactly_and_counts_a_hit(tmp_path):
    cache = FoldCache(tmp_path)
    assert cache.get(KEY) is None and cache.misses == 1
    assert cache.put(KEY, entry(0.5))
    got = cache.get(KEY)
    assert cache.hits == 1 and got["key"] == KEY
    assert torch.equal(got["states"][5]["w"], entry(0.5)["states"][5]["w"])
    assert list(tmp_path.rglob("*.tmp")) == []


def test_a_flipped_byte_fails_the_checksum_and_the_entry_is_rebuilt(tmp_path):
    cache = FoldCache(tmp_path)
    cache.put(KEY, entry())
    blob = bytearray(stored(cache).read_bytes())
    blob[-10] ^= 0x01
    stored(cache).write_bytes(bytes(blob))
    assert_miss_with_warning(cache, "checksum mismatch")
    assert_rebuilt(cache)


def test_a_truncated_or_foreign_file_is_a_miss(tmp_path):
    cache = FoldCache(tmp_path)
    cache.put(KEY, entry())
    stored(cache).write_bytes(stored(cache).read_bytes()[:40])
    assert_miss_with_warning(cache, "not a fold cache file|checksum mismatch")
    stored(cache).write_bytes(b"not a torch file")
    assert_miss_with_warning(cache, "not a fold cache file")
    assert_rebuilt(cache)


def test_a_valid_entry_copied_under_another_key_is_a_miss(tmp_path):
    cache = FoldCache(tmp_path)
    cache.put(OTHER, entry())
    stored(cache).parent.mkdir(parents=True)
    stored(cache).write_bytes(stored(cache, OTHER).read_bytes())
    assert_miss_with_warning(cache, "stored under another key")
    assert_rebuilt(cache)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_with_a_valid_checksum_are_a_miss(tmp_path, bad):
    cache = FoldCache(tmp_path)
    planted = entry()
    planted["states"][5]["w"][1, 2] = bad
    stored(cache).parent.mkdir(parents=True)
    stored(cache).write_bytes(encode_entry(KEY, planted))
    assert decode_entry(stored(cache).read_bytes())["key"] == KEY  # the checksum is fine
    assert_miss_with_warning(cache, r"non-finite values at /states/5/w")
    assert_rebuilt(cache)


def test_non_finite_entries_are_never_stored(tmp_path):
    cache = FoldCache(tmp_path)
    assert not cache.put(KEY, entry(float("nan")))
    assert not stored(cache).exists()


def test_a_failed_caller_check_is_a_miss_naming_the_reason(tmp_path):
    cache = FoldCache(tmp_path)
    cache.put(KEY, entry())
    assert_miss_with_warning(cache, "wrong shapes", check=lambda e: "wrong shapes")
    assert cache.get(KEY, check=lambda e: None) is not None


def test_a_folder_where_an_entry_should_be_is_a_miss_and_is_replaced(tmp_path):
    cache = FoldCache(tmp_path)
    (stored(cache) / "inner").mkdir(parents=True)
    (stored(cache) / "inner" / "file").write_text("x")
    assert_miss_with_warning(cache, "not a regular file")
    assert_rebuilt(cache)
    assert stored(cache).is_file()


def test_a_symlinked_entry_is_not_followed(tmp_path):
    cache = FoldCache(tmp_path / "cache")
    outside = tmp_path / "outside.fold"
    outside.write_bytes(encode_entry(KEY, entry()))
    stored(cache).parent.mkdir(parents=True)
    stored(cache).symlink_to(outside)
    assert_miss_with_warning(cache, "not a regular file")
    assert_rebuilt(cache)
    assert not stored(cache).is_symlink() and decode_entry(outside.read_bytes())["key"] == KEY


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_entry_is_a_miss(tmp_path):
    cache = FoldCache(tmp_path)
    cache.put(KEY, entry())
    stored(cache).chmod(0)
    assert_miss_with_warning(cache, "PermissionError")


def test_a_cache_folder_that_cannot_be_created_warns_once_and_the_run_goes_on(tmp_path):
    (tmp_path / "file").write_text("in the way")
    cache = FoldCache(tmp_path / "file" / "cache")
    with pytest.warns(CacheWarning, match="cannot be written.*running without saving") as seen:
        assert not cache.put(KEY, entry())
        assert not cache.put(OTHER, entry())
        assert cache.get(KEY) is None
    assert len(seen) == 1 and not cache.writable


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_warns_once_and_still_serves_its_entries(tmp_path):
    cache = FoldCache(tmp_path)
    cache.put(KEY, entry())
    for d in (tmp_path, stored(cache).parent):
        d.chmod(0o555)
    try:
        ro = FoldCache(tmp_path)
        with pytest.warns(CacheWarning, match="cannot be written") as seen:
            assert not ro.put(OTHER, entry())
            assert not ro.put(OTHER, entry())
        assert len(seen) == 1
        assert ro.get(KEY) is not None
    finally:
        for d in (tmp_path, stored(cache).parent):
            d.chmod(0o755)
