"""Shell completion: click's, plus the names defined by the files already typed.

    eval "$(_NETC_COMPLETE=bash_source netc)"      # in ~/.bashrc (zsh_source, fish_source)

`netc plan pods.netdsl --network <TAB>` offers the networks of pods.netdsl.
The files are only parsed, not compiled, so a file with mistakes elsewhere
still completes.  `names_from_inputs` is the hook for further kinds of
names: each is a function from the parsed documents to names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import click
from click.shell_completion import CompletionItem, split_arg_string

from compiler.ast import Document, Text, Word
from compiler.syntax import parse
from runtime.cli.common import STDIN, read_sources

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def names_from_inputs(pick: Callable[[list[Document]], Iterable[str]]) -> Completer:
    """A completer offering `pick(documents)` of the FILES given so far on the command line."""

    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        files = _typed_files(ctx)
        try:
            sources, _, _ = read_sources(files)
        except click.ClickException:
            return []
        documents = [d for d in (parse(s)[0] for s in sources) if d is not None]
        return [
            CompletionItem(name)
            for name in dict.fromkeys(pick(documents))
            if name.startswith(incomplete)
        ]

    return complete


def _typed_files(ctx: click.Context) -> list[str]:
    """The FILES typed so far.

    click stops parsing at an option still missing its value (`--network
    <TAB>`), before the arguments are assigned; then the files are the words
    the completion script handed over (`COMP_WORDS`, for every shell click
    supports) that name files.
    """
    files = ctx.params.get("files") or ()
    if not files:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        files = [word for word in words[2:] if Path(word).is_file()]
    return [f for f in files if f != STDIN]


def _network_names(documents: Sequence[Document]) -> Iterable[str]:
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
