"""The upload API: an HTTP API whose every route sits behind a JWT authorizer,
served by two functions, one for the S3 upload routes and one for the video
records. Route keys come from the handler modules, so the routes the stack
creates are exactly the routes the code serves."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jsii
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app.database import VideoTable
from cdk_app.functions import LOG_RETENTION, PythonLambda
from cdk_app.storage import VideoStorage
from lambdas.upload_api.app import ROUTE_KEYS as UPLOAD_ROUTE_KEYS
from lambdas.videos_api.app import ROUTE_KEYS as VIDEOS_ROUTE_KEYS
from vod.settings import MIB, Env

UPLOAD_HANDLER = "lambdas.upload_api.app.handler"
VIDEOS_HANDLER = "lambdas.videos_api.app.handler"
_METHODS = {m.value: m for m in apigwv2.HttpMethod}
#: What the app client's tokens may carry; the web app asks for these.
SIGN_IN_SCOPES = (
    cognito.OAuthScope.OPENID,
    cognito.OAuthScope.EMAIL,
    cognito.OAuthScope.PROFILE,
)


@dataclasses.dataclass(frozen=True)
class ExternalIssuer:
    """Tokens from your own identity provider instead of the stack's pool."""

    issuer: str
    audience: Sequence[str]


@dataclasses.dataclass(frozen=True)
class BrowserSignIn:
    """How a browser app signs users in to the stack's user pool: OAuth 2.0
    authorization code grant with PKCE, as a public client (no secret)."""

    #: Where Cognito may send the browser back with the code after sign-in.
    callback_urls: Sequence[str]
    #: Where Cognito may send the browser back after sign-out.
    logout_urls: Sequence[str]
    #: Default None: no domain, so no hosted sign-in pages. Otherwise the
    #: pages are served at https://<prefix>.auth.<region>.amazoncognito.com.
    domain_prefix: str | None = None


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    """What the API accepts; see the README's knob table for each default."""

    max_upload_bytes: int
    min_part_size_mib: int = 8
    allowed_content_types: Sequence[str] = ("video/*",)
    presign_expiry_seconds: int = 3600
    max_uploads_in_flight_per_user: int = 20
    max_videos_per_user: int = 1000
    #: An UPLOADING record outlives S3's abort of its parts by a day, then the
    #: table's TTL removes it.
    record_ttl_days: int = 4


