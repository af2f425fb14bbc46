"""Reference blocks generated from the code: every CLI verb from the argparse parsers
(:func:`neuroadda.cli.main.build_parser`) and every config key from the pydantic schemas (:mod:`neuroadda.config`)."""

from __future__ import annotations

import argparse
import functools
import json
import types
import typing
from pathlib import Path

from render_results import table

# ------------------------------------------------------------------------------------------------------ CLI
USAGE_WIDTH = 100  # fixed, so the page does not depend on the terminal that rendered it


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """{verb: (parser, one-line help)} of ``parser``'s subcommands, nested ones as 'datasets list'."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (sub, helps.get(name) or "")
                out.update({f"{name} {k}": v for k, v in subcommands(sub).items()})
    return out


def verbs() -> dict[str, tuple[argparse.ArgumentParser, str]]:
    from neuroadda.cli.main import build_parser

    return subcommands(build_parser())


def _value(a: argparse.Action) -> str:
    if a.nargs == 0:
        return ""
    if a.choices:
        return "{" + ",".join(map(str, a.choices)) + "}"
    meta = a.metavar or a.dest.upper()
    meta = " ".join(meta) if isinstance(meta, tuple) else meta
    return {None: meta, "?": f"[{meta}]", "*": f"[{meta} ...]", "+": f"{meta} [...]"}.get(a.nargs, meta)


def _help(parser: argparse.ArgumentParser, a: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(a) if a.help else ""
    shown = a.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in (a.help or "")
    if a.required and (a.option_strings or a.nargs not in ("?", "*")):
        text = "**required.** " + text
    return text + (f" (default: `{a.default}`)" if shown and "default" not in text.lower() else "")


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def cli(root: Path, arg=None) -> str:
    """The command's own options, then one section per verb: its help, usage and a table of its options."""
    from neuroadda.cli.main import build_parser

    top = build_parser()
    top.formatter_class = functools.partial(argparse.HelpFormatter, width=USAGE_WIDTH)
    out = [top.description, "", "```text", top.format_usage().removeprefix("usage: ").strip(), "```", "",
           table(["option", "what it does"], [[", ".join(f"`{s}`" for s in a.option_strings), _help(top, a)]
                                              for a in top._actions if a.option_strings]), ""]
    for name, (parser, short) in subcommands(top).items():
        parser.formatter_class = functools.partial(argparse.HelpFormatter, width=USAGE_WIDTH)
        depth = "###" if " " in name else "##"
        out += [f"{depth} `neuroadda {name}`", "", short[:1].upper() + short[1:] + ("." if short else ""), ""]
        if parser.description and parser.description != short:
            out += [parser.description, ""]
        usage = parser.format_usage().removeprefix("usage: ").strip()
        out += ["```text", usage, "```", ""]
        rows = [[", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.metavar or a.dest}`",
                 f"`{_value(a)}`" if _value(a) else "", _help(parser, a)] for a in options(parser)]
        if rows:
            out += [table(["option", "value", "what it does"], rows), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------- config
SCHEMAS = {  # schema name -> the shipped files it reads
    "PretrainConfig": ["configs/pretrain.yaml", "configs/pretrain_sstem.yaml", "configs/pretrain_mouse.yaml"],
    "AdaptConfig": ["configs/adapt.yaml"], "DemoConfig": ["configs/demo.yaml"],
    "ExperimentConfig": ["configs/experiment.yaml"], "TransferStudyConfig": ["configs/transfer_study.yaml"]}


def _model(t):
    from pydantic import BaseModel

    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _type(t) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args)
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else _type(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if origin is typing.Annotated:
        return _type(args[0])
    if t is type(None):
        return "null"
    return getattr(t, "__name__", str(t)).replace("typing.", "")


def _constraints(field) -> str:
    parts = []
    for m in field.metadata:
        for k in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            if getattr(m, k, None) is not None:
                op = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤",
                      "pattern": "matches"}[k]
                parts.append(f"{op} `{getattr(m, k)}`")
    return ", ".join(parts)


def keys(schema, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, field, owning model) for every leaf and nested key of ``schema`` (lists of models as
    ``key[].sub``)."""
    out = []
    for name, f in schema.model_fields.items():
        key = prefix + name
        sub = _model(f.annotation)
        item = next((a for a in typing.get_args(f.annotation) if _model(a)), None)
        out.append((key, f, schema))
        if sub:
            out += keys(sub, key + ".")
        elif item is not None and typing.get_origin(f.annotation) is list:
            out += keys(item, key + "[].")
    return out


def _default(f) -> str:
    from pydantic_core import PydanticUndefined

    if f.default is PydanticUndefined and f.default_factory is None:
        return "**required**"
    value = f.default_factory() if f.default_factory is not None else f.default
    if _model(type(value)):
        return "(section)"
    return f"`{json.dumps(value, default=str)}`"


def config(root: Path, arg=None) -> str:
    """One table per schema: every dotted key with its type, default and description."""
    import neuroadda.config as c

    out = []
    for name, files in SCHEMAS.items():
        schema = getattr(c, name)
        doc = (schema.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"## `{name}`", "", "Read from " + ", ".join(f"`{f}`" for f in files) + ". " + doc, ""]
        rows = []
        for key, f, _owner in keys(schema):
            sub = _model(f.annotation)
            desc = f.description or (sub.__doc__ or "").strip().split("\n")[0] if sub else f.description or ""
            rows.append([f"`{key}`", "section" if sub else _type(f.annotation), _default(f) if not sub else "",
                         "; ".join(p for p in (desc, _constraints(f)) if p)])
        out += [table(["key", "type", "default", "description"], rows), ""]
    return "\n".join(out)


BLOCKS = {"reference.cli": cli, "reference.config": config}
