"""The whole platform on one machine, built from the synthesized template
(what it stands up is listed in the README's "Local run")."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.server
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import boto3
import requests
from botocore.config import Config

from local.apigw import LocalHttpApi, Route
from local.container import host_image
from local.event_sources import DynamoStreamPoller, SqsQueuePoller
from local.iam import AccessControl, AccessKey, Principal
from local.jwt_issuer import CodeGrant, LocalIssuer, json_answer, user_sub
from local.lambda_runtime import LambdaProcess
from local.motoserver import SETUP_CREDENTIALS, MotoEndpoint, moto_server
from local.playback import LoopbackHttpServer, PlaybackReader
from local.s3_events import Delivery, EventDelivery, matching
from local.s3_gateway import S3Gateway
from local.template import (
    ACCOUNT_ID,
    PARTITION,
    REGION,
    Assembly,
    DistributionSpec,
    FunctionSpec,
    LocalTemplate,
    NotificationSpec,
    TaskSpec,
    WiringError,
)
from local.workers import WorkerPool
from vod.keys import parse_upload_key, upload_key
from vod.model import Status
from vod.settings import Env

log = logging.getLogger(__name__)
T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
#: The demo user, whom the sign-in form offers first.
DEMO_EMAIL = "demo@example.com"
DEMO_USER = user_sub(DEMO_EMAIL)
#: How long workers have to stop after SIGTERM before they are killed. A
#: worker may be in a 20 s long poll; locally nothing is lost by cutting it.
WORKER_STOP_SECONDS = 5.0

#: The ObjectCreated event each upload route of the API ends in.
UPLOAD_EVENTS = ("Put", "Post", "CompleteMultipartUpload")
_SAMPLE_UPLOAD_KEY = upload_key(DEMO_USER, str(uuid.UUID(int=0)), "clip.mp4")
CLOUDFRONT = "cloudfront.amazonaws.com"
READER = "playback-reader"
#: The runner's own key, standing for CloudFormation: it may do anything.
SETUP_KEY = AccessKey(
    SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"], SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
)


class VideoFailed(Exception):
    """The video ended FAILED; the message holds the record's reason."""


