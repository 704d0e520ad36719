"""The netdsl grammar, shipped as package data so the installed wheel carries it."""

from pathlib import Path

GRAMMAR_PATH = Path(__file__).with_name("netdsl.lark")
