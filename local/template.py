"""The synthesized cloud assembly as the local run reads it: the stack
template, its assets, CloudFormation-made physical names, an intrinsic
function resolver, and each resource as the spec a local stand-in needs."""

from __future__ import annotations

import dataclasses
import graphlib
import json
import random
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REGION = "us-east-1"
#: A fake account id; it appears in every local ARN and names no real account.
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

_NO_VALUE = object()


class TemplateError(Exception):
    """The template holds something the local run cannot stand in for."""


class WiringError(Exception):
    """Two parts of the stack that should connect do not; the message names
    the resource, variable or filter at fault."""


@dataclasses.dataclass(frozen=True)
class Assembly:
    """One stack of a cloud assembly directory (``cdk.out``)."""

    directory: Path
    stack_name: str
    template: Mapping[str, Any]
    assets: Mapping[str, Any]

    @classmethod
    def load(cls, directory: Path | str, stack_name: str | None = None) -> Assembly:
        # Absolute, because processes started from an asset directory (the
        # Lambdas, the workers) resolve every path against their own cwd.
        root = Path(directory).resolve()
        manifest_file = root / "manifest.json"
        if not manifest_file.exists():
            raise TemplateError(f"no cloud assembly in {root}: run `make synth` first")
        artifacts = json.loads(manifest_file.read_text())["artifacts"]
        stacks = {
            name: artifact
            for name, artifact in artifacts.items()
            if artifact["type"] == "aws:cloudformation:stack"
        }
        if stack_name is None:
            if len(stacks) != 1:
                raise TemplateError(
                    f"{root} holds stacks {sorted(stacks)}; name the one to run"
                )
            stack_name = next(iter(stacks))
        if stack_name not in stacks:
            raise TemplateError(f"{root} has no stack {stack_name!r}: {sorted(stacks)}")
        artifact = stacks[stack_name]
        template = json.loads(
            (root / artifact["properties"]["templateFile"]).read_text()
        )
        assets: dict[str, Any] = {}
        for dependency in artifact.get("dependencies", []):
            if artifacts.get(dependency, {}).get("type") == "cdk:asset-manifest":
                asset_file = root / artifacts[dependency]["properties"]["file"]
                assets = json.loads(asset_file.read_text())
        return cls(
            directory=root,
            stack_name=artifact.get("displayName", stack_name),
            template=template,
            assets=assets,
        )

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        resources: Mapping[str, Mapping[str, Any]] = self.template.get("Resources", {})
        return resources

    def of_type(self, type_: str) -> dict[str, Mapping[str, Any]]:
        return {
            logical: resource
            for logical, resource in self.resources.items()
            if resource["Type"] == type_
        }

    def file_asset_dir(self, object_key: str, *, owner: str) -> Path:
        """The staged directory of the file asset uploaded as ``object_key``."""
        for asset_hash, asset in self.assets.get("files", {}).items():
            keys = {d.get("objectKey") for d in asset["destinations"].values()}
            if object_key in keys or object_key.startswith(asset_hash):
                return self._staged(asset["source"]["path"], owner)
        raise WiringError(
            f"{owner}: its code {object_key!r} is no file asset of the assembly"
        )

    def image_asset(self, image: str, *, owner: str) -> tuple[Path, str]:
        """The build context directory and Dockerfile of the image ``image``
        (a resolved image URI whose tag is the asset hash)."""
        tag = image.rpartition(":")[2]
        asset = self.assets.get("dockerImages", {}).get(tag)
        if asset is None:
            raise WiringError(
                f"{owner}: its image {image!r} is no image asset of the assembly"
            )
        source = asset["source"]
        return (
            self._staged(source["directory"], owner),
            source.get("dockerFile", "Dockerfile"),
        )

    def _staged(self, path: str, owner: str) -> Path:
        staged = self.directory / path
        if not staged.is_dir():
            raise WiringError(
                f"{owner}: its asset directory {staged} is missing; run `make synth`"
            )
        return staged