class LocalPlatform:
    """The stack of ``assembly_dir`` running on loopback; use as a context
    manager, or call :meth:`start` and :meth:`stop`.

    :param moto_port: port of the moto server (a free one when 0)
    :param web_port: port of the page and ``/config.json`` (0: a free one);
        its origin ``http://localhost:<port>`` is allowed wherever the
        template allows browser origins
    :param workers: how many FFmpeg worker processes run (default 3, so that
        a long video's chunks are encoded by several at once); one that dies
        is replaced
    :param task_env: variables that replace the task definition's in the
        workers' environment, e.g. a shorter chunk length for a test
    :param web_root: directory of the static page, if there is one
    :param run_dir: where logs and the workers' scratch space go; a
        temporary directory, removed on stop, when None
    :param check_wiring: refuse to start when the wiring check finds a
        problem (when False, problems are only logged, and waiting for a
        video explains what went wrong)
    :param worker_stop_seconds: grace between SIGTERM and SIGKILL on stop
    """

    def __init__(
        self,
        assembly_dir: Path | str,
        *,
        moto_port: int = 0,
        web_port: int = 8787,
        workers: int = 3,
        task_env: Mapping[str, str] | None = None,
        web_root: Path | str | None = None,
        run_dir: Path | str | None = None,
        check_wiring: bool = True,
        stack_name: str | None = None,
        worker_stop_seconds: float = WORKER_STOP_SECONDS,
    ) -> None:
        self.assembly = Assembly.load(assembly_dir, stack_name)
        self.template = LocalTemplate(self.assembly)
        self._moto_port = moto_port
        self._web_port = web_port
        self._worker_count = workers
        self._task_env = dict(task_env or {})
        self._web_root = Path(web_root) if web_root is not None else None
        self._given_run_dir = Path(run_dir) if run_dir is not None else None
        self._check_wiring = check_wiring
        self._worker_stop_seconds = worker_stop_seconds
        self.run_dir = Path()
        self.wiring_problems: list[str] = []
        self.credentials: dict[str, AccessKey] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.lambdas: dict[str, LambdaProcess] = {}
        self.worker_pool: WorkerPool | None = None
        self.issuer: LocalIssuer | None = None
        self.sign_in: CodeGrant | None = None
        self.moto: MotoEndpoint | None = None
        self.gateway: S3Gateway | None = None
        self.access: AccessControl | None = None
        self.api: LocalHttpApi | None = None
        self.reader: PlaybackReader | None = None
        self.web: LoopbackHttpServer | None = None
        self.events: EventDelivery | None = None
        self._admin_s3: Any = None
        self._stack = contextlib.ExitStack()

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalPlatform:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything, in the reverse order of starting; safe to call
        twice and after a failed start."""
        self._stack.close()

    def _start(self) -> None:
        self.wiring_problems = wiring_problems(self.template)
        for problem in self.wiring_problems:
            log.warning("wiring: %s", problem)
        if self.wiring_problems and self._check_wiring:
            raise WiringError(
                "the stack's wiring is broken:\n  - "
                + "\n  - ".join(self.wiring_problems)
            )
        for left_out in self.template.not_run_locally():
            log.warning("not run locally: %s", left_out)
        self.run_dir = self._make_run_dir()
        web = self.web = self._bind_web()
        self.moto = self._stack.enter_context(
            moto_server(self._moto_port, log_path=self.run_dir / "logs" / "moto.log")
        )
        self._create_resources(self.moto)
        self.functions = self.template.functions()
        task = self.template.task()
        access = AccessControl(
            self.template.resource_policy_statements(),
            setup=SETUP_KEY,
        )
        self.access = access
        self.credentials = {
            name: access.issue(principal)
            for name, principal in self._principals(task).items()
        }
        self._admin_s3 = self.admin_client("s3")
        # Started once the functions run, and stopped (its queue drained)
        # before they stop, so that no late event starts a function again.
        self.events = EventDelivery(
            self.template.notifications(),
            describe=self._describe_object,
            invoke=self._invoke_async,
        )
        self.gateway = S3Gateway(
            upstream=self.moto.url,
            secrets=access.secret_for,
            authorize=access.authorize,
            on_object_created=self.events.object_created,
        )
        self.gateway.start()
        self._stack.callback(self.gateway.stop)
        self.reader = self._start_reader()
        self._start_lambdas()
        self.events.start()
        self._stack.callback(self.events.stop)
        self._start_pollers()
        self.api = self._start_api()
        self._start_workers(task)
        web.start()

    def _make_run_dir(self) -> Path:
        if self._given_run_dir is not None:
            made = self._given_run_dir.resolve()
        else:
            made = Path(tempfile.mkdtemp(prefix="vod-local-"))
            self._stack.callback(shutil.rmtree, made, ignore_errors=True)
        (made / "logs").mkdir(parents=True, exist_ok=True)
        return made

    # --- resources -----------------------------------------------------------

    def admin_client(self, service: str) -> Any:
        """A client of the moto server with the runner's own credentials."""
        config = Config(signature_version="s3v4", retries={"max_attempts": 2})
        return _client(service, _started(self.moto).url, SETUP_KEY, config)

    def _create_resources(self, moto: MotoEndpoint) -> None:
        s3 = self.admin_client("s3")
        for bucket in self.template.buckets():
            s3.create_bucket(Bucket=bucket.name)
            if bucket.cors_rules:
                rules = [
                    {**rule, "AllowedOrigins": self._with_page(rule["AllowedOrigins"])}
                    for rule in bucket.cors_rules
                ]
                s3.put_bucket_cors(
                    Bucket=bucket.name, CORSConfiguration={"CORSRules": rules}
                )
        dynamodb = self.admin_client("dynamodb")
        for table in self.template.tables():
            created = dynamodb.create_table(TableName=table.name, **table.create_args)
            stream_arn = created["TableDescription"].get("LatestStreamArn")
            if stream_arn:
                self.template.bind(table.logical_id, StreamArn=stream_arn)
            if table.ttl:
                dynamodb.update_time_to_live(
                    TableName=table.name, TimeToLiveSpecification=table.ttl
                )
        sqs = self.admin_client("sqs")
        for queue in self.template.queues():
            url = sqs.create_queue(QueueName=queue.name, Attributes=queue.attributes)[
                "QueueUrl"
            ]
            self.template.bind(queue.logical_id, ref=url, QueueUrl=url)
        events = self.admin_client("events")
        for bus in self.template.event_buses():
            events.create_event_bus(Name=bus)
        log.info("resources created on %s", moto.url)

    def _describe_object(self, bucket: str, key: str) -> tuple[int, str]:
        head = self._admin_s3.head_object(Bucket=bucket, Key=key)
        return int(head["ContentLength"]), str(head["ETag"])

    def _principals(self, task: TaskSpec) -> dict[str, Principal]:
        """Who each component acts as: the role its template gives it (a
        function's session is named after the function, as Lambda names it),
        and for the playback reader, CloudFront through its origin access
        control, which only the bucket policy allows anything."""
        sessions = {name: (f.role, f.name) for name, f in self.functions.items()}
        sessions[task.logical_id] = (task.role, task.logical_id)
        principals = {
            name: Principal.assumed_role(
                self.template.resources[role].ref if role else "none",
                session,
                self.template.role_statements(role) if role else [],
            )
            for name, (role, session) in sessions.items()
        }
        context = {"aws:SourceAccount": ACCOUNT_ID}
        distribution = self._playback_distribution()
        if distribution is not None:
            distribution_id = self.template.resources[distribution.logical_id].ref
            context["aws:SourceArn"] = (
                f"arn:{PARTITION}:cloudfront::{ACCOUNT_ID}:distribution/"
                f"{distribution_id}"
            )
        principals[READER] = Principal(CLOUDFRONT, service=CLOUDFRONT, context=context)
        return principals

    def component_client(self, component: str, service: str) -> Any:
        """A client of ``service`` as ``component`` makes it: its own key,
        through the gateway that judges its calls."""
        config = Config(signature_version="s3v4") if service == "s3" else None
        endpoint = _started(self.gateway).url
        return _client(service, endpoint, self.credentials[component], config)

    def component_env(self, component: str) -> dict[str, str]:
        """The AWS environment of one component: its own credentials, and
        boto3 pointed at the gateway, so that every call is judged as AWS
        would judge it."""
        gateway = _started(self.gateway)
        key = self.credentials[component]
        absent = str(self.run_dir / "no-aws-config")
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": key.access_key_id,
            "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
            "AWS_ENDPOINT_URL": gateway.url,
            "AWS_ENDPOINT_URL_S3": gateway.url,
            "AWS_CONFIG_FILE": absent,
            "AWS_SHARED_CREDENTIALS_FILE": absent,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    # --- functions and API ---------------------------------------------------

    def _function_env(self, function: FunctionSpec) -> dict[str, str]:
        env = dict(function.environment)
        if Env.PLAYBACK_BASE_URL in env:
            env[Env.PLAYBACK_BASE_URL] = self._playback_base(env[Env.PLAYBACK_BASE_URL])
        return {**env, **self.component_env(function.logical_id)}

    def _playback_base(self, value: str) -> str:
        """The template's playback base URL, pointed at the local reader: an
        empty one (no CDN yet) or one on a CloudFront distribution's domain or
        one of its aliases (the ``domainName`` knob)."""
        if self.reader is None:
            raise RuntimeError("the playback reader is not started")
        distributions = {
            name
            for d in self.template.distributions()
            for name in (d.domain_name, *d.aliases)
        }
        parts = urlsplit(value)
        if not value or parts.hostname in distributions:
            return self.reader.url + parts.path.rstrip("/")
        return value

    def _start_lambdas(self) -> None:
        """The processes of the functions that routes and events invoke."""
        template = self.template
        used = sorted(
            {route.function for route in template.http_api().routes}
            | {spec.function for spec in template.notifications()}
            | {spec.function for spec in template.mappings()}
        )
        for logical in used:
            function = self.functions[logical]
            process = LambdaProcess(
                name=function.name,
                handler=function.handler,
                task_root=function.asset_dir,
                env=self._function_env(function),
                timeout_seconds=function.timeout_seconds,
                log_path=self.run_dir / "logs" / f"{logical}.log",
                forbidden_root=ROOT,
                arn=function.arn,
                memory_mb=function.memory_mb,
            )
            self.lambdas[logical] = process
            self._stack.callback(process.stop)
        # Cold starts in parallel: each imports boto3 and the handler.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(used) or 1) as pool:
            for future in [pool.submit(self.lambdas[name].start) for name in used]:
                future.result()

    def _start_pollers(self) -> None:
        """Lambda's pollers, each reading with its function's own key."""
        for spec in self.template.mappings():
            source = self.template.resources[spec.source]
            sqs = self.component_client(spec.function, "sqs")
            poller: DynamoStreamPoller | SqsQueuePoller
            if source.type == "AWS::SQS::Queue":
                poller = SqsQueuePoller(
                    spec,
                    queue_url=source.ref,
                    queue_arn=source.attributes["Arn"],
                    sqs=sqs,
                    invoke=self._invoke_async,
                )
            else:
                failed = self.template.resources.get(spec.on_failure_queue or "")
                poller = DynamoStreamPoller(
                    spec,
                    stream_arn=source.attributes["StreamArn"],
                    function_arn=self.functions[spec.function].arn,
                    streams=self.component_client(spec.function, "dynamodbstreams"),
                    sqs=sqs,
                    invoke=self._invoke_async,
                    on_failure_url=failed.ref if failed else None,
                )
            poller.start()
            self._stack.callback(poller.stop)

    def _invoke_async(self, function: str, event: dict[str, Any]) -> Any:
        return self.lambdas[function].invoke(event, request_id=str(uuid.uuid4()))

    def _start_api(self) -> LocalHttpApi:
        spec = self.template.http_api()
        if spec.jwt:
            # One issuer stands for the stack's one user pool.
            self.issuer = LocalIssuer(spec.jwt["Issuer"], spec.jwt["Audience"][0])
            self.sign_in = self._hosted_sign_in(self.issuer)

        def route(function: str, authorize: bool) -> Route:
            process = self.lambdas[function]

            def handler(event: dict[str, Any], context: Any) -> Any:
                return process.invoke(event, request_id=context.aws_request_id)

            return Route(
                handler=handler,
                function_name=process.name,
                authorize=authorize,
                timeout_seconds=process.timeout_seconds,
            )

        api = LocalHttpApi(
            {
                r.route_key: route(r.function, r.authorizer is not None)
                for r in spec.routes
            },
            issuer=self.issuer,
            **{
                **spec.cors,
                "allowed_origins": self._with_page(spec.cors["allowed_origins"]),
            },
        )
        api.start()
        self._stack.callback(api.stop)
        return api

    def mint_token(self, sub: str = DEMO_USER, **claims: Any) -> str:
        """A token the API's JWT authorizer accepts, for user ``sub``."""
        if self.issuer is None:
            raise RuntimeError("the API has no JWT authorizer to mint tokens for")
        return self.issuer.mint(sub, ttl=12 * 3600, **claims)

    # --- workers, playback, web ------------------------------------------------

    def _start_workers(self, task: TaskSpec) -> None:
        image = host_image(task.build_dir, task.dockerfile, self.run_dir / "image")

        def env_for(number: int) -> dict[str, str]:
            work_dir = self.run_dir / f"worker-{number}"
            work_dir.mkdir(parents=True, exist_ok=True)
            return {
                **image.env,
                **task.environment,
                **self._task_env,
                **self.component_env(task.logical_id),
                Env.WORK_DIR: str(work_dir),
            }

        pool = WorkerPool(
            count=self._worker_count,
            argv=image.argv,
            cwd=image.workdir,
            env_for=env_for,
            log_dir=self.run_dir / "logs",
            stop_seconds=self._worker_stop_seconds,
        )
        pool.start()
        self.worker_pool = pool
        self._stack.callback(pool.stop)

    @property
    def workers(self) -> list[subprocess.Popen[bytes]]:
        """The worker processes running now (one per slot)."""
        return self.worker_pool.processes if self.worker_pool else []

    def _start_reader(self) -> PlaybackReader:
        """CloudFront's stand-in: the playback distribution's bucket, with the
        browser origins its response headers policy allows."""
        distribution = self._playback_distribution()
        if distribution is None:
            raise WiringError(
                "nothing serves playback: the stack has no CloudFront "
                "distribution of a bucket"
            )
        reader = PlaybackReader(
            bucket=distribution.bucket,
            s3=self.component_client(READER, "s3"),
            allowed_origins=self._with_page(distribution.allowed_origins),
        )
        reader.start()
        self._stack.callback(reader.stop)
        return reader

    def _playback_distribution(self) -> DistributionSpec | None:
        """The distribution players read: the one serving the output bucket of
        a function that makes playback URLs (not the web app's), else the only
        one."""
        distributions = self.template.distributions()
        buckets = {
            function.environment.get(Env.OUTPUT_BUCKET)
            for function in self.functions.values()
            if Env.PLAYBACK_BASE_URL in function.environment
        }
        return next(
            (d for d in distributions if d.bucket in buckets),
            distributions[0] if len(distributions) == 1 else None,
        )

    def _hosted_sign_in(self, issuer: LocalIssuer) -> CodeGrant | None:
        """The app client's hosted sign-in, which sends the browser back to
        the client's URLs and to this run's page, as the stack registers its
        web app's; an issuer of your own has no client here, and none."""
        client = self.template.logical_of(
            "AWS::Cognito::UserPoolClient", issuer.audience
        )
        if client is None:
            return None
        props = self.template.resolver.resolve(
            self.template.props(client), where=f"app client {client}"
        )
        for urls in ("CallbackURLs", "LogoutURLs"):
            props[urls] = [*props.get(urls, []), f"{self.web_url}/"]
        return CodeGrant(issuer, props)

    def _with_page(self, origins: Sequence[str]) -> tuple[str, ...]:
        """``origins`` and the page's, which the local run serves."""
        page = self.web_url
        return tuple(origins) if page in origins else (*origins, page)

    def _bind_web(self) -> LoopbackHttpServer:
        """The page's server, bound now so that its origin is known to the
        CORS rules of what starts next, and serving once everything runs."""
        platform = self
        root = self._web_root or self._placeholder_page()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_POST(self) -> None:
                if not self._answer():
                    self.send_error(405)

            def do_GET(self) -> None:
                if not self._answer():
                    super().do_GET()

            def _answer(self) -> bool:
                """Answer the hosted sign-in's and ``/config.json``'s paths."""
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                query = dict(parse_qsl(url.query))
                grant = platform.sign_in
                answer = grant and grant.respond(self.command, url.path, query, form)
                if url.path == "/config.json" and self.command == "GET":
                    answer = json_answer(200, platform.page_config())
                if not answer:
                    return False
                status, headers, body = answer
                self.send_response(status)
                for name, value in {**headers, "Content-Length": len(body)}.items():
                    self.send_header(name, str(value))
                self.end_headers()
                self.wfile.write(body)
                return True

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("web: " + format, *args)

        try:
            server = LoopbackHttpServer(
                ("127.0.0.1", self._web_port), Handler, name="web-page"
            )
        except OSError as error:
            raise OSError(
                f"cannot serve the web page on port {self._web_port} ({error}); "
                "pass another web port (make demo-serve WEB_PORT=8080)"
            ) from None
        self._stack.callback(server.stop)
        return server

    def _placeholder_page(self) -> Path:
        placeholder = self.run_dir / "no-web-page"
        placeholder.mkdir(exist_ok=True)
        (placeholder / "index.html").write_text(
            "<!doctype html><title>vod local</title><p>The web page is not "
            "built. The API and playback URLs are in "
            '<a href="/config.json">/config.json</a>.</p>'
        )
        return placeholder

    def page_config(self) -> dict[str, Any]:
        """What the page needs: the API, the playback origin, the upload
        limit, and where it signs in (the hosted sign-in on this server)."""
        limits = [
            int(f.environment[Env.MAX_UPLOAD_BYTES])
            for f in self.functions.values()
            if Env.MAX_UPLOAD_BYTES in f.environment
        ]
        config: dict[str, Any] = {
            "apiUrl": self.api_url,
            "playbackUrl": self.playback_url,
            "maxUploadBytes": min(limits, default=None),
        }
        if self.sign_in is not None:
            config["auth"] = {
                "authorizeUrl": f"{self.web_url}/oauth2/authorize",
                "tokenUrl": f"{self.web_url}/oauth2/token",
                "logoutUrl": f"{self.web_url}/logout",
                "clientId": self.sign_in.issuer.audience,
                "scopes": self.sign_in.scope.split(),
            }
        return config

    # --- where things are ------------------------------------------------------

    @property
    def api_url(self) -> str:
        return _started(self.api).url

    @property
    def moto_url(self) -> str:
        return _started(self.moto).url

    @property
    def s3_url(self) -> str:
        return _started(self.gateway).url

    @property
    def playback_url(self) -> str:
        return _started(self.reader).url

    @property
    def web_url(self) -> str:
        return _started(self.web).url.replace("127.0.0.1", "localhost")

    # --- waiting for a video ---------------------------------------------------

    def wait_for_video(
        self,
        video_id: str,
        token: str,
        *,
        timeout: float = 600,
        on_update: Callable[[Mapping[str, Any]], None] | None = None,
        poll_seconds: float = 0.5,
    ) -> dict[str, Any]:
        """Poll ``GET /videos/{id}`` until READY and return the record.

        Raises :class:`VideoFailed` when it ends FAILED, :class:`WiringError`
        when the run can tell why the video will never move on (its upload
        matched no notification, the ingest function failed or queued
        nothing, every worker exited), and ``TimeoutError`` otherwise.
        """
        deadline = time.monotonic() + timeout
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        record: dict[str, Any] = {}
        while True:
            response = http.get(f"{self.api_url}/videos/{video_id}", timeout=30)
            if response.status_code != 200:
                raise VideoFailed(
                    f"GET /videos/{video_id} answered {response.status_code}: "
                    f"{response.text}"
                )
            record = response.json()
            if on_update is not None:
                on_update(record)
            status = record["status"]
            if status == Status.READY:
                return record
            if status == Status.FAILED:
                raise VideoFailed(f"video {video_id} FAILED: {record.get('error')}")
            problem = self.explain_stall(video_id, status)
            if problem is not None:
                raise WiringError(problem)
            if time.monotonic() > deadline:
                denied = self.access.denials[-3:] if self.access else []
                raise TimeoutError(
                    f"video {video_id} is still {status} after {timeout:g} s; "
                    f"logs are in {self.run_dir / 'logs'}"
                    + "".join(f"; denied: {denial}" for denial in denied)
                )
            time.sleep(poll_seconds)

    def explain_stall(self, video_id: str, status: str) -> str | None:
        """Why a video in ``status`` cannot move on, when the run knows."""
        if status in (Status.UPLOADING, Status.UPLOADED):
            return self._explain_upload(video_id)
        pool = self.worker_pool
        if status in (Status.QUEUED, Status.PROCESSING) and pool is not None:
            codes = pool.exit_codes()
            if pool.all_exited():
                return (
                    f"video {video_id} is {status} but every worker exited "
                    f"(exit codes {codes}); see {self.run_dir / 'logs'}/worker-*.log"
                )
        return None

    def _explain_upload(self, video_id: str) -> str | None:
        events = _started(self.events)
        for delivery in events.deliveries():
            parsed = parse_upload_key(delivery.key)
            if parsed is None or parsed[1] != video_id:
                continue
            explanation = self._explain_delivery(delivery)
            if explanation is not None:
                return explanation
        return None

    def _explain_delivery(self, delivery: Delivery) -> str | None:
        upload = f"upload s3://{delivery.bucket}/{delivery.key}"
        if delivery.outcome == "unmatched":
            filters = describe_filters(self.template.notifications(), delivery.bucket)
            return (
                f"{upload} created no job: no notification of its bucket covers "
                f"{delivery.event_name} on that key; the bucket's notification "
                f"filters are {filters}"
            )
        if delivery.outcome == "failed":
            names = ", ".join(delivery.functions)
            return (
                f"{upload} created no job: {names} failed on its "
                f"{delivery.event_name} event: {delivery.error}; see "
                f"{self.run_dir / 'logs'}"
            )
        for function, result in delivery.results.items():
            outcomes = result.get("outcomes") if isinstance(result, dict) else None
            if outcomes and "queued" not in outcomes and "duplicate" not in outcomes:
                return (
                    f"{upload} created no job: {function} handled its "
                    f"{delivery.event_name} event and answered {result}; see "
                    f"{self.run_dir / 'logs' / (function + '.log')}"
                )
        return None


