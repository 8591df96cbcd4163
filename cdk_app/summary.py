"""Print a readable summary of a synthesized cloud assembly: the stacks, their
resources by type, and the settings of every bucket and table.

    python -m cdk_app.summary cdk.out
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def stack_templates(assembly_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    for name, artifact in manifest["artifacts"].items():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template_file = artifact["properties"]["templateFile"]
        yield name, json.loads((assembly_dir / template_file).read_text())


def _text(value: Any) -> str:
    """A template value as text; a value known only at deploy time (the web
    app's origin) shows the attributes it is made of."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_text(part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return json.dumps(value)


def _describe_bucket(props: dict[str, Any]) -> list[str]:
    block = props.get("PublicAccessBlockConfiguration", {})
    private = bool(block) and all(block.values())
    encryption = props.get("BucketEncryption", {}).get(
        "ServerSideEncryptionConfiguration", [{}]
    )[0]
    algorithm = encryption.get("ServerSideEncryptionByDefault", {}).get(
        "SSEAlgorithm", "none"
    )
    lines = [
        f"public access blocked: {'yes' if private else 'NO'}",
        f"encryption: {algorithm}",
        "access logs: "
        + (
            props["LoggingConfiguration"].get("LogFilePrefix", "") or "yes"
            if "LoggingConfiguration" in props
            else "none"
        ),
    ]
    for rule in props.get("CorsConfiguration", {}).get("CorsRules", []):
        lines.append(
            f"CORS: {','.join(rule['AllowedMethods'])} from "
            f"{', '.join(_text(origin) for origin in rule['AllowedOrigins'])}"
        )
    for rule in props.get("LifecycleConfiguration", {}).get("Rules", []):
        what = []
        if "AbortIncompleteMultipartUpload" in rule:
            days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            what.append(f"abort incomplete uploads after {days} d")
        for transition in rule.get("Transitions", []):
            what.append(
                f"move to {transition['StorageClass']} after "
                f"{transition['TransitionInDays']} d"
            )
        if "ExpirationInDays" in rule:
            what.append(f"expire after {rule['ExpirationInDays']} d")
        lines.append(
            f"lifecycle {rule.get('Id', '?')} on '{rule.get('Prefix', '')}': "
            + "; ".join(what)
        )
    return lines


def _describe_table(props: dict[str, Any]) -> list[str]:
    keys = ", ".join(
        f"{k['AttributeName']} ({k['KeyType']})" for k in props["KeySchema"]
    )
    lines = [
        f"keys: {keys}",
        f"billing: {props.get('BillingMode', 'PROVISIONED')}",
        "point-in-time recovery: "
        + (
            "on"
            if props.get("PointInTimeRecoverySpecification", {}).get(
                "PointInTimeRecoveryEnabled"
            )
            else "off"
        ),
        "encryption: "
        + ("on" if props.get("SSESpecification", {}).get("SSEEnabled") else "default"),
    ]
    for index in props.get("GlobalSecondaryIndexes", []):
        index_keys = ", ".join(
            f"{k['AttributeName']} ({k['KeyType']})" for k in index["KeySchema"]
        )
        lines.append(f"index {index['IndexName']}: {index_keys}")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        lines.append(f"TTL attribute: {ttl['AttributeName']}")
    return lines


DESCRIBERS = {
    "AWS::S3::Bucket": _describe_bucket,
    "AWS::DynamoDB::Table": _describe_table,
}


def summarize(assembly_dir: Path) -> str:
    out: list[str] = []
    for name, template in stack_templates(assembly_dir):
        resources = template.get("Resources", {})
        out.append(f"Stack {name}: {len(resources)} resources")
        counts = collections.Counter(r["Type"] for r in resources.values())
        for type_, count in sorted(counts.items()):
            out.append(f"  {count:3d}  {type_}")
        for logical, resource in resources.items():
            describe = DESCRIBERS.get(resource["Type"])
            if describe is None:
                continue
            policy = resource.get("DeletionPolicy", "Delete")
            out.append(f"  {resource['Type']} {logical} (on stack delete: {policy})")
            out.extend(f"      {line}" for line in describe(resource["Properties"]))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assembly", type=Path, nargs="?", default=Path("cdk.out"))
    args = parser.parse_args(argv)
    if not (args.assembly / "manifest.json").exists():
        print(
            f"no cloud assembly in {args.assembly}: run `make synth`", file=sys.stderr
        )
        return 2
    print(summarize(args.assembly))
    return 0


if __name__ == "__main__":
    sys.exit(main())