@dataclasses.dataclass
class LocalResource:
    """What ``Ref`` and ``Fn::GetAtt`` give for one resource in the local run."""

    logical_id: str
    type: str
    ref: str
    attributes: dict[str, str]


_UPPER = string.ascii_uppercase + string.digits
_LOWER = string.ascii_lowercase + string.digits


def physical_name(
    stack: str,
    logical_id: str,
    suffix: str,
    *,
    max_length: int,
    lowercase: bool = False,
) -> str:
    """``{stack}-{logicalId}-{suffix}`` as CloudFormation generates names: the
    logical id, then the stack name, are cut to fit ``max_length``."""
    room = max_length - len(suffix) - 2
    logical_part = logical_id[: room - min(len(stack), room // 2)]
    stack_part = stack[: room - len(logical_part)]
    name = f"{stack_part}-{logical_part}-{suffix}"
    if lowercase:
        name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
    return name


def arn(service: str, resource: str) -> str:
    """The ARN of a regional resource of the local account."""
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


#: The property that names a resource, its longest name, and its ARN's
#: resource part, where they are not ``Name``, 128 and ``{type}/{name}``.
_NAMES = {
    "AWS::DynamoDB::Table": ("TableName", 255, "table/{}"),
    "AWS::Lambda::Function": ("FunctionName", 64, "function:{}"),
    "AWS::Logs::LogGroup": ("LogGroupName", 512, "log-group:{}:*"),
    "AWS::ECS::Cluster": ("ClusterName", 255, "cluster/{}"),
    "AWS::Events::EventBus": ("Name", 256, "event-bus/{}"),
}


def local_resources(assembly: Assembly, rng: random.Random) -> dict[str, LocalResource]:
    """Physical names and attributes for every resource of the stack."""
    return {
        logical: _local_resource(assembly.stack_name, logical, resource, rng)
        for logical, resource in assembly.resources.items()
    }


def _local_resource(
    stack: str, logical_id: str, resource: Mapping[str, Any], rng: random.Random
) -> LocalResource:
    """The Ref and attributes CloudFormation would give one resource."""
    type_, props = resource["Type"], resource.get("Properties", {})

    def random_text(length: int, alphabet: str) -> str:
        return "".join(rng.choice(alphabet) for _ in range(length))

    def named(prop: str, max_length: int, *, lower: bool = False) -> str:
        """The name set in ``prop``, else a generated one."""
        if isinstance(props.get(prop), str):
            return str(props[prop])
        suffix = random_text(12, _LOWER if lower else _UPPER)
        return physical_name(
            stack, logical_id, suffix, max_length=max_length, lowercase=lower
        )

    def made(ref: str, **attributes: str) -> LocalResource:
        return LocalResource(logical_id, type_, ref, dict(attributes))

    if type_ == "AWS::S3::Bucket":
        name = named("BucketName", 63, lower=True)
        return made(
            name,
            Arn=f"arn:{PARTITION}:s3:::{name}",
            DomainName=f"{name}.s3.{URL_SUFFIX}",
            RegionalDomainName=f"{name}.s3.{REGION}.{URL_SUFFIX}",
            DualStackDomainName=f"{name}.s3.dualstack.{REGION}.{URL_SUFFIX}",
            WebsiteURL=f"http://{name}.s3-website-{REGION}.{URL_SUFFIX}",
        )
    if type_ == "AWS::SQS::Queue":
        name = named("QueueName", 80)
        url = f"https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT_ID}/{name}"
        return made(url, Arn=arn("sqs", name), QueueName=name, QueueUrl=url)
    if type_ == "AWS::IAM::Role":
        name = named("RoleName", 64)
        return made(
            name,
            Arn=f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}",
            RoleId="AROA" + random_text(17, _UPPER),
        )
    if type_ == "AWS::Cognito::UserPool":
        pool_id = f"{REGION}_" + random_text(9, string.ascii_letters + "0123456789")
        provider = f"cognito-idp.{REGION}.{URL_SUFFIX}/{pool_id}"
        return made(
            pool_id,
            Arn=arn("cognito-idp", f"userpool/{pool_id}"),
            ProviderName=provider,
            ProviderURL=f"https://{provider}",
            UserPoolId=pool_id,
        )
    if type_ == "AWS::Cognito::UserPoolClient":
        return made(random_text(26, _LOWER), Name=logical_id)
    if type_ == "AWS::ApiGatewayV2::Api":
        api_id = random_text(10, _LOWER)
        return made(
            api_id,
            ApiId=api_id,
            ApiEndpoint=f"https://{api_id}.execute-api.{REGION}.{URL_SUFFIX}",
        )
    if type_ == "AWS::CloudFront::Distribution":
        return made(
            "E" + random_text(13, _UPPER),
            DomainName="d" + random_text(13, _LOWER) + ".cloudfront.net",
        )
    if type_.startswith("AWS::ApiGatewayV2::"):
        return made(random_text(7, _LOWER))
    prop, max_length, arn_part = _NAMES.get(
        type_, ("Name", 128, type_.rpartition("::")[2].lower() + "/{}")
    )
    name = named(prop, max_length)
    parts = type_.split("::")
    service = parts[1].lower() if len(parts) == 3 else "custom"
    own_arn = arn(service, arn_part.format(name))
    if type_ == "AWS::DynamoDB::Table":
        stream_arn = f"{own_arn}/stream/1970-01-01T00:00:00.000"
        return made(name, Arn=own_arn, StreamArn=stream_arn)
    return made(name, Arn=own_arn, Name=name)


class Resolver:
    """Evaluates ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``,
    ``Fn::Select``, ``Fn::Split`` and the pseudo parameters against the local
    resources."""

    def __init__(
        self, assembly: Assembly, resources: Mapping[str, LocalResource]
    ) -> None:
        self._assembly = assembly
        self._resources = resources
        self._pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": assembly.stack_name,
            "AWS::StackId": arn(
                "cloudformation",
                f"stack/{assembly.stack_name}/00000000-0000-4000-8000-000000000000",
            ),
        }

    def resolve(self, value: Any, *, where: str) -> Any:
        """``value`` with every intrinsic replaced; ``where`` names what is
        being resolved, for the error when something does not resolve."""
        if isinstance(value, list):
            return [
                item
                for item in (self.resolve(v, where=where) for v in value)
                if item is not _NO_VALUE
            ]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), *_ = value.items()
            if name == "Ref":
                return self.ref(argument, where=where)
            if name.startswith("Fn::"):
                return self._function(name, argument, where)
        return {
            key: resolved
            for key, resolved in (
                (k, self.resolve(v, where=where)) for k, v in value.items()
            )
            if resolved is not _NO_VALUE
        }

    def resolve_str(self, value: Any, *, where: str) -> str:
        resolved = self.resolve(value, where=where)
        if not isinstance(resolved, str | int | float | bool):
            raise TemplateError(f"{where}: expected a string, got {resolved!r}")
        return _text(resolved)

    def ref(self, name: str, *, where: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._resources:
            return self._resources[name].ref
        parameter = self._assembly.template.get("Parameters", {}).get(name)
        if parameter is not None and "Default" in parameter:
            return parameter["Default"]
        raise WiringError(
            f"{where}: Ref {name!r} names no resource or parameter of stack "
            f"{self._assembly.stack_name}"
        )

    def get_att(self, logical: str, attribute: str, *, where: str) -> str:
        resource = self._resources.get(logical)
        if resource is None:
            raise WiringError(
                f"{where}: Fn::GetAtt names resource {logical!r}, which stack "
                f"{self._assembly.stack_name} does not define"
            )
        if attribute not in resource.attributes:
            raise TemplateError(
                f"{where}: the local run has no attribute {attribute!r} of "
                f"{resource.type} {logical}"
            )
        return resource.attributes[attribute]

    def _function(self, name: str, argument: Any, where: str) -> Any:
        if name == "Fn::GetAtt":
            logical, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else argument
            )
            return self.get_att(
                logical, self.resolve(attribute, where=where), where=where
            )
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(
                self.resolve_str(item, where=where)
                for item in self.resolve(items, where=where)
            )
        if name == "Fn::Sub":
            return self._sub(argument, where)
        if name == "Fn::Select":
            index, items = argument
            chosen = self.resolve(items, where=where)
            return chosen[int(self.resolve(index, where=where))]
        if name == "Fn::Split":
            separator, text = argument
            return self.resolve_str(text, where=where).split(separator)
        raise TemplateError(f"{where}: the local run cannot evaluate {name}")

    def _sub(self, argument: Any, where: str) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {k: self.resolve_str(v, where=where) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in values:
                return values[expression]
            if "." in expression and expression not in self._pseudo:
                logical, attribute = expression.split(".", 1)
                return self.get_att(logical, attribute, where=where)
            return self.resolve_str({"Ref": expression}, where=where)

        return re.sub(r"\$\{([^}]+)\}", replace, text)


# --- What the local run builds, in boto3's shapes -------------------------


@dataclasses.dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str
    cors_rules: tuple[dict[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    create_args: dict[str, Any]
    #: UpdateTimeToLive's TimeToLiveSpecification, or None without TTL.
    ttl: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    attributes: dict[str, str]
    dead_letter_queue: str | None


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    asset_dir: Path
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    role: str | None


@dataclasses.dataclass(frozen=True)
class RouteSpec:
    route_key: str
    function: str
    authorizer: str | None


@dataclasses.dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    routes: tuple[RouteSpec, ...]
    #: Its one JWT authorizer's JwtConfiguration (Issuer, Audience), if any.
    jwt: dict[str, Any] | None
    #: Its CORS configuration as LocalHttpApi's keyword arguments.
    cors: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class NotificationSpec:
    """One LambdaFunctionConfiguration of a bucket's notifications."""

    bucket: str
    function: str
    events: tuple[str, ...]
    prefix: str
    suffix: str


@dataclasses.dataclass(frozen=True)
class DistributionSpec:
    """A CloudFront distribution's S3 origin, as the playback reader serves it."""

    logical_id: str
    domain_name: str
    bucket: str
    #: Origins its default behaviour's response headers policy allows.
    allowed_origins: tuple[str, ...]
    #: Its alternate domain names (``Aliases``: the ``domainName`` knob).
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class MappingSpec:
    """An event source mapping from a table's stream or a queue to a function;
    the last three fields apply to streams only."""

    logical_id: str
    function: str
    #: The table or the queue it reads.
    source: str
    batch_size: int
    #: Whether the function reports partial batch failures.
    partial: bool
    #: TRIM_HORIZON or LATEST
    starting_position: str = "LATEST"
    maximum_retry_attempts: int = 10
    on_failure_queue: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    logical_id: str
    environment: dict[str, str]
    build_dir: Path
    dockerfile: str
    role: str | None


#: CloudFormation's CorsRule fields, each with its name in PutBucketCors.
_CORS_FIELDS = {
    "AllowedHeaders": "AllowedHeaders",
    "AllowedMethods": "AllowedMethods",
    "AllowedOrigins": "AllowedOrigins",
    "ExposedHeaders": "ExposeHeaders",
    "Id": "ID",
    "MaxAge": "MaxAgeSeconds",
}
#: An SQS queue's properties that are not CreateQueue attributes; every
#: other property of the CloudFormation type is one, under the same name.
_NOT_QUEUE_ATTRIBUTES = {"QueueName", "Tags"}
_TABLE_ARGUMENTS = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
)


class LocalTemplate:
    """The stack's resources, named for this local run, read as specs.

    Specs are resolved when asked for, so a value learnt after a resource is
    created (a queue's URL on the local server) is what later specs see:
    call :meth:`bind` first.
    """

    def __init__(self, assembly: Assembly, *, seed: int | None = None) -> None:
        self.assembly = assembly
        self.resources = local_resources(assembly, random.Random(seed))  # noqa: S311
        self.resolver = Resolver(assembly, self.resources)

    def bind(
        self, logical_id: str, *, ref: str | None = None, **attributes: str
    ) -> None:
        """Record what the local run made of a resource (e.g. a queue URL)."""
        resource = self.resources[logical_id]
        if ref is not None:
            resource.ref = ref
        resource.attributes.update(attributes)

    def owner(self, logical_id: str) -> str:
        resource = self.assembly.resources[logical_id]
        return f"{resource['Type']} {logical_id}"

    def props(self, logical_id: str) -> Mapping[str, Any]:
        properties: Mapping[str, Any] = self.assembly.resources[logical_id].get(
            "Properties", {}
        )
        return properties

    def logical_of(
        self, type_: str, physical: str, attributes: Sequence[str] = ("Arn",)
    ) -> str | None:
        """The logical id of the ``type_`` resource whose Ref or one of
        ``attributes`` is ``physical``."""
        for logical, resource in self.resources.items():
            if resource.type == type_ and physical in (
                resource.ref,
                *(resource.attributes.get(name) for name in attributes),
            ):
                return logical
        return None

    def logical_named(self, type_: str, physical: str, where: str) -> str:
        """:meth:`logical_of`, where a name of no ``type_`` of the stack is a
        wiring error whose message begins with ``where``."""
        logical = self.logical_of(type_, physical)
        if logical is None:
            raise WiringError(f"{where} {physical!r}, which is no {type_} of the stack")
        return logical

    # --- storage ---------------------------------------------------------

    def buckets(self) -> list[BucketSpec]:
        specs = []
        for logical in self.assembly.of_type("AWS::S3::Bucket"):
            cors = self.resolver.resolve(
                self.props(logical).get("CorsConfiguration", {}).get("CorsRules", []),
                where=self.owner(logical),
            )
            rules = tuple({_CORS_FIELDS[k]: v for k, v in r.items()} for r in cors)
            specs.append(BucketSpec(logical, self.resources[logical].ref, rules))
        return specs

    def tables(self) -> list[TableSpec]:
        specs = []
        for logical in self.assembly.of_type("AWS::DynamoDB::Table"):
            where = self.owner(logical)
            props = self.resolver.resolve(self.props(logical), where=where)
            args = {k: props[k] for k in _TABLE_ARGUMENTS if k in props}
            if props.get("SSESpecification", {}).get("SSEEnabled"):
                args["SSESpecification"] = {"Enabled": True}
            if "StreamSpecification" in props:
                args["StreamSpecification"] = {
                    "StreamEnabled": True,
                    **props["StreamSpecification"],
                }
            ttl = props.get("TimeToLiveSpecification", {})
            specs.append(
                TableSpec(
                    logical_id=logical,
                    name=self.resources[logical].ref,
                    create_args=args,
                    ttl=ttl if ttl.get("Enabled") else None,
                )
            )
        return specs

    def queues(self) -> list[QueueSpec]:
        """Every queue, each after the dead-letter queue its redrive policy
        names, so that the one exists when the other is created."""
        specs: dict[str, QueueSpec] = {}
        for logical in self.assembly.of_type("AWS::SQS::Queue"):
            where = self.owner(logical)
            props = self.resolver.resolve(self.props(logical), where=where)
            redrive = props.get("RedrivePolicy", {})
            dead_letter = (
                self.logical_named(
                    "AWS::SQS::Queue",
                    redrive.get("deadLetterTargetArn", ""),
                    f"{where}: its redrive policy names",
                )
                if redrive
                else None
            )
            specs[logical] = QueueSpec(
                logical_id=logical,
                name=self.resources[logical].attributes["QueueName"],
                attributes={
                    name: json.dumps(value) if isinstance(value, dict) else _text(value)
                    for name, value in props.items()
                    if name not in _NOT_QUEUE_ATTRIBUTES
                },
                dead_letter_queue=dead_letter,
            )
        order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for logical, spec in specs.items():
            order.add(logical, *filter(None, [spec.dead_letter_queue]))
        return [specs[logical] for logical in order.static_order()]

    # --- compute ---------------------------------------------------------

    def functions(self) -> dict[str, FunctionSpec]:
        """Every function whose code is a file asset of the assembly (CDK's
        own custom-resource handlers carry inline code and are left out)."""
        specs = {}
        for logical in self.assembly.of_type("AWS::Lambda::Function"):
            props = self.props(logical)
            code = props.get("Code", {})
            if "S3Key" not in code:
                continue
            where = self.owner(logical)
            variables = props.get("Environment", {}).get("Variables", {})
            environment = {
                name: self.resolver.resolve_str(
                    value, where=f"{where} environment variable {name}"
                )
                for name, value in variables.items()
            }
            role = props.get("Role")
            specs[logical] = FunctionSpec(
                logical_id=logical,
                name=self.resources[logical].ref,
                arn=self.resources[logical].attributes["Arn"],
                handler=props["Handler"],
                asset_dir=self.assembly.file_asset_dir(
                    self.resolver.resolve_str(code["S3Key"], where=where), owner=where
                ),
                environment=environment,
                timeout_seconds=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                role=_logical_of_get_att(role),
            )
        return specs

    def task(self) -> TaskSpec:
        """The stack's one ECS task definition with one container."""
        tasks = self.assembly.of_type("AWS::ECS::TaskDefinition")
        if not tasks:
            raise TemplateError(
                "the stack has no ECS task definition to run the transcoding "
                "workers from; the local run transcodes with the FFmpeg workers "
                "(synthesize with -c transcoder=fargate)"
            )
        (logical,) = tasks
        where = self.owner(logical)
        props = self.props(logical)
        (container,) = props["ContainerDefinitions"]
        environment = {
            item["Name"]: self.resolver.resolve_str(
                item["Value"], where=f"{where} environment variable {item['Name']}"
            )
            for item in container.get("Environment", [])
        }
        build_dir, dockerfile = self.assembly.image_asset(
            self.resolver.resolve_str(container["Image"], where=where), owner=where
        )
        return TaskSpec(
            logical_id=logical,
            environment=environment,
            build_dir=build_dir,
            dockerfile=dockerfile,
            role=_logical_of_get_att(props.get("TaskRoleArn")),
        )

    # --- API -------------------------------------------------------------

    def http_api(self) -> HttpApiSpec:
        """The stack's one HTTP API: routes, JWT authorizer, CORS."""
        (api,) = self.assembly.of_type("AWS::ApiGatewayV2::Api")
        jwts = [
            self.resolver.resolve(self.props(logical), where=self.owner(logical))
            for logical in self._api_children("AWS::ApiGatewayV2::Authorizer", api)
        ]
        if len(jwts) > 1:
            raise TemplateError(
                f"{self.owner(api)} has {len(jwts)} authorizers; the local run's "
                "one token issuer stands for one"
            )
        routes = tuple(
            self._route(logical)
            for logical in self._api_children("AWS::ApiGatewayV2::Route", api)
        )
        cors = self.resolver.resolve(
            self.props(api).get("CorsConfiguration", {}), where=self.owner(api)
        )
        methods = tuple(cors.get("AllowMethods", ()))
        if "*" in methods:
            methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        return HttpApiSpec(
            logical_id=api,
            routes=routes,
            jwt=jwts[0]["JwtConfiguration"] if jwts else None,
            cors={
                "allowed_origins": tuple(cors.get("AllowOrigins", ())),
                "allow_headers": tuple(cors.get("AllowHeaders", ())),
                "allow_methods": methods,
                "expose_headers": tuple(cors.get("ExposeHeaders", ())),
                "max_age_seconds": cors.get("MaxAge"),
            },
        )

    def _api_children(self, type_: str, api: str) -> Iterator[str]:
        for logical in self.assembly.of_type(type_):
            if self.props(logical).get("ApiId") == {"Ref": api}:
                yield logical

    def _route(self, logical: str) -> RouteSpec:
        where = self.owner(logical)
        props = self.props(logical)
        route_key = props["RouteKey"]
        target = self.resolver.resolve_str(props.get("Target", ""), where=where)
        kind, _, integration_id = target.partition("/")
        integration = self.logical_of("AWS::ApiGatewayV2::Integration", integration_id)
        if kind != "integrations" or integration is None:
            raise WiringError(
                f"route {route_key!r} ({logical}): its target {target!r} is no "
                "integration of the API"
            )
        uri = self.resolver.resolve_str(
            self.props(integration)["IntegrationUri"], where=self.owner(integration)
        )
        # A function's ARN, or an API Gateway invocation URI that embeds it.
        function = self.logical_named(
            "AWS::Lambda::Function",
            uri.partition("/functions/")[2].rpartition("/")[0] or uri,
            f"route {route_key!r}: its integration {integration} invokes",
        )
        authorizer = None
        if props.get("AuthorizationType", "NONE") != "NONE":
            authorizer = _logical_of_ref(props.get("AuthorizerId"))
        return RouteSpec(route_key=route_key, function=function, authorizer=authorizer)

    # --- events and permissions ------------------------------------------

    def notifications(self) -> list[NotificationSpec]:
        """The Lambda targets of every bucket's notification configuration
        (queue, topic and EventBridge targets are in :meth:`not_run_locally`)."""
        specs = []
        for logical in self.assembly.of_type("Custom::S3BucketNotifications"):
            where = self.owner(logical)
            props = self.resolver.resolve(self.props(logical), where=where)
            configuration = props.get("NotificationConfiguration", {})
            bucket = props["BucketName"]
            bucket_logical = self.logical_named(
                "AWS::S3::Bucket", bucket, f"{where}: notifications of bucket"
            )
            for target in configuration.get("LambdaFunctionConfigurations", []):
                function = self.logical_named(
                    "AWS::Lambda::Function",
                    target["LambdaFunctionArn"],
                    f"{where}: notifications of bucket {bucket_logical} go to",
                )
                rules = {
                    rule["Name"].lower(): rule["Value"]
                    for rule in target.get("Filter", {})
                    .get("Key", {})
                    .get("FilterRules", [])
                }
                specs.append(
                    NotificationSpec(
                        bucket=bucket,
                        function=function,
                        events=tuple(target["Events"]),
                        prefix=rules.get("prefix", ""),
                        suffix=rules.get("suffix", ""),
                    )
                )
        return specs

    def distributions(self) -> list[DistributionSpec]:
        """Every CloudFront distribution whose default behaviour serves a
        bucket of the stack."""
        specs = []
        for logical in self.assembly.of_type("AWS::CloudFront::Distribution"):
            where = self.owner(logical)
            config = self.props(logical)["DistributionConfig"]
            default = config["DefaultCacheBehavior"]
            (origin,) = [
                o for o in config["Origins"] if o["Id"] == default["TargetOriginId"]
            ]
            domain = self.resolver.resolve_str(origin["DomainName"], where=where)
            bucket = self.logical_of(
                "AWS::S3::Bucket", domain, ("RegionalDomainName", "DomainName")
            )
            if bucket is None:
                continue
            policy = _logical_of_ref(default.get("ResponseHeadersPolicyId"))
            headers = (
                self.resolver.resolve(self.props(policy), where=self.owner(policy))
                if policy
                else {}
            )
            cors = headers.get("ResponseHeadersPolicyConfig", {}).get("CorsConfig", {})
            allowed = cors.get("AccessControlAllowOrigins", {}).get("Items", [])
            specs.append(
                DistributionSpec(
                    logical_id=logical,
                    domain_name=self.resources[logical].attributes["DomainName"],
                    bucket=self.resources[bucket].ref,
                    allowed_origins=tuple(allowed),
                    aliases=tuple(config.get("Aliases", ())),
                )
            )
        return specs

    def mappings(self) -> list[MappingSpec]:
        """Every event source mapping that feeds a table's stream or a queue
        of the stack to a function of the stack."""
        specs = []
        for logical, props in self._mappings():
            source = _logical_of_get_att(props.get("EventSourceArn"))
            kind = self.resources[source].type if source else None
            if kind not in ("AWS::DynamoDB::Table", "AWS::SQS::Queue"):
                continue
            where = self.owner(logical)
            failure = props.get("DestinationConfig", {}).get("OnFailure", {})
            specs.append(
                MappingSpec(
                    logical_id=logical,
                    function=self.logical_named(
                        "AWS::Lambda::Function",
                        self.resolver.resolve_str(props["FunctionName"], where=where),
                        f"{where}: its function",
                    ),
                    source=str(source),
                    batch_size=int(
                        props.get("BatchSize", 10 if kind == "AWS::SQS::Queue" else 100)
                    ),
                    partial="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                    starting_position=props.get("StartingPosition", "LATEST"),
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", 10)),
                    on_failure_queue=_logical_of_get_att(failure.get("Destination")),
                )
            )
        return specs

    def _mappings(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for logical in self.assembly.of_type("AWS::Lambda::EventSourceMapping"):
            props = self.props(logical)
            if props.get("Enabled", True) is not False:
                yield logical, props

    def event_buses(self) -> list[str]:
        return [
            self.resources[logical].ref
            for logical in self.assembly.of_type("AWS::Events::EventBus")
        ]

    def not_run_locally(self) -> list[str]:
        """Parts of the stack that move data but that the local run leaves
        out, so that it can say so instead of leaving them out silently."""
        run = {spec.logical_id for spec in self.mappings()}
        left_out = [
            f"{self.owner(logical)} feeding function "
            f"{_logical_of_ref(props.get('FunctionName'))}"
            for logical, props in self._mappings()
            if logical not in run
        ]
        for logical in self.assembly.of_type("Custom::S3BucketNotifications"):
            kinds = set(self.props(logical).get("NotificationConfiguration", {}))
            left_out += [
                f"{self.owner(logical)} {kind}"
                for kind in sorted(kinds - {"LambdaFunctionConfigurations"})
            ]
        return left_out

    def role_statements(self, role: str) -> list[dict[str, Any]]:
        """Every statement the role's inline and attached policies hold, with
        ARNs resolved to the local resources."""
        statements: list[dict[str, Any]] = []
        where = self.owner(role)
        for inline in self.props(role).get("Policies", []):
            statements += self.resolver.resolve(
                inline["PolicyDocument"]["Statement"], where=where
            )
        for logical in [
            *self.assembly.of_type("AWS::IAM::Policy"),
            *self.assembly.of_type("AWS::IAM::ManagedPolicy"),
        ]:
            props = self.props(logical)
            if {"Ref": role} in props.get("Roles", []):
                statements += self.resolver.resolve(
                    props["PolicyDocument"]["Statement"], where=self.owner(logical)
                )
        return statements

    def resource_policy_statements(self) -> list[dict[str, Any]]:
        """Every statement of the stack's bucket and queue policies, resolved;
        each names its own bucket's or queue's resources."""
        statements: list[dict[str, Any]] = []
        for type_ in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            for logical in self.assembly.of_type(type_):
                statements += self.resolver.resolve(
                    self.props(logical)["PolicyDocument"]["Statement"],
                    where=self.owner(logical),
                )
        return statements


def _logical_of_get_att(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target.split(".")[0] if isinstance(target, str) else target[0])
    return None


def _logical_of_ref(value: Any) -> str | None:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    return None


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
