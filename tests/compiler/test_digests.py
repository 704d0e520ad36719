"""compiler.digests: the built-in SHA-256 gives hashlib's digests, and falls back to it."""

from __future__ import annotations

import hashlib

import pytest

from compiler import digests

DATA = b"netc derives names from identities"


def test_the_chosen_sha256_gives_hashlibs_digest():
    assert digests.sha256(DATA).hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_without_a_built_in_module_hashlib_is_used():
    constructor = digests._constructor(("_no_such_sha", "hashlib"))
    assert constructor is hashlib.sha256


def test_with_no_module_at_all_the_import_fails_saying_which_were_tried():
    with pytest.raises(ImportError, match="_no_such_sha, _nor_this"):
        digests._constructor(("_no_such_sha", "_nor_this"))
