"""The dashboard in ``website/`` on Amplify Hosting, configured for this stage's API and pool.

With ``website_repository`` set, Amplify builds each push of ``website_branch``,
reading the repository token from Secrets Manager. Without it, the app takes
manual deployments (``aws amplify create-deployment``; see CDK_INSTRUCTIONS.md).
"""

from __future__ import annotations

from aws_cdk import SecretValue, Stack
from aws_cdk import aws_amplify as amplify
from constructs import Construct

from cdk_stacks.api import ApiStack
from cdk_stacks.auth import AuthStack
from cdk_stacks.config import StageConfig

# The dashboard is static: the build only writes the stage's settings next to it.
_BUILD_SPEC = """\
version: 1
frontend:
  phases:
    build:
      commands:
        - printf '%s' "$COHORT_WEBSITE_CONFIG" > website/config.json
  artifacts:
    baseDirectory: website
    files:
      - '**/*'
"""
_SECURITY_HEADERS = """\
customHeaders:
  - pattern: '**/*'
    headers:
      - key: Strict-Transport-Security
        value: max-age=31536000; includeSubDomains
      - key: X-Content-Type-Options
        value: nosniff
      - key: X-Frame-Options
        value: DENY
      - key: Referrer-Policy
        value: same-origin
"""


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
        settings = {
            "apiUrl": api.api.url,
            "userPoolId": auth.user_pool.user_pool_id,
            "clientId": auth.website_client.user_pool_client_id,
            "signInUrl": auth.domain.base_url(),
        }
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
            build_spec=_BUILD_SPEC,
            custom_headers=_SECURITY_HEADERS,
            environment_variables=[
                amplify.CfnApp.EnvironmentVariableProperty(
                    name="COHORT_WEBSITE_CONFIG", value=Stack.of(self).to_json_string(settings)
                )
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
