"""Shell completion: click's, plus the names defined by the files already typed.

    eval "$(_NETC_COMPLETE=bash_source netc)"      # in ~/.bashrc (zsh_source, fish_source)

`netc plan pods.netdsl --network <TAB>` offers the networks of pods.netdsl.
The files are only parsed, not compiled, so a file with mistakes elsewhere
still completes.  `names_from_inputs` is the hook for further kinds of
names: each is a function from the parsed documents to names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem

from compiler.ast import Document, Text, Word
from compiler.cli.common import STDIN, read_sources
from compiler.syntax import parse

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def names_from_inputs(pick: Callable[[list[Document]], Iterable[str]]) -> Completer:
    """A completer offering `pick(documents)` of the FILES given so far on the command line."""

    def complete(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
        files = [f for f in ctx.params.get("files") or () if f != STDIN]
        try:
            sources, _, _ = read_sources(files)
        except click.ClickException:
            return []
        documents = [d for d in (parse(s)[0] for s in sources) if d is not None]
        return [CompletionItem(name) for name in dict.fromkeys(pick(documents))
                if name.startswith(incomplete)]

    return complete


def _network_names(documents: list[Document]) -> Iterable[str]:
    for document in documents:
        for statement in document.statements:
            if statement.keyword == "network" and statement.values:
                value = statement.values[0]
                if isinstance(value, Word):
                    yield value.text
                elif isinstance(value, Text):
                    yield value.value


network_names = names_from_inputs(_network_names)
"""Completes `--network`: the networks the FILES define."""
