"""Reading CloudFormation templates in tests: which resources deploy, policy statements, references."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PSEUDO = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012",
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "stack", "AWS::NoValue": None}


def _value(template: dict[str, Any], expr: Any) -> Any:
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            if arg in PSEUDO:
                return PSEUDO[arg]
            return template.get("Parameters", {})[arg].get("Default")
        if fn == "Fn::FindInMap":
            a, b, c = (_value(template, x) for x in arg)
            return template["Mappings"][a][b][c]
        if fn == "Fn::Equals":
            return _value(template, arg[0]) == _value(template, arg[1])
        if fn == "Fn::Not":
            return not _value(template, arg[0])
        if fn == "Fn::And":
            return all(_value(template, x) for x in arg)
        if fn == "Fn::Or":
            return any(_value(template, x) for x in arg)
        if fn == "Condition":
            return condition(template, arg)
    return expr


def condition(template: dict[str, Any], name: str) -> bool:
    """A condition's value with every parameter at its default."""
    return bool(_value(template, template["Conditions"][name]))


def deployed(template: dict[str, Any]) -> dict[str, Any]:
    """The resources a stack created from the template (parameters at their defaults) would contain."""
    return {k: v for k, v in template["Resources"].items()
            if "Condition" not in v or condition(template, v["Condition"])}


def of_type(resources: dict[str, Any], type_: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == type_}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, statement) of every IAM statement in roles, inline policies and bucket/queue policies."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in as_list(document["Statement"]):
                yield logical_id, statement


def references(node: Any) -> Iterator[str]:
    """Every logical ID or parameter that Ref, Fn::GetAtt or Fn::Sub refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield (value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    if name not in variables:
                        yield name.split(".")[0]
                yield from references(variables)
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    tags = resource.get("Properties", {}).get("Tags") or {}
    if isinstance(tags, list):
        return {t["Key"]: t["Value"] for t in tags}
    return dict(tags)
