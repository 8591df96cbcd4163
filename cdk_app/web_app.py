"""The web app: the bundled page in a private bucket, served by a CloudFront
distribution of its own through OAC, with its ``config.json`` made from the
stack's values at deploy time.

The page has its own distribution rather than a path of the playback one:
the playback distribution's CORS policy must name the page's origin, which on
the same distribution would be its own domain name (a dependency cycle); and
the page's cache, SPA fallback and security headers stay apart from the
playback rules (signed URLs, HLS TTLs, ``*.jpg``/``*.mp4`` patterns).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from cdk_app.storage import secure_bucket

#: What ``make setup`` (or ``npm run build:web``) builds from web/.
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
INDEX = "index.html"
CONFIG_OBJECT = "config.json"

#: A path whose last segment has no dot is a route of the single-page app,
#: not a file: it gets the page. Files keep S3's answer, so a missing
#: ``app.js`` stays an error instead of becoming HTML.
SPA_FALLBACK_CODE = f"""\
function handler(event) {{
  var request = event.request;
  if (!/\\.[^/]*$/.test(request.uri)) {{
    request.uri = '/{INDEX}';
  }}
  return request;
}}
"""


class WebApp(Construct):
    """The page's bucket and distribution; :meth:`publish` deploys the page.

    :param access_logs: bucket for the web bucket's server access logs and
        the distribution's standard logs (under ``web/`` and
        ``web-cloudfront/``).
    :param removal_policy: Default DESTROY: the bucket holds only what the
        deployment writes, and the deployment deletes that with the stack.
    :param dist: Default web/dist. The built page; a missing build fails
        synth with the command that makes it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        dist: Path = WEB_DIST,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (dist / INDEX).is_file():
            raise ValueError(
                f"the web app is not built: {dist / INDEX} is missing. Run "
                "`make setup` (or `npm ci && npm run build:web`) before synth."
            )
        self._dist = dist
        self.bucket = secure_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            access_logs_prefix="web/",
            removal_policy=removal_policy,
        )
        self.spa_fallback = cloudfront.Function(
            self,
            "SpaFallback",
            comment="Routes of the single-page app get index.html",
            code=cloudfront.FunctionCode.from_inline(SPA_FALLBACK_CODE),
        )
        self.cloudfront_distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Web app (static page)",
            default_root_object=INDEX,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.spa_fallback,
                        event_type=cloudfront.FunctionEventType.VIEWER_REQUEST,
                    )
                ],
                compress=True,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=access_logs,
            log_file_prefix="web-cloudfront/",
        )

    @property
    def url(self) -> str:
        """The page's https origin, e.g. ``https://d111111abcdef8.cloudfront.net``."""
        return f"https://{self.cloudfront_distribution.distribution_domain_name}"

    def publish(self, config: Mapping[str, Any]) -> s3deploy.BucketDeployment:
        """Deploy the built page and ``config.json`` holding ``config`` (its
        values may be tokens: CloudFormation fills them in), then invalidate
        the distribution's cache, since the bundle's names do not change."""
        return s3deploy.BucketDeployment(
            self,
            "Deployment",
            sources=[
                s3deploy.Source.asset(str(self._dist)),
                s3deploy.Source.json_data(CONFIG_OBJECT, dict(config)),
            ],
            destination_bucket=self.bucket,
            distribution=self.cloudfront_distribution,
            distribution_paths=["/*"],
            # The page is rebuilt from the repository at will: removing the
            # stack removes it, so that the bucket can go too.
            retain_on_delete=False,
        )