# --- The wiring check ----------------------------------------------------------


def wiring_problems(template: LocalTemplate) -> list[str]:
    """What does not connect in the stack and that no call would refuse, one
    sentence per problem: a missing grant, or a variable that names no
    resource, fails the call that needs it, naming the role and action or
    the resource; an upload that notifies nothing fails nothing."""
    try:
        sources = {
            function.environment[Env.SOURCE_BUCKET]
            for function in template.functions().values()
            if Env.SOURCE_BUCKET in function.environment
        }
        notifications = template.notifications()
    except WiringError as error:
        return [str(error)]
    problems = []
    for bucket in sorted(sources):
        logical = template.logical_of("AWS::S3::Bucket", bucket)
        missed = [
            event
            for event in UPLOAD_EVENTS
            if not matching(
                notifications, bucket, _SAMPLE_UPLOAD_KEY, f"ObjectCreated:{event}"
            )
        ]
        if missed:
            events = ", ".join(f"ObjectCreated:{event}" for event in missed)
            problems.append(
                f"uploads to bucket {logical} (keys like {_SAMPLE_UPLOAD_KEY!r}) "
                f"notify no function on {events}: the bucket's notification "
                f"filters are {describe_filters(notifications, bucket)}"
            )
    return problems


def describe_filters(notifications: list[NotificationSpec], bucket: str) -> str:
    described = [
        f"prefix {spec.prefix!r} suffix {spec.suffix!r} on "
        f"{'/'.join(spec.events)} -> {spec.function}"
        for spec in notifications
        if spec.bucket == bucket
    ]
    return "; ".join(described) or "none (the bucket has no notifications)"


# --- helpers ---------------------------------------------------------------------


def _started(component: T | None) -> T:
    if component is None:
        raise RuntimeError("the platform is not started")
    return component


def _client(service: str, endpoint: str, key: AccessKey, config: Config | None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=config,
    )
