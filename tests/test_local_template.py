"""The template reader on the synthesized app: names made as CloudFormation
makes them, intrinsics resolved to the local resources, and every spec the
local run builds from (buckets, tables, queues, functions, routes,
notifications, the task, role policies)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from lambdas.upload_api.app import ROUTE_KEYS as UPLOAD_ROUTES
from lambdas.videos_api.app import ROUTE_KEYS as VIDEOS_ROUTES
from local.template import (
    ACCOUNT_ID,
    Assembly,
    LocalTemplate,
    Resolver,
    TemplateError,
    WiringError,
    local_resources,
    physical_name,
)
from tests.conftest import cdk_json_context
from vod.keys import UPLOADS_PREFIX
from vod.settings import Env

SOURCE = "StorageSourceBucketB2F37168"
OUTPUT = "StorageOutputBucketCD2EEB3A"
TABLE = "VideosTable41110721"
QUEUE = "TranscoderJobsQueue80B55895"
DLQ = "TranscoderJobsDeadLetterQueue6147221E"
INGEST = "IngestFunction83726A21"


@pytest.fixture(scope="module")
def assembly(synth) -> Assembly:
    return Assembly.load(synth.outdir)


def _web_bucket(local: LocalTemplate) -> str:
    (bucket,) = (b.name for b in local.buckets() if b.logical_id.startswith("WebApp"))
    return bucket


def _app_origin(local: LocalTemplate) -> str:
    """The web app's https origin as the local run resolves it."""
    (domain,) = (
        d.domain_name for d in local.distributions() if d.bucket == _web_bucket(local)
    )
    return f"https://{domain}"


@pytest.fixture(scope="module")
def local(assembly) -> LocalTemplate:
    return LocalTemplate(assembly, seed=7)


def function_by_handler(local: LocalTemplate, handler: str):
    (found,) = [f for f in local.functions().values() if f.handler == handler]
    return found


def tiny(template: dict[str, Any], tmp_path: Path) -> LocalTemplate:
    return LocalTemplate(
        Assembly(directory=tmp_path, stack_name="Tiny", template=template, assets={}),
        seed=1,
    )


# --- the assembly and the names ---------------------------------------------


def test_the_assembly_is_the_one_stack_with_its_asset_manifest(assembly):
    assert assembly.stack_name == "Vod"
    assert assembly.of_type("AWS::ApiGatewayV2::Api")
    assert assembly.assets["files"]
    assert assembly.assets["dockerImages"]


def test_a_relative_assembly_dir_is_made_absolute(synth, monkeypatch):
    # `make demo` passes "cdk.out"; Lambdas and workers run from their asset
    # directories, where a relative path would point elsewhere.
    monkeypatch.chdir(synth.outdir.parent)
    loaded = Assembly.load(synth.outdir.name)
    assert loaded.directory.is_absolute()
    assert loaded.directory == synth.outdir.resolve()


def test_a_directory_without_an_assembly_says_to_synthesize(tmp_path):
    with pytest.raises(TemplateError, match="make synth"):
        Assembly.load(tmp_path)


def test_bucket_names_are_the_stack_and_logical_id_lowercased_with_a_suffix(local):
    names = [bucket.name for bucket in local.buckets()]
    assert len(names) == len(set(names)) == 4
    for bucket in local.buckets():
        assert re.fullmatch(
            rf"vod-{bucket.logical_id.lower()}-[a-z0-9]{{12}}", bucket.name
        ), bucket.name
        assert len(bucket.name) <= 63


def test_tables_and_queues_keep_the_logical_id_and_an_upper_case_suffix(local):
    (table,) = local.tables()
    assert re.fullmatch(rf"Vod-{TABLE}-[A-Z0-9]{{12}}", table.name)
    for queue in local.queues():
        assert re.fullmatch(rf"Vod-{queue.logical_id}-[A-Z0-9]{{12}}", queue.name)


def test_a_long_name_is_cut_to_fit_and_stays_dns_safe():
    name = physical_name(
        "A-Very_Long" * 8, "LogicalId" * 10, "abc123", max_length=63, lowercase=True
    )
    assert len(name) == 63
    assert re.fullmatch(r"[a-z0-9.-]+", name)
    assert name.endswith("-abc123")
    assert "logicalid" in name


