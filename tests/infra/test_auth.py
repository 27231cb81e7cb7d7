"""Auth: the Cognito user pool, its groups, its sign-up trigger, its domain and its clients."""

from __future__ import annotations

from cohort.catalogue import Group

from .helpers import Synth, Target, render


def _pool(synth: Synth) -> Target:
    return synth.named("auth", "AWS::Cognito::UserPool", "UserPoolName", synth.catalogue.user_pool)


def _clients(synth: Synth) -> list[tuple[str, dict]]:
    return [
        (stack, client["Properties"]) for stack, _, client in synth.everywhere("AWS::Cognito::UserPoolClient")
    ]


def test_the_post_confirmation_trigger_is_the_signup_function(dev: Synth) -> None:
    # Given the user pool's Lambda triggers
    trigger = dev.properties(_pool(dev))["LambdaConfig"]["PostConfirmation"]

    # When the trigger is followed across stacks
    target = dev.resolve("auth", trigger)

    # Then it is the signup function's ARN
    assert target == dev.function("signup")._replace(attribute="Arn")


def test_cognito_may_invoke_the_signup_function_for_this_pool_only(dev: Synth) -> None:
    # Given the Lambda permissions of the auth stack
    permissions = [p["Properties"] for p in dev.resources("auth", "AWS::Lambda::Permission").values()]

    # Then Cognito may invoke the signup function, from this user pool only
    signup = dev.function("signup")
    granted = [p for p in permissions if dev.resolve("auth", p["FunctionName"]).resource == signup.resource]
    assert len(granted) == 1
    (permission,) = granted
    assert (permission["Principal"], permission["Action"]) == (
        "cognito-idp.amazonaws.com",
        "lambda:InvokeFunction",
    )
    assert permission["SourceArn"] == {"Fn::GetAtt": [_pool(dev).logical_id, "Arn"]}


def test_the_signup_function_may_add_users_to_groups_of_this_pool_only(dev: Synth) -> None:
    # Given every statement that grants a Cognito action
    statements = [s for s in dev.iam_statements() if any(a.startswith("cognito-idp:") for a in s.actions)]
    signup_role = dev.role_of("functions", dev.properties(dev.function("signup"))["Role"])
    granted = [s for s in statements if signup_role in s.roles]

    # Then the signup role may add users to groups, on this user pool and nothing else
    assert [(s.actions, s.resources) for s in granted] == [
        (["cognito-idp:AdminAddUserToGroup"], [{"Fn::GetAtt": [_pool(dev).logical_id, "Arn"]}])
    ]


def test_people_sign_in_by_verified_email_with_a_strong_password(dev: Synth) -> None:
    # Given the user pool
    pool = dev.properties(_pool(dev))

    # Then people sign in with their email address, which Cognito verifies
    assert pool["UsernameAttributes"] == ["email"]
    assert "email" in pool["AutoVerifiedAttributes"]

    # And passwords are long and mix every character class
    policy = pool["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    for character_class in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"):
        assert policy[character_class] is True, character_class


def test_the_pool_has_one_group_per_platform_role(dev: Synth) -> None:
    # Given the groups of the auth stack
    groups = dev.resources("auth", "AWS::Cognito::UserPoolGroup").values()

    # Then they are the catalogue's groups, in this user pool
    assert sorted(g["Properties"]["GroupName"] for g in groups) == sorted(group.value for group in Group)
    assert all(g["Properties"]["UserPoolId"] == {"Ref": _pool(dev).logical_id} for g in groups)


def test_the_pool_has_a_hosted_domain(dev: Synth) -> None:
    # Given the auth stack
    domains = dev.resources("auth", "AWS::Cognito::UserPoolDomain").values()

    # Then the pool has exactly one hosted sign-in domain
    assert [d["Properties"]["UserPoolId"] for d in domains] == [{"Ref": _pool(dev).logical_id}]


def _hours(client: dict, token: str) -> float:
    """A token's validity in hours, in whatever unit the client states it."""
    unit = client.get("TokenValidityUnits", {}).get(token, "hours" if token != "RefreshToken" else "days")
    return client[f"{token}Validity"] * {"minutes": 1 / 60, "hours": 1, "days": 24}[unit]