class UploadApi(Construct):
    """HTTP API + JWT authorizer + the upload and videos functions.

    :param issuer: Default None: the construct creates a Cognito user pool
        and an app client, and the authorizer accepts their tokens.
    :param sign_in: the OAuth settings of the pool's app client; required
        when the construct creates the pool (no ``issuer``), unused otherwise.
    :param allowed_origins: browser origins for the API's CORS.
    :param playback_base_url: prefix of the playback URLs in video records
        (the CDN's origin); Default "" returns paths only.
    :param deletion_protection: Default False. True makes Cognito refuse to
        delete the user pool, whoever asks, until the protection is turned off.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: VideoStorage,
        videos: VideoTable,
        limits: UploadLimits,
        allowed_origins: Sequence[str],
        issuer: ExternalIssuer | None = None,
        sign_in: BrowserSignIn | None = None,
        playback_base_url: str = "",
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        deletion_protection: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool: cognito.UserPool | None = None
        self.user_pool_client: cognito.UserPoolClient | None = None
        self.user_pool_domain: cognito.UserPoolDomain | None = None
        if issuer is None:
            if sign_in is None:
                raise ValueError(
                    "UploadApi creates a Cognito user pool when no issuer is "
                    "given, and its app client needs sign_in=BrowserSignIn("
                    "callback_urls=[...], logout_urls=[...])"
                )
            issuer = self._create_user_pool(
                sign_in, removal_policy, deletion_protection
            )

        self.upload_function = PythonLambda(
            self,
            "UploadFunction",
            handler=UPLOAD_HANDLER,
            description="Upload API: multipart uploads, presigned URLs, POST policies",
            environment={
                Env.TABLE_NAME: videos.dynamodb_table.table_name,
                Env.SOURCE_BUCKET: storage.source_bucket.bucket_name,
                Env.MAX_UPLOAD_BYTES: str(limits.max_upload_bytes),
                Env.MIN_PART_BYTES: str(limits.min_part_size_mib * MIB),
                Env.ALLOWED_CONTENT_TYPES: ",".join(limits.allowed_content_types),
                Env.PRESIGN_EXPIRES_SECONDS: str(limits.presign_expiry_seconds),
                Env.UPLOAD_TTL_SECONDS: str(limits.record_ttl_days * 24 * 3600),
                Env.MAX_UPLOADS_IN_FLIGHT: str(limits.max_uploads_in_flight_per_user),
                Env.MAX_VIDEOS_PER_OWNER: str(limits.max_videos_per_user),
            },
        )
        storage.grant_upload(self.upload_function.role)
        storage.grant_read_uploads(self.upload_function.role)
        videos.grant_read_write_items(self.upload_function.role)
        # Counting a user's videos and open uploads, for the per-user limits.
        videos.grant_query_by_owner(self.upload_function.role)

        self.videos_function = PythonLambda(
            self,
            "VideosFunction",
            handler=VIDEOS_HANDLER,
            description=(
                "Videos API: list, read, edit and delete video records and "
                "their caption tracks"
            ),
            environment={
                Env.TABLE_NAME: videos.dynamodb_table.table_name,
                Env.SOURCE_BUCKET: storage.source_bucket.bucket_name,
                Env.OUTPUT_BUCKET: storage.output_bucket.bucket_name,
                Env.PLAYBACK_BASE_URL: playback_base_url,
            },
        )
        videos.grant_read_write_items(self.videos_function.role)
        videos.grant_query_by_owner(self.videos_function.role)
        storage.grant_abort_uploads(self.videos_function.role)
        storage.grant_delete_uploads(self.videos_function.role)
        storage.grant_delete_outputs(self.videos_function.role)
        storage.grant_write_captions(self.videos_function.role)

        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=removal_policy
        )
        self.api_gateway_http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="Video upload and catalogue API",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(allowed_origins),
                allow_methods=[apigwv2.CorsHttpMethod.ANY],
                allow_headers=["authorization", "content-type"],
                max_age=Duration.hours(1),
            ),
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api_gateway_http_api,
            auto_deploy=True,
            access_log_settings=_AccessLogs(
                apigwv2.LogGroupLogDestination(self.access_log_group)
            ),
            throttle=apigwv2.ThrottleSettings(rate_limit=200, burst_limit=400),
        )
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "JwtAuthorizer",
            jwt_issuer=issuer.issuer,
            jwt_audience=list(issuer.audience),
        )
        self._add_routes(UPLOAD_ROUTE_KEYS, self.upload_function, "Upload")
        self._add_routes(VIDEOS_ROUTE_KEYS, self.videos_function, "Videos")

    @property
    def url(self) -> str:
        return self.stage.url

    def _create_user_pool(
        self,
        sign_in: BrowserSignIn,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
    ) -> ExternalIssuer:
        pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=removal_policy,
            # Off leaves the property out of the template: Cognito's default.
            deletion_protection=True if deletion_protection else None,
        )
        client = pool.add_client(
            "WebClient",
            auth_flows=cognito.AuthFlow(user_srp=True),
            # A browser cannot keep a secret; PKCE protects its code instead.
            generate_secret=False,
            prevent_user_existence_errors=True,
            o_auth=cognito.OAuthSettings(
                # The code grant only: the implicit grant returns tokens in
                # the URL.
                flows=cognito.OAuthFlows(
                    authorization_code_grant=True, implicit_code_grant=False
                ),
                scopes=list(SIGN_IN_SCOPES),
                callback_urls=list(sign_in.callback_urls),
                logout_urls=list(sign_in.logout_urls),
            ),
        )
        self.user_pool, self.user_pool_client = pool, client
        if sign_in.domain_prefix is not None:
            self.user_pool_domain = pool.add_domain(
                "Domain",
                cognito_domain=cognito.CognitoDomainOptions(
                    domain_prefix=sign_in.domain_prefix
                ),
            )
        region = Stack.of(self).region
        return ExternalIssuer(
            issuer=f"https://cognito-idp.{region}.amazonaws.com/{pool.user_pool_id}",
            audience=[client.user_pool_client_id],
        )

    def _add_routes(
        self, route_keys: Sequence[str], function: PythonLambda, prefix: str
    ) -> None:
        integration = integrations.HttpLambdaIntegration(
            f"{prefix}Integration",
            function.lambda_function,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        for route_key in route_keys:
            method, path = route_key.split(" ", 1)
            apigwv2.HttpRoute(
                self,
                _route_id(route_key),
                http_api=self.api_gateway_http_api,
                route_key=apigwv2.HttpRouteKey.with_(path, _METHODS[method]),
                integration=integration,
                authorizer=self.authorizer,
            )


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """Access logs in API Gateway's default JSON format."""

    def __init__(self, destination: apigwv2.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> None:
        return None


def _route_id(route_key: str) -> str:
    """A stable construct id from a route key: ``GET /s3/multipart/{uploadId}``
    becomes ``GETs3multipartuploadId``."""
    return "".join(ch for ch in route_key if ch.isalnum()) + "Route"
