"""runtime/cli/compile_cache.py: `netc apply` compiles a revision once; nothing stale is used."""

from __future__ import annotations

import os
import shutil

import pytest

from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from runtime.cli import compile_cache
from tests.support import ROOT

NETWORK = ROOT / "examples" / "cluster.netdsl"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of the test's own, and a count of the real compilations."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("NETC_CACHE_DIR", str(directory))
    compiled = []

    def counted(sources):
        compiled.append([source.name for source in sources])
        return compile_sources(sources)

    monkeypatch.setattr(compile_cache, "compile_sources", counted)
    return directory, compiled


def _sources(*texts: str) -> list[SourceFile]:
    return [SourceFile(f"file{n}.netdsl", text) for n, text in enumerate(texts)]


def test_the_same_sources_are_compiled_once_and_give_an_equal_compilation(cache):
    _, compiled = cache
    text = NETWORK.read_text()
    first = compile_cache.compile_cached(_sources(text))
    again = compile_cache.compile_cached(_sources(text))
    assert again == first and again.networks and again.clusters
    assert len(compiled) == 1


def test_warnings_come_back_with_the_cached_compilation(cache):
    _, compiled = cache
    sources = _sources(NETWORK.read_text(), "# nothing here\n")
    first = compile_cache.compile_cached(sources)
    assert [d.code for d in first.diagnostics] == ["W002"]
    assert compile_cache.compile_cached(sources).diagnostics == first.diagnostics
    assert len(compiled) == 1


def test_a_changed_source_is_compiled_again_and_replaces_the_entry(cache):
    directory, compiled = cache
    text = NETWORK.read_text()
    compile_cache.compile_cached(_sources(text))
    changed = compile_cache.compile_cached(_sources(text + "\n# a comment more\n"))
    assert len(compiled) == 2
    assert changed.networks
    assert len(list(directory.iterdir())) == 1


def test_a_changed_compiler_is_not_answered_from_the_cache(cache, tmp_path, monkeypatch):
    _, compiled = cache
    root = tmp_path / "netc"
    for package in compile_cache.COMPILER_PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(compile_cache, "package_root", lambda: str(root))
    sources = _sources(NETWORK.read_text())
    compile_cache.compile_cached(sources)
    grammar = next((root / "grammar").glob("*.lark"))
    grammar.write_text(grammar.read_text() + "\n")
    compile_cache.compile_cached(sources)
    assert len(compiled) == 2


def test_a_damaged_entry_is_compiled_over_without_an_error(cache):
    directory, compiled = cache
    sources = _sources(NETWORK.read_text())
    compile_cache.compile_cached(sources)
    (entry,) = directory.iterdir()
    entry.write_bytes(entry.read_bytes()[:200])
    assert compile_cache.compile_cached(sources).networks
    assert compile_cache.compile_cached(sources).networks
    assert len(compiled) == 2, "the damaged entry is replaced by a whole one"


def test_an_entry_others_may_write_is_never_loaded(cache):
    directory, compiled = cache
    sources = _sources(NETWORK.read_text())
    compile_cache.compile_cached(sources)
    os.chmod(directory, 0o777)
    compile_cache.compile_cached(sources)
    assert len(compiled) == 2


def test_compilations_with_errors_are_not_kept(cache):
    directory, compiled = cache
    sources = _sources("network broken {\n")
    assert not compile_cache.compile_cached(sources).ok
    assert not compile_cache.compile_cached(sources).ok
    assert len(compiled) == 2
    assert not directory.exists() or not list(directory.iterdir())


def test_an_empty_cache_directory_setting_turns_the_cache_off(cache, monkeypatch):
    directory, compiled = cache
    monkeypatch.setenv("NETC_CACHE_DIR", "")
    sources = _sources(NETWORK.read_text())
    compile_cache.compile_cached(sources)
    compile_cache.compile_cached(sources)
    assert len(compiled) == 2
    assert not directory.exists()


def test_the_default_directory_is_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("NETC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.cache_directory() == tmp_path / "netc"