def _pool_clients(synth: Synth) -> dict[str, dict]:
    """The clients declared with the pool, by name."""
    return {render(c.get("ClientName", "")): c for stack, c in _clients(synth) if stack == "auth"}


def test_the_sdk_signs_in_with_a_public_client_of_the_pool(dev: Synth) -> None:
    # Given the clients declared with the pool
    clients = _pool_clients(dev)

    # Then the SDK signs in with the catalogue's client, which holds no secret
    sdk = clients[dev.catalogue.user_pool_client]
    assert sdk["GenerateSecret"] is False
    assert "ALLOW_USER_SRP_AUTH" in sdk["ExplicitAuthFlows"]

    # And beside it there is only the website's client
    assert set(clients) == {dev.catalogue.user_pool_client, f"{dev.catalogue.prefix}-website"}


def test_the_website_signs_people_in_with_their_password_through_a_public_client(dev: Synth) -> None:
    # Given the website's client
    website = _pool_clients(dev)[f"{dev.catalogue.prefix}-website"]

    # Then it signs in with USER_PASSWORD_AUTH and refreshes, and offers no other flow
    assert sorted(website["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]

    # And a page served to every browser holds no secret and takes no OAuth redirect
    assert website["GenerateSecret"] is False
    assert website.get("AllowedOAuthFlowsUserPoolClient", False) is False
    for oauth in ("AllowedOAuthFlows", "AllowedOAuthScopes", "CallbackURLs", "LogoutURLs"):
        assert oauth not in website, oauth

    # And a failed sign-in never tells whether the address has an account
    assert website["PreventUserExistenceErrors"] == "ENABLED"


def test_website_sessions_are_short_and_sign_out_revokes_them(dev: Synth) -> None:
    # Given the website's client
    website = _pool_clients(dev)[f"{dev.catalogue.prefix}-website"]

    # Then ID and access tokens live an hour, and the refresh token (kept by the browser) a week
    assert _hours(website, "IdToken") == 1
    assert _hours(website, "AccessToken") == 1
    assert _hours(website, "RefreshToken") == 7 * 24

    # And signing out revokes the refresh token and what it issued
    assert website["EnableTokenRevocation"] is True


def test_website_sign_up_sets_the_email_and_the_role_and_reads_them_back(dev: Synth) -> None:
    # Given the website's client and the pool's custom role attribute
    website = _pool_clients(dev)[f"{dev.catalogue.prefix}-website"]
    (role,) = (a for a in dev.properties(_pool(dev))["Schema"] if a["Name"] == "role")

    # Then sign-up may write the email and custom:role, and nothing else
    assert sorted(website["WriteAttributes"]) == ["custom:role", "email"]

    # And the role is fixed once chosen: no client can change it after sign-up
    assert role["Mutable"] is False

    # And the site reads back the email, whether it is verified, and the role
    assert {"custom:role", "email", "email_verified"} <= set(website["ReadAttributes"])


def test_jupyterhub_has_a_confidential_client_calling_back_to_the_hub(dev: Synth) -> None:
    # Given the client declared with JupyterHub
    clients = [c for stack, c in _clients(dev) if stack == "jupyter"]
    assert len(clients) == 1
    client = clients[0]

    # Then it belongs to the user pool, keeps a secret and uses the authorization code flow
    assert dev.resolve("jupyter", client["UserPoolId"]) == _pool(dev)
    assert client["GenerateSecret"] is True
    assert client["AllowedOAuthFlows"] == ["code"]

    # And it calls back to the hub's OAuth endpoint over HTTPS
    (callback,) = (render(url) for url in client["CallbackURLs"])
    assert callback.startswith("https://")
    assert callback.endswith("/hub/oauth_callback")


def test_clients_hand_tokens_only_to_the_hub_and_never_implicitly(dev: Synth) -> None:
    # Given every app client of the user pool
    for _, client in _clients(dev):
        name = render(client.get("ClientName", "unnamed"))

        # Then none offers the implicit grant, which puts tokens in redirect URLs
        assert "implicit" not in client.get("AllowedOAuthFlows", []), name

        # And only JupyterHub's takes a redirect, back to the hub
        for url in map(render, client.get("CallbackURLs", [])):
            assert url.endswith("/hub/oauth_callback"), (name, url)
