"""The dashboard in ``website/`` on Amplify Hosting, configured for this stage's API and pool.

With ``website_repository`` set, Amplify builds each push of ``website_branch`` with the build spec
below, reading the repository token from Secrets Manager. Without it, the app takes manual
deployments of a ``website/dist`` built by hand (``aws amplify create-deployment``; see
CDK_INSTRUCTIONS.md). Either way the site's ``config.json`` is written next to ``index.html`` at
deploy time, from the stack's ``SiteConfig`` output, and never built into the bundle.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, SecretValue, Stack
from aws_cdk import aws_amplify as amplify
from constructs import Construct

from cdk_stacks.api import ApiStack
from cdk_stacks.auth import AuthStack
from cdk_stacks.config import StageConfig

# The site is one application of the repository: Amplify runs every command in APP_ROOT, and the
# build reads ../docs/openapi from there.
APP_ROOT = "website"
CONFIG_VARIABLE = "COHORT_WEBSITE_CONFIG"
# Vite needs Node 20.19 or later, and 20 is past its end of life: build on 22 whatever the build
# image defaults to, through the console's "live package updates" setting, as the variable it writes.
_NODE_VERSION = "22"
BUILD_SPEC = f"""\
version: 1
applications:
  - appRoot: {APP_ROOT}
    frontend:
      phases:
        preBuild:
          commands:
            - npm ci
        build:
          commands:
            - npm run build
            - test -n "${CONFIG_VARIABLE}"
            - printf '%s' "${CONFIG_VARIABLE}" > dist/config.json
      artifacts:
        baseDirectory: dist
        files:
          - '**/*'
"""
# Every path that is not a file (no extension, or one no asset has) is a route of the single-page
# app: Amplify serves index.html for it with a 200, and the router draws the page. config.json and
# the assets are files, served as they are.
SPA_REWRITE = amplify.CfnApp.CustomRuleProperty(
    source=r"</^[^.]+$|\.(?!(css|gif|ico|jpg|jpeg|js|json|map|png|svg|txt|webp|woff|woff2|ttf)$)([^.]+$)/>",
    target="/index.html",
    status="200",
)


def content_security_policy(api_origin: str, region: str) -> str:
    """The contract's policy: everything from the site itself, and calls to the API, Cognito and S3."""
    connect = [
        "'self'",
        api_origin,
        f"https://cognito-idp.{region}.amazonaws.com",
        "https://*.s3.amazonaws.com",  # presigned URLs name the bucket in the host, with or without
        f"https://*.s3.{region}.amazonaws.com",  # the region
    ]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            f"connect-src {' '.join(connect)}",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


def custom_headers(api_origin: str, region: str) -> str:
    """Amplify's monorepo form of custom headers, for every file of the app."""
    headers = {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": content_security_policy(api_origin, region),
    }
    # JSON strings are YAML double-quoted scalars: the policy's quotes and colons stay as they are.
    lines = [f"  - appRoot: {APP_ROOT}", "    customHeaders:", "      - pattern: '**/*'", "        headers:"]
    for key, value in headers.items():
        lines += [f"          - key: {key}", f"            value: {json.dumps(value)}"]
    return "applications:\n" + "\n".join(lines) + "\n"


class WebsiteStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        auth: AuthStack,
        api: ApiStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # The contract's config.json: what the site needs to reach the API and sign people in; no secret.
        self.site_config = self.to_json_string(
            {
                "apiUrl": api.api.url,
                "region": self.region,
                "userPoolId": auth.user_pool.user_pool_id,
                "userPoolClientId": auth.website_client.user_pool_client_id,
            }
        )
        repository = config.website_repository or None
        self.app = amplify.CfnApp(
            self,
            "App",
            name=f"cohort-{config.stage}",
            description="Cohort dashboard: jobs, rounds, curves and evaluation reports",
            platform="WEB",
            repository=repository,
            # A dynamic reference: CloudFormation resolves it, the template never holds the token.
            access_token=SecretValue.secrets_manager(config.website_token_secret).unsafe_unwrap()
            if repository
            else None,
            build_spec=BUILD_SPEC,
            custom_rules=[SPA_REWRITE],
            custom_headers=custom_headers(api.origin, self.region),
            environment_variables=[
                amplify.CfnApp.EnvironmentVariableProperty(name=name, value=value)
                for name, value in {
                    "AMPLIFY_MONOREPO_APP_ROOT": APP_ROOT,
                    CONFIG_VARIABLE: self.site_config,
                    "_LIVE_UPDATES": json.dumps(
                        [{"name": "Node.js version", "pkg": "node", "type": "nvm", "version": _NODE_VERSION}]
                    ),
                }.items()
            ],
        )
        self.branch = amplify.CfnBranch(
            self,
            "Branch",
            app_id=self.app.attr_app_id,
            branch_name=config.website_branch,
            enable_auto_build=bool(repository),
            stage="PRODUCTION" if config.removal == "retain" else "DEVELOPMENT",
        )
        self.url = f"https://{config.website_branch}.{self.app.attr_default_domain}"
        # What a manual deployment needs (CDK_INSTRUCTIONS.md), and the URL to set website_url to.
        CfnOutput(self, "AppId", value=self.app.attr_app_id, description="The Amplify app")
        CfnOutput(self, "BranchName", value=self.branch.branch_name, description="The branch it serves")
        CfnOutput(self, "BranchUrl", value=self.url, description="Where the branch is served")
        CfnOutput(
            self,
            "SiteConfig",
            value=self.site_config,
            description="The site's config.json (no secret): written next to index.html at deploy time",
        )
        # cfn-lint warns of an output built from other stacks' exports, as if it were meant to be
        # exported again; this one is read by people and scripts, and composing it is its purpose.
        self.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W6001"]}})