def test_the_seed_decides_the_names(assembly):
    def names(seed):
        return {
            logical: resource.ref
            for logical, resource in LocalTemplate(
                assembly, seed=seed
            ).resources.items()
        }

    assert names(3) == names(3)
    assert names(3)[SOURCE] != names(4)[SOURCE]


# --- the resolver -------------------------------------------------------------


def test_intrinsics_and_pseudo_parameters_resolve_to_the_local_values(tmp_path):
    local = tiny({"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}, tmp_path)
    bucket = local.resources["Bucket"].ref
    resolve = local.resolver.resolve
    assert resolve({"Ref": "Bucket"}, where="t") == bucket
    assert (
        resolve({"Fn::GetAtt": ["Bucket", "Arn"]}, where="t")
        == f"arn:aws:s3:::{bucket}"
    )
    assert resolve({"Fn::GetAtt": "Bucket.Arn"}, where="t") == f"arn:aws:s3:::{bucket}"
    assert (
        resolve(
            {"Fn::Join": ["/", [{"Ref": "AWS::Region"}, {"Ref": "Bucket"}]]}, where="t"
        )
        == f"us-east-1/{bucket}"
    )
    assert (
        resolve(
            {
                "Fn::Sub": [
                    "${AWS::Partition}:${AWS::AccountId}:${Bucket}:${Bucket.Arn}:${X}:${!Lit}",
                    {"X": {"Ref": "AWS::URLSuffix"}},
                ]
            },
            where="t",
        )
        == f"aws:{ACCOUNT_ID}:{bucket}:arn:aws:s3:::{bucket}:amazonaws.com:${{Lit}}"
    )
    assert resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, where="t") == "b"
    assert resolve(
        {
            "Keep": 1,
            "Drop": {"Ref": "AWS::NoValue"},
            "List": [{"Ref": "AWS::NoValue"}, 2],
        },
        where="t",
    ) == {"Keep": 1, "List": [2]}


def test_a_ref_to_an_undefined_resource_names_it_and_where_it_is_used(tmp_path):
    local = tiny({"Resources": {}}, tmp_path)
    with pytest.raises(WiringError, match=r"fn variable X: Ref 'NoSuchTable' names no"):
        local.resolver.resolve({"Ref": "NoSuchTable"}, where="fn variable X")
    with pytest.raises(WiringError, match="'Gone'"):
        local.resolver.resolve({"Fn::GetAtt": ["Gone", "Arn"]}, where="fn")


def test_what_the_local_run_cannot_evaluate_is_named(tmp_path):
    local = tiny({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}, tmp_path)
    with pytest.raises(TemplateError, match="Fn::If"):
        local.resolver.resolve({"Fn::If": ["C", 1, 2]}, where="t")
    with pytest.raises(TemplateError, match="attribute 'Nope' of AWS::SQS::Queue Q"):
        local.resolver.resolve({"Fn::GetAtt": ["Q", "Nope"]}, where="t")


def test_a_template_parameter_resolves_to_its_default(tmp_path):
    local = tiny({"Parameters": {"P": {"Default": "v"}}, "Resources": {}}, tmp_path)
    assert local.resolver.resolve({"Ref": "P"}, where="t") == "v"


def test_bind_makes_later_specs_see_the_local_value(local, assembly):
    fresh = LocalTemplate(assembly, seed=7)
    fresh.bind(QUEUE, ref="http://127.0.0.1:1/123456789012/q")
    ingest = fresh.functions()[INGEST]
    assert ingest.environment[Env.JOBS_QUEUE_URL] == "http://127.0.0.1:1/123456789012/q"


# --- storage ------------------------------------------------------------------


def test_bucket_cors_comes_in_boto3_shape(local):
    source = next(b for b in local.buckets() if b.logical_id == SOURCE)
    rule, app = source.cors_rules
    assert rule["AllowedOrigins"] == cdk_json_context()["allowedOrigins"]
    assert app["AllowedOrigins"] == [_app_origin(local)]
    assert {"PUT", "POST"} <= set(rule["AllowedMethods"])
    assert "ETag" in rule["ExposeHeaders"]
    assert rule["MaxAgeSeconds"] == 3600


def test_the_table_keeps_its_keys_index_and_ttl(local, synth):
    (table,) = local.tables()
    props = synth.resources("Vod", "AWS::DynamoDB::Table")[TABLE]["Properties"]
    assert table.create_args["KeySchema"] == props["KeySchema"]
    assert (
        table.create_args["GlobalSecondaryIndexes"] == props["GlobalSecondaryIndexes"]
    )
    assert table.ttl == props["TimeToLiveSpecification"]


def test_the_dead_letter_queue_comes_first_and_the_redrive_names_its_arn(local):
    queues = local.queues()
    order = [queue.logical_id for queue in queues]
    assert order.index(DLQ) < order.index(QUEUE)
    dlq, jobs = queues[order.index(DLQ)], queues[order.index(QUEUE)]
    assert jobs.dead_letter_queue == DLQ
    redrive = json.loads(jobs.attributes["RedrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{dlq.name}",
        "maxReceiveCount": cdk_json_context()["jobsMaxReceiveCount"],
    }


# --- compute, API, events -------------------------------------------------------


def test_functions_load_from_their_asset_with_their_environment_resolved(local):
    resources = local.resources
    for function in local.functions().values():
        module = function.handler.rpartition(".")[0].replace(".", "/") + ".py"
        assert (function.asset_dir / module).is_file()
        assert function.asset_dir.parent == local.assembly.directory
    assert {f.environment.get(Env.TABLE_NAME) for f in local.functions().values()} - {
        None
    } == {resources[TABLE].ref}
    upload = function_by_handler(local, "lambdas.upload_api.app.handler")
    assert upload.environment[Env.SOURCE_BUCKET] == resources[SOURCE].ref
    assert upload.timeout_seconds == 29
    videos = function_by_handler(local, "lambdas.videos_api.app.handler")
    assert videos.environment[Env.OUTPUT_BUCKET] == resources[OUTPUT].ref


def test_cdk_custom_resource_handlers_are_not_local_functions(local, assembly):
    inline = [
        logical
        for logical, r in assembly.of_type("AWS::Lambda::Function").items()
        if "ZipFile" in r["Properties"]["Code"]
    ]
    assert inline
    assert not set(inline) & set(local.functions())


def test_routes_lead_to_the_functions_that_serve_them(local):
    functions = local.functions()
    served = {
        route.route_key: functions[route.function].handler
        for route in local.http_api().routes
    }
    assert served == {
        **dict.fromkeys(UPLOAD_ROUTES, "lambdas.upload_api.app.handler"),
        **dict.fromkeys(VIDEOS_ROUTES, "lambdas.videos_api.app.handler"),
    }


def test_every_route_has_the_jwt_authorizer_of_the_user_pool(local):
    api = local.http_api()
    (authorizer,) = {route.authorizer for route in api.routes}
    assert local.resources[authorizer].type == "AWS::ApiGatewayV2::Authorizer"
    pool = local.resources["UploadApiUserPoolB0792B67"].ref
    assert api.jwt == {
        "Issuer": f"https://cognito-idp.us-east-1.amazonaws.com/{pool}",
        "Audience": [local.resources["UploadApiUserPoolWebClient87182009"].ref],
    }
    assert api.cors["allowed_origins"] == (
        *cdk_json_context()["allowedOrigins"],
        _app_origin(local),
    )
    assert {"authorization", "content-type"} <= set(api.cors["allow_headers"])


def test_an_api_with_two_jwt_authorizers_is_refused(tmp_path):
    def authorizer(audience: str) -> dict[str, Any]:
        jwt = {"Issuer": "https://issuer.test", "Audience": [audience]}
        return {
            "Type": "AWS::ApiGatewayV2::Authorizer",
            "Properties": {"ApiId": {"Ref": "Api"}, "JwtConfiguration": jwt},
        }

    resources = {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {}},
        "A": authorizer("one"),
        "B": authorizer("two"),
    }
    local = tiny({"Resources": resources}, tmp_path)
    with pytest.raises(TemplateError, match="Api has 2 authorizers"):
        local.http_api()


def test_notifications_send_every_upload_completion_to_the_ingest_function(local):
    notifications = local.notifications()
    assert {n.function for n in notifications} == {INGEST}
    assert {n.bucket for n in notifications} == {local.resources[SOURCE].ref}
    assert {n.prefix for n in notifications} == {UPLOADS_PREFIX}
    events = {event for n in notifications for event in n.events}
    assert "s3:ObjectCreated:CompleteMultipartUpload" in events


def test_the_task_names_the_stack_resources_and_its_image_context(local):
    task = local.task()
    resources = local.resources
    assert task.environment[Env.TABLE_NAME] == resources[TABLE].ref
    assert task.environment[Env.JOBS_QUEUE_URL] == resources[QUEUE].ref
    assert task.environment[Env.SOURCE_BUCKET] == resources[SOURCE].ref
    assert task.environment[Env.OUTPUT_BUCKET] == resources[OUTPUT].ref
    assert (task.build_dir / task.dockerfile).is_file()
    assert (task.build_dir / "vod" / "model.py").is_file()


def test_role_statements_name_the_local_resources(local):
    upload = function_by_handler(local, "lambdas.upload_api.app.handler")
    statements = local.role_statements(upload.role)
    source_arn = local.resources[SOURCE].attributes["Arn"]
    writes = next(s for s in statements if "s3:PutObject" in s["Action"])
    assert writes["Resource"] == f"{source_arn}/{UPLOADS_PREFIX}*"
    assert "Fn::" not in json.dumps(statements)


def test_every_resource_of_the_stack_gets_a_local_name(assembly):
    made = local_resources(assembly, random.Random(0))
    assert set(made) == set(assembly.resources)
    assert all(resource.ref for resource in made.values())
    resolver = Resolver(assembly, made)
    outputs = resolver.resolve(assembly.template["Outputs"], where="outputs")
    assert outputs["JobsQueueUrl"]["Value"].endswith(
        made[QUEUE].attributes["QueueName"]
    )


def test_what_moves_data_but_is_not_run_locally_is_listed(tmp_path):
    local = tiny(
        {
            "Resources": {
                "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
                "Q": {"Type": "AWS::SQS::Queue"},
                "FromQueue": {
                    "Type": "AWS::Lambda::EventSourceMapping",
                    "Properties": {
                        "EventSourceArn": {"Fn::GetAtt": ["Q", "Arn"]},
                        "FunctionName": {"Ref": "Fn"},
                    },
                },
                "Kinesis": {"Type": "AWS::Kinesis::Stream"},
                "FromKinesis": {
                    "Type": "AWS::Lambda::EventSourceMapping",
                    "Properties": {
                        "EventSourceArn": {"Fn::GetAtt": ["Kinesis", "Arn"]},
                        "FunctionName": {"Ref": "Fn"},
                    },
                },
            }
        },
        tmp_path,
    )
    (queue,) = local.mappings()
    assert (queue.function, queue.source, queue.batch_size) == ("Fn", "Q", 10)
    assert not queue.partial
    assert local.not_run_locally() == [
        "AWS::Lambda::EventSourceMapping FromKinesis feeding function Fn"
    ]


def test_the_table_stream_feeds_the_publisher_and_captions_functions(local):
    streams = {
        local.functions()[stream.function].handler: stream
        for stream in local.mappings()
        if stream.source == TABLE
    }
    assert sorted(streams) == [
        "lambdas.captions.app.handler",
        "lambdas.events.app.handler",
    ]
    for stream in streams.values():
        assert stream.partial
        assert local.resources[stream.on_failure_queue].type == "AWS::SQS::Queue"
    assert local.not_run_locally() == []


def test_the_dead_letter_queue_feeds_the_dead_jobs_function(local):
    (mapping,) = [m for m in local.mappings() if m.source != TABLE]
    handler = local.functions()[mapping.function].handler
    assert handler == "lambdas.dead_jobs.app.handler"
    assert mapping.source == DLQ
    assert mapping.partial
    assert mapping.batch_size == 10


def test_a_distribution_on_a_domain_of_yours_is_known_by_its_alias(local, synth_prod):
    """With ``domainName`` the functions' playback base URL is on that
    domain; the local run must know it as the distribution's, to point it
    at the local reader."""
    playback = [d for d in local.distributions() if d.bucket != _web_bucket(local)]
    assert [d.aliases for d in playback] == [()]
    prod = LocalTemplate(Assembly.load(synth_prod.outdir), seed=7)
    aliases = {d.bucket == _web_bucket(prod): d.aliases for d in prod.distributions()}
    # The web app stays on its *.cloudfront.net name.
    assert aliases == {False: ("video.example.com",), True: ()}
