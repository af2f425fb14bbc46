"""The generated reference is complete: every verb and option of the argparse parsers, every key of the pydantic
schemas; and Concepts describes every estimator and strategy the code registers. Enumerated here independently
of ``docs/render_reference.py``."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from pydantic import BaseModel

import neuroadda.config as config
from neuroadda.cli.main import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def verbs(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out = {}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out[prefix + name] = sub
                out.update(verbs(sub, prefix + name + " "))
    return out


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        out.append(prefix + name)
        t = f.annotation
        if isinstance(t, type) and issubclass(t, BaseModel):
            out += keys(t, prefix + name + ".")
        for arg in typing.get_args(t):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += keys(arg, prefix + name + "[].")
    return out


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    return text[start:] if nxt < 0 else text[start:nxt]


def test_every_verb_and_option_is_in_the_cli_reference():
    page = (DOCS / "reference/cli.md").read_text()
    found = verbs(build_parser())
    assert {"demo", "datasets list", "select-source", "transfer-study", "run-task", "phylogeny"} <= set(found)
    for name, parser in found.items():
        level = "###" if " " in name else "##"
        heading = f"{level} `neuroadda {name}`"
        assert heading in page, f"verb '{name}' missing from docs/reference/cli.md"
        body = section(page, heading)
        for a in parser._actions:
            for flag in a.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in body, f"'{name} {flag}' missing from docs/reference/cli.md"
    assert "`--version`" in page


def test_every_config_key_is_in_the_config_reference():
    page = (DOCS / "reference/config.md").read_text()
    schemas = [config.PretrainConfig, config.AdaptConfig, config.DemoConfig, config.ExperimentConfig,
               config.TransferStudyConfig]
    for schema in schemas:
        body = section(page, f"## `{schema.__name__}`")
        for key in keys(schema):
            assert f"| `{key}` |" in body, f"{schema.__name__}: key '{key}' missing from docs/reference/config.md"
    assert "`train.max_steps`" in page and "`targets[].candidate_size`" in page and "`finetune.val_samples`" in page


def test_every_estimator_and_strategy_is_described():
    from neuroadda.active.strategies import STRATEGIES
    from neuroadda.selection.estimators import ESTIMATORS

    estimators = (DOCS / "concepts/estimators.md").read_text()
    strategies = (DOCS / "concepts/strategies.md").read_text()
    assert all(f"| `{name}`" in estimators for name in ESTIMATORS), set(ESTIMATORS)
    assert all(f"| `{name}`" in strategies for name in STRATEGIES), set(STRATEGIES)
