"""Cognito: the user pool, its groups, its sign-up trigger and the app clients."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.findings import acknowledge
from cdk_stacks.functions import FunctionsStack
from cohort.catalogue import Catalogue, Group

_OAUTH_SCOPES = [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE]
_ROLE_ATTRIBUTE = "role"  # custom:role, chosen at sign-up: scientist or app_developer


class AuthStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        catalogue: Catalogue,
        functions: FunctionsStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self._catalogue = catalogue
        self.user_pool = self._build_user_pool()
        self._build_groups()
        self._build_signup_trigger(functions)
        self.domain = self._build_domain()
        self.sdk_client = self._build_sdk_client()
        self.website_client = self._build_website_client()

    @property
    def client_ids(self) -> list[str]:
        """The clients whose ID tokens the orchestrator accepts (JupyterHub's only signs people in)."""
        return [client.user_pool_client_id for client in (self.sdk_client, self.website_client)]

    def _build_user_pool(self) -> cognito.UserPool:
        pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=self._catalogue.user_pool,
            self_sign_up_enabled=True,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            keep_original=cognito.KeepOriginalAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            custom_attributes={
                _ROLE_ATTRIBUTE: cognito.StringAttribute(min_len=1, max_len=32, mutable=False)
            },
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            deletion_protection=self._config.removal_policy == RemovalPolicy.RETAIN,
            removal_policy=self._config.removal_policy,
        )
        acknowledge(
            pool,
            "COG2",
            "MFA is offered (TOTP) but not forced: devices never sign in, and people opt in.",
        )
        return pool

    def _build_groups(self) -> None:
        for group in Group:
            cognito.CfnUserPoolGroup(
                self,
                f"{group.name.title()}Group",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=group.value,
                description=f"Cohort {group.value}",
            )

    def _build_signup_trigger(self, functions: FunctionsStack) -> None:
        self.user_pool.add_trigger(cognito.UserPoolOperation.POST_CONFIRMATION, functions.signup.function)
        # Granted here, not in the functions stack, because the pool is created after the function.
        iam.Policy(
            self,
            "SignupMayAssignGroups",
            roles=[functions.signup.role],
            statements=[
                iam.PolicyStatement(
                    actions=["cognito-idp:AdminAddUserToGroup"], resources=[self.user_pool.user_pool_arn]
                )
            ],
        )

    def _build_domain(self) -> cognito.UserPoolDomain:
        return self.user_pool.add_domain(
            "HostedDomain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"cohort-{self._config.stage}-{Aws.ACCOUNT_ID}"
            ),
        )

    def _build_sdk_client(self) -> cognito.UserPoolClient:
        return self.user_pool.add_client(
            "SdkClient",
            user_pool_client_name=self._catalogue.user_pool_client,
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            disable_o_auth=True,  # the SDK signs in directly; no hosted-UI flow, no callback
            generate_secret=False,
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            enable_token_revocation=True,
        )

    def oauth_client(
        self, scope: Construct, construct_id: str, callback: str, *, generate_secret: bool
    ) -> cognito.UserPoolClient:
        """An authorization-code client of the hosted UI, declared in ``scope``."""
        return cognito.UserPoolClient(
            scope,
            construct_id,
            user_pool=self.user_pool,
            generate_secret=generate_secret,
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(7),
            enable_token_revocation=True,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=_OAUTH_SCOPES,
                callback_urls=[callback],
                logout_urls=[callback],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
        )

    def _build_website_client(self) -> cognito.UserPoolClient:
        # The dashboard signs people in itself (Amplify JS, USER_PASSWORD_AUTH against Cognito's API):
        # no hosted UI, no redirect, and no secret, which a page served to every browser cannot keep.
        # Declared on the stack, where the hosted-UI client it replaces was: the same logical id keeps
        # the client (and its id, which other stacks import) through the update.
        return cognito.UserPoolClient(
            self,
            "WebsiteClient",
            user_pool=self.user_pool,
            user_pool_client_name=f"{self._catalogue.prefix}-website",
            auth_flows=cognito.AuthFlow(user_password=True),  # CDK adds ALLOW_REFRESH_TOKEN_AUTH
            disable_o_auth=True,
            generate_secret=False,
            prevent_user_existence_errors=True,
            enable_token_revocation=True,  # sign-out revokes the refresh token and the tokens it issued
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            # The browser keeps the refresh token in local storage, where any script of the origin could
            # read it: 7 days bounds what a stolen one is worth (the hub's clients live as long), while
            # a scientist watching a week of training signs in once. Refresh-token rotation would bound
            # it further, but it replaces REFRESH_TOKEN_AUTH, the flow the site and its tests use.
            refresh_token_validity=Duration.days(7),
            # Sign-up sets the email and the immutable role; the site reads both back, and whether the
            # email is verified.
            write_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True)
            .with_custom_attributes(_ROLE_ATTRIBUTE),
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True)
            .with_custom_attributes(_ROLE_ATTRIBUTE),
        )
